"""Media on demand, decoded: a sample's images (PIL) and video frames (PyAV), over db's one media reader."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image

from db.media import MediaError, read_media_bytes

# Qwen2-VL / Qwen2.5-VL image budget (vst-format.md §2): 28x28-pixel tokens, pixels clamped to [4, 4096] tokens.
TOKEN_PATCH = 28
MIN_PIXELS, MAX_PIXELS = 4 * TOKEN_PATCH**2, 4096 * TOKEN_PATCH**2


def smart_resize(height: int, width: int, factor: int = TOKEN_PATCH, min_pixels: int = MIN_PIXELS,
                 max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """Qwen2-VL's resize rule: sides multiples of 28, pixel count clamped to [min_pixels, max_pixels]."""
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def decode_image(data: bytes, row: Mapping[str, Any], index: int) -> Image.Image:
    """Media item ``index`` of ``row`` from its bytes, as RGB; MediaError when they are not an image."""
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    except Exception as exc:  # PIL raises many types for bad bytes
        raise MediaError(f"sample {row.get('sample_id')}: media[{index}] does not decode as an image ({exc})") from exc
    return im.convert("RGB")


def load_image(row: Mapping[str, Any], index: int, media_roots: Iterable[str | os.PathLike] = ()) -> Image.Image:
    """Image ``index`` of ``row``, read through db's one reader (files only inside the shard's folder tree or
    ``media_roots``: pass settings.media_roots)."""
    return decode_image(read_media_bytes(row, index, media_roots), row, index)


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    fps: float
    width: int
    height: int


def _open_video(data: bytes):
    import av

    return av.open(io.BytesIO(data), mode="r")


def video_info(data: bytes) -> VideoInfo:
    with _open_video(data) as container:
        stream = container.streams.video[0]
        frames = stream.frames or sum(1 for _ in container.decode(stream))
        return VideoInfo(int(frames), float(stream.average_rate or 0), stream.width, stream.height)


def video_frame(data: bytes, frame_index: int) -> Image.Image:
    """Decode frames up to ``frame_index`` (short clips; seeking is not reliable on every encoder)."""
    try:
        with _open_video(data) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i == frame_index:
                    return frame.to_image()
    except Exception as exc:
        raise MediaError(f"video does not decode: {exc}") from exc
    raise MediaError(f"video has no frame {frame_index}")


def sample_frames(data: bytes, n: int) -> list[Image.Image]:
    """``n`` evenly spaced frames of a video, decoded in order (seeking is unreliable on some encoders);
    only the picked frames are kept, so a long clip does not fill memory."""
    try:
        with _open_video(data) as container:
            total = container.streams.video[0].frames
        if not total:  # the container does not say: count in a first pass
            with _open_video(data) as container:
                total = sum(1 for _ in container.decode(video=0))
        if not total:
            return []
        picks = [round(i * (total - 1) / max(n - 1, 1)) for i in range(n)]
        wanted = set(picks)
        kept: dict[int, Image.Image] = {}
        with _open_video(data) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i in wanted:
                    kept[i] = frame.to_image()
                if i >= picks[-1]:
                    break
    except Exception as exc:  # av raises its own error tree for bad containers
        raise MediaError(f"video does not decode: {exc}") from exc
    last = kept[max(kept)] if kept else None
    return [kept.get(i, last) for i in picks] if last is not None else []
