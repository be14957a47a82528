"""Consistency checks: a trace that concludes otherwise, answers the stated boxes contradict, units that do not fit."""

from __future__ import annotations

import pytest

from curation.checks.consistency import agreement
from tests.support.checks_helpers import run, sample

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


def _varied_rows(n: int, seed: int = 0) -> list[dict]:
    """Questions of every shape the geometry and unit rules read: stated boxes (odd numbers, repeated labels), option
    lines or "the X or the Y", distances, heights, units, odd answers, a little non-ASCII."""
    import random

    rng = random.Random(seed)
    labels = ["chair", "table", "trash can", "Chair", "the lamp", "a sofa", "an apple", "tv-stand", "door", "x"]
    numbers = ["1.", ".5", "-0", "+2", " 3 ", "1e2", "", "nan", "1_0", "0.0", "-.25"]

    def box(label: str) -> str:
        values = [f"{rng.uniform(-3, 6):.{rng.randint(0, 3)}f}" if rng.random() < 0.97 else rng.choice(numbers)
                  for _ in range(rng.choice([9, 9, 9, 10, 8]))]
        verb, sep = rng.choice(["is at", "at", "is located at"]), rng.choice([", ", ","])
        return f"{rng.choice(['the', 'The'])} {label} {verb} bbox_3d [{sep.join(values)}]"

    rows = []
    for i in range(n):
        stated = rng.sample(labels, rng.randint(1, 3))
        stated += stated[:1] if rng.random() < 0.1 else []
        a, b = rng.choice(stated), rng.choice([*stated, "ghost"])
        boxes = " and ".join(box(x) for x in stated) + "."
        word = rng.choice(["closer to", "nearer to", "farther from", "further from"])
        kind = rng.choice(["either", "options", "inline", "distance", "tall", "units"])
        if kind == "either":
            q, ans = f"{boxes} Which is {word} the camera, the {a} or the {b}?", rng.choice([a, b, f"The {b}.", "A"])
        elif kind == "options":
            fmt = rng.choice(["{L}: {o}", "{L}. {o}", "({L}) {o}", " {L} : {o} "])
            lines = "\n".join(fmt.format(L="ABC"[j], o=o) for j, o in enumerate([a, b]))
            q = f"{boxes} Which object is {word} the camera?\n{lines}\nAnswer with the option's letter."
            ans = rng.choice(["A", "B", "C", "(A)", "b.", "A chair", "`B`", a, "", "I think A"])
        elif kind == "inline":
            q, ans = f"{boxes} Which is {word} the camera? A. {a} B. {b}", rng.choice(["A", "B", a])
        elif kind == "distance":
            unit = rng.choice(["", " in meters", " in cm", " in feet"])
            q = f"{boxes} What is the distance between the {a} and the {b}{unit}?"
            ans = rng.choice([f"{rng.uniform(0, 5):.1f}", f"{rng.uniform(0, 5):.1f} m", f"{rng.randint(50, 400)}",
                              "about 2 meters", "two", "5'6\""])
        elif kind == "tall":
            lead = rng.choice(["How tall is the", "What is the height of the"])
            q = f"{boxes} {lead} {a}{rng.choice(['?', ' in cm?'])}"
            ans = rng.choice([f"{rng.uniform(0, 3):.2f}", f"{rng.randint(20, 300)} cm", "1.2 meters"])
        else:
            q = rng.choice(["What is the distance between the chair and the table in meters?", "How wide is the chair?",
                            "How tall is the lamp in centimeters?", "What is the length of the sofas?",
                            "How far is the door from the washing machine?", "What is the depth of the trash can?"])
            ans = rng.choice(["1.8", "180 cm", "180", "52", "2.5m", "3 ft", "0", "-1", "1,200 mm", "two", "1.5 M"])
        if rng.random() < 0.15:
            q = rng.choice(["Tell me which is which. ", "WHICH? "]) + q
        if rng.random() < 0.03:
            q = q.replace(" ", "\u00a0", 1)
        rows.append(sample(f"s{i}", q, ans, answer_kind=rng.choice(["number", "text", None])))
    return rows


def test_the_sql_readings_decide_as_the_python_rules_do():
    """answer_vs_geometry and units read the text in SQL where RE2 reads as Python's re; row by row, the Python rules
    (check) give the same outcomes, passes and failures alike."""
    from curation.checks import CheckContext, rows_to_table
    from curation.checks.consistency import AnswerVsGeometry, UnitsConsistent

    batch = rows_to_table(_varied_rows(2000))
    for check in (AnswerVsGeometry(), UnitsConsistent()):
        ctx = CheckContext()
        by_sql = {r["sample_id"]: (r["passed"], r["score"], r["reason"]) for r in check.run(batch, ctx).to_pylist()}
        by_python = {}
        for row in check.rows(batch, ctx):
            if (o := check.check(row)) is not None:
                by_python[row["sample_id"]] = (o.passed, None if o.score is None else float(o.score), o.reason)
        failed = sum(not v[0] for v in by_python.values())
        assert by_sql == by_python and len(by_python) > 100 and 20 < failed < len(by_python) - 20, check.name
