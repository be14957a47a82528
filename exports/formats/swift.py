"""ms-swift JSONL {messages [{role, content with <image>}], images, videos, solution (for GRPO reward functions)}."""

from __future__ import annotations

from exports.base import ExportFormat, FormatContext, media_paths_sql


def _select(ctx: FormatContext) -> str:
    images, videos = media_paths_sql("image", ctx.media_prefix), media_paths_sql("video", ctx.media_prefix)
    # turns are {role: user | assistant | other, content} already (FORMAT.turn_fields, FORMAT.roles)
    return (f"to_json(struct_pack(messages := turns, images := {images}, videos := {videos}, "
            "solution := answer))::VARCHAR AS _json")


FORMAT = ExportFormat(
    name="swift",
    description="ms-swift JSONL (messages with <image> tags, media as files, solution column for GRPO)",
    media="files",
    file_kind="jsonl",
    placeholders="tags",
    select=_select,
    turn_fields=("role", "content"),
    roles=("user", "assistant"),
)
