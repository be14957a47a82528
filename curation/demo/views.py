"""Rendered still views and video tours of a room, with the facts questions are built from (who is visible where)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from curation.demo.render import encode_image, render_view
from curation.demo.rooms import Room, RoomObject
from curation.vst.geometry import Box3D, Camera, Pose, project_box_to_rect, project_points

VIDEO_CAMERA = Camera(114.3, 114.3, 80.0, 60.0, 160, 120)  # 160x120 frames, hfov 70 degrees
MIN_SEEN_FRACTION = 0.0015  # of the frame's pixels, for "appears in the video"


@dataclass(frozen=True)
class SeenObject:
    """One object as a still view sees it: its box in the camera frame and where it lands in the image."""

    obj: RoomObject
    box: Box3D  # unrounded, camera frame
    rect: tuple[int, int, int, int]  # 2D box in pixels (projection of the 3D box, clipped)
    pixels: int  # visible pixels in the id buffer
    answerable: bool  # centre in the image, on the object itself, and enough of it visible

    @property
    def label(self) -> str:
        return self.obj.label

    @property
    def distance(self) -> float:
        return float(np.linalg.norm(self.box.center))


@dataclass
class View:
    """A still image of a room: camera, pose, encoded bytes and the objects it shows."""

    room: Room
    index: int
    pose: Pose
    camera: Camera
    jpeg: bytes
    seen: list[SeenObject]

    @property
    def name(self) -> str:
        return f"cam_{self.index:02d}"

    @property
    def path(self) -> str:
        """The path written in the Parquet ``images.path`` field: names the scene it came from."""
        return f"scenes/{self.room.room_id}/{self.name}.jpg"

    def answerable(self) -> list[SeenObject]:
        return [s for s in self.seen if s.answerable]

    def visible_count(self, label: str) -> int:
        return sum(s.label == label for s in self.seen)


def analyse_view(room: Room, index: int) -> View:
    pose, camera = room.poses[index], room.camera
    img, ids = render_view(room, pose, camera)
    counts = np.bincount(ids.ravel(), minlength=256)
    min_pixels = 0.002 * camera.width * camera.height
    seen: list[SeenObject] = []
    for obj in room.objects:
        px = int(counts[obj.index + 1])
        if px == 0:
            continue
        box = obj.box_in_camera(pose)
        rect = project_box_to_rect(camera, box)
        if rect is None:
            continue
        uv, front = project_points(camera, np.asarray(box.center)[None, :])
        u, v = uv[0]
        inside = bool(front[0]) and box.center[2] > 0.3 and 4 <= u < camera.width - 4 and 4 <= v < camera.height - 4
        # The whole neighbourhood of the centre pixel must show the object, so the rounded box stated in
        # an answer still projects onto the object's own colour.
        on_object = inside and bool(np.all(ids[int(v) - 3:int(v) + 4, int(u) - 3:int(u) + 4] == obj.index + 1))
        r = tuple(round(x) for x in rect)
        seen.append(SeenObject(obj, box, r, px, bool(inside and on_object and px >= min_pixels)))  # type: ignore[arg-type]
    return View(room, index, pose, camera, encode_image(img), seen)


@dataclass
class Tour:
    """A video through a room: its frames and, per object, the first frame it shows up in (None if never)."""

    room: Room
    index: int
    frames: list[np.ndarray]  # RGB uint8 (H, W, 3)
    first_seen: dict[int, int | None]
    last_pixels: dict[int, int]  # per object, its pixels in the final frame

    @property
    def name(self) -> str:
        return f"{self.room.room_id}_path{self.index}"

    @property
    def clockwise(self) -> bool:
        # Headings decrease along a clockwise pan (seen from above, z up).
        h0, h1 = (math.atan2(p.rotation[1, 2], p.rotation[0, 2]) for p in self.room.tours[self.index][:2])
        return math.remainder(h1 - h0, 2 * math.pi) < 0

    def seen_labels(self) -> set[str]:
        return {self.room.objects[i].label for i, f in self.first_seen.items() if f is not None}

    def fully_seen(self, label: str) -> bool:
        return all(self.first_seen[o.index] is not None for o in self.room.objects if o.label == label)


def render_tour(room: Room, index: int) -> Tour:
    frames: list[np.ndarray] = []
    first: dict[int, int | None] = {o.index: None for o in room.objects}
    min_px = MIN_SEEN_FRACTION * VIDEO_CAMERA.width * VIDEO_CAMERA.height
    for k, pose in enumerate(room.tours[index]):
        img, ids = render_view(room, pose, VIDEO_CAMERA)
        frames.append(np.asarray(img))
        counts = np.bincount(ids.ravel(), minlength=256)
        for o in room.objects:
            if first[o.index] is None and counts[o.index + 1] >= min_px:
                first[o.index] = k
    last = {o.index: int(counts[o.index + 1]) for o in room.objects}
    return Tour(room, index, frames, first, last)
