"""The curation-state stories again, on a real PostgreSQL server: same models, same migrations, same rules.

Each test gets a new, empty database on the session's throwaway cluster (tests/pg_server.py). The stories of
tests/test_state.py that are not about SQLite itself are imported and run here unchanged against it; the
tests written out below are the ones PostgreSQL makes worth telling again: migrations racing on a fresh
database, many curators writing the same sample at once, workers racing for jobs in separate processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from db import state
from db.models import Base
from tests.review.test_state import (  # noqa: F401 - imported stories are collected and run here against PostgreSQL
    REPO,
    curated,
    test_a_cancelled_job_tells_its_worker_to_stop_and_cannot_complete,
    test_a_check_job_runs_reports_progress_and_finishes,
    test_a_check_run_flags_many_samples_at_once_and_a_rerun_adds_nothing,
    test_a_curator_flags_a_sample_and_the_history_says_who_why_and_when,
    test_a_failed_job_keeps_its_error_for_the_ui,
    test_a_fix_then_an_approval_keeps_the_fixed_text_and_the_latest_verdict,
    test_a_job_whose_worker_died_is_requeued_and_resumes_after_its_done_units,
    test_a_reason_outside_the_fixed_list_is_refused_naming_the_field,
    test_flagging_the_same_sample_twice_for_the_same_reason_keeps_one_flag,
    test_label_studio_pushes_are_remembered_by_sample_not_by_position,
    test_migrations_go_down_and_up_again_and_opening_twice_is_harmless,
    test_pulling_the_same_label_studio_annotation_twice_adds_one_review,
    test_removing_a_flag_keeps_its_row_and_undo_brings_it_back,
    test_review_rules_are_enforced_with_the_field_named,
    test_state_filters_return_sample_ids_to_keep_or_to_drop,
    test_state_table_has_one_row_per_sample_with_state,
    test_the_query_layer_joins_state_with_the_catalog_in_duckdb,
    test_two_curators_in_two_processes_flag_and_fix_at_once_and_nothing_is_lost,
    test_two_workers_never_claim_the_same_job,
    test_undo_last_takes_back_my_latest_action_and_leaves_others_alone,
    test_undoing_the_only_review_leaves_the_sample_unreviewed_and_cannot_be_repeated,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def db_url(pg_db_url: str) -> str:
    """Overrides test_state's SQLite file: every story here runs on its own PostgreSQL database."""
    return pg_db_url


@pytest.fixture
def db(db_url: str):
    with state.open_state(db_url) as opened:
        yield opened


def _run_together(script: str, args_per_process: list[list[str]], go: Path) -> list[str]:
    """Start one Python process per argument list, let them all go at once, return their stdout (all must pass)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, *args, str(go)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for args in args_per_process
    ]  # fmt: skip
    go.touch()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=90)
        assert p.returncode == 0, err
        outs.append(out.strip())
    return outs


WAIT_FOR_GO = """
import sys, time, pathlib
from db import state
go = pathlib.Path(sys.argv[-1])
while not go.exists():  # imports done: everyone starts the race together
    time.sleep(0.002)
"""


# ----------------------------------------------------------------------------------------------- migrations


def test_opening_a_fresh_postgresql_database_builds_exactly_the_schema_the_models_describe(db):
    assert db.engine.dialect.name == "postgresql"
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == []
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == ["0001"]
        flags = {c["name"]: c for c in inspect(conn).get_columns("flags")}
        checks = {c["name"] for c in inspect(conn).get_check_constraints("reviews")}
    assert str(flags["created_at"]["type"]) == "TIMESTAMP" and flags["created_at"]["type"].timezone
    assert checks == {"ck_reviews_verdict", "ck_reviews_fix_has_text", "ck_reviews_only_fix_has_text"}
    # timestamps come back aware from the server itself, not only through state._aware
    flag = state.add_flag(db, "s1", "other", None, "ann")
    assert flag.created_at.utcoffset() is not None


def test_the_database_constraints_hold_even_for_writes_that_bypass_the_state_functions(db):
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError, match="ck_flags_reason"), db.write() as s:
        s.execute(text("INSERT INTO flags (sample_id, reason, who, source, created_at) "
                       "VALUES ('s1', 'looks_odd', 'ann', 'person', now())"))  # fmt: skip
    with pytest.raises(IntegrityError, match="ck_reviews_fix_has_text"), db.write() as s:
        s.execute(text("INSERT INTO reviews (sample_id, verdict, reviewer, source, created_at) "
                       "VALUES ('s1', 'fix', 'ann', 'person', now())"))  # fmt: skip
    assert state.flags_for(db, "s1") == [] and state.review_for(db, "s1") is None


# ----------------------------------------------------------------------------------------------- state tables


def test_state_table_holds_a_hundred_thousand_flagged_samples_seeded_by_the_server(db):
    # test_state's version seeds through Python (6 s here); generate_series seeds the same rows in a blink
    with db.write() as s:
        s.execute(text(
            "INSERT INTO flags (sample_id, reason, who, source, created_at) "
            "SELECT 'vst-' || lpad(i::text, 6, '0'), r, 'check', 'run-1', now() "
            "FROM generate_series(0, 99999) AS i CROSS JOIN (VALUES ('bad_media'), ('wrong_answer')) AS v(r) "
            "WHERE r = 'bad_media' OR i % 4 = 0"
        ))  # fmt: skip
    version = state.state_version(db)

    table = state.state_table(db)
    assert table.num_rows == 100_000 and table.schema == state.STATE_TABLE_SCHEMA
    assert table.column("n_flags").to_pylist()[:2] == [2, 1]
    assert table.slice(0, 1).to_pylist()[0]["flag_reasons"] == ["bad_media", "wrong_answer"]
    assert state.state_sample_ids(db, reasons=["wrong_answer"]).num_rows == 25_000
    assert state.state_version(db) == version  # reading changes nothing
    state.add_flag(db, "vst-000001", "ambiguous", None, "ann")
    assert state.state_version(db) != version


# ----------------------------------------------------------------------------------------------- concurrency


SAME_SAMPLE = (
    WAIT_FOR_GO
    + """
url, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
db = state.open_state(url)  # all open a database no one has migrated yet: the migration lock lets one build it
for i in range(n):
    # everyone flags the very same sample for the very same reason under one shared name, and reviews it
    state.add_flag(db, f"hot-{i}", "duplicate", None, "team")
    state.add_review(db, "hot", "approve" if i % 2 else "reject", who)
    state.add_flags(db, [f"bulk-{j}" for j in range(20)], "bad_media", "check:media", source="run-1")
print("ok")
"""
)


def test_three_curators_open_a_fresh_database_at_once_and_hammer_one_sample_without_losing_anything(db_url, tmp_path):
    n = 10
    outs = _run_together(SAME_SAMPLE, [[db_url, who, str(n)] for who in ("ann", "bob", "cy")], tmp_path / "go")

    assert outs == ["ok"] * 3
    with state.open_state(db_url) as db:
        with db.engine.connect() as conn:  # migrated once, by whichever opener got the lock first
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == ["0001"]
        for i in range(n):  # same who, same reason, same source: one flag however many pressed at once
            assert len(state.flags_for(db, f"hot-{i}")) == 1
            assert len(state.history(db, f"hot-{i}")) == 1
        assert all(len(state.flags_for(db, f"bulk-{j}")) == 1 for j in range(20))
        trail = [e for e in state.history(db, "hot") if e.action == "review_added"]
        assert len(trail) == len(state.reviews_for(db, "hot")) == 3 * n
        # each change saw exactly the state the previous one left: replaying the trail never contradicts itself
        replayed: dict[str, object] = {}
        for entry in trail:
            old = entry.old_value or {}
            assert {k: replayed.get(k) for k in old} == old
            replayed.update(entry.new_value)
        assert state.review_for(db, "hot").review_id == trail[-1].row_id


WORKER = (
    WAIT_FOR_GO
    + """
url, worker = sys.argv[1], sys.argv[2]
db = state.open_state(url)
claimed = []
while (job := state.claim_next_job(db, worker)) is not None:
    claimed.append(job.id)
    state.mark_unit_done(db, job.id, "shard-000", rows=1)
    state.finish_job(db, job.id)
print(" ".join(map(str, claimed)))
"""
)


def test_three_worker_processes_share_a_queue_and_run_every_job_exactly_once(db, tmp_path):
    job_ids = {state.create_job(db, "check", {"shard": i}).id for i in range(30)}
    outs = _run_together(WORKER, [[db.url, f"w{i}"] for i in range(3)], tmp_path / "go")

    claimed = [int(x) for out in outs for x in out.split()]
    assert sorted(claimed) == sorted(job_ids)  # every job once, none twice
    assert {j.state for j in state.list_jobs(db, limit=100)} == {"completed"}
    assert all(set(state.done_units(db, j)) == {"shard-000"} for j in job_ids)
