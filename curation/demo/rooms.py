"""Synthetic rooms: labelled object boxes with plausible sizes, camera poses that look at them, scene point clouds."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from curation.vst.geometry import Box3D, Camera, Pose, box_corners

# World frame of a room: metres, x along the room's width, y along its depth, z up; floor at z = 0.


@dataclass(frozen=True)
class ObjectPrior:
    """Typical size of a label (metres) and where such objects stand."""

    width: float
    height: float
    depth: float
    against_wall: bool = False
    elevation: float = 0.0  # bottom above the floor (a wall-mounted tv)


LABEL_PRIORS: dict[str, ObjectPrior] = {
    "chair": ObjectPrior(0.50, 0.90, 0.50),
    "table": ObjectPrior(1.40, 0.75, 0.80),
    "sofa": ObjectPrior(2.00, 0.85, 0.90, against_wall=True),
    "bed": ObjectPrior(1.60, 0.55, 2.00, against_wall=True),
    "cabinet": ObjectPrior(0.90, 1.00, 0.50, against_wall=True),
    "lamp": ObjectPrior(0.40, 1.55, 0.40),
    "desk": ObjectPrior(1.20, 0.75, 0.60, against_wall=True),
    "tv": ObjectPrior(1.10, 0.65, 0.12, against_wall=True, elevation=0.9),
    "bookshelf": ObjectPrior(0.90, 1.90, 0.35, against_wall=True),
    "plant": ObjectPrior(0.45, 0.90, 0.45),
    "nightstand": ObjectPrior(0.45, 0.55, 0.40),
    "refrigerator": ObjectPrior(0.80, 1.80, 0.70, against_wall=True),
    "trash can": ObjectPrior(0.30, 0.45, 0.30),
    "dresser": ObjectPrior(1.20, 0.90, 0.50, against_wall=True),
    "door": ObjectPrior(0.90, 2.05, 0.06, against_wall=True),
}

# Which labels a kind of room draws from, with how many of each (min, max).
ROOM_KINDS: dict[str, dict[str, tuple[int, int]]] = {
    "bedroom": {
        "bed": (1, 1),
        "nightstand": (1, 2),
        "lamp": (0, 2),
        "dresser": (0, 1),
        "chair": (0, 2),
        "plant": (0, 1),
        "tv": (0, 1),
        "door": (1, 1),
        "cabinet": (0, 1),
        "trash can": (0, 1),
    },
    "living room": {
        "sofa": (1, 1),
        "table": (1, 1),
        "tv": (0, 1),
        "lamp": (1, 2),
        "chair": (1, 3),
        "bookshelf": (0, 1),
        "plant": (1, 2),
        "cabinet": (0, 1),
        "door": (1, 1),
    },
    "office": {
        "desk": (1, 2),
        "chair": (2, 4),
        "bookshelf": (1, 2),
        "cabinet": (0, 1),
        "lamp": (0, 1),
        "plant": (0, 2),
        "trash can": (1, 1),
        "door": (1, 1),
    },
    "kitchen": {
        "table": (1, 1),
        "chair": (2, 4),
        "refrigerator": (1, 1),
        "cabinet": (1, 2),
        "trash can": (1, 1),
        "plant": (0, 1),
        "lamp": (0, 1),
        "door": (1, 1),
    },
}

# Saturated object colours, far from the pale floor, wall and ceiling colours so a pixel names its object.
OBJECT_PALETTE: list[tuple[int, int, int]] = [
    (220, 40, 40),
    (40, 160, 60),
    (40, 70, 210),
    (230, 160, 20),
    (150, 40, 190),
    (20, 170, 190),
    (240, 90, 170),
    (120, 80, 20),
    (110, 200, 40),
    (200, 100, 40),
    (70, 20, 110),
    (20, 100, 100),
    (180, 180, 20),
    (90, 90, 90),
    (20, 40, 90),
    (160, 20, 90),
]
FLOOR_COLOURS = {"oak floor": (196, 164, 120), "grey tiles": (165, 165, 160), "beige carpet": (214, 200, 170)}
WALL_COLOURS = {
    "off-white walls": (236, 232, 222),
    "pale blue walls": (205, 220, 235),
    "light green walls": (212, 228, 204),
}
CEILING_COLOUR = (248, 248, 246)

# Image sizes and horizontal fields of view a room's capture device may have.
IMAGE_SIZES = [(400, 300), (320, 240)]
HFOVS = [55.0, 60.0, 65.0, 70.0]
CENTRE_CLEARANCE = 0.9  # metres kept free around the room centre so a video tour has room to turn


@dataclass(frozen=True)
class RoomObject:
    """One labelled object: an upright box on the floor (or on a wall), rotated by yaw about z."""

    index: int
    label: str
    center: tuple[float, float, float]  # world, metres
    width: float  # along the object's local x
    depth: float  # along the object's local y (floor plane)
    height: float  # along world z
    yaw: float  # radians about world z
    color: tuple[int, int, int]

    @property
    def world_axes(self) -> np.ndarray:
        """Columns: the box's width, down and depth axes in the world (VST box order x, y, z)."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return np.array([[c, 0.0, -s], [s, 0.0, c], [0.0, -1.0, 0.0]])

    @property
    def footprint_radius(self) -> float:
        return 0.5 * math.hypot(self.width, self.depth)

    def corners_in_camera(self, pose: Pose) -> np.ndarray:
        """The 8 box corners in a camera frame, in geometry.box_corners order (cheap: no Euler angles)."""
        world = _local_corners(self.width, self.height, self.depth) @ self.world_axes.T + np.asarray(self.center)
        return pose.world_to_camera(world)

    def box_in_camera(self, pose: Pose) -> Box3D:
        """This object as a VST box in the frame of a camera at ``pose``."""
        center = pose.world_to_camera(np.asarray(self.center))
        rot = pose.rotation.T @ self.world_axes
        return Box3D(
            self.label, tuple(float(v) for v in center), (self.width, self.height, self.depth), canonical_angles(rot)
        )


@lru_cache(maxsize=4096)
def _local_corners(width: float, height: float, depth: float) -> np.ndarray:
    return box_corners((0.0, 0.0, 0.0), (width, height, depth), (0.0, 0.0, 0.0))


def euler_xyz(rot: np.ndarray) -> tuple[float, float, float]:
    """Extrinsic x-y-z Euler angles (radians) of a rotation, R = Rz(c) Ry(b) Rx(a); scipy's "xyz", but cheap."""
    b = math.asin(max(-1.0, min(1.0, -float(rot[2, 0]))))
    if abs(float(rot[2, 0])) < 1 - 1e-9:
        a = math.atan2(float(rot[2, 1]), float(rot[2, 2]))
        c = math.atan2(float(rot[1, 0]), float(rot[0, 0]))
    else:  # gimbal lock: put everything in a
        a, c = math.atan2(-float(rot[1, 2]), float(rot[1, 1])), 0.0
    return a, b, c


def canonical_angles(rot: np.ndarray) -> tuple[float, float, float]:
    """VST angles (fractions of pi, xyz) of a box rotation, picking the smallest of the 4 equivalent forms.

    A box is unchanged by a half turn about any of its own axes, so we choose the form whose
    largest angle is smallest: a box seen head-on then reads as a small yaw, not yaw = 1.
    """
    best: tuple[float, float, float] | None = None
    for flip in ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)):
        cand = tuple(a / math.pi for a in euler_xyz(rot * np.asarray(flip, dtype=float)))
        if best is None or max(map(abs, cand)) < max(map(abs, best)) - 1e-9:
            best = cand  # type: ignore[assignment]
    assert best is not None
    return best


def look_at_pose(position: np.ndarray, heading: float, pitch: float) -> Pose:
    """A level camera (no roll) at ``position`` facing ``heading`` (radians about z), tilted down by ``pitch``."""
    forward = np.array([math.cos(heading) * math.cos(pitch), math.sin(heading) * math.cos(pitch), -math.sin(pitch)])
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return Pose(rotation=np.stack([right, down, forward], axis=1), position=np.asarray(position, dtype=float))


def heading_of(pose: Pose) -> float:
    """Compass heading (radians about z) of a camera's forward axis."""
    f = pose.rotation[:, 2]
    return math.atan2(f[1], f[0])


@dataclass
class Room:
    """A synthetic room: size, surface colours, objects, the capture camera and its poses."""

    room_id: str
    kind: str
    width: float
    depth: float
    height: float
    floor_name: str
    wall_name: str
    objects: list[RoomObject]
    camera: Camera
    poses: list[Pose] = field(default_factory=list)  # still cameras cam_00, cam_01, ...
    tours: list[list[Pose]] = field(default_factory=list)  # video camera paths path0, path1
    source: str = "scannet"
    split: str = "train"

    @property
    def floor_color(self) -> tuple[int, int, int]:
        return FLOOR_COLOURS[self.floor_name]

    @property
    def wall_color(self) -> tuple[int, int, int]:
        return WALL_COLOURS[self.wall_name]

    @property
    def area(self) -> float:
        return self.width * self.depth

    def labels(self) -> list[str]:
        return [o.label for o in self.objects]

    def count(self, label: str) -> int:
        return sum(o.label == label for o in self.objects)

    def surfaces(self) -> list[tuple[str, np.ndarray, tuple[int, int, int]]]:
        """Floor, ceiling and the 4 walls as world quads (4, 3) with their colours."""
        w, d, h = self.width, self.depth, self.height
        p = np.array
        return [
            ("floor", p([[0, 0, 0], [w, 0, 0], [w, d, 0], [0, d, 0]], float), self.floor_color),
            ("ceiling", p([[0, 0, h], [w, 0, h], [w, d, h], [0, d, h]], float), CEILING_COLOUR),
            ("wall", p([[0, 0, 0], [w, 0, 0], [w, 0, h], [0, 0, h]], float), self.wall_color),
            ("wall", p([[w, 0, 0], [w, d, 0], [w, d, h], [w, 0, h]], float), self.wall_color),
            ("wall", p([[w, d, 0], [0, d, 0], [0, d, h], [w, d, h]], float), self.wall_color),
            ("wall", p([[0, d, 0], [0, 0, 0], [0, 0, h], [0, d, h]], float), self.wall_color),
        ]


def build_room(
    room_id: str, rng: np.random.Generator, n_cameras: int = 8, source: str = "scannet", split: str = "train"
) -> Room:
    """Lay out a room of 5-15 objects and place ``n_cameras`` still cameras and 2 video tours in it."""
    kind = str(rng.choice(list(ROOM_KINDS)))
    width, depth = float(rng.uniform(4.0, 7.0)), float(rng.uniform(3.6, 6.0))
    height = float(rng.uniform(2.5, 3.0))
    size = IMAGE_SIZES[int(rng.integers(len(IMAGE_SIZES)))]
    hfov = HFOVS[int(rng.integers(len(HFOVS)))]
    fx = (size[0] / 2.0) / math.tan(math.radians(hfov) / 2.0)
    camera = Camera(fx, fx, size[0] / 2.0, size[1] / 2.0, size[0], size[1])
    room = Room(
        room_id,
        kind,
        width,
        depth,
        height,
        str(rng.choice(list(FLOOR_COLOURS))),
        str(rng.choice(list(WALL_COLOURS))),
        [],
        camera,
        source=source,
        split=split,
    )
    room.objects = _place_objects(room, rng)
    room.poses = [_place_camera(room, rng) for _ in range(n_cameras)]
    room.tours = [_tour(room, rng, clockwise=bool(k % 2)) for k in range(2)]
    return room


def _wanted_labels(kind: str, rng: np.random.Generator) -> list[str]:
    labels: list[str] = []
    for label, (lo, hi) in ROOM_KINDS[kind].items():
        labels += [label] * int(rng.integers(lo, hi + 1))
    while len(labels) < 5:
        labels.append(str(rng.choice(["chair", "plant", "lamp", "trash can"])))
    # Big wall-standing objects first: they are the hardest to fit.
    return sorted(labels[:15], key=lambda lab: -LABEL_PRIORS[lab].width * LABEL_PRIORS[lab].depth)


def _place_objects(room: Room, rng: np.random.Generator) -> list[RoomObject]:
    placed: list[RoomObject] = []
    colours = list(OBJECT_PALETTE)
    order = rng.permutation(len(colours))
    centre = np.array([room.width / 2, room.depth / 2])
    for label in _wanted_labels(room.kind, rng):
        prior = LABEL_PRIORS[label]
        scale = rng.uniform(0.85, 1.15, size=3)
        w, h, d = prior.width * scale[0], prior.height * scale[1], prior.depth * scale[2]
        if label == "door":
            h, d = prior.height, prior.depth
        for _ in range(60):
            if prior.against_wall:
                wall = int(rng.integers(4))
                # Yaw turns the object's depth axis (local y) to point into the room, away from the wall.
                yaw = [0.0, math.pi / 2, math.pi, -math.pi / 2][wall] + float(rng.normal(0, 0.03))
                gap = d / 2 + 0.02
                along = [room.width, room.depth, room.width, room.depth][wall]
                t = float(rng.uniform(w / 2 + 0.1, along - w / 2 - 0.1)) if along > w + 0.2 else along / 2
                xy = [(t, gap), (room.width - gap, t), (t, room.depth - gap), (gap, t)][wall]
            else:
                yaw = float(rng.uniform(-math.pi, math.pi))
                r = 0.5 * math.hypot(w, d)
                xy = (
                    float(rng.uniform(r + 0.1, room.width - r - 0.1)),
                    float(rng.uniform(r + 0.1, room.depth - r - 0.1)),
                )
            z = prior.elevation + h / 2
            cand = RoomObject(len(placed), label, (xy[0], xy[1], z), w, d, h, yaw, colours[order[len(placed)]])
            if _fits(cand, placed, centre):
                placed.append(cand)
                break
    return placed


def _fits(cand: RoomObject, placed: list[RoomObject], centre: np.ndarray) -> bool:
    xy = np.array(cand.center[:2])
    r = cand.footprint_radius * (0.8 if cand.label == "door" else 0.92)
    if np.linalg.norm(xy - centre) < r + CENTRE_CLEARANCE:
        return False
    for other in placed:
        gap = np.linalg.norm(xy - np.array(other.center[:2])) - r - other.footprint_radius * 0.92
        if gap < 0.15:
            return False
    return True


def _clear_of_objects(room: Room, xy: np.ndarray, margin: float) -> bool:
    return all(np.linalg.norm(xy - np.array(o.center[:2])) > o.footprint_radius + margin for o in room.objects)


def _place_camera(room: Room, rng: np.random.Generator, candidates: int = 16) -> Pose:
    """A still camera somewhere free in the room, aimed near one object; the candidate seeing most centres wins."""
    best: tuple[int, Pose] | None = None
    for _ in range(candidates * 4):
        target = room.objects[int(rng.integers(len(room.objects)))]
        xy = np.array([rng.uniform(0.4, room.width - 0.4), rng.uniform(0.4, room.depth - 0.4)])
        dist = float(np.linalg.norm(np.array(target.center[:2]) - xy))
        if not _clear_of_objects(room, xy, 0.35) or not 1.6 < dist < 5.5:
            continue
        z = float(rng.uniform(1.2, 1.7))
        heading = math.atan2(target.center[1] - xy[1], target.center[0] - xy[0]) + float(rng.normal(0, 0.15))
        pitch = math.atan2(z - target.center[2], dist) + float(rng.normal(0, 0.05))
        pose = look_at_pose(np.array([xy[0], xy[1], z]), heading, float(np.clip(pitch, 0.08, 0.6)))
        score = _centres_in_view(room, pose)
        if best is None or score > best[0]:
            best = (score, pose)
        candidates -= 1
        if candidates == 0:
            break
    if best is None:  # a crowded room: stand in the kept-free centre and look at the first object
        xy = np.array([room.width / 2, room.depth / 2])
        t = room.objects[0].center
        return look_at_pose(np.array([xy[0], xy[1], 1.5]), math.atan2(t[1] - xy[1], t[0] - xy[0]), 0.25)
    return best[1]


def _centres_in_view(room: Room, pose: Pose) -> int:
    cam = room.camera
    pts = pose.world_to_camera(np.array([o.center for o in room.objects]))
    z = np.maximum(pts[:, 2], 1e-6)
    u, v = cam.fx * pts[:, 0] / z + cam.cx, cam.fy * pts[:, 1] / z + cam.cy
    ok = (
        (pts[:, 2] > 0.8)
        & (u > 0.08 * cam.width)
        & (u < 0.92 * cam.width)
        & (v > 0.08 * cam.height)
        & (v < 0.92 * cam.height)
    )
    return int(ok.sum())


def _tour(room: Room, rng: np.random.Generator, clockwise: bool, frames: int = 16) -> list[Pose]:
    """A video path: a slow circle near the room centre while panning a full turn."""
    cx, cy = room.width / 2, room.depth / 2
    start = float(rng.uniform(-math.pi, math.pi))
    sign = -1.0 if clockwise else 1.0
    poses = []
    for k in range(frames):
        t = k / frames
        heading = start + sign * 2 * math.pi * t
        pos = np.array([cx + 0.3 * math.cos(heading + math.pi / 2), cy + 0.3 * math.sin(heading + math.pi / 2), 1.45])
        poses.append(look_at_pose(pos, heading, 0.3))
    return poses


# ---------------------------------------------------------------- point cloud and scene files


def sample_point_cloud(room: Room, rng: np.random.Generator, n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 3) and colours (N, 3) in [0, 1], area-weighted over floor, walls and object sides and tops."""
    faces: list[tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int]]] = []
    for name, quad, colour in room.surfaces():
        if name != "ceiling":  # an open top lets a viewer look in
            faces.append((quad[0], quad[1] - quad[0], quad[3] - quad[0], colour))
    for obj in room.objects:
        ax = obj.world_axes
        half = np.array([obj.width, obj.height, obj.depth]) / 2
        c = np.asarray(obj.center)
        for axis in range(3):
            for sign in (-1.0, 1.0):
                if axis == 1 and sign > 0:
                    continue  # the bottom face (local +y points down) touches the floor
                others = [k for k in range(3) if k != axis]
                origin = (
                    c
                    + sign * half[axis] * ax[:, axis]
                    - half[others[0]] * ax[:, others[0]]
                    - half[others[1]] * ax[:, others[1]]
                )
                faces.append(
                    (origin, 2 * half[others[0]] * ax[:, others[0]], 2 * half[others[1]] * ax[:, others[1]], obj.color)
                )
    areas = np.array([np.linalg.norm(np.cross(u, v)) for _, u, v, _ in faces])
    counts = rng.multinomial(n_points, areas / areas.sum())
    origins = np.repeat(np.array([f[0] for f in faces]), counts, axis=0)
    us = np.repeat(np.array([f[1] for f in faces]), counts, axis=0)
    vs = np.repeat(np.array([f[2] for f in faces]), counts, axis=0)
    st = rng.random((n_points, 2))
    points = origins + st[:, :1] * us + st[:, 1:] * vs
    colours = np.repeat(np.array([f[3] for f in faces], dtype=float), counts, axis=0)
    colours = np.clip(colours + rng.normal(0, 6, size=colours.shape), 0, 255) / 255.0
    return points, colours


def write_point_cloud(path: Path, points: np.ndarray, colours: np.ndarray) -> None:
    """Binary PLY through open3d (the same library the app reads scenes with)."""
    import open3d as o3d  # heavy import: only when scenes are written

    pcd = o3d.geometry.PointCloud()
    pcd.points = o3d.utility.Vector3dVector(points)
    pcd.colors = o3d.utility.Vector3dVector(colours)
    if not o3d.io.write_point_cloud(str(path), pcd, write_ascii=False, compressed=False, print_progress=False):
        raise OSError(f"{path}: open3d could not write the point cloud")


def _pose_json(pose: Pose) -> dict:
    return {
        "position": [round(float(v), 4) for v in pose.position],
        "rotation": [[round(float(v), 6) for v in row] for row in pose.rotation],
    }


def scene_json(room: Room) -> dict:
    """The scene description written next to the PLY: objects in world coordinates and every camera pose."""
    cam = room.camera
    return {
        "room_id": room.room_id,
        "kind": room.kind,
        "source": room.source,
        "split": room.split,
        "world_frame": "metres; x along the room width, y along its depth, z up; floor at z = 0",
        "size": [round(room.width, 3), round(room.depth, 3), round(room.height, 3)],
        "floor": {"name": room.floor_name, "color": list(room.floor_color)},
        "walls": {"name": room.wall_name, "color": list(room.wall_color)},
        "objects": [
            {
                "id": o.index,
                "label": o.label,
                "center": [round(v, 4) for v in o.center],
                "size": [round(o.width, 4), round(o.depth, 4), round(o.height, 4)],
                "yaw": round(o.yaw, 5),
                "color": list(o.color),
            }
            for o in room.objects
        ],
        "object_size_order": "size = [x extent, y extent, z extent (height)] before rotating by yaw about z",
        "camera_pose_convention": "rotation = world_from_camera (columns: camera X right, Y down, Z forward)",
        "intrinsics": {
            "fx": round(cam.fx, 4),
            "fy": round(cam.fy, 4),
            "cx": cam.cx,
            "cy": cam.cy,
            "width": cam.width,
            "height": cam.height,
        },
        "cameras": [{"name": f"cam_{k:02d}", **_pose_json(p)} for k, p in enumerate(room.poses)],
        "video_paths": [
            {"name": f"path{k}", "frames": [_pose_json(p) for p in tour]} for k, tour in enumerate(room.tours)
        ],
    }


def write_scene(room: Room, scenes_dir: Path, rng: np.random.Generator, n_points: int) -> list[Path]:
    """Write ``room_XXXX.ply`` and ``room_XXXX.json``; returns both paths."""
    scenes_dir.mkdir(parents=True, exist_ok=True)
    ply = scenes_dir / f"{room.room_id}.ply"
    write_point_cloud(ply, *sample_point_cloud(room, rng, n_points))
    js = scenes_dir / f"{room.room_id}.json"
    js.write_text(json.dumps(scene_json(room), sort_keys=True, indent=1) + "\n")
    return [ply, js]
