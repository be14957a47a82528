"""VST SFT Parquet (vst-format.md §1): id, conversations, images (bytes embedded), data_source, type, meta_info."""

from __future__ import annotations

import pyarrow as pa

from exports.base import IMAGES, ExportFormat, FormatContext, embedded_images

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("conversations", pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))),
        ("images", IMAGES),
        ("data_source", pa.string()),
        ("type", pa.string()),
        ("meta_info", pa.string()),
    ]
)

# §1: a JSON list with one object per media item (-1 for video); kept as found when it already is one.
_META = (
    "CASE WHEN meta_info IS NOT NULL AND json_valid(meta_info) AND json_type(meta_info) = 'ARRAY' THEN meta_info "
    "ELSE to_json(list_transform(media, lambda m: CASE WHEN m.kind = 'video' "
    "THEN struct_pack(width := -1, height := -1, resized_width := -1, resized_height := -1) "
    "ELSE struct_pack(width := coalesce(m.width, -1), height := coalesce(m.height, -1), "
    "resized_width := coalesce(m.width, -1), resized_height := coalesce(m.height, -1)) END))::VARCHAR END"
)


def _select(ctx: FormatContext) -> str:
    return (
        "out_id AS id, "
        "turns AS conversations, "  # {from, value} already (FORMAT.turn_fields)
        f"data_source, type, {_META} AS meta_info"
    )


FORMAT = ExportFormat(
    name="vst-sft",
    description="VST SFT Parquet (conversations + embedded media), one folder per skill",
    media="embedded",
    file_kind="parquet",
    placeholders="vst",
    select=_select,
    schema=lambda ctx: SCHEMA,
    media_columns=embedded_images,
    partition_by_skill=True,
    turn_fields=("from", "value"),
)
