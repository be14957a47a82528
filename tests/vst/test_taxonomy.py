"""The taxonomy: every canonical skill id is present, and the SQL rules agree with the Python ones."""

from __future__ import annotations

import duckdb
import pytest

from curation.vst.taxonomy import load_taxonomy

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


CASES = [
    ("si_distance", "single", "anything", "x"),
    ("video", "video", "These are frames of a video. How many chairs are in this room?", "video"),
    ("video", "video", "Which object appears first in the video?", "video"),
    ("video", "video", "How do I walk from the door to the bed? Plan the route.", "video"),
    ("video", "video", "What is the height of the lamp in centimeters?", "video"),
    ("video", "video", "Something else entirely", "video"),
    ("mixed", "single", "Which is closer to the camera, the chair or the table?", "qa"),
    ("mixed", "multi", "How did the camera move between the two images?", "multi_image"),
    ("mixed", "single", "Zebra?", "unknow"),
    ("mixed", "text", "Zebra?", "text"),
]


@pytest.mark.parametrize("subset,group,question,type_", CASES)
def test_sql_and_python_rules_agree(subset, group, question, type_):
    tax = load_taxonomy()
    # skill_sql names each column several times; bind by building a one-row relation.
    sql = tax.skill_sql("subset", "grp", "q", "type")
    with duckdb.connect() as con:  # its own connection: the module-level default one is shared by every test
        got = con.execute(f"SELECT {sql} FROM (SELECT ? AS subset, ? AS grp, ? AS q, ? AS type)",
                          [subset, group, question, type_]).fetchone()[0]
    assert got == tax.classify(subset, group, question, type_)
    assert got != "unknown" or question == "Zebra?"
