"""ms-swift JSONL {messages [{role, content}], images, videos, solution}: <image> tags; `solution` feeds GRPO
reward functions."""

from __future__ import annotations

from .base import ExportFormat, FormatContext, media_paths_sql


def _select(ctx: FormatContext) -> str:
    role = "CASE t.role WHEN 'human' THEN 'user' WHEN 'gpt' THEN 'assistant' ELSE t.role END"
    messages = f"list_transform(turns, lambda t: struct_pack(role := {role}, content := t.text))"
    images, videos = media_paths_sql("image", ctx.media_prefix), media_paths_sql("video", ctx.media_prefix)
    return (f"to_json(struct_pack(messages := {messages}, images := {images}, videos := {videos}, "
            "solution := answer))::VARCHAR AS _json")


FORMAT = ExportFormat(
    name="swift",
    description="ms-swift JSONL (messages with <image> tags, media as files, solution column for GRPO)",
    media="files",
    file_kind="jsonl",
    placeholders="tags",
    select=_select,
)
