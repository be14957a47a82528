"""What the sample view draws, told as a curator's stories: boxes land on their objects, named objects stand out,
and the conversation keeps its media where it sits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from curation.media.scenes import SceneCloud
from curation.presenters.sample import (
    HIGHLIGHT,
    conversation_view,
    draw_overlays,
    label_colour,
    project_box_edges,
    sample_geometry,
    scene_figure,
    table_rows,
    with_scene_objects,
)
from curation.vst.geometry import Box3D, Camera, project_box_to_rect

INTRINSICS = "The camera intrinsics are f_x = 346.4, f_y = 346.4, c_x = 200.0, c_y = 150.0."
FOV = ("The camera's horizontal field of view (hfov) is 60.0 degrees and vertical field of view (vfov) is 46.8 "
       "degrees; the image is 400x300 pixels.")
CHAIR = [0.3, 0.2, 2.5, 0.5, 0.9, 0.5, 0.0, 0.1, 0.0]
SOFA = [-0.9, 0.4, 3.5, 2.0, 0.85, 0.9, 0.0, -0.2, 0.0]


def answer_json(*boxes: tuple[str, list[float]]) -> str:
    return "```json\n" + json.dumps([{"bbox_3d": b, "label": lab} for lab, b in boxes]) + "\n```"


def detection_row(question: str, answer: str, *, camera: dict | None = None, n_images: int = 1) -> dict:
    return {
        "sample_id": "s-1",
        "question": question,
        "answer": answer,
        "turns": [{"role": "human", "text": "<|image_pad|>" * n_images + question}, {"role": "gpt", "text": answer}],
        "media": [{"kind": "image", "width": 400, "height": 300, "path": f"scenes/room_0001/cam_0{i}.jpg"}
                  for i in range(n_images)],
        "camera": camera,
        "boxes_3d": None,
        "boxes_2d": None,
    }


def grey(w: int = 400, h: int = 300) -> Image.Image:
    return Image.new("RGB", (w, h), (128, 128, 128))


def test_a_detection_answer_is_drawn_where_its_object_is_in_the_image():
    camera = Camera(346.4, 346.4, 200.0, 150.0, 400, 300)
    chair = Box3D.from_vst("chair", CHAIR)
    x1, y1, x2, y2 = project_box_to_rect(camera, chair)
    image = grey()
    ImageDraw.Draw(image).rectangle([x1, y1, x2, y2], fill=(30, 200, 30))  # the chair as the renderer paints it
    row = detection_row(f"{INTRINSICS} Detect the objects.", answer_json(("chair", CHAIR)))

    geom = sample_geometry(row)
    assert geom.camera == camera and geom.camera_stated_as == "intrinsics"
    assert [(b.label, b.source) for b in geom.boxes] == [("chair", "answer")]

    out = np.asarray(draw_overlays(image, geom))
    assert out.shape == (600, 800, 3)  # enlarged 2x so the lines stay legible
    colour = np.array(label_colour("chair"))
    drawn = np.argwhere(np.abs(out.astype(int) - colour).sum(axis=2) < 30)
    # Every wireframe pixel lies on the chair's projected rectangle (scaled 2x), none elsewhere in the image.
    assert len(drawn) > 200
    ys, xs = drawn[:, 0] / 2, drawn[:, 1] / 2
    assert xs.min() >= x1 - 3 and xs.max() <= x2 + 3 and ys.min() >= y1 - 3 and ys.max() <= y2 + 3


def test_the_objects_the_question_names_are_highlighted_and_the_others_are_not():
    question = f"{INTRINSICS} Where is the chair?"
    row = detection_row(question, answer_json(("chair", CHAIR), ("sofa", SOFA)))
    geom = sample_geometry(row)
    assert geom.named == ["chair"]
    assert {b.label: b.named for b in geom.boxes} == {"chair": True, "sofa": False}
    out = np.asarray(draw_overlays(grey(), geom))
    assert (np.abs(out.astype(int) - np.array(HIGHLIGHT)).sum(axis=2) < 20).sum() > 100

    plain = sample_geometry(detection_row(f"{INTRINSICS} Detect everything.", answer_json(("chair", CHAIR))))
    assert plain.named == []
    out = np.asarray(draw_overlays(grey(), plain))
    assert (np.abs(out.astype(int) - np.array(HIGHLIGHT)).sum(axis=2) < 20).sum() == 0


def test_the_camera_comes_from_the_catalog_first_then_from_the_prompt_in_either_wording():
    from_fov = sample_geometry(detection_row(FOV + " Detect.", answer_json(("chair", CHAIR))))
    assert from_fov.camera_stated_as == "fov" and from_fov.camera.width == 400
    assert from_fov.camera.fx == pytest.approx(346.4, abs=0.2)
    catalog = {"fx": 500.0, "fy": 500.0, "cx": 200.0, "cy": 150.0, "width": 400, "height": 300, "stated_as": "fov"}
    preferred = sample_geometry(detection_row(FOV + " Detect.", answer_json(("chair", CHAIR)), camera=catalog))
    assert preferred.camera.fx == 500.0


def test_boxes_without_a_camera_or_in_a_broken_encoding_are_explained_not_drawn():
    row = detection_row("Detect the chair.", '```json\n[{"bbox_3d": [1, 2, 3, 4, 5, 6, 7], "label": "chair"}]\n```')
    geom = sample_geometry(row)
    assert geom.boxes == []
    assert any("cannot be drawn" in n for n in geom.notes)
    no_camera = sample_geometry(detection_row("Detect the chair.", answer_json(("chair", CHAIR))))
    assert no_camera.camera is None and len(no_camera.boxes) == 1
    assert any("states no camera" in n for n in no_camera.notes)
    out = draw_overlays(grey(), no_camera)  # nothing to project: the image comes back unchanged (enlarged)
    assert np.asarray(out).std() == 0


def test_a_box_partly_behind_the_camera_is_clipped_and_one_fully_behind_draws_nothing():
    camera = Camera(346.4, 346.4, 200.0, 150.0, 400, 300)
    straddling = Box3D.from_vst("table", [0.0, 0.3, 0.2, 1.0, 0.6, 1.0, 0.0, 0.0, 0.0])
    segments = project_box_edges(camera, straddling)
    assert len(segments) == 8  # the 4 edges of the face behind the camera are gone, 4 crossing edges are cut
    assert np.isfinite(np.array(segments)).all()
    behind = Box3D.from_vst("table", [0.0, 0.3, -3.0, 1.0, 0.6, 1.0, 0.0, 0.0, 0.0])
    assert project_box_edges(camera, behind) == []


def test_2d_boxes_in_the_text_are_drawn_and_named_ones_highlighted():
    q = "Is the table (represented by bbox [40, 50, 120, 140]) left of the lamp?"
    geom = sample_geometry(detection_row(q, "Yes"))
    assert [(r.label, r.rect, r.named) for r in geom.rects] == [("table", (40.0, 50.0, 120.0, 140.0), True)]
    out = np.asarray(draw_overlays(grey(), geom))
    assert tuple(out[2 * 95, 2 * 40]) != (128, 128, 128)  # the left edge of the rectangle
    assert tuple(out[2 * 250, 2 * 300]) == (128, 128, 128)  # far away: untouched


def test_scene_objects_the_question_names_join_the_geometry_with_the_scene_camera():
    camera = Camera(346.4, 346.4, 200.0, 150.0, 400, 300)
    row = detection_row("Which is closer to the camera, the chair or the sofa?", "chair")
    geom = sample_geometry(row)
    assert geom.boxes == [] and geom.camera is None
    objects = [Box3D.from_vst("chair", CHAIR), Box3D.from_vst("sofa", SOFA), Box3D.from_vst("lamp", CHAIR)]
    joined = with_scene_objects(geom, row["question"], objects, camera)
    assert [(b.label, b.source, b.named) for b in joined.boxes] == [("chair", "scene", True), ("sofa", "scene", True)]
    assert joined.camera == camera and joined.camera_stated_as == "scene file"
    assert joined.named == ["chair", "sofa"]


def test_the_3d_view_holds_the_camera_the_boxes_and_the_scene_cloud():
    row = detection_row(f"{INTRINSICS} Where is the chair?", answer_json(("chair", CHAIR), ("sofa", SOFA)))
    geom = sample_geometry(row)
    rng = np.random.default_rng(0)
    points = rng.random((5000, 3)).astype(np.float32) * [4, 2, 5]
    colours = rng.integers(0, 255, (5000, 3), dtype=np.uint8)
    cloud = SceneCloud("room_0001", points, colours, 20_000, 0.05, None)  # type: ignore[arg-type]
    fig = scene_figure(geom, cloud)
    names = [t.name for t in fig.data]
    assert names[0] == "camera"
    assert "★ chair" in names and "sofa" in names
    scatter = next(t for t in fig.data if t.name and t.name.startswith("scene room_0001"))
    assert len(scatter.x) == 5000
    assert scatter.marker.cmax >= 1 and len(scatter.marker.colorscale) >= 2  # colours as a palette, not strings
    chair_lines = next(t for t in fig.data if t.name == "★ chair")
    assert chair_lines.line.width > next(t for t in fig.data if t.name == "sofa").line.width
    assert fig.layout.scene.camera.up.y == -1  # camera frame: Y points down
    assert scene_figure(geom).data[0].name == "camera"  # no cloud: boxes and frustum only


def test_the_conversation_keeps_each_placeholder_where_it_sits_and_sets_the_reasoning_apart():
    row = {
        "turns": [
            {"role": "human", "text": "<|image_pad|><|image_pad|>Compare the views. <|image_pad|>"},
            {"role": "gpt", "text": "<think>The chair moved left. So the answer is B.</think> B"},
        ],
        "media": [{"kind": "image"}, {"kind": "image"}],
    }
    human, gpt = conversation_view(row)
    assert [(s.kind, s.ordinal, s.media_index) for s in human.segments] == [
        ("image", 0, 0), ("image", 1, 1), ("text", -1, None), ("image", 2, None)]
    assert human.segments[2].text == "Compare the views."
    assert gpt.reasoning == "The chair moved left. So the answer is B." and gpt.well_formed
    assert [s.text for s in gpt.segments] == ["B"]
    broken = conversation_view({"turns": [{"role": "gpt", "text": "<think>a</think><think>b</think> C"}]})[0]
    assert broken.well_formed is False


def test_the_browse_table_shows_short_clean_text():
    rows = table_rows([{"sample_id": "a", "question": "<|image_pad|>What   is\nthis " + "x" * 300, "answer": "B"}])
    assert rows[0]["question"].startswith("What is this")
    assert len(rows[0]["question"]) == 140 and rows[0]["question"].endswith("…")
