"""LLaVA / Qwen-VL JSON: a JSON array of {id, image | images | video, conversations [{from, value}]}, media as files."""

from __future__ import annotations

from exports.base import ExportFormat, FormatContext, media_paths_sql


def _select(ctx: FormatContext) -> str:
    images, videos = media_paths_sql("image", ctx.media_prefix), media_paths_sql("video", ctx.media_prefix)
    # One record shape per media layout: a single image is "image", several are "images", a video is "video".
    # The turns are {from, value} already (FORMAT.turn_fields).
    return f"""CASE
      WHEN n_videos > 0 AND n_images > 0 THEN to_json(struct_pack(id := out_id, video := {videos}[1],
        images := {images}, conversations := turns))
      WHEN n_videos > 0 THEN to_json(struct_pack(id := out_id, video := {videos}[1], conversations := turns))
      WHEN n_images = 1 THEN to_json(struct_pack(id := out_id, image := {images}[1], conversations := turns))
      WHEN n_images > 1 THEN to_json(struct_pack(id := out_id, images := {images}, conversations := turns))
      ELSE to_json(struct_pack(id := out_id, conversations := turns)) END::VARCHAR AS _json"""


FORMAT = ExportFormat(
    name="llava",
    description="LLaVA / Qwen-VL JSON (one <image>/<video> tag per media item, media as files)",
    media="files",
    file_kind="json",
    placeholders="tags",
    select=_select,
    turn_fields=("from", "value"),
)
