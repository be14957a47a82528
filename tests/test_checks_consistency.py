"""Consistency checks: a trace that concludes otherwise, answers the stated boxes contradict, units that do not fit."""

from __future__ import annotations

import pytest

from curation.checks.consistency import agreement

from .checks_helpers import run, sample

BOXES = ("The chair is at bbox_3d [0.5, 0.2, 2, 0.5, 0.9, 0.5, 0, 0.1, 0] and the table at bbox_3d "
         "[-0.5, 0.3, 4, 1.4, 0.75, 0.8, 0, 0, 0].")
MC = "Which object is closer to the camera?\nA: table\nB: chair\nAnswer with the option's letter."


@pytest.mark.parametrize("prediction, truth, kwargs, agrees, metric", [
    ("B", "B", {"question": MC}, True, "choice"),
    ("the chair", "B", {"question": MC}, True, "choice"),
    ("A", "B", {"question": MC}, False, "choice"),
    ("1.9", "1.8", {"question": "What is the distance between the chair and the table?", "answer_kind": "number"},
     True, "mra"),
    ("3.6", "1.8", {"question": "What is the distance between the chair and the table?", "answer_kind": "number"},
     False, "mra"),
    ("152 cm", "1.52", {"question": "How tall is the lamp in meters?", "answer_kind": "number"}, True, "mra"),
    ("GREEN GROCER", "green grocer", {"rl_modes": ["anls_score"]}, True, "rl"),
    ("the door, option A", "door", {"rl_modes": ["vqa_score"]}, True, "contains"),
    ("a kitchen", "a tidy bedroom", {}, False, "anls"),
])
def test_agreement_uses_the_metric_that_fits(prediction, truth, kwargs, agrees, metric):
    score, used, ok = agreement(prediction, truth, **kwargs)
    assert ok is agrees and used == metric


def test_a_trace_that_concludes_another_letter_fails():
    out = run("consistency.reasoning_vs_answer", [
        sample("same", MC, "B", answer_kind="choice", reasoning="The chair is at 2 m. So the answer is B."),
        sample("other", MC, "B", answer_kind="choice", reasoning="The table is nearer. So the answer is A."),
        sample("silent", MC, "B", answer_kind="choice", reasoning="I look at both objects."),
        sample("plain", MC, "B", answer_kind="choice"),
    ])
    assert out["same"]["passed"] and out["silent"]["passed"] and "plain" not in out
    assert out["other"]["reason"] == "reasoning: concludes 'A' but the answer is 'B' (choice 0.00)"
    assert out["silent"]["reason"] == "reasoning: states no conclusion to compare"


def test_answers_are_recomputed_from_the_boxes_the_prompt_states():
    closer = f"{BOXES} Which is closer to the camera, the chair or the table?"
    farther = f"{BOXES} Which is farther from the camera, the chair or the table?"
    distance = f"{BOXES} What is the distance between the chair and the table in meters?"
    out = run("consistency.answer_vs_geometry", [
        sample("closer-ok", closer, "chair"), sample("closer-wrong", closer, "table"),
        sample("farther-ok", farther, "table"), sample("mc-wrong", f"{BOXES} {MC}", "A"),
        sample("dist-ok", distance, "2.2"), sample("dist-wrong", distance, "4.9"),
        sample("dist-cm", distance, "224"), sample("no-boxes", "Which is closer, the chair or the table?", "chair"),
    ])
    assert out["closer-ok"]["passed"] and out["farther-ok"]["passed"] and out["dist-ok"]["passed"]
    assert "no-boxes" not in out
    assert "says the table is closer, but the stated boxes put the chair closer" in out["closer-wrong"]["reason"]
    assert not out["mc-wrong"]["passed"]
    assert "from the stated boxes is 2.24 m" in out["dist-wrong"]["reason"]
    assert out["dist-cm"]["reason"].endswith("(it reads like centimetres)")


def test_units_must_match_the_question_and_be_plausible():
    q = "What is the distance between the chair and the table in meters?"
    out = run("consistency.units", [
        sample("ok", q, "1.8", answer_kind="number"),
        sample("cm", q, "180 cm", answer_kind="number"),
        sample("bare-cm", q, "180", answer_kind="number"),
        sample("chair", "How wide is the chair in meters?", "52", answer_kind="number"),
        sample("tall", "How tall is the lamp?", "152 cm", answer_kind="number"),
        sample("count", "How many chairs are in the room?", "4", answer_kind="number"),
    ])
    assert out["ok"]["passed"] and out["tall"]["passed"] and out["tall"]["score"] == pytest.approx(1.52)
    assert "count" not in out
    assert "asks for meters, the answer '180 cm' is in cm" in out["cm"]["reason"]
    assert "implausible for a distance indoors" in out["bare-cm"]["reason"]
    assert "implausible for a chair" in out["chair"]["reason"]


def test_sql_fast_paths_agree_with_the_python_rules_on_the_demo(demo_home):
    """The SQL shortcuts (a trace ending 'So the answer is B.', a lone offered letter) decide as Python would."""
    import duckdb

    from curation.checks import CheckContext
    from curation.checks.consistency import ReasoningVsAnswer
    from curation.checks.format import AnswerExtractable

    con = duckdb.connect(str(demo_home.catalog_path), read_only=True)
    batch = con.sql("SELECT * FROM samples").to_arrow_table()
    con.close()
    rows = batch.to_pylist()
    reasoning = {r["sample_id"]: r for r in ReasoningVsAnswer().run(batch, CheckContext()).to_pylist()}
    by_python = {r["sample_id"]: ReasoningVsAnswer().check(r) for r in rows if (r["reasoning"] or "").strip()}
    assert set(reasoning) == set(by_python) and len(reasoning) > 20
    assert all(reasoning[k]["passed"] == o.passed and reasoning[k]["score"] == o.score for k, o in by_python.items())
    choice = {r["sample_id"]: r for r in AnswerExtractable().run(batch, CheckContext()).to_pylist()}
    picked = [r for r in rows if r["answer_kind"] == "choice" or "multi_choices_score" in (r["rl_modes"] or [])]
    assert len(picked) > 50
    assert all(choice[r["sample_id"]]["passed"] == AnswerExtractable.check_choice(r).passed for r in picked)
