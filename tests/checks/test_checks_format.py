"""Format checks, told as a curator finds each problem: placeholders, think tags, answers, RL modes, types, ids."""

from __future__ import annotations

import json

import pytest

from curation.checks.base import GlobalContext, rows_to_table
from tests.support.checks_helpers import run, sample


def test_placeholder_count_must_match_the_media():
    out = run("format.placeholders", [
        sample("ok"),
        sample("two-for-one", human="<|image_pad|><|image_pad|>What?"),
        sample("none", human="What?"),
        sample("in-answer", gpt="<image> A"),
        sample("text-only", media=[], human="What is 2+2?"),
    ])
    assert out["ok"]["passed"] and out["text-only"]["passed"]
    assert not out["two-for-one"]["passed"] and out["two-for-one"]["score"] == 1.0
    assert "2 image and 0 video placeholder(s) for 1 image(s)" in out["two-for-one"]["reason"]
    assert not out["none"]["passed"] and out["none"]["score"] == -1.0
    assert "inside answer turns" in out["in-answer"]["reason"]


def test_rl_rows_without_placeholders_are_not_judged():
    rl = sample("rl", human="Which side?", kind="rl")
    assert run("format.placeholders", [rl]) == {}


@pytest.mark.parametrize("gpt, ok, why", [
    ("<think>The chair is nearer. So the answer is B.</think> B", True, None),
    ("The chair is nearer. So the answer is B. B", False, "no <think> block"),
    ("<think>The chair is nearer. B", False, "1 <think> and 0 </think>"),
    ("<think>a</think><think>b</think> B", False, "2 <think> and 2 </think>"),
    ("<think>The chair is nearer.</think>", False, "no answer text after </think>"),
    ("Sure. <think>x</think> B", False, "text before <think>"),
])
def test_think_tags_follow_the_upstream_format_rule(gpt, ok, why):
    out = run("format.think_tags", [sample("s", gpt=gpt, type="depth_thought")])["s"]
    assert out["passed"] is ok
    assert out["score"] == (1.0 if ok or why == "text before <think>" else 0.0)
    if why:
        assert why in out["reason"]


def test_think_tags_ignore_plain_samples():
    assert run("format.think_tags", [sample("plain", gpt="B", type="depth")]) == {}


def test_answers_must_be_extractable_for_their_kind():
    mc = "Which is closer?\nA: chair\nB: table\nAnswer with the option's letter from the given choices directly."
    box_ok = '```json\n[{"bbox_3d": [0.1, 0.2, 2.0, 0.5, 0.9, 0.5, 0, 0.1, 0], "label": "chair"}]\n```'
    rows = [
        sample("letter", mc, "B", answer_kind="choice"),
        sample("word", mc, "the chair", answer_kind="choice"),
        sample("not-offered", mc, "D", answer_kind="choice"),
        sample("number", "What is the distance between the chair and the table in meters?", "1.8",
               answer_kind="number"),
        sample("no-number", "What is the distance between the chair and the table in meters?", "far",
               answer_kind="text"),
        sample("boxes", "Detect the chair.", box_ok, answer_kind="bbox3d",
               boxes_3d=[{"label": "chair", "bbox": [0.1, 0.2, 2.0, 0.5, 0.9, 0.5, 0, 0.1, 0], "encoding": "euler9"}]),
        sample("broken-json", "Detect the chair.", '```json\n[{"bbox_3d": [0.1, 0.2', answer_kind="bbox3d"),
        sample("eight-numbers", "Detect.", "...", answer_kind="bbox3d",
               boxes_3d=[{"label": "chair", "bbox": [0.1, 0.2, 2.0, 0.5, 0.9, 0.5, 0, 0.1], "encoding": "invalid"}]),
        sample("caption", "Describe the room.", "A tidy bedroom.", answer_kind="text"),
    ]
    out = run("format.answer_extractable", rows)
    assert out["letter"]["passed"] and out["number"]["passed"] and out["boxes"]["passed"]
    assert "no option letter" in out["word"]["reason"]
    assert "D is not among the offered options AB" in out["not-offered"]["reason"]
    assert "no number" in out["no-number"]["reason"]
    assert "no parsable bbox3d JSON" in out["broken-json"]["reason"]
    assert "9 numbers expected" in out["eight-numbers"]["reason"]
    assert "caption" not in out


def test_rl_modes_must_be_valid():
    out = run("format.rl_mode", [
        sample("good", kind="rl", rl_modes=["multi_choices_score"]),
        sample("bad", kind="rl", rl_modes=["accuracy_score"]),
        sample("missing", kind="rl", rl_modes=None),
        sample("sft", kind="sft"),
    ])
    assert out["good"]["passed"] and "sft" not in out
    assert "accuracy_score is not a valid RL mode" in out["bad"]["reason"]
    assert "missing" in out["missing"]["reason"]


def test_types_must_be_known():
    out = run("format.type_known", [sample("a", type="depth"), sample("b", type="unknow"),
                                    sample("c", type="camera_motion_thought"), sample("d", type="spatial_new"),
                                    sample("e", type=None)])
    assert out["a"]["passed"] and out["c"]["passed"] and "e" not in out
    # The real data's caption rows say "unknow": a known quirk, shown as info; an unknown type is a warning.
    assert not out["b"]["passed"] and out["b"]["severity"] == "info"
    assert out["b"]["reason"].startswith('type: "unknow" is upstream\'s misspelling of "unknown"')
    assert not out["d"]["passed"] and out["d"]["severity"] == "warning" and '"spatial_new" is not a known type' in \
        out["d"]["reason"]
    assert out["a"]["severity"] is None


def test_meta_info_must_be_json_of_the_right_shape():
    meta = json.dumps([{"width": 400, "height": 300, "resized_width": 400, "resized_height": 300}])
    out = run("format.meta_info", [
        sample("ok", meta_info=meta),
        sample("cut", meta_info=meta[:-2]),
        sample("short", meta_info=json.dumps([{}, {}])),
        sample("rl-list", kind="rl", meta_info=meta),
        sample("rl-ok", kind="rl", meta_info=json.dumps({"mode": ["vqa_score"]})),
    ])
    assert out["ok"]["passed"] and out["rl-ok"]["passed"]
    assert out["cut"]["reason"].startswith("meta_info: not valid JSON")
    assert "2 entries for 1 media item(s)" in out["short"]["reason"]
    assert "must be a JSON object" in out["rl-list"]["reason"]


def test_a_copied_id_fails_on_the_later_sample_naming_the_first():
    import duckdb

    from curation.checks.registry import get_check

    con = duckdb.connect()
    rows = [sample("s1", source_id="id-1", row_index=0), sample("s2", source_id="id-2", row_index=1),
            sample("s3", source_id="id-1", row_index=2, dataset="vst-r")]
    con.register("samples", rows_to_table(rows))
    out = {r["sample_id"]: r for t in get_check("format.ids_unique")({}).run_global(GlobalContext(con))
           for r in t.to_pylist()}
    assert out["s1"]["passed"] and out["s2"]["passed"]
    assert not out["s3"]["passed"] and "also the id of sample s1" in out["s3"]["reason"]
    scoped = {r["sample_id"]: r for t in get_check("format.ids_unique")({"ids_scope": "dataset"}).run_global(
        GlobalContext(con)) for r in t.to_pylist()}
    assert scoped["s3"]["passed"]
