"""VST RL Parquet (vst-format.md §2): id, images (bytes embedded), question, answer, meta_info (mode, question_type)."""

from __future__ import annotations

import pyarrow as pa

from .base import IMAGES, ExportFormat, FormatContext, embedded_items, question_sql, rl_meta_sql

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("images", IMAGES),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("meta_info", pa.string()),
    ]
)


def _select(ctx: FormatContext) -> str:
    # The answer is the final answer (no trace): RL rewards score the model's own reasoning.
    return f"out_id AS id, {question_sql()} AS question, answer, {rl_meta_sql()} AS meta_info"


def _media(media: list[list[dict]], data: list[list[bytes]], ctx: FormatContext) -> dict[str, pa.Array]:
    return {"images": pa.array([embedded_items(m, d) for m, d in zip(media, data)], IMAGES)}


FORMAT = ExportFormat(
    name="vst-rl",
    description="VST RL Parquet (question, answer, meta_info with reward modes + embedded media), one folder per skill",
    media="embedded",
    file_kind="parquet",
    placeholders="vst",
    select=_select,
    schema=lambda ctx: SCHEMA,
    media_columns=_media,
    partition_by_skill=True,
    ensure_tags=False,  # VST RL questions carry no placeholders upstream: keep them as found
)
