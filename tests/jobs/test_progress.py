"""A check run's progress moves with the work and its time left is honest.

A curator watching a run saw "10,000 / 14,000 · ETA 6 s" from 18 s until the run ended at 87 s: progress was recorded
once per shard and once per cross-sample check, and the time left was the average since the start applied to the
rest, while the check still to come (embedding every question) was a hundred times slower per row than the ones
before it. Here every value the job records is heard the moment it is written (run_job's on_progress hook reads the
job's row back), so nothing depends on timing.
"""

from __future__ import annotations

import shutil

import pytest

from curation.jobs.queue import claim_job, get_job
from curation.jobs.run import ROW_PHASE, Phase, queue_checks, run_job, time_left
from tests.support.actors import CURATOR

BATCH_ROWS = 25  # rows the row checks take at a time
EMBED_CHUNK = 16  # questions duplicates.near embeds between two words on how far it is
CHECKS = ["format.placeholders", "format.think_tags", "duplicates.near"]


@pytest.fixture
def demo_catalog(home, demo_home):
    """The demo's catalog (hundreds of rows in a dozen shards) in a data home of its own, results and state apart."""
    shutil.copy(demo_home.catalog_path, home.catalog_path)
    return home


def record_run(settings, db) -> tuple[list[dict], int]:
    """Run the checks to the end; every (done, total, eta_s) the job's row held after each write, and the rows."""
    job = claim_job(db, queue_checks(settings, CHECKS, db=db, embedder="hashing", batch_rows=BATCH_ROWS,
                                     check_params={"embed_chunk": EMBED_CHUNK}, by=CURATOR).id, "w1")
    seen: list[dict] = []

    def heard(done: int) -> None:
        row = get_job(db, job.id)
        assert row.done == done  # what the hook heard is what the job's row holds
        seen.append({"done": row.done, "total": row.total, "eta_s": row.eta_s})

    summary = run_job(settings, db, job, on_progress=heard)
    assert summary.state == "completed"
    return seen, seen[-1]["total"] // 2  # two passes over every row: the row checks, then duplicates.near


def test_progress_moves_after_every_batch_and_inside_a_slow_cross_sample_check(demo_catalog, db):
    seen, rows = record_run(demo_catalog, db)
    done = [s["done"] for s in seen]
    assert seen[-1]["total"] == 2 * rows and done[-1] == 2 * rows  # the row checks, then duplicates.near
    assert done == sorted(done) and len(set(done)) == len(done)  # never back, never the same value twice
    in_rows = [d for d in done if 0 < d <= rows]
    in_near = [d for d in done if rows < d < 2 * rows]
    # Per batch of the row checks (the demo's shards are ~25 rows or more: per shard would be a dozen values) ...
    assert len(in_rows) >= rows // BATCH_ROWS
    # ... and while duplicates.near embeds its questions, before its first outcome.
    assert len(in_near) >= 3


def test_the_time_left_is_unknown_until_known_and_then_comes_from_the_last_run(demo_catalog, db):
    first, rows = record_run(demo_catalog, db)
    # The first run has never seen duplicates.near: while it is still to come, the time left is not guessed.
    assert all(s["eta_s"] is None for s in first if 0 < s["done"] < rows)
    assert first[-1]["eta_s"] == 0
    second, _ = record_run(demo_catalog, db)
    # The next run knows how long each phase took per row, so it says how long from its first word on.
    assert all(s["eta_s"] is not None for s in second)
    assert second[0]["eta_s"] > 0


def test_each_phase_is_timed_at_its_own_rate_and_phases_to_come_at_their_last_rate():
    rows, near = Phase(ROW_PHASE, 1000), Phase("global:duplicates.near", 1000)
    # 500 rows in 1 s: the row checks' own rate; duplicates.near took 50 ms a row last time.
    assert time_left(rows, 500, 0, 1.0, [near], {"global:duplicates.near": 0.05}) == (500.0, pytest.approx(51.0))
    # Never ran before: its time is not known, so neither is the run's.
    assert time_left(rows, 500, 0, 1.0, [near], {}) == (500.0, None)
    # In the slow phase, its own rate (10 a second), not the average since the start of the run.
    assert time_left(near, 100, 0, 10.0, [], {}) == (10.0, pytest.approx(90.0))
    # A phase resumed at 400 rows by a new worker measures only what it did since.
    assert time_left(near, 500, 400, 2.0, [], {}) == (50.0, pytest.approx(10.0))
    # Not begun yet: its last run's rate, if there was one.
    assert time_left(near, 0, 0, 0.0, [], {"global:duplicates.near": 0.05}) == (None, pytest.approx(50.0))
    assert time_left(near, 0, 0, 0.0, [], {}) == (None, None)
