"""The registry: every check is named family.name, declares what it reads, and runs on exactly those columns."""

from __future__ import annotations

import pyarrow as pa
import pytest

from curation.checks import CheckContext, Outcome, RowCheck, register
from curation.checks.base import FAMILIES, catalog_schema
from curation.checks.registry import _CHECKS, all_checks, describe_checks, select_checks


def test_every_family_has_checks_and_every_check_is_well_formed():
    checks = all_checks()
    assert {c.family() for c in checks.values()} == set(FAMILIES)
    columns = set(catalog_schema().names)
    for name, cls in checks.items():
        assert name == cls.name and name.count(".") == 1 and cls.version and cls.description and cls.applies_to
        assert set(cls.columns) <= columns, f"{name} reads columns the catalog lacks"


@pytest.mark.parametrize("name", [n for n, c in sorted(all_checks().items()) if c.scope == "row"])
def test_a_row_check_runs_on_just_the_columns_it_declares(name):
    cls = all_checks()[name]
    schema = catalog_schema()
    empty = pa.table({c: pa.nulls(0, schema.field(c).type) for c in cls.columns})
    out = cls({}).run(empty, CheckContext())
    measured = cls.measurements.names if cls.measurements is not None else []  # stored beside the outcome
    assert out.column_names == ["sample_id", "passed", "score", "reason", "severity", *measured]
    assert out.num_rows == 0


def test_checks_are_picked_by_name_family_or_pattern():
    names = lambda spec: [c.name for c in select_checks(spec)]  # noqa: E731
    assert names("format.placeholders") == ["format.placeholders"]
    assert names("geometry") == ["geometry.bbox2d_in_image", "geometry.bbox3d_in_view", "geometry.bbox3d_valid",
                                 "geometry.size_plausible"]
    assert names("media.m*,format.rl_mode") == ["media.min_side", "format.rl_mode"]
    assert "model.reanswer" not in names(None)  # opt-in: it needs a model directory
    with pytest.raises(ValueError, match="no check matches 'geometry.nope'"):
        select_checks("geometry.nope")
    assert {d["name"] for d in describe_checks()} == set(all_checks())


def test_a_new_check_is_a_dozen_lines():
    @register
    class LongAnswer(RowCheck):
        name = "format.long_answer_demo"
        columns = ("sample_id", "answer")
        applies_to = "samples with an answer"

        def check(self, row):
            return None if row["answer"] is None else Outcome(len(row["answer"]) < 10, len(row["answer"]))

    try:
        out = LongAnswer().run(pa.table({"sample_id": ["a", "b", "c"], "answer": ["B", "x" * 20, None]}),
                               CheckContext()).to_pylist()
        assert [(r["sample_id"], r["passed"], r["score"]) for r in out] == [("a", True, 1.0), ("b", False, 20.0)]
        with pytest.raises(ValueError, match="must be family.name"):
            register(type("Bad", (RowCheck,), {"name": "nofamily"}))
    finally:
        _CHECKS.pop("format.long_answer_demo", None)
