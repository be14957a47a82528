"""Geometry checks: boxes with bad sizes or angles, behind the camera or out of view, implausible sizes, 2D boxes."""

from __future__ import annotations

from tests.support.checks_helpers import image, run, sample

CAMERA = {"fx": 300.0, "fy": 300.0, "cx": 200.0, "cy": 150.0, "width": 400, "height": 300, "stated_as": "fov"}


def box(label: str, values: list[float]) -> dict:
    return {"label": label, "bbox": values, "encoding": {9: "euler9", 10: "quat10"}.get(len(values), "invalid")}


CHAIR = [0.2, 0.3, 2.5, 0.5, 0.9, 0.5, 0.0, 0.1, 0.0]


def with_boxes(sid: str, *boxes: dict, camera=CAMERA) -> dict:
    return sample(sid, "Detect the objects.", "...", answer_kind="bbox3d", boxes_3d=list(boxes), camera=camera)


def test_boxes_need_positive_sizes_and_angles_inside_minus_one_to_one():
    out = run("geometry.bbox3d_valid", [
        with_boxes("ok", box("chair", CHAIR)),
        with_boxes("flat", box("chair", CHAIR), box("table", [0, 0.3, 3, 1.4, 0.0, 0.8, 0, 0, 0])),
        with_boxes("spun", box("chair", [*CHAIR[:7], 1.3, 0.0])),
        with_boxes("short", box("chair", CHAIR[:8])),
    ])
    assert out["ok"]["passed"] and out["ok"]["score"] == 1.0
    assert out["flat"]["score"] == 0.5
    assert "box 1 (table) has a non-positive size [1.4, 0.0, 0.8]" in out["flat"]["reason"]
    assert "angle outside (-1, 1)" in out["spun"]["reason"]
    assert "has 8 numbers" in out["short"]["reason"]


def test_box_centres_must_be_in_front_and_inside_the_image():
    out = run("geometry.bbox3d_in_view", [
        with_boxes("ok", box("chair", CHAIR)),
        with_boxes("behind", box("chair", [0.2, 0.3, -2.5, 0.5, 0.9, 0.5, 0, 0, 0])),
        with_boxes("aside", box("chair", [4.0, 0.3, 2.5, 0.5, 0.9, 0.5, 0, 0, 0])),
        with_boxes("no-camera", box("chair", CHAIR), camera=None),
    ])
    assert out["ok"]["passed"] and "no-camera" not in out
    assert "centre behind the camera (z = -2.5 m)" in out["behind"]["reason"]
    assert "projects to (680.0, 186.0), outside the 400x300 image" in out["aside"]["reason"]


def test_sizes_must_be_plausible_for_the_label():
    out = run("geometry.size_plausible", [
        with_boxes("ok", box("chair", CHAIR), box("mystery", [0, 0, 2, 9, 9, 9, 0, 0, 0])),
        with_boxes("giant", box("Chair", [0.2, 0.3, 2.5, 2.3, 4.1, 2.3, 0, 0, 0])),
        with_boxes("unknown-only", box("mystery", [0, 0, 2, 9, 9, 9, 0, 0, 0])),
    ])
    assert out["ok"]["passed"] and "unknown-only" not in out
    assert not out["giant"]["passed"] and out["giant"]["score"] > 4
    assert "box 0 (chair) has a longest side of 4.1 m; a chair measures 0.35-1.3 m" in out["giant"]["reason"]


def test_2d_boxes_must_lie_inside_the_image():
    out = run("geometry.bbox2d_in_image", [
        sample("ok", boxes_2d=[{"label": "table", "bbox": [10, 20, 200, 280]}]),
        sample("outside", boxes_2d=[{"label": "table", "bbox": [10, 20, 640, 280]}], media=[image(400, 300)]),
        sample("inverted", boxes_2d=[{"label": "chair", "bbox": [200, 20, 100, 280]}]),
    ])
    assert out["ok"]["passed"]
    assert "2D box 0 (table) [10.0, 20.0, 640.0, 280.0] is not a box inside the 400x300 image" in \
        out["outside"]["reason"]
    assert not out["inverted"]["passed"]
