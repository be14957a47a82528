"""Media on demand: one sample's image/video bytes read lazily from its shard (a single row group), decoded
images, video frames (PyAV) and cached thumbnails. Nothing here is ever copied into the catalog."""

from __future__ import annotations

import io
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from threading import Lock

import pyarrow.parquet as pq
from PIL import Image

from curation.ingest.readers.media_refs import resolve_media_path

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


class MediaError(Exception):
    """A media item cannot be shown; the message names the sample, item, file and why."""


_ROW_CACHE: OrderedDict[tuple[str, int, int], list] = OrderedDict()
_ROW_CACHE_LOCK = Lock()
_ROW_CACHE_SIZE = 64


def _parquet_images(source_file: str, row_group: int, row_in_group: int) -> list:
    key = (source_file, row_group, row_in_group)
    with _ROW_CACHE_LOCK:
        if key in _ROW_CACHE:
            _ROW_CACHE.move_to_end(key)
            return _ROW_CACHE[key]
    # Read one row group's `images` column only, then keep just the row we need.
    table = pq.ParquetFile(source_file).read_row_group(row_group, columns=["images"])
    items = table.column("images").slice(row_in_group, 1).to_pylist()[0] or []
    with _ROW_CACHE_LOCK:
        _ROW_CACHE[key] = items
        while len(_ROW_CACHE) > _ROW_CACHE_SIZE:
            _ROW_CACHE.popitem(last=False)
    return items


def read_media_bytes(row: dict, index: int) -> bytes:
    """Bytes of media item ``index`` of a catalog row (embedded in its Parquet shard, or a file by path)."""
    media = row.get("media") or []
    sid = row.get("sample_id")
    if not 0 <= index < len(media):
        raise MediaError(f"sample {sid}: no media item {index} (it has {len(media)})")
    item = media[index]
    source_file = row["source_file"]
    if item.get("embedded"):
        if not Path(source_file).exists():
            raise MediaError(f"sample {sid}: shard {source_file} is gone (media[{index}] is embedded in it)")
        try:
            items = _parquet_images(source_file, int(row["row_group"]), int(row["row_in_group"]))
        except Exception as exc:
            raise MediaError(f"sample {sid}: cannot read media[{index}] from {source_file}: {exc}") from exc
        raw = items[index] if index < len(items) else None
        data = (raw or {}).get("bytes") or (raw or {}).get("byres") if isinstance(raw, dict) else None
        if not data:
            raise MediaError(f"sample {sid}: media[{index}] in {source_file} has no bytes")
        return data
    path = resolve_media_path(item.get("path") or "", Path(source_file).parent)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MediaError(f"sample {sid}: media[{index}] file {path} cannot be read ({exc.strerror or exc})") from exc


def load_image(row: dict, index: int) -> Image.Image:
    data = read_media_bytes(row, index)
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    except Exception as exc:
        raise MediaError(f"sample {row.get('sample_id')}: media[{index}] does not decode as an image ({exc})") from exc
    return im.convert("RGB")


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


def thumbnail(row: dict, index: int, cache_dir: Path, size: int = 256) -> Path:
    """A cached JPEG thumbnail named by media digest (shared by every sample using the same image)."""
    item = (row.get("media") or [])[index]
    digest = item.get("digest") or f"{row['sample_id']}-{index}"
    out = Path(cache_dir) / "thumbs" / f"{digest}-{size}.jpg"
    if out.exists():
        return out
    im = load_image(row, index)
    im.thumbnail((size, size))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    im.save(tmp, format="JPEG", quality=85)
    tmp.replace(out)
    return out
