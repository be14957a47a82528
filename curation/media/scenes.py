"""Scene point clouds for the 3D view: find ``<scene_root>/<scene_id>.ply``, voxel-downsample it with open3d to a
browser-sized cloud, cache the result, and place it in the frame of a sample's camera.

A scene may carry a sidecar ``<scene_id>.json`` (the layout the demo writes) with its camera poses
``cameras: [{name, position, rotation}]`` (rotation = world_from_camera) and its annotated objects
``objects: [{label, center, size: [x extent, y extent, height], yaw}]`` (world frame, z up, yaw about z), and
``video_paths: [{name, frames: [{position, rotation}]}]`` (a video ``room_0003_path1.mp4`` follows ``path1``).
A sample's media path names its camera (``scenes/room_0003/cam_02.jpg`` -> ``cam_02``); with that pose the cloud
and the scene's objects are drawn in the sample's own camera frame, the frame its 3D boxes are written in.
Without a pose the cloud is shown in its own frame and no scene objects are placed.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import numpy as np
from scipy.spatial.transform import Rotation

from curation.vst.geometry import Box3D, Camera, Pose

# What a browser renders smoothly in a plotly Scatter3d (about 3 MB of base64 typed arrays).
MAX_BROWSER_POINTS = 200_000
_SCENE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
# Before the voxel grid, very large clouds are thinned at random to this many times the target (open3d's voxel
# pass costs ~1 s per million points; random thinning ~0.05 s), keeping a 1M-point scene well under a second.
_PRETHIN_FACTOR = 3


class SceneError(Exception):
    """A scene cannot be shown; the message names the scene, the file and why."""


@dataclass(frozen=True)
class SceneCloud:
    """A (downsampled) point cloud ready to draw."""

    scene_id: str
    points: np.ndarray  # (N, 3) float32
    colors: np.ndarray | None  # (N, 3) uint8, or None when the file has no colours
    source_points: int  # points in the file
    voxel_size: float  # 0.0 when the file was small enough to send as is
    path: Path
    frame: str = "scene"  # 'scene' (the file's own) or the camera name the points were moved into

    @property
    def n_points(self) -> int:
        return int(len(self.points))


def scene_path(scene_root: Path, scene_id: str) -> Path:
    """Where a scene's PLY lives; refuses ids that could leave the scene root."""
    if not scene_id or not _SCENE_ID.match(scene_id) or ".." in scene_id:
        raise SceneError(f"scene id {scene_id!r} is not a plain file name (letters, digits, '_', '-', '.')")
    return Path(scene_root) / f"{scene_id}.ply"


def find_scene(scene_root: Path, scene_id: str | None) -> Path | None:
    """The scene's PLY file when it exists, else None (no scene id, bad id or no file)."""
    if not scene_id:
        return None
    try:
        path = scene_path(scene_root, scene_id)
    except SceneError:
        return None
    return path if path.is_file() else None


def downsample_cloud(points: np.ndarray, colors: np.ndarray | None, max_points: int = MAX_BROWSER_POINTS,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray | None, float]:
    """At most ``max_points`` points spread evenly (open3d voxel grid); returns (points, colors, voxel size)."""
    import open3d as o3d  # heavy import (~0.3 s): only when a scene is opened

    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    if n <= max_points:
        return points.astype(np.float32), _as_uint8(colors), 0.0
    rng = np.random.default_rng(seed)
    if n > _PRETHIN_FACTOR * max_points:
        keep = np.sort(rng.choice(n, _PRETHIN_FACTOR * max_points, replace=False))
        points = points[keep]
        colors = None if colors is None else np.asarray(colors)[keep]
    pcd = o3d.geometry.PointCloud()
    pcd.points = o3d.utility.Vector3dVector(points)
    if colors is not None:
        pcd.colors = o3d.utility.Vector3dVector(_as_unit_float(colors))
    voxel = _voxel_for(points, int(max_points * 0.9), rng)
    down = pcd.voxel_down_sample(voxel)
    out_pts = np.asarray(down.points)
    out_col = np.asarray(down.colors) if colors is not None else None
    if len(out_pts) > max_points:  # the estimate undershot: thin the remainder at random
        keep = np.sort(rng.choice(len(out_pts), max_points, replace=False))
        out_pts = out_pts[keep]
        out_col = None if out_col is None else out_col[keep]
    return out_pts.astype(np.float32), _as_uint8(out_col), float(voxel)


def _voxel_for(points: np.ndarray, target: int, rng: np.random.Generator) -> float:
    """A voxel size giving about ``target`` occupied voxels.

    Count occupied cells of a coarse grid on a sample (coarse cells hold many points, so a sample does not
    under-count), then scale as for a surface (cells ~ 1/size^2): scans are surfaces, not volumes.
    """
    lo, hi = points.min(axis=0), points.max(axis=0)
    extent = np.maximum(hi - lo, 1e-6)
    coarse = float(np.cbrt(np.prod(extent) / 20_000.0)) or 1e-3
    sample = points if len(points) <= 200_000 else points[rng.choice(len(points), 200_000, replace=False)]
    cells = np.floor((sample - lo) / coarse).astype(np.int64)
    dims = cells.max(axis=0) + 1
    occupied = len(np.unique((cells[:, 0] * dims[1] + cells[:, 1]) * dims[2] + cells[:, 2]))
    return max(coarse * float(np.sqrt(occupied / max(target, 1))), 1e-6)


def _as_uint8(colors: np.ndarray | None) -> np.ndarray | None:
    if colors is None or len(colors) == 0:
        return None if colors is None else np.zeros((0, 3), np.uint8)
    c = np.asarray(colors)
    if c.dtype == np.uint8:
        return c
    scale = 255.0 if float(np.nanmax(c)) <= 1.0 + 1e-6 else 1.0
    return np.clip(np.rint(c * scale), 0, 255).astype(np.uint8)


def _as_unit_float(colors: np.ndarray) -> np.ndarray:
    c = np.asarray(colors)
    return c.astype(np.float64) / 255.0 if c.dtype == np.uint8 or float(np.nanmax(c)) > 1.0 + 1e-6 else c


def read_ply(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Points and colours of a PLY file; SceneError when it is gone or unreadable."""
    import open3d as o3d

    path = Path(path)
    if not path.is_file():
        raise SceneError(f"scene file {path} is gone")
    try:
        pcd = o3d.io.read_point_cloud(str(path), format="ply", print_progress=False)
    except Exception as exc:  # open3d raises RuntimeError for some malformed headers
        raise SceneError(f"scene file {path} cannot be read: {exc}") from exc
    points = np.asarray(pcd.points)
    if len(points) == 0:
        raise SceneError(f"scene file {path} holds no points (not a PLY point cloud, or truncated)")
    colors = np.asarray(pcd.colors) if pcd.has_colors() else None
    return points, colors


def load_scene_cloud(scene_root: Path, scene_id: str, max_points: int = MAX_BROWSER_POINTS,
                     cache_dir: Path | None = None) -> SceneCloud:
    """A scene's cloud downsampled for the browser; cached as ``.npz`` under ``cache_dir/scenes`` when given.

    The cache key holds the file's size and mtime, so a replaced scene file is read again.
    """
    path = scene_path(scene_root, scene_id)
    try:
        stat = path.stat()
    except OSError as exc:
        raise SceneError(f"scene {scene_id}: file {path} is gone ({exc.strerror or exc})") from exc
    cached = None
    if cache_dir is not None:
        key = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{max_points}".encode()).hexdigest()
        cached = Path(cache_dir) / "scenes" / f"{scene_id}-{key[:16]}.npz"
        if cached.is_file():
            try:
                with np.load(cached) as z:
                    colors = z["colors"] if z["colors"].size else None
                    return SceneCloud(scene_id, z["points"], colors, int(z["source_points"]), float(z["voxel"]), path)
            except Exception:  # a torn cache file: rebuild it below
                pass
    points, colors = read_ply(path)
    down_pts, down_col, voxel = downsample_cloud(points, colors, max_points)
    cloud = SceneCloud(scene_id, down_pts, down_col, int(len(points)), voxel, path)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(cached.name + ".tmp.npz")
        np.savez(tmp, points=down_pts, colors=down_col if down_col is not None else np.zeros((0, 3), np.uint8),
                 source_points=len(points), voxel=voxel)
        tmp.replace(cached)
    return cloud


# --- camera poses ----------------------------------------------------------------------------------


def scene_camera_poses(scene_root: Path, scene_id: str) -> dict[str, Pose]:
    """Camera poses named in the scene's sidecar JSON (empty when there is none or it does not parse)."""
    doc = _sidecar(scene_root, scene_id)
    try:
        return {
            str(c["name"]): Pose(rotation=np.asarray(c["rotation"], dtype=float).reshape(3, 3),
                                 position=np.asarray(c["position"], dtype=float).reshape(3))
            for c in doc.get("cameras") or []
        }
    except (ValueError, KeyError, TypeError):
        return {}


def media_camera_name(media_path: str | None) -> str | None:
    """The camera a media path names: ``scenes/room_0003/cam_02.jpg`` -> ``cam_02`` (None when none)."""
    if not media_path:
        return None
    stem = PurePosixPath(media_path.replace("\\", "/")).stem
    return stem or None


def relative_pose(reference: Pose, other: Pose) -> Pose:
    """``other`` expressed in the camera frame of ``reference`` (for drawing a second view's frustum)."""
    rot = reference.rotation.T @ other.rotation
    pos = reference.world_to_camera(other.position[None, :])[0]
    return Pose(rotation=rot, position=pos)


def cloud_in_camera_frame(cloud: SceneCloud, pose: Pose, camera_name: str) -> SceneCloud:
    """The cloud moved into a camera's frame (X right, Y down, Z forward), where a sample's boxes live."""
    pts = pose.world_to_camera(cloud.points.astype(np.float64)).astype(np.float32)
    return replace(cloud, points=pts, frame=camera_name)


# --- scene objects and a sample's place in its scene ------------------------------------------------


@dataclass(frozen=True)
class SceneObject:
    """An annotated object of a scene, in the scene's world frame (z up)."""

    label: str
    center: tuple[float, float, float]
    size: tuple[float, float, float]  # x extent, y extent, height (before the yaw)
    yaw: float  # radians about world z

    def box_in_camera(self, pose: Pose) -> Box3D:
        """The object as a VST box in a camera's frame: local x = width, y = down, z = depth."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        axes = np.array([[c, 0.0, -s], [s, 0.0, c], [0.0, -1.0, 0.0]])  # columns: box x, y (down), z in the world
        center = pose.world_to_camera(np.asarray(self.center, dtype=float)[None, :])[0]
        angles = Rotation.from_matrix(pose.rotation.T @ axes).as_euler("xyz") / math.pi
        width, depth, height = self.size
        return Box3D(self.label, tuple(float(v) for v in center), (width, height, depth),  # type: ignore[arg-type]
                     tuple(float(a) for a in angles))  # type: ignore[arg-type]


def _sidecar(scene_root: Path, scene_id: str) -> dict:
    try:
        path = scene_path(scene_root, scene_id).with_suffix(".json")
        return json.loads(path.read_text()) if path.is_file() else {}
    except (SceneError, OSError, ValueError):
        return {}


def scene_objects(scene_root: Path, scene_id: str) -> list[SceneObject]:
    """Objects listed in the scene's sidecar JSON (empty when there is none or it does not parse)."""
    out = []
    for o in _sidecar(scene_root, scene_id).get("objects") or []:
        try:
            out.append(SceneObject(str(o["label"]), tuple(float(v) for v in o["center"][:3]),  # type: ignore[arg-type]
                                   tuple(float(v) for v in o["size"][:3]), float(o.get("yaw", 0.0))))  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError, IndexError):
            continue
    return out


@dataclass(frozen=True)
class SampleScene:
    """Where a sample sits in its scene: the PLY (None when missing), the first image's camera pose, the other
    images' cameras relative to it, and the scene's objects in the first camera's frame."""

    scene_id: str | None
    ply: Path | None
    camera_name: str | None = None
    pose: Pose | None = None
    other_cameras: list[tuple[str, Pose]] = field(default_factory=list)
    objects: list[Box3D] = field(default_factory=list)
    problem: str | None = None  # why there is no cloud (shown to the curator)
    camera: Camera | None = None  # the capture intrinsics the scene file states, if any
    trajectory: list[Pose] = field(default_factory=list)  # a video's camera per frame, relative to its first frame


def sample_scene(row: dict, scene_root: Path) -> SampleScene:
    """Locate a catalog row's scene and its camera; never raises (problems go into ``problem``)."""
    scene_id = row.get("scene_id")
    if not scene_id:
        return SampleScene(None, None)
    ply = find_scene(scene_root, scene_id)
    problem = None if ply else (f"scene {scene_id} has no point cloud under the scene root {scene_root} "
                                "(the file is gone or was never there)")
    media = row.get("media") or []
    if media and media[0].get("kind") == "video":
        return _video_scene(scene_id, ply, problem, media[0].get("path"), scene_root)
    poses = scene_camera_poses(scene_root, scene_id)
    names = [media_camera_name(m.get("path")) for m in media if (m.get("kind") or "image") == "image"]
    if not names or names[0] not in poses:
        return SampleScene(scene_id, ply, problem=problem)
    ref = poses[names[0]]
    others = [(f"{n} (image {k + 2})", relative_pose(ref, poses[n])) for k, n in enumerate(names[1:]) if n in poses]
    objects = [o.box_in_camera(ref) for o in scene_objects(scene_root, scene_id)]
    return SampleScene(scene_id, ply, names[0], ref, others, objects, problem, scene_intrinsics(scene_root, scene_id))


def scene_intrinsics(scene_root: Path, scene_id: str) -> Camera | None:
    """The capture camera the sidecar states (``intrinsics: {fx, fy, cx, cy, width, height}``), if any."""
    k = _sidecar(scene_root, scene_id).get("intrinsics") or {}
    try:
        cam = Camera(float(k["fx"]), float(k["fy"]), float(k["cx"]), float(k["cy"]), int(k["width"]), int(k["height"]))
    except (KeyError, TypeError, ValueError):
        return None
    return cam if cam.fx > 0 and cam.fy > 0 and cam.width > 0 and cam.height > 0 else None


def _video_scene(scene_id: str, ply: Path | None, problem: str | None, video_path: str | None,
                 scene_root: Path) -> SampleScene:
    """A video sits in its scene along a camera path: the frames' poses relative to the first one."""
    doc = _sidecar(scene_root, scene_id)
    stem = media_camera_name(video_path) or ""
    for path in doc.get("video_paths") or []:
        name = str(path.get("name") or "")
        frames = path.get("frames") or []
        if not name or not frames or not (stem == name or stem.endswith("_" + name)):
            continue
        try:
            poses = [Pose(np.asarray(f["rotation"], dtype=float).reshape(3, 3),
                          np.asarray(f["position"], dtype=float).reshape(3)) for f in frames]
        except (KeyError, TypeError, ValueError):
            break
        ref = poses[0]
        objects = [o.box_in_camera(ref) for o in scene_objects(scene_root, scene_id)]
        return SampleScene(scene_id, ply, f"{name} frame 1", ref, [], objects, problem,
                           scene_intrinsics(scene_root, scene_id), [relative_pose(ref, p) for p in poses])
    return SampleScene(scene_id, ply, problem=problem)
