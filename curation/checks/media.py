"""Media checks: images decode, are big enough, not too elongated, fit the RL token budget; videos exist and decode."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from PIL import Image

from curation.checks.base import Outcome, RowCheck, SqlCheck
from curation.checks.registry import register
from curation.media.sample_media import MAX_PIXELS, MIN_PIXELS, TOKEN_PATCH, smart_resize
from curation.query.severity import ERROR
from curation.vst.vocabulary import MISSING_FILE, UNDECODABLE
from db.media import MediaError, read_media_bytes, resolve_media_path

MIN_SIDE = 28
MAX_ASPECT = 100.0
# Past this aspect ratio Qwen2-VL's image processor raises (smart_resize): the row breaks training, not just doubts.
PROCESSOR_MAX_ASPECT = 200.0
# Upstream RL limits (vst-format.md §2): pixels per image in [4·28², 4096·28²], total tokens < 8192, <= 4 images.
PATCH = TOKEN_PATCH
MAX_TOKENS = 8192
MAX_IMAGES = 4
_BUFFER_REPR = re.compile(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>")

# The images of a sample as (index in media, width, height) for SQL checks over ``batch s``.
_IMAGES = (
    "list_filter(list_transform(s.media, lambda m, i: struct_pack(i := i - 1, k := m.kind, w := m.width, "
    "h := m.height)), lambda x: x.k = 'image' AND x.w > 0 AND x.h > 0)"
)


def image_tokens(width: int, height: int, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS) -> int:
    """The visual tokens (28x28 patches) one image costs after Qwen2.5-VL's smart_resize."""
    h_bar, w_bar = smart_resize(height, width, PATCH, min_pixels, max_pixels)
    return (h_bar // PATCH) * (w_bar // PATCH)


def tokens_sql(w: str, h: str, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS) -> str:
    """:func:`image_tokens` as a DuckDB expression over two numeric expressions (round half to even, as Python)."""
    hb = f"greatest({PATCH}, round_even({h} / {PATCH}.0, 0) * {PATCH})"
    wb = f"greatest({PATCH}, round_even({w} / {PATCH}.0, 0) * {PATCH})"
    down = f"sqrt({h} * {w} / {max_pixels}.0)"
    up = f"sqrt({min_pixels}.0 / ({h} * {w}))"
    return (
        f"CASE WHEN {hb} * {wb} > {max_pixels} THEN "
        f"(greatest({PATCH}, floor({h} / {down} / {PATCH}) * {PATCH}) / {PATCH}) * "
        f"(greatest({PATCH}, floor({w} / {down} / {PATCH}) * {PATCH}) / {PATCH}) "
        f"WHEN {hb} * {wb} < {min_pixels} THEN ceil({h} * {up} / {PATCH}) * ceil({w} * {up} / {PATCH}) "
        f"ELSE ({hb} / {PATCH}) * ({wb} / {PATCH}) END"
    )


@register
class MinSide(SqlCheck):
    name = "media.min_side"
    description = f"Every image's shorter side is at least {MIN_SIDE} px (one vision patch)."
    applies_to = "samples with images whose size is known"
    columns = ("sample_id", "media", "n_images")
    score_meaning = "the smallest image side in pixels"

    def sql(self) -> str:
        limit = int(self.params.get("min_side", MIN_SIDE))
        return f"""
        WITH x AS (SELECT s.sample_id, {_IMAGES} AS im FROM batch s WHERE s.n_images > 0),
        y AS (
          SELECT sample_id, list_min(list_transform(im, lambda x: least(x.w, x.h))) AS ms,
                 list_filter(im, lambda x: least(x.w, x.h) < {limit})[1] AS bad
          FROM x WHERE len(im) > 0
        )
        SELECT sample_id, ms >= {limit} AS passed, ms::DOUBLE AS score,
          CASE WHEN ms >= {limit} THEN NULL
               ELSE format('media[{{}}]: image is {{}}x{{}} px; its shorter side is below {limit} px',
                           bad.i, bad.w, bad.h) END AS reason
        FROM y
        """


@register
class AspectRatio(SqlCheck):
    name = "media.aspect_ratio"
    description = f"No image is more elongated than {MAX_ASPECT:.0f}:1 (the vision encoder rejects extreme ratios)."
    applies_to = "samples with images whose size is known"
    columns = ("sample_id", "media", "n_images")
    score_meaning = "the largest long-side/short-side ratio (1 is square)"
    # warning past MAX_ASPECT; error past PROCESSOR_MAX_ASPECT, where the trainers' image processor raises

    def sql(self) -> str:
        limit = float(self.params.get("max_aspect", MAX_ASPECT))
        return f"""
        WITH x AS (SELECT s.sample_id, {_IMAGES} AS im FROM batch s WHERE s.n_images > 0),
        y AS (
          SELECT sample_id, list_max(list_transform(im, lambda x: greatest(x.w, x.h) / least(x.w, x.h))) AS ratio,
                 list_filter(im, lambda x: greatest(x.w, x.h) / least(x.w, x.h) > {limit})[1] AS bad
          FROM x WHERE len(im) > 0
        )
        SELECT sample_id, ratio <= {limit} AS passed, ratio::DOUBLE AS score,
          CASE WHEN ratio <= {limit} THEN NULL
               ELSE format('media[{{}}]: image is {{}}x{{}} px, aspect ratio {{}}:1 exceeds {limit:g}:1',
                           bad.i, bad.w, bad.h, round(ratio, 1)) END AS reason,
          CASE WHEN ratio > {PROCESSOR_MAX_ASPECT} THEN '{ERROR}' END AS severity
        FROM y
        """


@register
class TokenBudget(SqlCheck):
    name = "media.token_budget"
    description = (f"RL rows fit the upstream image budget: pixels per image clamped to [4·28², 4096·28²], "
                   f"total below {MAX_TOKENS} tokens, at most {MAX_IMAGES} images.")
    applies_to = "RL samples with images"
    columns = ("sample_id", "kind", "media", "n_images")
    score_meaning = "visual tokens of all images after clamping"
    # warning over the token budget (the trainer filters the prompt out); error over the image count (vLLM's rollout
    # refuses more images per prompt than its limit)

    def sql(self) -> str:
        max_tokens = int(self.params.get("max_tokens", MAX_TOKENS))
        max_images = int(self.params.get("max_images", MAX_IMAGES))
        tok = tokens_sql("x.w", "x.h", int(self.params.get("min_pixels", MIN_PIXELS)),
                         int(self.params.get("max_pixels", MAX_PIXELS)))
        return f"""
        WITH x AS (SELECT s.sample_id, s.n_images AS n, {_IMAGES} AS im FROM batch s
                   WHERE s.kind = 'rl' AND s.n_images > 0),
        y AS (SELECT sample_id, n, coalesce(list_sum(list_transform(im, lambda x: {tok})), 0) AS tokens FROM x)
        SELECT sample_id, tokens < {max_tokens} AND n <= {max_images} AS passed, tokens::DOUBLE AS score,
          CASE WHEN tokens < {max_tokens} AND n <= {max_images} THEN NULL
               WHEN n > {max_images} THEN format('media: {{}} images; RL rows take at most {max_images}', n)
               ELSE format('media: {{}} images cost {{}} visual tokens; the RL budget is below {max_tokens}',
                           n, tokens::BIGINT) END AS reason,
          CASE WHEN n > {max_images} THEN '{ERROR}' END AS severity
        FROM y
        """


@register
class ImagesDecode(RowCheck):
    name = "media.decodable"
    description = "Every image's bytes are reachable and decode completely."
    severity = ERROR
    applies_to = "samples with images"
    columns = ("sample_id", "media", "n_images", "source_file", "row_group", "row_in_group")
    where = "s.n_images > 0"
    cost = "media"
    score_meaning = "none"

    def check(self, row: dict[str, Any]) -> Outcome | None:
        for i, item in enumerate(row["media"] or []):
            if item.get("kind") != "image":
                continue
            where = f"media[{i}] ({item.get('path') or 'embedded'})"
            if item.get("problem") and not item.get("problem", "").startswith(UNDECODABLE):
                return Outcome(False, None, f"{where}: {item['problem']}")
            try:
                data = read_media_bytes(row, i, self.params.get("media_roots", ()))
                with Image.open(io.BytesIO(data)) as im:
                    im.load()
            except MediaError as exc:
                return Outcome(False, None, f"{where}: {exc}")
            except Exception as exc:  # PIL raises many types for broken data
                return Outcome(False, None, f"{where}: does not decode as an image ({_describe(exc)})")
        return Outcome(True)


@register
class VideoDecodes(RowCheck):
    name = "media.video"
    description = "Every video file is present and decodes (first frame), with at least one frame."
    severity = ERROR
    applies_to = "samples with videos"
    columns = ("sample_id", "media", "n_videos", "source_file", "row_group", "row_in_group")
    where = "s.n_videos > 0"
    cost = "media"
    score_meaning = "frames in the (first) video"

    def check(self, row: dict[str, Any]) -> Outcome | None:
        frames = None
        for i, item in enumerate(row["media"] or []):
            if item.get("kind") != "video":
                continue
            path = item.get("path") or ""
            where = f"media[{i}] ({path or 'embedded'})"
            if item.get("problem") == MISSING_FILE:
                shown = resolve_media_path(path, Path(row["source_file"]).parent)
                return Outcome(False, None, f"{where}: video file is missing (looked for {shown})")
            if item.get("problem"):
                return Outcome(False, None, f"{where}: {item['problem']}")
            try:
                data = read_media_bytes(row, i, self.params.get("media_roots", ()))
                n = _first_frame_and_count(data)
            except MediaError as exc:
                return Outcome(False, None, f"{where}: {exc}")
            except Exception as exc:  # PyAV raises its own error family
                return Outcome(False, None, f"{where}: video does not decode ({_describe(exc)})")
            if n == 0:
                return Outcome(False, 0.0, f"{where}: video has no frames")
            frames = n if frames is None else frames
        return Outcome(True, None if frames is None else float(frames))


def _describe(exc: Exception) -> str:
    """The decoder's error without the in-memory buffer's repr (``<_io.BytesIO object at 0x7f...>``), whose address
    changes from run to run and would make the same failure read differently each time."""
    return f"{type(exc).__name__}: {_BUFFER_REPR.sub('the bytes', str(exc))}"


def _first_frame_and_count(data: bytes) -> int:
    import av

    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            frame.to_ndarray()  # really decode one frame
            break
        else:
            return 0
        return int(stream.frames or 1)
