"""Stories of the curation-state database: flags, reviews, undo, concurrent curators, jobs, Label Studio links."""

from __future__ import annotations

import io
import itertools
import os
import sqlite3
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import insert, inspect
from sqlalchemy.dialects import postgresql

from db import state
from db.models import Base, Flag, utcnow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'home' / 'state.sqlite'}"


@pytest.fixture
def db(db_url: str):
    with state.open_state(db_url) as opened:
        yield opened


# ----------------------------------------------------------------------------------------------- flags


def test_a_curator_flags_a_sample_and_the_history_says_who_why_and_when(db):
    flag = state.add_flag(db, "scannet-0001", "wrong_answer", "the chair is left of the table", "ann")

    assert flag.active and flag.source == "person" and flag.created_at.tzinfo is not None
    assert state.flags_for(db, "scannet-0001") == [flag]
    (entry,) = state.history(db, "scannet-0001")
    assert (entry.action, entry.who, entry.table_name, entry.row_id) == ("flag_added", "ann", "flags", flag.id)
    assert entry.old_value is None
    assert entry.new_value == {
        "reason": "wrong_answer",
        "note": "the chair is left of the table",
        "who": "ann",
        "source": "person",
    }


def test_a_reason_outside_the_fixed_list_is_refused_naming_the_field(db):
    assert "contamination" in state.FLAG_REASONS and len(state.FLAG_REASONS) == 11
    with pytest.raises(state.StateError, match="scannet-0001.*'reason'.*wrong_answer"):
        state.add_flag(db, "scannet-0001", "looks_odd", None, "ann")
    with pytest.raises(state.StateError, match="'who'"):
        state.add_flag(db, "scannet-0001", "other", None, "")


def test_flagging_the_same_sample_twice_for_the_same_reason_keeps_one_flag(db):
    first = state.add_flag(db, "s1", "bad_media", None, "ann")
    again = state.add_flag(db, "s1", "bad_media", None, "ann")
    by_bob = state.add_flag(db, "s1", "bad_media", None, "bob")

    assert again.id == first.id and by_bob.id != first.id
    assert len(state.flags_for(db, "s1")) == 2
    assert [e.action for e in state.history(db, "s1")] == ["flag_added", "flag_added"]


def test_removing_a_flag_keeps_its_row_and_undo_brings_it_back(db):
    flag = state.add_flag(db, "s1", "ambiguous", "two sofas", "ann")

    removed = state.remove_flag(db, flag.id, "bob")
    assert removed.removed_by == "bob" and state.flags_for(db, "s1") == []
    assert state.flags_for(db, "s1", include_removed=True)[0].id == flag.id

    removal = state.history(db, "s1")[-1]
    assert removal.action == "flag_removed" and removal.new_value is None
    state.undo(db, removal.id, "bob")
    assert [f.id for f in state.flags_for(db, "s1")] == [flag.id]
    with pytest.raises(state.StateError, match="no flag"):
        state.remove_flag(db, 999, "bob")


def test_a_check_run_flags_many_samples_at_once_and_a_rerun_adds_nothing(db):
    ids = [f"arkit-{i:04d}" for i in range(500)]
    notes = {"arkit-0007": "box outside the frustum"}

    assert state.add_flags(db, ids, "bad_geometry", "check:geometry", source="run-42", notes=notes) == 500
    assert state.add_flags(db, ids, "bad_geometry", "check:geometry", source="run-42") == 0

    (flag,) = state.flags_for(db, "arkit-0007")
    assert (flag.source, flag.note, flag.who) == ("run-42", "box outside the frustum", "check:geometry")
    assert state.history(db, "arkit-0499")[0].row_id == state.flags_for(db, "arkit-0499")[0].id
    removed = state.clear_flags(db, "arkit-0007", "ann", reason="bad_geometry")
    assert [f.id for f in removed] == [flag.id] and state.flags_for(db, "arkit-0007") == []


# ----------------------------------------------------------------------------------------------- reviews


def test_a_fix_then_an_approval_keeps_the_fixed_text_and_the_latest_verdict(db):
    state.add_review(db, "s1", "fix", "bob", fixed_answer="B. 2.4 meters", note="unit was feet")
    after_fix_reasoning = state.add_review(db, "s1", "fix", "cy", fixed_reasoning="The sofa is 2.4 m long.")
    approved = state.add_review(db, "s1", "approve", "ann")

    # last write wins per field: both fixes survive, the verdict is the latest one
    assert after_fix_reasoning.fixed_answer == "B. 2.4 meters"
    assert (approved.verdict, approved.reviewer, approved.note) == ("approve", "ann", None)
    assert (approved.fixed_answer, approved.fixed_reasoning) == ("B. 2.4 meters", "The sofa is 2.4 m long.")
    assert approved.fixed and approved.n_reviews == 3
    assert state.review_for(db, "s1") == approved
    assert [r.reviewer for r in state.reviews_for(db, "s1")] == ["bob", "cy", "ann"]
    last = state.history(db, "s1")[-1]
    assert last.old_value["verdict"] == "fix" and last.new_value["verdict"] == "approve"


def test_review_rules_are_enforced_with_the_field_named(db):
    with pytest.raises(state.StateError, match="'fix' needs field 'fixed_answer'"):
        state.add_review(db, "s1", "fix", "bob")
    with pytest.raises(state.StateError, match="use 'fix'"):
        state.add_review(db, "s1", "approve", "bob", fixed_answer="A")
    with pytest.raises(state.StateError, match="'verdict' is 'maybe'"):
        state.add_review(db, "s1", "maybe", "bob")
    assert state.review_for(db, "s1") is None


def test_pulling_the_same_label_studio_annotation_twice_adds_one_review(db):
    for _ in range(2):
        got = state.add_review(
            db, "s1", "reject", "annotator@lab", source="labelstudio:7", external_id="ls:7:annotation:31"
        )
    assert got.source == "labelstudio:7"
    assert len(state.reviews_for(db, "s1")) == 1 and len(state.history(db, "s1")) == 1


# ----------------------------------------------------------------------------------------------- undo


def test_undo_last_takes_back_my_latest_action_and_leaves_others_alone(db):
    state.add_flag(db, "s1", "duplicate", None, "ann")
    state.add_review(db, "s1", "reject", "ann")
    state.add_review(db, "s1", "approve", "bob")

    undone = state.undo_last(db, "ann")  # ann's reject, although bob reviewed after her
    assert undone.action == "undo" and undone.table_name == "reviews"
    current = state.review_for(db, "s1")
    assert (current.verdict, current.reviewer, current.n_reviews) == ("approve", "bob", 1)

    state.undo_last(db, "ann")  # then her flag
    assert state.flags_for(db, "s1") == []
    assert state.undo_last(db, "ann") is None  # nothing of hers is left to undo

    actions = [(e.who, e.action) for e in state.history(db, "s1")]
    assert actions == [
        ("ann", "flag_added"),
        ("ann", "review_added"),
        ("bob", "review_added"),
        ("ann", "undo"),
        ("ann", "undo"),
    ]


def test_undoing_the_only_review_leaves_the_sample_unreviewed_and_cannot_be_repeated(db):
    state.add_review(db, "s1", "fix", "bob", fixed_answer="C")
    (event,) = state.history(db, "s1")

    undo_entry = state.undo(db, event.id, "ann")
    assert undo_entry.undoes_id == event.id and undo_entry.new_value is None
    assert state.review_for(db, "s1") is None
    assert state.reviews_for(db, "s1")[0].undone_by == "ann"
    with pytest.raises(state.StateError, match="already undone"):
        state.undo(db, event.id, "bob")
    with pytest.raises(state.StateError, match="itself an undo"):
        state.undo(db, undo_entry.id, "bob")


# ----------------------------------------------------------------------------------------------- concurrency

CURATOR = """
import sys, time, pathlib
from db import state
url, who, go, n = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3]), int(sys.argv[4])
while not go.exists():
    time.sleep(0.002)
db = state.open_state(url)  # both open a fresh file at once: migrations must not collide
for i in range(n):
    state.add_flag(db, f"shared-{i}", "wrong_answer", f"{who} disagrees", who)
    state.add_flag(db, f"{who}-own-{i}", "bad_media", None, who)
    state.add_review(db, "contested", "fix", who, fixed_answer=f"{who}-{i}")
print("ok")
"""


def test_two_curators_in_two_processes_flag_and_fix_at_once_and_nothing_is_lost(db_url, tmp_path):
    n = 25
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CURATOR, db_url, who, str(go), str(n)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("ann", "bob")
    ]
    go.touch()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and out.strip() == "ok", err

    db = state.open_state(db_url)
    for i in range(n):
        assert sorted(f.who for f in state.flags_for(db, f"shared-{i}")) == ["ann", "bob"]
        assert len(state.flags_for(db, f"ann-own-{i}")) == len(state.flags_for(db, f"bob-own-{i}")) == 1

    reviews = state.reviews_for(db, "contested")
    assert len(reviews) == 2 * n
    current = state.review_for(db, "contested")
    assert current.review_id == reviews[-1].id and current.fixed_answer == reviews[-1].fixed_answer
    # the audit saw every review, each one's "old" being exactly the previous one's "new"
    trail = [e for e in state.history(db, "contested") if e.action == "review_added"]
    assert len(trail) == 2 * n
    for before, after in itertools.pairwise(trail):
        assert after.old_value["fixed_answer"] == before.new_value["fixed_answer"]
    db.close()


def test_opening_waits_for_another_process_that_holds_a_fresh_file(db_url):
    # SQLite refuses the switch to WAL at once (no busy handler) while another connection holds a lock on a
    # file still in rollback mode: the race two curators hit when they open a fresh file together.
    path = Path(db_url.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE busy (i INTEGER)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO busy VALUES (1)")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    try:
        db = state.open_state(db_url)
    finally:
        release.join()
        other.close()
    state.add_flag(db, "s1", "wrong_answer", None, "ann")
    assert [f.who for f in state.flags_for(db, "s1")] == ["ann"]
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    db.close()


def test_two_workers_never_claim_the_same_job(db_url):
    state.open_state(db_url).close()
    seed = state.open_state(db_url)
    job_ids = {state.create_job(seed, "check", {"checks": ["format"], "shard": i}).id for i in range(30)}
    claimed: dict[str, list[int]] = {"w1": [], "w2": []}
    barrier = threading.Barrier(2)

    def work(worker: str) -> None:
        db = state.open_state(db_url)  # own engine, as a separate worker process would have
        barrier.wait()
        while (job := state.claim_next_job(db, worker)) is not None:
            claimed[worker].append(job.id)
        db.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert not set(claimed["w1"]) & set(claimed["w2"])
    assert set(claimed["w1"]) | set(claimed["w2"]) == job_ids
    assert {j.worker_id for j in state.list_jobs(seed, states=["running"], limit=100)} <= {"w1", "w2"}
    seed.close()


# ----------------------------------------------------------------------------------------------- jobs


def test_a_check_job_runs_reports_progress_and_finishes(db):
    job = state.create_job(db, "check", {"checks": ["geometry"]}, total=3)
    assert job.state == "queued" and job.params == {"checks": ["geometry"]}
    assert state.claim_next_job(db, "w1", kinds=["export"]) is None

    running = state.claim_next_job(db, "w1")
    assert (running.id, running.state, running.worker_id) == (job.id, "running", "w1")
    state.mark_unit_done(db, job.id, "shard-000.parquet", rows=1000, output_path="results/run/000.parquet")
    assert state.update_progress(db, job.id, 1) is True
    mid = state.get_job(db, job.id)
    assert mid.done == 1 and mid.fraction == pytest.approx(1 / 3) and mid.heartbeat_at is not None

    assert state.finish_job(db, job.id) is True
    done = state.get_job(db, job.id)
    assert done.state == "completed" and done.finished_at is not None
    assert state.finish_job(db, job.id) is False  # completed is final


def test_a_cancelled_job_tells_its_worker_to_stop_and_cannot_complete(db):
    job = state.create_job(db, "export", {"recipe": "sft.yaml"})
    state.claim_next_job(db, "w1")
    assert state.cancel_job(db, job.id) is True

    assert state.is_cancelled(db, job.id)
    assert state.update_progress(db, job.id, 10) is False  # the worker's cue to stop
    assert state.finish_job(db, job.id) is False
    assert state.get_job(db, job.id).state == "cancelled"


def test_a_failed_job_keeps_its_error_for_the_ui(db):
    job = state.create_job(db, "check", {})
    state.claim_next_job(db, "w1")
    assert state.fail_job(db, job.id, "shard-003.parquet row 17 field 'images': file missing")
    failed = state.get_job(db, job.id)
    assert failed.state == "failed" and "row 17" in failed.error


def test_a_job_whose_worker_died_is_requeued_and_resumes_after_its_done_units(db):
    job = state.create_job(db, "check", {"shards": ["a", "b", "c"]})
    state.claim_next_job(db, "w1")
    state.mark_unit_done(db, job.id, "a", rows=10)
    state.mark_unit_done(db, job.id, "a", rows=12)  # marking again updates, never duplicates

    assert state.requeue_stale_jobs(db, older_than_s=60) == []  # heartbeat is fresh
    assert state.requeue_stale_jobs(db, older_than_s=60, now=utcnow() + timedelta(minutes=5)) == [job.id]
    again = state.claim_next_job(db, "w2")
    assert again.id == job.id and again.worker_id == "w2"
    units = state.done_units(db, job.id)
    assert set(units) == {"a"} and units["a"].rows == 12
    with pytest.raises(state.StateError, match="'job_id' is 999"):
        state.mark_unit_done(db, 999, "a")


def test_a_stopping_worker_gives_its_job_back_to_the_queue(db):
    job = state.create_job(db, "check")
    state.claim_next_job(db, "w1")
    assert not state.requeue_job(db, job.id, "w2")  # not w2's job
    assert state.requeue_job(db, job.id, "w1")
    again = state.get_job(db, job.id)
    assert again.state == "queued" and again.worker_id is None
    assert not state.requeue_job(db, job.id, "w1")  # only a running job goes back


# ----------------------------------------------------------------------------------------------- Label Studio


def test_label_studio_pushes_are_remembered_by_sample_not_by_position(db):
    with pytest.raises(state.StateError, match="record_project first"):
        state.record_links(db, 7, {"s1": 101})
    state.record_project(db, 7, "Doubtful distances", "review", url="http://127.0.0.1:8081/projects/7")

    assert state.record_links(db, 7, {"s1": 101, "s2": 102}) == 2
    assert state.record_links(db, 7, [("s2", 202), ("s3", 103)]) == 1  # s2 pushed again: newest task wins

    links = {link.sample_id: link.task_id for link in state.links_for_project(db, 7)}
    assert links == {"s1": 101, "s2": 202, "s3": 103}
    assert [(p.id, p.kind) for p in state.list_projects(db, kind="review")] == [(7, "review")]
    assert state.links_for_sample(db, "s2")[0].kind == "review"


# ----------------------------------------------------------------------------------------------- state tables


@pytest.fixture
def curated(db):
    """A small curated set: flagged, approved, fixed, unflagged again, review undone."""
    state.add_flag(db, "s-flagged", "wrong_answer", None, "ann")
    state.add_flag(db, "s-flagged", "bad_media", None, "bob")
    state.add_flag(db, "s-flagged", "wrong_answer", None, "bob")
    state.add_review(db, "s-approved", "approve", "ann")
    state.add_flag(db, "s-fixed", "bad_reasoning", None, "cy")
    state.add_review(db, "s-fixed", "fix", "bob", fixed_reasoning="Count the chairs: three.")
    gone = state.add_flag(db, "s-unflagged", "other", None, "ann")
    state.remove_flag(db, gone.id, "ann")
    state.add_review(db, "s-undone", "reject", "cy")
    state.undo_last(db, "cy")
    return db


def test_state_table_has_one_row_per_sample_with_state(curated):
    table = state.state_table(curated)

    assert table.schema == state.STATE_TABLE_SCHEMA
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
    keep = state.state_sample_ids
    assert _ids(keep(curated, flagged=True)) == ["s-fixed", "s-flagged"]
    assert _ids(keep(curated, reasons=["bad_media"])) == ["s-flagged"]
    assert _ids(keep(curated, reviewed=True, verdicts=["fix"])) == ["s-fixed"]
    assert _ids(keep(curated, reviewers=["ann"])) == ["s-approved"]
    assert _ids(keep(curated, fixed=True)) == ["s-fixed"]
    assert _ids(keep(curated, flagged=False, reviewed=True)) == ["s-approved"]
    assert not state.state_filter_excludes(keep(curated, flagged=True))

    # "not flagged" also matches every catalog sample the state has never seen: the result lists what to drop
    unflagged = keep(curated, flagged=False)
    assert state.state_filter_excludes(unflagged) and _ids(unflagged) == ["s-fixed", "s-flagged"]
    everything = keep(curated)
    assert state.state_filter_excludes(everything) and everything.num_rows == 0
    with pytest.raises(state.StateError, match="'reason'"):
        keep(curated, reasons=["nope"])


def test_the_query_layer_joins_state_with_the_catalog_in_duckdb(curated):
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    con.execute("CREATE TABLE catalog AS SELECT * FROM (VALUES ('s-flagged'), ('s-fixed'), ('s-new')) t(sample_id)")
    con.register("curation_state", state.state_table(curated))
    con.register("drop_ids", state.state_sample_ids(curated, flagged=False))
    rows = con.execute(
        "SELECT c.sample_id, coalesce(s.flagged, false), s.flag_reasons FROM catalog c "
        "LEFT JOIN curation_state s USING (sample_id) ORDER BY 1"
    ).fetchall()
    assert rows == [("s-fixed", True, ["bad_reasoning"]), ("s-flagged", True, ["bad_media", "wrong_answer"]),
                    ("s-new", False, None)]  # fmt: skip
    kept = con.execute("SELECT sample_id FROM catalog ANTI JOIN drop_ids USING (sample_id)").fetchall()
    assert kept == [("s-new",)]


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
    version = state.state_version(db)

    table = state.state_table(db)
    assert table.num_rows == 100_000
    assert table.column("n_flags").to_pylist()[:2] == [2, 1]
    assert state.state_sample_ids(db, reasons=["wrong_answer"]).num_rows == 25_000
    assert state.state_version(db) == version  # reading changes nothing
    state.add_flag(db, "vst-000001", "ambiguous", None, "ann")
    assert state.state_version(db) != version


# ----------------------------------------------------------------------------------------------- schema


def test_migrations_build_exactly_the_schema_the_models_describe(db):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == []
        assert set(inspect(conn).get_table_names()) >= {
            "flags", "reviews", "audit_log", "jobs", "job_units", "ls_projects", "ls_links", "alembic_version",
        }  # fmt: skip
        pragmas = {p: conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("journal_mode", "foreign_keys")}
    assert pragmas == {"journal_mode": "wal", "foreign_keys": 1}


def test_migrations_go_down_and_up_again_and_opening_twice_is_harmless(db_url):
    db = state.open_state(db_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(state.MIGRATIONS_DIR))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    with db.engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) == {"alembic_version"}
    db.close()
    with state.open_state(db_url) as again, state.open_state(db_url) as third:
        state.add_flag(again, "s1", "other", None, "ann")
        assert len(state.flags_for(third, "s1")) == 1


def test_the_same_migrations_and_queries_render_for_postgresql():
    ddl = io.StringIO()
    cfg = Config(output_buffer=ddl)
    cfg.set_main_option("script_location", str(state.MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", "postgresql://curator@localhost/curator")
    command.upgrade(cfg, "head", sql=True)  # offline: renders the DDL without a server or a driver

    text = ddl.getvalue()
    assert "CREATE TABLE flags" in text and "TIMESTAMP WITH TIME ZONE" in text and "PRAGMA" not in text
    sql = str(state._sample_state().compile(dialect=postgresql.dialect()))
    assert "string_agg" in sql and "group_concat" not in sql


def test_an_in_memory_database_works_for_quick_scripts():
    with state.open_state("sqlite://") as db:
        state.add_flag(db, "s1", "other", None, "ann")
        assert state.state_table(db).num_rows == 1
