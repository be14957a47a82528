"""LLaMA-Factory sharegpt JSONL {id, conversations [{from, value}], images, videos} plus its dataset_info.json entry."""

from __future__ import annotations

import json

from exports.base import SYSTEM_ROLE, ExportFormat, FormatContext, media_paths_sql


def _select(ctx: FormatContext) -> str:
    images, videos = media_paths_sql("image", ctx.media_prefix), media_paths_sql("video", ctx.media_prefix)
    # turns are {from, value} already (FORMAT.turn_fields)
    return (f"to_json(struct_pack(id := out_id, conversations := turns, images := {images}, "
            f"videos := {videos}))::VARCHAR AS _json")


def dataset_info(name: str, file_name: str = "data") -> dict:
    """The dataset_info.json entry (file_name may be a folder: LLaMA-Factory loads every file in it)."""
    return {
        name: {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "images": "images", "videos": "videos"},
            "tags": {
                "role_tag": "from",
                "content_tag": "value",
                "user_tag": FORMAT.roles[0],  # the roles the export writes
                "assistant_tag": FORMAT.roles[1],
                "system_tag": SYSTEM_ROLE,
            },
        }
    }


def _extra(ctx: FormatContext, data_files: list[str]) -> dict[str, bytes]:
    text = json.dumps(dataset_info(ctx.dataset_name), indent=2, sort_keys=False) + "\n"
    return {"dataset_info.json": text.encode()}


FORMAT = ExportFormat(
    name="llamafactory",
    description="LLaMA-Factory sharegpt JSONL + dataset_info.json (media paths relative to the dataset folder)",
    media="files",
    file_kind="jsonl",
    placeholders="tags",
    select=_select,
    extra_files=_extra,
    turn_fields=("from", "value"),
)
