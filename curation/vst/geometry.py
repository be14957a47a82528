"""Pinhole cameras, VST 3D boxes, projection and box overlap: the geometry every other module shares.

Conventions (vst-format.md §4): the camera frame is the world; X right, Y down, Z forward.
A VST box is ``[x, y, z, x_size, y_size, z_size, pitch, yaw, roll]``: centre in metres, sizes
along X/Y/Z before rotation, Euler angles about X, Y, Z (extrinsic ``xyz`` order) divided by pi,
so a valid angle lies in (-1, 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# scipy.spatial is imported where it is used: it costs 0.3 s per process, and the check workers, which import this
# module for its dataclasses, rarely need it.


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics with the image size they belong to."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_fov(cls, hfov_deg: float, vfov_deg: float, width: int, height: int) -> Camera:
        fx = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        fy = (height / 2.0) / math.tan(math.radians(vfov_deg) / 2.0)
        return cls(fx, fy, width / 2.0, height / 2.0, int(width), int(height))

    @property
    def hfov_deg(self) -> float:
        return math.degrees(2.0 * math.atan(self.width / (2.0 * self.fx)))

    @property
    def vfov_deg(self) -> float:
        return math.degrees(2.0 * math.atan(self.height / (2.0 * self.fy)))

    @property
    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=float)


@dataclass(frozen=True)
class Box3D:
    """One labelled VST 3D box in the camera frame."""

    label: str
    center: tuple[float, float, float]
    size: tuple[float, float, float]
    angles: tuple[float, float, float]  # pitch, yaw, roll as fractions of pi

    @classmethod
    def from_vst(cls, label: str, values: list[float] | tuple[float, ...]) -> Box3D:
        if len(values) != 9:
            raise ValueError(f"a VST 3D box has 9 numbers, got {len(values)}")
        v = [float(x) for x in values]
        return cls(label, (v[0], v[1], v[2]), (v[3], v[4], v[5]), (v[6], v[7], v[8]))

    def to_vst(self) -> list[float]:
        return [*self.center, *self.size, *self.angles]

    @property
    def rotation(self) -> np.ndarray:
        return rotation_matrix(self.angles)

    def corners(self) -> np.ndarray:
        """The 8 corners, shape (8, 3), in the camera frame."""
        return box_corners(self.center, self.size, self.angles)


def rotation_matrix(angles: tuple[float, float, float] | list[float]) -> np.ndarray:
    """Rotation for VST angles (fractions of pi, extrinsic x-y-z)."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("xyz", np.asarray(angles, dtype=float) * math.pi).as_matrix()


# Unit cube corners: bottom face (y=+1, Y points down) first, then the top face.
_UNIT_CORNERS = np.array(
    [[-1, 1, -1], [1, 1, -1], [1, 1, 1], [-1, 1, 1], [-1, -1, -1], [1, -1, -1], [1, -1, 1], [-1, -1, 1]],
    dtype=float,
)
# The 12 edges between corner indices, for drawing wireframes.
BOX_EDGES = [(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7)]


def box_corners(center, size, angles) -> np.ndarray:
    half = np.asarray(size, dtype=float) / 2.0
    local = _UNIT_CORNERS * half
    return local @ rotation_matrix(angles).T + np.asarray(center, dtype=float)


def project_points(camera: Camera, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project (N, 3) camera-frame points to pixels. Returns (uv (N, 2), in_front mask (N,))."""
    pts = np.asarray(points, dtype=float).reshape(-1, 3)
    z = pts[:, 2]
    in_front = z > 1e-6
    safe_z = np.where(in_front, z, 1.0)
    u = camera.fx * pts[:, 0] / safe_z + camera.cx
    v = camera.fy * pts[:, 1] / safe_z + camera.cy
    return np.stack([u, v], axis=1), in_front


def project_box_corners(camera: Camera, box: Box3D) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions of a box's 8 corners and whether each lies in front of the camera."""
    return project_points(camera, box.corners())


def project_box_to_rect(camera: Camera, box: Box3D) -> tuple[float, float, float, float] | None:
    """The 2D rectangle [x1, y1, x2, y2] a box covers, clipped to the image; None if not visible."""
    uv, front = project_box_corners(camera, box)
    if not front.any():
        return None
    uv = uv[front]
    x1, y1 = np.clip(uv.min(axis=0), 0, [camera.width, camera.height])
    x2, y2 = np.clip(uv.max(axis=0), 0, [camera.width, camera.height])
    if x2 <= x1 or y2 <= y1:
        return None
    return float(x1), float(y1), float(x2), float(y2)


def point_in_image(camera: Camera, point) -> bool:
    """True when a camera-frame point is in front of the camera and projects inside the image."""
    uv, front = project_points(camera, np.asarray(point, dtype=float)[None, :])
    u, v = uv[0]
    return bool(front[0]) and 0 <= u < camera.width and 0 <= v < camera.height


def box_volume(box: Box3D) -> float:
    sx, sy, sz = box.size
    return max(sx, 0.0) * max(sy, 0.0) * max(sz, 0.0)


def box_iou_3d(a: Box3D, b: Box3D) -> float:
    """Volume IoU of two rotated boxes.

    Exact for any rotation: the intersection of two convex polytopes is the convex hull of
    the corners of each inside the other plus the edge/face crossings; we approximate the
    crossings by dense sampling of edges, which is accurate to well under 1% for IoU
    thresholds used in practice (0.05-0.5). Axis-aligned pairs take the exact closed form.
    """
    va, vb = box_volume(a), box_volume(b)
    if va <= 0 or vb <= 0:
        return 0.0
    if np.allclose(a.angles, b.angles) and np.allclose(a.angles, 0.0):
        lo = np.maximum(np.subtract(a.center, np.divide(a.size, 2)), np.subtract(b.center, np.divide(b.size, 2)))
        hi = np.minimum(np.add(a.center, np.divide(a.size, 2)), np.add(b.center, np.divide(b.size, 2)))
        inter = float(np.prod(np.clip(hi - lo, 0, None)))
        return inter / (va + vb - inter)
    pts = np.vstack([_points_inside(_edge_samples(a), b), _points_inside(_edge_samples(b), a)])
    if len(pts) < 4:
        return 0.0
    from scipy.spatial import ConvexHull, QhullError

    try:
        inter = ConvexHull(pts).volume
    except QhullError:
        return 0.0
    return float(inter / (va + vb - inter))


def _edge_samples(box: Box3D, per_edge: int = 24) -> np.ndarray:
    c = box.corners()
    t = np.linspace(0.0, 1.0, per_edge)[:, None]
    edges = [c[i] * (1 - t) + c[j] * t for i, j in BOX_EDGES]
    # Face grid points catch intersections where an edge of one box pierces a face of the other.
    faces = []
    g = np.linspace(-1, 1, 9)
    gu, gv = np.meshgrid(g, g)
    half = np.asarray(box.size) / 2.0
    for axis in range(3):
        for sign in (-1.0, 1.0):
            local = np.zeros((gu.size, 3))
            others = [k for k in range(3) if k != axis]
            local[:, axis] = sign
            local[:, others[0]] = gu.ravel()
            local[:, others[1]] = gv.ravel()
            faces.append((local * half) @ box.rotation.T + np.asarray(box.center))
    return np.vstack(edges + faces)


def _points_inside(points: np.ndarray, box: Box3D, eps: float = 1e-9) -> np.ndarray:
    local = (points - np.asarray(box.center)) @ box.rotation
    half = np.asarray(box.size) / 2.0 + eps
    mask = np.all(np.abs(local) <= half, axis=1)
    return points[mask]


@dataclass(frozen=True)
class Pose:
    """A camera pose in a room: world-from-camera rotation and camera centre in world coordinates."""

    rotation: np.ndarray  # (3, 3) world_from_camera
    position: np.ndarray  # (3,)

    def world_to_camera(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, dtype=float) - self.position) @ self.rotation

    def camera_to_world(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, dtype=float) @ self.rotation.T + self.position


def frustum_corners(camera: Camera, depth: float = 1.0) -> np.ndarray:
    """Camera centre plus the 4 image-corner rays at ``depth``, shape (5, 3), camera frame."""
    corners = [(0, 0), (camera.width, 0), (camera.width, camera.height), (0, camera.height)]
    rays = [((u - camera.cx) / camera.fx * depth, (v - camera.cy) / camera.fy * depth, depth) for u, v in corners]
    return np.array([(0.0, 0.0, 0.0), *rays])
