"""Media files Label Studio serves: written once per digest under its local-files folder (embedded bytes
extracted, 3D-box overlays and video frames rendered), addressed by /data/local-files/?d=... URLs."""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from curation.media.sample_media import MediaError, decode_image, load_image, read_media_bytes, sample_frames
from curation.vst.geometry import BOX_EDGES, Box3D, Camera, project_box_corners

VIDEO_FRAMES = 4  # frames shown per video sample, evenly spaced
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpg"), (b"GIF8", "gif"), (b"BM", "bmp"))
_COLOURS = [(255, 64, 64), (64, 200, 255), (255, 200, 0), (120, 255, 120), (255, 120, 255), (255, 150, 60)]


@dataclass
class MediaForTask:
    """The URLs a task shows and a note on anything that could not be shown."""

    urls: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    written: int = 0

    @property
    def note(self) -> str:
        return "; ".join(self.problems)


def image_extension(data: bytes) -> str | None:
    """File extension from the first bytes, so plain images are written as they are, never re-encoded."""
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


class MediaFolder:
    """The folder every project's local-files storage points at (``<files root>/<subdir>``). Media files are read
    only inside their shard's folder tree or ``media_roots`` (settings.media_roots)."""

    def __init__(self, files_root: Path, subdir: str, media_roots: Iterable[str | os.PathLike] = ()) -> None:
        self.files_root = Path(files_root).resolve()
        self.subdir = subdir.strip("/")
        self.root = self.files_root / self.subdir
        self.root.mkdir(parents=True, exist_ok=True)
        self.media_roots = tuple(media_roots)

    @staticmethod
    def _refuse_recorded_problem(row: Mapping[str, Any], index: int) -> None:
        """Ingest recorded a problem with the item (missing, undecodable, outside the media roots): it is never
        read nor sent, not even from an earlier push's file; the card says why."""
        item = row["media"][index]
        if item.get("problem"):
            where = item.get("path") or "(embedded)"
            raise MediaError(f"sample {row['sample_id']}: media[{index}] {where}: {item['problem']}")

    def url(self, path: Path) -> str:
        rel = path.relative_to(self.files_root).as_posix()
        return f"/data/local-files/?d={quote(rel)}"

    def _path(self, name: str) -> Path:
        return self.root / name[:2] / name

    def _existing(self, stem: str) -> Path | None:
        for ext in ("png", "jpg", "gif", "bmp", "webp"):
            p = self._path(f"{stem}.{ext}")
            if p.exists():
                return p
        return None

    def _write(self, name: str, data: bytes) -> Path:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)  # atomic: the server never serves half a file
        return path

    def _write_image(self, stem: str, image: Image.Image, fmt: str = "PNG") -> Path:
        buf = io.BytesIO()
        image.save(buf, format=fmt, **({"quality": 88} if fmt == "JPEG" else {}))
        return self._write(f"{stem}.{'jpg' if fmt == 'JPEG' else 'png'}", buf.getvalue())

    # --- per media item -------------------------------------------------------------------------------
    def image(self, row: Mapping[str, Any], index: int, out: MediaForTask) -> None:
        self._refuse_recorded_problem(row, index)
        item = row["media"][index]
        stem = item.get("digest") or f"{row['sample_id']}-{index}"
        path = self._existing(stem)
        if path is None:
            data = read_media_bytes(row, index, self.media_roots)
            ext = image_extension(data)
            if ext is None:  # exotic format (TIFF, ...): browsers cannot show it, so convert once
                path = self._write_image(stem, decode_image(data, row, index))
            else:
                path = self._write(f"{stem}.{ext}", data)
            out.written += 1
        out.urls.append(self.url(path))

    def boxes_overlay(self, row: Mapping[str, Any], out: MediaForTask) -> bool:
        """The first image with the sample's 3D boxes projected and drawn in; False when there is nothing to draw."""
        boxes = _boxes(row)
        camera = row.get("camera")
        if not boxes or not camera or camera.get("fx") is None:
            return False
        self._refuse_recorded_problem(row, 0)
        item = row["media"][0]
        key = hashlib.sha1(json.dumps([camera, [(b.label, b.to_vst()) for b in boxes]], sort_keys=True,
                                      default=str).encode()).hexdigest()[:12]  # fmt: skip
        stem = f"{item.get('digest') or row['sample_id']}-boxes-{key}"
        path = self._existing(stem)
        if path is None:
            image = load_image(row, 0, self.media_roots)
            path = self._write_image(stem, draw_boxes(image, camera, boxes), "JPEG")
            out.written += 1
        out.urls.append(self.url(path))
        return True

    def video_frames(self, row: Mapping[str, Any], index: int, out: MediaForTask, n: int = VIDEO_FRAMES) -> None:
        self._refuse_recorded_problem(row, index)
        item = row["media"][index]
        stem = item.get("digest") or f"{row['sample_id']}-{index}"
        paths = [self._existing(f"{stem}-frame{k}of{n}") for k in range(n)]
        if any(p is None for p in paths):
            frames = sample_frames(read_media_bytes(row, index, self.media_roots), n)
            if not frames:
                raise MediaError(f"sample {row['sample_id']}: media[{index}] video has no frames")
            paths = [self._write_image(f"{stem}-frame{k}of{n}", f.convert("RGB"), "JPEG") for k, f in enumerate(frames)]
            out.written += len(paths)
        out.urls.extend(self.url(p) for p in paths if p is not None)

    def placeholder(self, message: str, out: MediaForTask) -> None:
        """A card saying what is wrong, so the annotator sees the problem instead of a broken image."""
        stem = "problem-" + hashlib.sha1(message.encode()).hexdigest()[:16]
        path = self._existing(stem)
        if path is None:
            card = Image.new("RGB", (480, 200), (250, 240, 235))
            draw = ImageDraw.Draw(card)
            draw.rectangle([0, 0, 479, 199], outline=(200, 60, 60), width=4)
            lines = ["MEDIA PROBLEM"] + [message[i : i + 56] for i in range(0, min(len(message), 280), 56)]
            for k, line in enumerate(lines):
                draw.text((16, 16 + 26 * k), line, fill=(150, 30, 30), font=_font(18))
            path = self._write_image(stem, card)
            out.written += 1
        out.urls.append(self.url(path))

    def media_for(self, row: Mapping[str, Any]) -> MediaForTask:
        """Every URL a sample's task shows; a broken or missing item becomes a placeholder card and a note."""
        out = MediaForTask()
        media = row.get("media") or []
        if media and media[0].get("kind") == "image" and len(media) == 1:
            try:
                if self.boxes_overlay(row, out):
                    return out
            except (MediaError, OSError, ValueError) as exc:
                out.problems.append(f"3D boxes not drawn: {exc}")
        for index, item in enumerate(media):
            try:
                if item.get("kind") == "video":
                    self.video_frames(row, index, out)
                else:
                    self.image(row, index, out)
            except (MediaError, OSError, ValueError) as exc:
                message = str(exc)
                out.problems.append(message)
                self.placeholder(message, out)
        return out


def _boxes(row: Mapping[str, Any]) -> list[Box3D]:
    out = []
    for b in row.get("boxes_3d") or []:
        values = b.get("bbox") or []
        if len(values) == 9 and all(v is not None for v in values) and (b.get("encoding") in (None, "euler9")):
            out.append(Box3D.from_vst(b.get("label") or "", values))
    return out


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # older Pillow without sized default font
        return ImageFont.load_default()


def draw_boxes(image: Image.Image, camera: Mapping[str, Any], boxes: list[Box3D]) -> Image.Image:
    """Draw projected 3D box wireframes and labels; the camera's image size is scaled to the actual image."""
    width = camera.get("width") or image.width
    height = camera.get("height") or image.height
    cam = Camera(float(camera["fx"]), float(camera["fy"]), float(camera["cx"]), float(camera["cy"]),
                 int(width), int(height))  # fmt: skip
    sx, sy = image.width / cam.width, image.height / cam.height
    out = image.copy()
    draw = ImageDraw.Draw(out)
    font = _font(max(12, image.width // 40))
    line = max(2, image.width // 300)
    for k, box in enumerate(boxes):
        colour = _COLOURS[k % len(_COLOURS)]
        uv, front = project_box_corners(cam, box)
        uv = uv * np.array([sx, sy])
        for i, j in BOX_EDGES:
            if front[i] and front[j]:
                draw.line([tuple(uv[i]), tuple(uv[j])], fill=colour, width=line)
        if front.any():
            x, y = uv[front].min(axis=0)
            draw.text((float(x), float(y) - font.size - 2 if hasattr(font, "size") else float(y)), box.label,
                      fill=colour, font=font)  # fmt: skip
    return out
