"""VST RL Parquet (vst-format.md §2): id, images (bytes embedded), question, answer, meta_info (mode, question_type).

``answer`` is the ground truth in the form VST's scorer reads (an option letter, a number with its unit, ...); a row
whose answer gives none, or that has a video (VST's RL rows hold images only), is left out and listed in the
manifest.
"""

from __future__ import annotations

import pyarrow as pa

from exports.base import (
    IMAGES,
    ExportFormat,
    FormatContext,
    embedded_images,
    ground_truth_sql,
    left_out_sql,
    question_sql,
    rl_meta_sql,
)

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
    return f"out_id AS id, {question_sql()} AS question, {ground_truth_sql()} AS answer, {rl_meta_sql()} AS meta_info"


def _left_out() -> str:
    # VST's RL rows hold images only (its RL trainer decodes every item as an image): a video row has no place.
    return (f"CASE WHEN n_videos > 0 THEN 'VST RL rows carry images only: this row has a video' "
            f"ELSE {left_out_sql(ground_truth_sql())} END")


FORMAT = ExportFormat(
    name="vst-rl",
    description="VST RL Parquet (question, answer, meta_info with reward modes + embedded media), one folder per skill",
    media="embedded",
    file_kind="parquet",
    placeholders="vst",
    select=_select,
    schema=lambda ctx: SCHEMA,
    media_columns=embedded_images,
    partition_by_skill=True,
    ensure_tags=False,  # VST RL questions carry no placeholders upstream: keep them as found
    left_out=lambda ctx: _left_out(),
)
