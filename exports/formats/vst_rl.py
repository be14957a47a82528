"""VST RL Parquet (vst-format.md §2): id, images (bytes embedded), question, answer, meta_info (mode, question_type)."""

from __future__ import annotations

import pyarrow as pa

from exports.base import IMAGES, ExportFormat, FormatContext, embedded_images, question_sql, rl_meta_sql

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
)
