"""verl RL Parquet: data_source, prompt [{role, content}], embedded images, videos, ability, reward_model, extra_info.

prompt content carries <image>/<video> tags; reward_model is {style: rule, ground_truth} with the final answer in the
form VST's scorer reads (rows whose answer gives none are left out and listed); extra_info is {split, index, answer,
question (no placeholders), sample_id, reward_modes, rl_modes (the row's own), answer_kind}, which the reward
function the export ships (reward/) reads: a row's RL modes score it, else the metric its question and answer kind
call for (MRA for a count, distance or size).
Images are embedded; videos are files beside the data, by absolute path (verl's video reader takes a path).
"""

from __future__ import annotations

import pyarrow as pa

from exports.base import (
    IMAGES,
    WHITESPACE,
    ExportFormat,
    FormatContext,
    embedded_items,
    ground_truth_sql,
    left_out_sql,
    media_paths_sql,
    question_sql,
    reward_modes_sql,
)

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
EXTRA_INFO = pa.struct(
    [
        ("split", pa.string()),
        ("index", pa.int64()),
        ("answer", pa.string()),
        ("question", pa.string()),
        ("sample_id", pa.string()),
        ("reward_modes", pa.list_(pa.string())),
        ("rl_modes", pa.list_(pa.string())),  # the row's own RL modes (NULL for an SFT row)
        ("answer_kind", pa.string()),  # with the question, what the reward scores a row without RL modes by
    ]
)


def _schema(ctx: FormatContext) -> pa.Schema:
    fields = [
        ("data_source", pa.string()),
        ("prompt", pa.list_(MESSAGE)),
        ("images", IMAGES),
        ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        ("extra_info", EXTRA_INFO),
    ]
    if ctx.has_videos:  # verl reads a videos column only when the data has videos
        fields.insert(3, ("videos", pa.list_(pa.string())))
    return pa.schema(fields)


def _select(ctx: FormatContext) -> str:
    system = ("list_transform(list_filter(turns, lambda t: t.role = 'system'), "
              "lambda t: struct_pack(role := 'system', content := t.text))")
    prompt = f"list_concat({system}, [struct_pack(role := 'user', content := {question_sql()})])"
    videos = f"{media_paths_sql('video', ctx.media_prefix)} AS videos, " if ctx.has_videos else ""
    return (
        f"coalesce(data_source, dataset) AS data_source, {prompt} AS prompt, {videos}skill AS ability, "
        f"struct_pack(style := 'rule', ground_truth := {ground_truth_sql()}) AS reward_model, "
        f"struct_pack(split := 'train', \"index\" := ord, answer := answer, "
        f"question := trim(plain_question, {WHITESPACE}), "
        f"sample_id := sample_id, reward_modes := {reward_modes_sql()}, rl_modes := rl_modes, "
        f"answer_kind := answer_kind) AS extra_info"
    )


def _media(media: list[list[dict]], data: list[list[bytes]], ctx: FormatContext) -> dict[str, pa.Array]:
    return {"images": pa.array([embedded_items(m, d, ("image",)) for m, d in zip(media, data)], IMAGES)}


FORMAT = ExportFormat(
    name="verl",
    description="verl RL Parquet (prompt with <image>/<video> tags, embedded images, videos as files, rule reward "
                "with ground truth, reward function in reward/)",
    media="embedded",
    file_kind="parquet",
    placeholders="tags",
    select=_select,
    schema=_schema,
    media_columns=_media,
    absolute_media=True,
    file_kinds=("video",),
    left_out=lambda ctx: left_out_sql(ground_truth_sql()),
)
