"""The taxonomy: every canonical skill id is present, realistic phrasings land in their category (VST-R never
`unknown`), and the SQL ingest and retag run gives what the Python rules give."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from curation.vst.taxonomy import SKILL_INPUTS, TAXONOMY_PATH, load_taxonomy

CANONICAL = """si_3d_detection si_depth_comparison si_scene_caption si_3d_grounding si_distance si_measurement
mi_correspondence mi_object_object_relation mi_camera_motion mi_3d_detection mi_camera_camera mi_scene_caption
video_measurement video_object_counting video_spatiotemporal video_object_object_relation video_route_plan
video_scene_caption video_others cot_sr_si cot_sr_camera_motion cot_sr_object_object cot_sr_camera_camera cot_gr_math
cot_gr_ocr cot_gr_knowledge rl_sr_si rl_sr_camera_motion rl_sr_object_object rl_sr_camera_camera rl_gr_math rl_gr_ocr
rl_gr_knowledge unknown""".split()


def test_all_canonical_ids():
    assert sorted(load_taxonomy().skill_ids()) == sorted(CANONICAL)


def test_unknown_skill_names_are_refused_clearly():
    with pytest.raises(ValueError, match="si_distanse"):
        load_taxonomy().check_skills(["si_distance", "si_distanse"])


MC = "\nA: left\nB: right\nAnswer with the option's letter from the given choices directly."
SHORT = "\nPlease answer the question using a single word or phrase."


def cot(group: str, question: str, **kw) -> dict:
    """A VST-R chain-of-thought row (SFT, its answer reasons) in a folder that names no skill."""
    return {"dataset": "vst-r", "kind": "sft", "has_reasoning": True, "type": "thought", "subset": "part-3",
            "sample_group": group, "question": question, **kw}


def rl(group: str, question: str, modes=("multi_choices_score",), **kw) -> dict:
    """A VST-R RL row (question/answer/meta_info.mode) in a folder that names no skill."""
    return {"dataset": "vst-r", "kind": "rl", "has_reasoning": False, "type": None, "subset": "rl_json",
            "sample_group": group, "question": question, "rl_modes": list(modes), **kw}


def llava(group: str, question: str, dataset: str = "vst-p", **kw) -> dict:
    """A LLaVA-style SFT row (no reasoning) from a folder that names no skill."""
    return {"dataset": dataset, "kind": "sft", "has_reasoning": False, "type": None, "subset": "llava",
            "sample_group": group, "question": question, **kw}


# Phrasings from the paper's category definitions and the public sets VST-R draws on (MathVista, Geometry3K,
# TextVQA, DocVQA, ScienceQA, A-OKVQA, MMSI-Bench, CV-Bench, VSI-Bench), not the demo's templates.
VST_R = [
    # GR-Math: geometry, symbols, equations, charts
    ("cot_gr_math", cot("single", "As shown in the figure, AB is the diameter of circle O, ∠ABC = 40°. "
                                  "Find the measure of ∠BAC.")),
    ("cot_gr_math", cot("single", "Find x. Round to the nearest tenth.")),
    ("cot_gr_math", cot("single", "In triangle ABC, D is the midpoint of BC. What is the length of AD?")),
    ("cot_gr_math", cot("text", "Solve for x: 2x + 3 = 11.")),
    ("cot_gr_math", cot("single", "What is the perimeter of the rectangle shown?" + SHORT)),
    ("cot_gr_math", cot("single", "Subtract all red cubes. Subtract all small spheres. How many objects are left?")),
    ("cot_gr_math", cot("single", "What is the difference between the highest and the lowest value in the chart?")),
    ("cot_gr_math", cot("single", "If $f(x) = x^2 - 4$, what is $f(3)$?")),
    ("rl_gr_math", rl("single", "What is the total?", modes=["math_score"])),
    ("rl_gr_math", rl("single", "What is the average of the values shown in the bar graph?", modes=["relaxed_score"])),
    # GR-OCR: reading text
    ("cot_gr_ocr", cot("single", "What is the brand name on the bottle?" + SHORT)),
    ("cot_gr_ocr", cot("single", "what does the sign say?")),
    ("cot_gr_ocr", cot("single", "What is the title of this book?")),
    ("cot_gr_ocr", cot("single", "What is the invoice number?")),
    ("cot_gr_ocr", cot("single", "What number is on the player's jersey?")),
    ("rl_gr_ocr", rl("single", "What is written at the top of the poster?", modes=["vqa_score"])),
    ("rl_gr_ocr", rl("single", "Who is the author of the book?", modes=["anls_score"])),
    # GR-Knowledge: everything general that is neither math nor reading
    ("cot_gr_knowledge", cot("single", "Which animal's feet are also adapted for digging?\nA: mole\nB: emu")),
    ("cot_gr_knowledge", cot("single", "Which of these states is farthest north?\nA: Ohio\nB: Texas")),
    ("cot_gr_knowledge", cot("single", "Which property do these three objects have in common?")),
    ("cot_gr_knowledge", cot("single", "What is the man by the bags awaiting?")),
    ("cot_gr_knowledge", cot("text", "Identify the question that Tom's experiment can best answer.")),
    ("rl_gr_knowledge", rl("single", "What kind of animal is shown in the picture? Answer with one or two words.",
                           modes=["vqa_score"])),
    ("rl_gr_knowledge", rl("multi", "Which of these is used for keeping food cold?\nA: oven\nB: fridge")),
    # SR-SI: any spatial question about one image
    ("cot_sr_si", cot("single", "Is the lamp left of the sofa?")),
    ("cot_sr_si", cot("single", "Which is closer to the camera, the chair or the table?")),
    ("cot_sr_si", cot("single", "How far is the bed from the camera in meters?")),
    ("cot_sr_si", cot("single", "Estimate the height of the bookshelf.")),
    ("cot_sr_si", cot("single", "If I stand at the door facing the window, is the bed on my left or right?")),
    ("cot_sr_si", cot("single", "Considering the relative positions, where is the mug with respect to the laptop?")),
    ("rl_sr_si", rl("single", "Detect the chairs and output their 3D bounding boxes.", modes=["bbox3d"])),
    ("rl_sr_si", rl("single", "How many meters separate the table from the window?", modes=["relaxed_score"])),
    # SR-Camera Motion: how the camera moved between images or frames
    ("cot_sr_camera_motion", cot("multi", "How did the camera move from the first frame to the second frame?")),
    ("cot_sr_camera_motion", cot("multi", "Between the two images, was the camera rotated clockwise or "
                                          "counterclockwise?")),
    ("cot_sr_camera_motion", cot("multi", "In which direction did the photographer turn between taking these photos?")),
    ("rl_sr_camera_motion", rl("video", "The frames are taken from a first-person view. What is the movement of "
                                        "the camera?" + MC)),
    # SR-Camera-Camera: where one camera is relative to another
    ("cot_sr_camera_camera", cot("multi", "Where is the second camera relative to the first camera?")),
    ("cot_sr_camera_camera", cot("multi", "What is the angle between the viewing directions of the two cameras?")),
    ("cot_sr_camera_camera", cot("multi", "Image 2 was taken from which side of the position where image 1 was "
                                          "taken?")),
    ("rl_sr_camera_camera", rl("multi", "Relative to the first viewpoint, where is the second viewpoint located?"
                                        + MC)),
    # SR-Object-Object: objects' relations across images or frames
    ("cot_sr_object_object", cot("multi", "Is the lamp left of the sofa?")),
    ("cot_sr_object_object", cot("multi", "Seen from the first camera, is the refrigerator to the left or to the "
                                          "right of the door?" + MC)),
    ("cot_sr_object_object", cot("multi", "Which object in image 2 is directly behind the sofa shown in image 1?")),
    ("rl_sr_object_object", rl("multi", "What is the distance between the bed and the desk across the two views?",
                               modes=["relaxed_score"])),
    ("rl_sr_object_object", rl("video", "Is the television closer to the sofa than the plant is?" + MC)),
    # LLaVA rows in the reasoning set: CoT by format, category by wording
    ("cot_sr_si", llava("single", "Is the lamp left of the sofa?", dataset="vst-r")),
    ("cot_gr_ocr", llava("single", "What is written on the whiteboard?", dataset="vst-r")),
    # reasoning outside the vst-r dataset is still VST-R by its format
    ("cot_gr_math", cot("single", "What is the value of x in the equation shown?", dataset="in-house")),
    ("rl_sr_si", rl("single", "Which is closer to the camera?" + MC, dataset="in-house")),
]

VST_P = [
    ("si_depth_comparison", llava("single", "Which is closer to the camera, the chair or the table?")),
    ("si_depth_comparison", llava("single", "Which object is farther from the viewer: the door or the bed?")),
    ("si_distance", llava("single", "What is the distance between the chair and the table in meters?")),
    ("si_distance", llava("single", "How far apart are the bed and the desk?")),
    ("si_measurement", llava("single", "How tall is the bookshelf in centimeters?")),
    ("si_measurement", llava("single", "What are the dimensions of the rug?")),
    ("si_scene_caption", llava("single", "Please provide a detailed description of the room in the image.")),
    ("si_3d_detection", llava("single", "Detect all chairs and output their 3D bounding boxes.")),
    ("si_3d_grounding", llava("single", "Output the 3D bounding box of the lamp next to the bed.")),
    ("mi_object_object_relation", llava("multi", "Is the lamp left of the sofa?")),
    ("mi_correspondence", llava("multi", "Which point in the second image corresponds to the point marked in the "
                                         "first image?")),
    ("mi_camera_motion", llava("multi", "How did the camera move between the two views?")),
    ("mi_camera_camera", llava("multi", "Where is the second camera relative to the first camera?")),
    ("mi_scene_caption", llava("multi", "Describe the scene shown across these views.")),
    ("mi_3d_detection", llava("multi", "Detect all objects in both images and give their 3D bounding boxes.")),
    ("video_object_object_relation", llava("video", "Is the lamp to the left of the sofa?")),
    ("video_object_counting", llava("video", "These are frames of a video. How many chairs are in this room?")),
    ("video_measurement", llava("video", "What is the length of the sofa in meters?")),
    ("video_spatiotemporal", llava("video", "Which object appeared first in the video, the TV or the bed?")),
    ("video_route_plan", llava("video", "How do I get from the door to the bed?")),
    ("video_scene_caption", llava("video", "Describe the room.")),
    ("video_others", llava("video", "Seen from above, is the camera turning clockwise or counter-clockwise?")),
    ("video_others", llava("video", "Something else entirely")),
    # a subset folder that is a skill id wins; the `type` decides when wording does not
    ("si_distance", llava("single", "anything", subset="si_distance")),
    ("si_measurement", llava("single", "anything", subset="measurement")),
    ("mi_correspondence", llava("multi", "Zebra?", type="correspondence")),
    # outside the 19 skills' wording: unknown (VST-P has no single-image object-object skill), kept and counted
    ("unknown", llava("single", "Is the lamp left of the sofa?")),
    ("unknown", llava("single", "Zebra?", type="unknow")),
    ("unknown", llava("text", "Zebra?", type="text")),
]

# A reasoning row's folder counts when it names a VST-R skill; a VST-P folder does not make it a VST-P sample.
FOLDERS = [
    ("cot_gr_math", cot("single", "Is the lamp left of the sofa?", subset="cot_gr_math")),
    ("rl_sr_si", rl("single", "Which is closer to the camera?" + MC, subset="si_depth_comparison")),
]
CASES = VST_R + VST_P + FOLDERS


def _sql_skills(rows: list[dict]) -> list[str]:
    tax = load_taxonomy()
    table = pa.Table.from_pylist(
        [{k: r.get(k) for k in SKILL_INPUTS} | {"i": i} for i, r in enumerate(rows)],
        schema=pa.schema([(k, pa.list_(pa.string()) if k == "rl_modes" else pa.bool_() if k == "has_reasoning"
                           else pa.string()) for k in SKILL_INPUTS] + [("i", pa.int64())]))
    with duckdb.connect() as con:  # its own connection: the module-level default one is shared by every test
        con.register("samples", table)
        return [s for (s,) in con.execute(f"SELECT {tax.skill_sql()} FROM samples ORDER BY i").fetchall()]


@pytest.mark.parametrize("expected,row", CASES, ids=[f"{e}:{r['sample_group']}:{r['question'][:40]}" for e, r in CASES])
def test_a_phrasing_lands_in_its_category(expected, row):
    assert load_taxonomy().classify(row) == expected


def test_sql_gives_what_the_python_rules_give():
    rows = [r for _, r in CASES]
    tax = load_taxonomy()
    assert _sql_skills(rows) == [tax.classify(r) for r in rows]


def test_every_vst_r_phrasing_gets_one_of_the_14_categories():
    skills = load_taxonomy().skills
    got = {load_taxonomy().classify(r) for _, r in VST_R}
    assert all(skills[s].dataset == "vst-r" for s in got)
    assert len(got) == 14  # the table covers every category


def test_a_taxonomy_without_a_catch_all_category_is_refused_naming_the_file(tmp_path):
    text = TAXONOMY_PATH.read_text()
    bad = tmp_path / "taxonomy.yaml"
    bad.write_text(text.replace("    - {category: gr_knowledge}\n", ""))
    with pytest.raises(ValueError, match=f"{bad}.*reasoning.categories must end"):
        load_taxonomy(bad)
    bad.write_text(text.replace("category: gr_knowledge}", "category: gr_knowlege}"))
    with pytest.raises(ValueError, match="gr_knowlege"):
        load_taxonomy(bad)
    # a lookahead works in Python but not in DuckDB's RE2: refused at load, not half-way through an ingest
    bad.write_text(text.replace("    - {pattern: '\\bhow many\\b", "    - {pattern: 'how(?= many)|\\bhow many\\b"))
    with pytest.raises(ValueError, match=r"wording_rules.video\[0\]: pattern .*not a regular expression both"):
        load_taxonomy(bad)


def test_on_the_demo_every_vst_r_row_has_a_category_and_the_catalog_agrees_with_the_rules(demo_home):
    """Ingest's SQL gives every demo row what the Python rules give, including the RL JSON rows whose folder
    (rl_json) names no skill: the VST-R unknown share is 0."""
    tax = load_taxonomy()
    with duckdb.connect(str(demo_home.catalog_path), read_only=True) as con:
        rows = con.sql(f"SELECT skill, {', '.join(SKILL_INPUTS)} FROM samples").to_arrow_table().to_pylist()
    vst_r = [r for r in rows if r["dataset"] == "vst-r"]
    assert vst_r and all(tax.skills[r["skill"]].dataset == "vst-r" for r in vst_r)
    assert any(r["subset"] == "rl_json" for r in vst_r)
    assert [r["skill"] for r in rows] == [tax.classify(r) for r in rows]
