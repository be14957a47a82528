"""The Overview's charts count what is there: values per facet, ingest errors by kind, review progress per skill."""

from __future__ import annotations

import pytest

from curation.presenters.overview import (
    counts_figure,
    ingest_error_kinds,
    progress_figure,
    skill_label,
    skill_progress,
)


def test_overview_charts_count_per_value_and_progress_per_skill():
    fig = counts_figure({"a": 5, "b": 9, "c": 1}, "Samples per skill")
    assert list(fig.data[0].y) == ["c", "a", "b"] and list(fig.data[0].x) == [1, 5, 9]
    many = counts_figure({f"s{i}": i + 1 for i in range(50)}, "x", top=10)
    assert len(many.data[0].y) == 10 and "(other)" in many.data[0].y

    progress = skill_progress({"si_distance": 10, "cot_sr_si": 4}, {"si_distance": 2}, {"si_distance": 3},
                              {"cot_sr_si": 1}, {})
    assert [(p.skill, p.samples, p.flagged, p.reviewed) for p in progress] == [
        ("si_distance", 10, 2, 3), ("cot_sr_si", 4, 0, 1)]
    assert progress[0].reviewed_share == pytest.approx(0.3)
    fig = progress_figure(progress)
    approved = next(t for t in fig.data if t.name == "approved")
    # Bars carry the taxonomy's display names, not the ids
    assert list(approved.y) == [skill_label("cot_sr_si"), skill_label("si_distance")] and list(approved.x) == [0, 30.0]
    assert skill_label("cot_sr_si") != "cot_sr_si"


def test_ingest_errors_are_grouped_by_kind_of_reason():
    errors = [
        {"file": "/d/a.parquet", "reason": "/d/a.parquet: not a readable Parquet file (magic bytes not found)"},
        {"file": "/d/b.parquet", "reason": "/d/b.parquet: not a readable Parquet file (truncated)"},
        {"file": "/d/c.json", "reason": "row 3: field conversations is not a list"},
    ]
    assert ingest_error_kinds(errors) == {"not a readable Parquet file": 2, "row 3": 1}
