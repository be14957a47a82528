"""ms-swift JSONL {id, messages [{role, content with <image>}], images, videos, solution (for GRPO rewards)}.

Media paths are absolute: ms-swift resolves a relative path against the trainer's working directory (or the one
ROOT_IMAGE_DIR names for every dataset at once), so records with paths relative to the export would load only when
the trainer runs inside the export folder. ``solution`` is the final answer in the form VST's scorer reads (NULL when
the answer gives none)."""

from __future__ import annotations

from exports.base import ExportFormat, FormatContext, ground_truth_sql, media_paths_sql


def _select(ctx: FormatContext) -> str:
    images, videos = media_paths_sql("image", ctx.media_prefix), media_paths_sql("video", ctx.media_prefix)
    # turns are {role: user | assistant | other, content} already (FORMAT.turn_fields, FORMAT.roles)
    return (f"to_json(struct_pack(id := out_id, messages := turns, images := {images}, videos := {videos}, "
            f"solution := {ground_truth_sql()}))::VARCHAR AS _json")


FORMAT = ExportFormat(
    name="swift",
    description="ms-swift JSONL (id, messages with <image> tags, absolute media paths, solution column for GRPO)",
    media="files",
    file_kind="jsonl",
    placeholders="tags",
    select=_select,
    turn_fields=("role", "content"),
    roles=("user", "assistant"),
    absolute_media=True,
)
