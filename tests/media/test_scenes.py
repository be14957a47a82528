"""Scene point clouds for the 3D view: found under the scene root, thinned with open3d to what a browser draws,
cached, and placed in the frame of the sample's camera."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import curation.media.scenes as scenes
from curation.media.scenes import (
    SceneError,
    SceneObject,
    find_scene,
    load_scene_cloud,
    media_camera_name,
    relative_pose,
    sample_scene,
    scene_path,
)
from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from curation.vst.geometry import Camera, Pose, project_points
from curation.vst.spatial_text import parse_boxes_3d


def room_surface_points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points on the floor and four walls of a 5 x 4 x 3 m room (a scan is a surface, not a volume)."""
    rng = np.random.default_rng(seed)
    face = rng.integers(0, 5, n)
    uv = rng.random((n, 2))
    pts = np.zeros((n, 3))
    pts[face == 0] = np.c_[uv[face == 0] * [5, 4], np.zeros((face == 0).sum())]
    for k, (axis, value) in enumerate([(0, 0.0), (0, 5.0), (1, 0.0), (1, 4.0)], start=1):
        m = face == k
        other = 1 - axis
        pts[m, axis] = value
        pts[m, other] = uv[m, 0] * (5 if other == 0 else 4)
        pts[m, 2] = uv[m, 1] * 3
    colours = (np.c_[face * 50, 255 - face * 40, uv[:, 0] * 255] / 255.0).clip(0, 1)
    return pts, colours


def write_ply(path: Path, points: np.ndarray, colours: np.ndarray | None = None) -> Path:
    import open3d as o3d

    pcd = o3d.geometry.PointCloud()
    pcd.points = o3d.utility.Vector3dVector(points)
    if colours is not None:
        pcd.colors = o3d.utility.Vector3dVector(colours)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert o3d.io.write_point_cloud(str(path), pcd, write_ascii=False)
    return path


def test_a_large_scan_is_thinned_evenly_to_the_browser_budget_and_cached(tmp_path):
    root, cache = tmp_path / "scenes", tmp_path / "cache"
    write_ply(root / "room_0001.ply", *room_surface_points(300_000))

    cloud = load_scene_cloud(root, "room_0001", max_points=40_000, cache_dir=cache)
    assert cloud.source_points == 300_000
    assert 20_000 <= cloud.n_points <= 40_000  # a voxel grid, not a handful of points
    assert cloud.voxel_size > 0 and cloud.points.dtype == np.float32 and cloud.colors.dtype == np.uint8
    # Evenly spread: every wall keeps its share (a random pick of the first rows would not).
    assert (cloud.points[:, 0] > 4.99).sum() > 0.1 * cloud.n_points
    cached = list((cache / "scenes").glob("room_0001-*.npz"))
    assert len(cached) == 1


def test_a_second_open_reads_the_cache_and_a_replaced_file_is_read_again(tmp_path, monkeypatch):
    root, cache = tmp_path / "scenes", tmp_path / "cache"
    ply = write_ply(root / "room_0002.ply", *room_surface_points(60_000))
    first = load_scene_cloud(root, "room_0002", max_points=10_000, cache_dir=cache)

    def no_reading(path):
        raise AssertionError("the cached cloud should have been used")

    monkeypatch.setattr(scenes, "read_ply", no_reading)
    again = load_scene_cloud(root, "room_0002", max_points=10_000, cache_dir=cache)
    np.testing.assert_array_equal(first.points, again.points)
    monkeypatch.undo()

    write_ply(ply, *room_surface_points(8_000, seed=1))  # the scene was re-exported, smaller
    fresh = load_scene_cloud(root, "room_0002", max_points=10_000, cache_dir=cache)
    assert fresh.source_points == 8_000 and fresh.voxel_size == 0.0 and fresh.n_points == 8_000


def test_a_scene_that_is_gone_unreadable_or_oddly_named_says_so(tmp_path):
    root = tmp_path / "scenes"
    root.mkdir()
    assert find_scene(root, "room_0009") is None and find_scene(root, None) is None
    with pytest.raises(SceneError, match="gone"):
        load_scene_cloud(root, "room_0009")
    (root / "room_0010.ply").write_bytes(b"ply\nformat garbage\n")
    with pytest.raises(SceneError, match="room_0010.ply"):
        load_scene_cloud(root, "room_0010")
    with pytest.raises(SceneError, match="plain file name"):
        scene_path(root, "../../etc/passwd")
    assert find_scene(root, "../room_0010") is None


def test_a_cloud_without_colours_still_loads(tmp_path):
    root = tmp_path / "scenes"
    write_ply(root / "scene0001_00.ply", room_surface_points(5_000)[0])
    cloud = load_scene_cloud(root, "scene0001_00")
    assert cloud.colors is None and cloud.n_points == 5_000


def test_media_paths_name_their_camera_and_relative_poses_compose():
    assert media_camera_name("scenes/room_0003/cam_02.jpg") == "cam_02"
    assert media_camera_name("") is None and media_camera_name(None) is None
    a = Pose(np.eye(3), np.array([1.0, 2.0, 0.0]))
    turn = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    b = Pose(turn, np.array([1.0, 3.0, 0.0]))
    rel = relative_pose(a, b)
    np.testing.assert_allclose(rel.position, [0.0, 1.0, 0.0])
    np.testing.assert_allclose(rel.rotation, turn)
    point = np.array([[0.3, 0.1, 2.0]])
    np.testing.assert_allclose(a.world_to_camera(b.camera_to_world(point)), rel.camera_to_world(point))


def test_a_sample_is_placed_in_its_scene_from_the_sidecar(tmp_path):
    root = tmp_path / "scenes"
    write_ply(root / "room_0004.ply", *room_surface_points(2_000))
    # A level camera at (2.5, 0.5, 1.2) looking along +y (world z up): camera X = world x, Y = -z, Z = +y.
    look_y = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]
    (root / "room_0004.json").write_text(json.dumps({
        "cameras": [{"name": "cam_00", "position": [2.5, 0.5, 1.2], "rotation": look_y},
                    {"name": "cam_01", "position": [2.5, 1.5, 1.2], "rotation": look_y}],
        "objects": [{"label": "chair", "center": [2.5, 3.0, 0.45], "size": [0.5, 0.5, 0.9], "yaw": 0.3}],
        "intrinsics": {"fx": 300.0, "fy": 300.0, "cx": 200.0, "cy": 150.0, "width": 400, "height": 300},
    }))
    row = {"scene_id": "room_0004", "media": [{"kind": "image", "path": "scenes/room_0004/cam_00.jpg"},
                                              {"kind": "image", "path": "scenes/room_0004/cam_01.jpg"}]}
    sc = sample_scene(row, root)
    assert sc.ply == root / "room_0004.ply" and sc.camera_name == "cam_00" and sc.problem is None
    assert sc.camera == Camera(300.0, 300.0, 200.0, 150.0, 400, 300)
    (name, pose), = sc.other_cameras
    assert name == "cam_01 (image 2)"
    np.testing.assert_allclose(pose.position, [0.0, 0.0, 1.0], atol=1e-9)  # one metre ahead of image 1's camera
    chair = sc.objects[0]
    np.testing.assert_allclose(chair.center, [0.0, 0.75, 2.5], atol=1e-9)  # 2.5 m ahead, 0.75 m below the lens
    assert chair.size == (0.5, 0.9, 0.5)  # width, height (camera Y), depth
    assert math.isclose(abs(chair.angles[1]), 0.3 / math.pi, abs_tol=1e-6)  # the yaw, about the camera's Y axis
    uv, front = project_points(sc.camera, np.array(chair.center))
    assert front[0] and abs(uv[0, 0] - 200.0) < 1e-6

    gone = sample_scene({**row, "scene_id": "room_0005"}, root)
    assert gone.ply is None and "room_0005" in gone.problem and gone.objects == []
    assert sample_scene({"scene_id": None, "media": []}, root).scene_id is None


def test_a_video_follows_its_camera_path_through_the_scene(tmp_path):
    root = tmp_path / "scenes"
    root.mkdir()
    look_y = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]
    frames = [{"position": [2.0, 1.0 + 0.5 * k, 1.2], "rotation": look_y} for k in range(4)]
    (root / "room_0006.json").write_text(json.dumps({
        "video_paths": [{"name": "path0", "frames": frames[:2]}, {"name": "path1", "frames": frames}],
        "objects": [{"label": "sofa", "center": [2.0, 3.5, 0.4], "size": [2.0, 0.9, 0.85], "yaw": 0.0}],
    }))
    row = {"scene_id": "room_0006", "media": [{"kind": "video", "path": "videos/room_0006_path1.mp4"}]}
    sc = sample_scene(row, root)
    assert sc.camera_name == "path1 frame 1" and len(sc.trajectory) == 4 and sc.ply is None
    np.testing.assert_allclose([p.position for p in sc.trajectory], [[0, 0, 0], [0, 0, 0.5], [0, 0, 1.0], [0, 0, 1.5]],
                               atol=1e-9)  # walking straight ahead
    np.testing.assert_allclose(sc.objects[0].center, [0.0, 0.8, 2.5], atol=1e-9)
    elsewhere = sample_scene({**row, "media": [{"kind": "video", "path": "videos/room_0006_path7.mp4"}]}, root)
    assert elsewhere.trajectory == [] and elsewhere.pose is None


def test_demo_scene_objects_agree_with_the_boxes_its_answers_state(demo_root, demo_home):
    """The scene file's objects, moved into an image's camera, are the boxes a detection answer gives."""
    import pyarrow.parquet as pq

    defective = set(pq.read_table(demo_root / "defects.parquet").column("source_id").to_pylist())
    q = CatalogQuery(demo_home)
    try:
        rows = [q.sample(r["sample_id"]) for r in q.page(FilterSpec(skills=["si_3d_detection"]), limit=12).rows]
    finally:
        q.close()
    checked = 0
    for row in rows:
        if row.get("problems") or row.get("source_id") in defective:
            continue  # rows with injected defects state wrong boxes on purpose
        sc = sample_scene(row, demo_home.scene_root)
        answer_boxes = [b.box for b in parse_boxes_3d(row["answer"]) if b.box is not None]
        if sc.pose is None or not answer_boxes:
            continue
        for box in answer_boxes:
            same = [o for o in sc.objects if o.label == box.label]
            best = min(np.linalg.norm(np.subtract(o.center, box.center)) for o in same)
            assert best < 0.05, (row["sample_id"], box.label)
        checked += 1
    assert checked >= 3


def test_scene_object_to_camera_box_keeps_an_unrotated_object_axis_aligned():
    pose = Pose(np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]), np.zeros(3))
    box = SceneObject("table", (0.0, 2.0, 0.4), (1.4, 0.8, 0.75), 0.0).box_in_camera(pose)
    np.testing.assert_allclose(box.angles, (0.0, 0.0, 0.0), atol=1e-9)
    np.testing.assert_allclose(box.center, (0.0, -0.4, 2.0), atol=1e-9)
