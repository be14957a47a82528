"""Stories of the curation state as Arrow tables: one row per sample with state, ids per filter, joins in DuckDB."""

from __future__ import annotations

import pyarrow as pa
import pytest
from sqlalchemy import insert, text
from sqlalchemy.dialects import postgresql

from curation.review.errors import StateError
from curation.review.flags import add_flag, remove_flag
from curation.review.reviews import add_review
from curation.review.state_tables import (
    STATE_TABLE_SCHEMA,
    _sample_state,
    state_filter_excludes,
    state_sample_ids,
    state_table,
    state_version,
)
from curation.review.undo import undo_last
from db.engine import open_state
from db.models import Flag, utcnow
from tests.support.actors import person
from tests.support.state_db import postgres_only, sqlite_only


@pytest.fixture
def curated(db):
    """A small curated set: flagged, approved, fixed, unflagged again, review undone."""
    add_flag(db, "s-flagged", "wrong_answer", None, person("ann"))
    add_flag(db, "s-flagged", "bad_media", None, person("bob"))
    add_flag(db, "s-flagged", "wrong_answer", None, person("bob"))
    add_review(db, "s-approved", "approve", person("ann"))
    add_flag(db, "s-fixed", "bad_reasoning", None, person("cy"))
    add_review(db, "s-fixed", "fix", person("bob"), fixed_reasoning="Count the chairs: three.")
    gone = add_flag(db, "s-unflagged", "other", None, person("ann"))
    remove_flag(db, gone.id, person("ann"))
    add_review(db, "s-undone", "reject", person("cy"))
    undo_last(db, person("cy"))
    return db


def test_state_table_has_one_row_per_sample_with_state(curated):
    table = state_table(curated)

    assert table.schema == STATE_TABLE_SCHEMA
    assert table.to_pylist() == [
        {"sample_id": "s-approved", "flagged": False, "flag_reasons": [], "verdict": "approve",
         "reviewer": "ann", "fixed": False, "n_flags": 0},
        {"sample_id": "s-fixed", "flagged": True, "flag_reasons": ["bad_reasoning"], "verdict": "fix",
         "reviewer": "bob", "fixed": True, "n_flags": 1},
        {"sample_id": "s-flagged", "flagged": True, "flag_reasons": ["bad_media", "wrong_answer"],
         "verdict": None, "reviewer": None, "fixed": False, "n_flags": 3},
    ]  # fmt: skip


def _ids(table: pa.Table) -> list[str]:
    return sorted(table.column("sample_id").to_pylist())


def test_state_filters_return_sample_ids_to_keep_or_to_drop(curated):
    keep = state_sample_ids
    assert _ids(keep(curated, flagged=True)) == ["s-fixed", "s-flagged"]
    assert _ids(keep(curated, reasons=["bad_media"])) == ["s-flagged"]
    assert _ids(keep(curated, reviewed=True, verdicts=["fix"])) == ["s-fixed"]
    assert _ids(keep(curated, reviewers=["ann"])) == ["s-approved"]
    assert _ids(keep(curated, fixed=True)) == ["s-fixed"]
    assert _ids(keep(curated, flagged=False, reviewed=True)) == ["s-approved"]
    assert not state_filter_excludes(keep(curated, flagged=True))

    # "not flagged" also matches every catalog sample the state has never seen: the result lists what to drop
    unflagged = keep(curated, flagged=False)
    assert state_filter_excludes(unflagged) and _ids(unflagged) == ["s-fixed", "s-flagged"]
    everything = keep(curated)
    assert state_filter_excludes(everything) and everything.num_rows == 0
    with pytest.raises(StateError, match="'reason'"):
        keep(curated, reasons=["nope"])


def test_the_query_layer_joins_state_with_the_catalog_in_duckdb(curated):
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    con.execute("CREATE TABLE catalog AS SELECT * FROM (VALUES ('s-flagged'), ('s-fixed'), ('s-new')) t(sample_id)")
    con.register("curation_state", state_table(curated))
    con.register("drop_ids", state_sample_ids(curated, flagged=False))
    rows = con.execute(
        "SELECT c.sample_id, coalesce(s.flagged, false), s.flag_reasons FROM catalog c "
        "LEFT JOIN curation_state s USING (sample_id) ORDER BY 1"
    ).fetchall()
    assert rows == [("s-fixed", True, ["bad_reasoning"]), ("s-flagged", True, ["bad_media", "wrong_answer"]),
                    ("s-new", False, None)]  # fmt: skip
    kept = con.execute("SELECT sample_id FROM catalog ANTI JOIN drop_ids USING (sample_id)").fetchall()
    assert kept == [("s-new",)]


@sqlite_only
def test_state_table_holds_a_hundred_thousand_flagged_samples(db):
    now = utcnow()
    rows = [
        {"sample_id": f"vst-{i:06d}", "reason": reason, "note": None, "who": "check", "source": "run-1",
         "created_at": now}
        for i in range(100_000)
        for reason in (("bad_media", "wrong_answer") if i % 4 == 0 else ("bad_media",))
    ]  # fmt: skip
    with db.write() as s:
        s.execute(insert(Flag.__table__), rows)
    version = state_version(db)

    table = state_table(db)
    assert table.num_rows == 100_000
    assert table.column("n_flags").to_pylist()[:2] == [2, 1]
    assert state_sample_ids(db, reasons=["wrong_answer"]).num_rows == 25_000
    assert state_version(db) == version  # reading changes nothing
    add_flag(db, "vst-000001", "ambiguous", None, person("ann"))
    assert state_version(db) != version


@postgres_only
def test_state_table_holds_a_hundred_thousand_flagged_samples_seeded_by_the_server(db):
    # the SQLite version seeds through Python (6 s here); generate_series seeds the same rows in a blink
    with db.write() as s:
        s.execute(text(
            "INSERT INTO flags (sample_id, reason, who, source, created_at) "
            "SELECT 'vst-' || lpad(i::text, 6, '0'), r, 'check', 'run-1', now() "
            "FROM generate_series(0, 99999) AS i CROSS JOIN (VALUES ('bad_media'), ('wrong_answer')) AS v(r) "
            "WHERE r = 'bad_media' OR i % 4 = 0"
        ))  # fmt: skip
    version = state_version(db)

    table = state_table(db)
    assert table.num_rows == 100_000 and table.schema == STATE_TABLE_SCHEMA
    assert table.column("n_flags").to_pylist()[:2] == [2, 1]
    assert table.slice(0, 1).to_pylist()[0]["flag_reasons"] == ["bad_media", "wrong_answer"]
    assert state_sample_ids(db, reasons=["wrong_answer"]).num_rows == 25_000
    assert state_version(db) == version  # reading changes nothing
    add_flag(db, "vst-000001", "ambiguous", None, person("ann"))
    assert state_version(db) != version


def test_the_state_query_renders_for_postgresql():
    sql = str(_sample_state().compile(dialect=postgresql.dialect()))
    assert "string_agg" in sql and "group_concat" not in sql


def test_an_in_memory_database_works_for_quick_scripts():
    with open_state("sqlite://") as db:
        add_flag(db, "s1", "other", None, person("ann"))
        assert state_table(db).num_rows == 1
