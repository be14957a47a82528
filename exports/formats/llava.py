"""LLaVA / Qwen-VL JSON: a JSON array of {id, image, video, conversations [{from, value}]}, media as files.

LLaVA's loader reads ``image`` (one path, or a list of paths for several images) and ``video``: every record uses
those keys, whatever its number of images.
"""

from __future__ import annotations

from exports.base import ExportFormat, FormatContext, media_paths_sql


def _select(ctx: FormatContext) -> str:
    images, videos = media_paths_sql("image", ctx.media_prefix), media_paths_sql("video", ctx.media_prefix)
    # One record shape per media layout: one item is a path, several a list; no key when there is none.
    # The turns are {from, value} already (FORMAT.turn_fields).
    one_or_list = {"image": (f"{images}[1]", images), "video": (f"{videos}[1]", videos)}
    counts = {"image": "n_images", "video": "n_videos"}
    whens = []
    for n_img in ("= 0", "= 1", "> 1"):
        for n_vid in ("= 0", "= 1", "> 1"):
            fields = ["id := out_id"]
            for kind, n in (("image", n_img), ("video", n_vid)):
                if n != "= 0":
                    fields.append(f"{kind} := {one_or_list[kind][0] if n == '= 1' else one_or_list[kind][1]}")
            fields.append("conversations := turns")
            whens.append(f"WHEN {counts['image']} {n_img} AND {counts['video']} {n_vid} "
                         f"THEN to_json(struct_pack({', '.join(fields)}))")
    return f"CASE {' '.join(whens)} END::VARCHAR AS _json"


FORMAT = ExportFormat(
    name="llava",
    description="LLaVA / Qwen-VL JSON (image: a path or a list, video; one <image>/<video> tag per item)",
    media="files",
    file_kind="json",
    placeholders="tags",
    select=_select,
    turn_fields=("from", "value"),
)
