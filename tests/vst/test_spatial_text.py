"""A curator reads the cameras and boxes that prompts and answers state, and gets geometry back."""

import math

import numpy as np
import pytest

from curation.vst.geometry import Camera, project_points
from curation.vst.spatial_text import objects_named, parse_boxes_2d, parse_boxes_3d, parse_camera

FOV_PROMPT = (
    "<|image_pad|>\nThe camera's horizontal field of view (hfov) is 60.0 degrees and vertical field of view (vfov) "
    "is 46.8 degrees; the image is 400x300 pixels. Detect every chair in the image."
)
INTRINSICS_PROMPT = "The camera intrinsics are f_x = 346.4, f_y = 346.4, c_x = 200.0, c_y = 150.0. Find the lamp."
ANSWER = (
    "```json\n"
    '[{"bbox_3d": [0.5, 0.1, 2.0, 0.5, 0.9, 0.5, 0.0, 0.25, 0.0], "label": "chair"},\n'
    ' {"bbox_3d": [-0.8, 0.3, 3.1, 1.2, 0.75, 0.8, 0.0, -0.1, 0.0], "label": "table"}]\n'
    "```"
)


def test_the_demo_fov_statement_gives_the_pinhole_camera():
    stated = parse_camera(FOV_PROMPT)
    assert stated.stated_as == "fov"
    cam = stated.camera
    assert (cam.width, cam.height) == (400, 300)
    assert cam.fx == pytest.approx(200 / math.tan(math.radians(30)))
    assert cam.hfov_deg == pytest.approx(60.0) and cam.vfov_deg == pytest.approx(46.8)
    assert (cam.cx, cam.cy) == (200.0, 150.0)


def test_the_demo_intrinsics_statement_takes_the_size_from_the_image_or_the_principal_point():
    stated = parse_camera(INTRINSICS_PROMPT)
    assert stated.stated_as == "intrinsics"
    assert stated.camera == Camera(346.4, 346.4, 200.0, 150.0, 400, 300)
    assert parse_camera(INTRINSICS_PROMPT, width=410, height=310).camera.width == 410


@pytest.mark.parametrize(
    "prompt",
    [
        "hfov: 60°, vfov = 46.8° and the image is 400 x 300 px",
        "The horizontal field of view is 60 degrees, the vertical field of view is 46.8 degrees. 400x300 pixels.",
        "HFOV=60.0 deg; VFOV=46.8 deg; image 400X300 pixels",
    ],
)
def test_fov_wording_is_tolerated(prompt):
    cam = parse_camera(prompt).camera
    assert cam.hfov_deg == pytest.approx(60.0) and cam.vfov_deg == pytest.approx(46.8)


def test_other_intrinsics_spellings_and_a_k_matrix_are_read():
    assert parse_camera("fx: 500, fy: 510, cx: 320, cy: 240").camera == Camera(500, 510, 320, 240, 640, 480)
    k = parse_camera("The camera intrinsic matrix is [[500, 0, 320], [0, 500, 240], [0, 0, 1]].").camera
    assert (k.fx, k.cx, k.fy, k.cy) == (500, 320, 500, 240)


def test_no_camera_is_invented():
    assert parse_camera("How far is the chair from the table?") is None
    assert parse_camera("hfov is 60 degrees and vfov is 46.8 degrees") is None  # no image size anywhere
    assert parse_camera("hfov is 60 degrees and vfov is 46.8 degrees", 400, 300).stated_as == "fov"
    assert parse_camera("") is None


def test_a_fenced_json_answer_gives_labelled_vst_boxes():
    boxes = parse_boxes_3d(ANSWER)
    assert [(b.label, b.encoding) for b in boxes] == [("chair", "euler9"), ("table", "euler9")]
    chair = boxes[0].box
    assert chair.center == (0.5, 0.1, 2.0) and chair.size == (0.5, 0.9, 0.5) and chair.angles == (0.0, 0.25, 0.0)
    assert boxes[0].values == [0.5, 0.1, 2.0, 0.5, 0.9, 0.5, 0.0, 0.25, 0.0]


def test_a_bare_json_list_and_python_style_quotes_are_read():
    bare = '[{"label": "bed", "bbox_3d": [0, 0.4, 3, 2, 0.5, 1.6, 0, 0, 0]}]'
    assert [b.label for b in parse_boxes_3d(bare)] == ["bed"]
    single = "[{'bbox_3d': [0, 0.4, 3, 2, 0.5, 1.6, 0, 0, 0], 'label': 'bed',}]"
    assert parse_boxes_3d(single)[0].box.size == (2.0, 0.5, 1.6)


def test_malformed_json_returns_what_parses_and_never_raises():
    cut_off = ANSWER[: ANSWER.index('"label": "table"')]  # the generation stopped mid-object
    boxes = parse_boxes_3d(cut_off)
    assert [b.label for b in boxes] == ["chair", ""]
    assert boxes[1].values[:3] == [-0.8, 0.3, 3.1]
    assert parse_boxes_3d('```json\n[{"bbox_3d": [1, 2, "x"], "label": "bed"}]\n```') == []
    assert parse_boxes_3d('```json\n[{"bbox_3d": [1, 2, 3, 4, 5, 6, 0, 0], "label": "bed"}]\n```')[0].encoding == (
        "invalid"
    )
    assert parse_boxes_3d("```json\n[{{{]]]\n```") == []
    assert parse_boxes_3d("") == []


def test_identity_quaternion_gives_zero_angles_and_a_quarter_turn_gives_half_pi():
    text = '[{"bbox_3d": [1, 0, 3, 1, 1, 1, 0, 0, 0, 1], "label": "cabinet"}]'
    box = parse_boxes_3d(text)[0]
    assert box.encoding == "quat10"
    assert box.box.angles == pytest.approx((0.0, 0.0, 0.0))
    s = math.sqrt(0.5)
    yawed = parse_boxes_3d(f'[{{"bbox_3d": [1, 0, 3, 1, 1, 1, 0, {s}, 0, {s}], "label": "cabinet"}}]')[0]
    assert yawed.box.angles == pytest.approx((0.0, 0.5, 0.0), abs=1e-9)  # 90 degrees about Y = pi/2
    zero = parse_boxes_3d('[{"bbox_3d": [1, 0, 3, 1, 1, 1, 0, 0, 0, 0], "label": "cabinet"}]')[0]
    assert zero.encoding == "quat10" and zero.box is None


def test_the_legacy_tag_reads_degrees_and_takes_the_label_before_it():
    boxes = parse_boxes_3d("<ref>lamp</ref><3dbbox>1 0.2 3 0.3 1.5 0.3 0 90 0</3dbbox>")
    assert boxes[0].label == "lamp" and boxes[0].encoding == "tag9"
    assert boxes[0].box.angles == (0.0, 0.5, 0.0)
    assert boxes[0].values[7] == 90.0  # values stay as written


def test_box_mentions_in_a_prompt_take_the_noun_before_them():
    prompt = (
        "The chair is at bbox_3d [0.5, 0.1, 2.0, 0.5, 0.9, 0.5, 0.0, 0.25, 0.0] and the coffee table at "
        "bbox_3d [1, 0.2, 3, 1, 0.5, 0.6, 0, 0, 0]. Which is closer to the camera?"
    )
    boxes = parse_boxes_3d(prompt)
    assert [(b.label, b.encoding) for b in boxes] == [("chair", "euler9"), ("coffee table", "euler9")]
    assert boxes[1].box.center == (1.0, 0.2, 3.0)


def test_uvd_boxes_need_the_camera_and_then_project_back_to_their_pixel():
    cam = parse_camera(INTRINSICS_PROMPT).camera
    answer = (
        'Boxes as [u, v, depth, sx, sy, sz, p, y, r]: [{"bbox_3d": [300, 100, 2.5, 1, 1, 1, 0, 0, 0], "label": "tv"}]'
    )
    without = parse_boxes_3d(answer)[0]
    assert without.encoding == "uvd9" and without.box is None
    with_cam = parse_boxes_3d(answer, camera=cam)[0]
    uv, front = project_points(cam, np.array([with_cam.box.center]))
    assert front[0] and uv[0] == pytest.approx([300, 100])
    assert with_cam.box.center[2] == 2.5
    forced = parse_boxes_3d('[{"bbox_3d": [200, 150, 2, 1, 1, 1, 0, 0, 0], "label": "tv"}]', cam, encoding="uvd9")
    assert forced[0].box.center == pytest.approx((0.0, 0.0, 2.0))


def test_2d_boxes_in_text_come_with_their_object():
    text = "Is the table (represented by bbox [374, 433, 670, 584]) left of the sofa (bbox [10, 20, 110, 220])?"
    boxes = parse_boxes_2d(text)
    assert [(b.label, b.box) for b in boxes] == [
        ("table", [374.0, 433.0, 670.0, 584.0]),
        ("sofa", [10.0, 20.0, 110.0, 220.0]),
    ]
    assert parse_boxes_2d("the chair bbox [1, 2, 3]") == []  # three numbers are not a rectangle
    assert parse_boxes_2d("the chair at bbox_3d [1, 2, 3, 4]") == []  # a 3D mention is not a 2D box


def test_objects_named_in_a_question_for_highlighting():
    question = "Is the coffee table closer to the camera than the chairs? Compare with the table by the wall."
    assert objects_named(question, ["chair", "table", "coffee table", "sofa"]) == ["coffee table", "chair", "table"]
    assert objects_named("Is the coffee table near the chair?", ["chair", "table", "coffee_table"]) == [
        "coffee_table",
        "chair",
    ]
    assert objects_named("Where is the bedside lamp?", ["bed", "lamp"]) == ["lamp"]  # "bed" inside a word
    assert objects_named("", ["chair"]) == []
