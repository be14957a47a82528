"""Boxes on the image they belong to, the box answer as a table and back, and search hits: a curator's multi-image
samples, box fixes and searches, without Streamlit."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from curation.presenters.sample import (
    HIGHLIGHT,
    BoxEditError,
    answer_boxes,
    box_table,
    boxes_answer,
    boxes_from_answer,
    boxes_per_image,
    draw_overlays,
    image_mentions,
    on_image,
    sample_geometry,
    scene_figure,
    search_hits,
    select_box,
)
from curation.vst.geometry import Box3D, Camera, project_box_to_rect

INTRINSICS = "The camera intrinsics are f_x = 346.4, f_y = 346.4, c_x = 200.0, c_y = 150.0."
CHAIR = [0.3, 0.2, 2.5, 0.5, 0.9, 0.5, 0.0, 0.1, 0.0]
SOFA = [-0.9, 0.4, 3.5, 2.0, 0.85, 0.9, 0.0, -0.2, 0.0]


def row(question: str, answer: str, n_images: int) -> dict:
    return {
        "sample_id": "s-1", "question": question, "answer": answer,
        "turns": [{"role": "human", "text": "<|image_pad|>" * n_images + question}, {"role": "gpt", "text": answer}],
        "media": [{"kind": "image", "width": 400, "height": 300, "path": f"cam_{i}.jpg"} for i in range(n_images)],
        "camera": None, "boxes_3d": None, "boxes_2d": None,
    }


def boxes_json(*boxes: tuple[str, list[float]], **extra) -> str:
    return "```json\n" + json.dumps([{"bbox_3d": b, "label": lab, **extra} for lab, b in boxes]) + "\n```"


def test_the_ways_a_text_names_an_image_are_read_and_sizes_are_not():
    text = ("Image-2 shows a lamp; the first image a desk, see image 3 and img2 and the 2nd view. The image is "
            "400x300 pixels, image 1024 is no image, and the fifth image does not exist.")
    assert [m.image for m in image_mentions(text, 3)] == [1, 0, 2, 1, 1]


def test_each_2d_box_is_drawn_into_the_image_its_sentence_names():
    q = ("The first image shows a chair (represented by bbox [10, 20, 60, 90]) and the second image a lamp "
         "(represented by bbox [200, 50, 260, 150]). Is the lamp left of the chair?")
    g = sample_geometry(row(q, "A", 2))
    assert [(r.label, r.image) for r in g.rects] == [("chair", 0), ("lamp", 1)]
    assert boxes_per_image(g) == [1, 1]
    assert [r.label for r in on_image(g, 1).rects] == ["lamp"]
    # "bbox [...] in the second image": the name after the box, in the same sentence
    g = sample_geometry(row("The object marked by bbox [5, 5, 50, 50] in the second image also appears in the first "
                            "image. Which box marks it in the first image?", "bbox [1, 2, 30, 40]", 2))
    assert [r.image for r in g.rects] == [1, 0]  # the answer's box: the image the question asks about


def test_a_second_image_box_is_drawn_into_the_second_image_not_the_first():
    q = "The first image shows a chair (bbox [10, 20, 60, 90]) and Image-2 a lamp (bbox [200, 50, 260, 150])."
    g = sample_geometry(row(q, "A", 2))
    first = np.asarray(draw_overlays(Image.new("RGB", (400, 300)), on_image(g, 0), min_side=0))
    second = np.asarray(draw_overlays(Image.new("RGB", (400, 300)), on_image(g, 1), min_side=0))
    assert first[20:90, 10].any() and not first[50:150, 260].any()  # the chair's left edge, not the lamp's right
    assert second[50:150, 260].any() and not second[20:90, 10].any()


def test_3d_boxes_follow_the_frame_the_text_states_or_an_image_key_in_the_answer():
    q = f"Detect the objects, in the camera coordinate system of the second image. {INTRINSICS}"
    g = sample_geometry(row(q, boxes_json(("chair", CHAIR), ("sofa", SOFA)), 3))
    assert [b.image for b in g.boxes] == [1, 1] and not g.notes
    answer = "```json\n" + json.dumps([{"bbox_3d": CHAIR, "label": "chair", "image": 3},
                                       {"bbox_3d": SOFA, "label": "sofa", "image_id": 1}]) + "\n```"
    g = sample_geometry(row(f"Detect the objects. {INTRINSICS}", answer, 3))
    assert [b.image for b in g.boxes] == [2, 0]


def test_when_the_text_does_not_say_which_image_the_page_is_told_so():
    g = sample_geometry(row(f"Detect the objects in these images. {INTRINSICS}", boxes_json(("chair", CHAIR)), 2))
    assert [b.image for b in g.boxes] == [None]
    assert [b.label for b in on_image(g, 0).boxes] == ["chair"] and not on_image(g, 1).boxes
    assert any("does not say which of the 2 images box chair belongs to: drawn in image 1" in n for n in g.notes)
    single = sample_geometry(row(f"Detect the objects. {INTRINSICS}", boxes_json(("chair", CHAIR)), 1))
    assert [b.image for b in single.boxes] == [0] and not single.notes


def test_a_box_answer_as_a_table_in_metres_and_degrees_and_back_to_the_same_json():
    g = sample_geometry(row(f"Detect. {INTRINSICS}", boxes_json(("chair", CHAIR), ("sofa", SOFA)), 1))
    table = box_table(g)
    assert table[0]["label"] == "chair" and table[0]["z (m)"] == 2.5 and table[0]["yaw (°)"] == pytest.approx(18.0)
    assert (table[1]["from"], table[1]["image"]) == ("answer", "image 1")
    rows = answer_boxes(g)
    assert json.loads(boxes_answer(rows, fenced=False)) == [{"bbox_3d": pytest.approx(CHAIR), "label": "chair"},
                                                            {"bbox_3d": pytest.approx(SOFA), "label": "sofa"}]
    assert boxes_answer(rows).startswith("```json\n[{\"bbox_3d\": ")
    rows[1]["yaw (°)"] = 90.0  # edit a row, add one, delete the chair
    edited = [rows[1], {**rows[0], "label": "lamp", "x (m)": -1.0}]
    out = json.loads(boxes_answer(edited, fenced=False))
    assert [o["label"] for o in out] == ["sofa", "lamp"] and out[0]["bbox_3d"][7] == 0.5 and out[1]["bbox_3d"][0] == -1
    back = boxes_from_answer(boxes_answer(edited))  # a saved fix opens in the editor as it was saved
    assert [(r["label"], r["yaw (°)"], r["x (m)"]) for r in back] == [("sofa", pytest.approx(90.0), -0.9),
                                                                      ("lamp", pytest.approx(18.0), -1.0)]


@pytest.mark.parametrize(("change", "message"), [
    ({"label": " "}, "row 2, label: empty"),
    ({"z size (m)": 0.0}, "row 2, z size (m): 0 is not a positive size"),
    ({"yaw (°)": float("nan")}, "row 2, yaw (°): nan is not a number"),
    ({"x (m)": None}, "row 2, x (m): None is not a number"),
])
def test_an_edited_box_that_cannot_be_an_answer_names_its_row_and_column(change, message):
    rows = answer_boxes(sample_geometry(row(f"Detect. {INTRINSICS}", boxes_json(("chair", CHAIR), ("sofa", SOFA)), 1)))
    rows[1].update(change)
    with pytest.raises(BoxEditError, match=message.replace("(", r"\(").replace(")", r"\)")):
        boxes_answer(rows)


def test_the_box_picked_in_the_table_stands_out_in_the_image_and_the_3d_view():
    camera = Camera(346.4, 346.4, 200.0, 150.0, 400, 300)
    g = select_box(sample_geometry(row(f"Detect. {INTRINSICS}", boxes_json(("chair", CHAIR), ("sofa", SOFA)), 1)), 1)
    assert [b.selected for b in g.boxes] == [False, True]
    img = np.asarray(draw_overlays(Image.new("RGB", (400, 300)), g, min_side=0))
    x1, y1, x2, y2 = project_box_to_rect(camera, Box3D.from_vst("sofa", SOFA))
    edge = img[int(y1) + 5:int(y2) - 5, max(int(x1) - 6, 0):int(x1) + 6].reshape(-1, 3)
    assert any(tuple(p) == HIGHLIGHT or tuple(p) == (255, 255, 255) for p in edge)
    traces = {t.name: t for t in scene_figure(g).data if t.mode == "lines"}
    assert traces["▶ sofa (selected)"].opacity == 1.0 and traces["chair"].opacity == 0.35
    assert select_box(g, 7) is g and select_box(g, None) is g  # a stale selection changes nothing


def test_search_hits_are_the_words_the_index_matches():
    text = "Two chairs and a Chair near the chairman's table; how far is the chair? 3 meters."
    hits = [text[a:b] for a, b in search_hits(text, 'chair AND NOT question:table')]
    assert hits == ["chairs", "Chair", "chair"]  # stems as the index has them; "chairman" is another word
    assert [text[a:b] for a, b in search_hits(text, '"how far" meter')] == ["how", "far", "meters"]
    assert [text[a:b] for a, b in search_hits(text, "table -chair")] == ["table"]
    assert search_hits(text, "") == [] and search_hits("", "chair") == []
