"""A worker's hold on its job: killed with -9 mid-job, its job is taken over within the stale limit and finishes with
every result once; a live worker in a unit longer than that limit keeps its job; a worker whose job was taken over
stops without publishing; a run queued while an ingest holds the catalog waits for it and runs."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from curation.jobs.queue import (
    HEARTBEAT_S,
    STALE_AFTER_S,
    claim_next_job,
    done_units,
    get_job,
    requeue_stale_jobs,
)
from curation.jobs.run import queue_checks, run_job
from curation.jobs.worker import run_worker
from curation.query.results import STAGING
from db.engine import open_state
from tests.jobs.conftest import FAST, results
from tests.support.actors import CURATOR

REPO = Path(__file__).resolve().parents[2]
CHECKS = "format.placeholders,media.min_side"
BEAT_S, STALE_S = 0.2, 1.5  # shortened for the tests; the defaults keep the same ratio (see the last test)

# A worker process whose second unit hangs (after the first is done and recorded) until a release file appears:
# the point where a kill hurts most, injected rather than timed.
HANGING_WORKER = """
import sys, time
from pathlib import Path
import curation.jobs.engines.local as local
from curation.jobs.worker import run_worker
from curation.settings import load_settings

home, hanging, release, worker_id, beat_s = sys.argv[1:6]
real, calls = local.process_shards, []

def process_shards(tasks, on_rows=None):
    calls.append(tasks)
    if len(calls) == 2:
        Path(hanging).touch()
        while not Path(release).exists():
            time.sleep(0.02)
    return real(tasks, on_rows)

local.process_shards = process_shards
report = run_worker(load_settings(home), worker_id=worker_id, once=True, heartbeat_s=float(beat_s), stale_after_s=60)
print(len(report.jobs), report.failed, [j.state for j in report.jobs])
"""


def start_hanging_worker(settings, tmp_path: Path, worker_id: str) -> tuple[subprocess.Popen, Path]:
    """Start the worker; return once its second unit hangs (the first unit is done). The release file lets it go."""
    hanging, release = tmp_path / f"{worker_id}.hanging", tmp_path / f"{worker_id}.release"
    proc = subprocess.Popen(
        [sys.executable, "-c", HANGING_WORKER, str(settings.home), str(hanging), str(release), worker_id, str(BEAT_S)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not hanging.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"the worker never reached its second unit:\n{out}\n{err}")
        time.sleep(0.02)
    return proc, release


def queue_run(settings):
    # batch_rows=1: each of the three shards is its own unit and its own call of the engine
    return queue_checks(settings, CHECKS, batch_rows=1, **FAST, by=CURATOR)


def assert_every_result_once(settings, run_id: str) -> None:
    for check, expected in (("format.placeholders", 6), ("media.min_side", 6)):
        rows = [r for r in results(settings, check) if r["run_id"] == run_id]
        counts = Counter(r["sample_id"] for r in rows)
        assert len(counts) == expected and set(counts.values()) == {1}, (check, counts)


def test_a_worker_killed_mid_job_is_taken_over_within_the_stale_limit_and_nothing_is_lost_or_doubled(
        catalog, tmp_path):
    db = open_state(catalog.db_url)
    job = queue_run(catalog)
    doomed, _ = start_hanging_worker(catalog, tmp_path, "doomed")
    assert get_job(db, job.id).worker_id == "doomed" and len(done_units(db, job.id)) == 1

    os.kill(doomed.pid, signal.SIGKILL)  # mid-unit: its staging folder holds a part of the second shard or nothing
    doomed.wait()
    killed = get_job(db, job.id)
    assert killed.state == "running"  # nobody told the queue

    stop = threading.Event()
    threading.Timer(120, stop.set).start()  # a safety net only: the takeover comes after STALE_S
    report = run_worker(catalog, worker_id="rescuer", poll_s=0.05, heartbeat_s=BEAT_S, stale_after_s=STALE_S,
                        max_jobs=1, stop=stop)
    stop.set()
    (summary,) = report.jobs
    assert (summary.job_id, summary.state, summary.units_skipped, summary.units_done) == (job.id, "completed", 1, 2)
    taken = get_job(db, job.id)
    assert taken.state == "completed" and taken.worker_id == "rescuer"
    assert taken.started_at > killed.heartbeat_at  # claimed afresh once the dead worker's heartbeat went stale
    assert_every_result_once(catalog, summary.run_id)
    assert not (Path(catalog.results_dir) / STAGING / summary.run_id).exists()


def test_a_live_worker_in_a_unit_longer_than_the_stale_limit_keeps_its_job(catalog, tmp_path):
    db = open_state(catalog.db_url)
    job = queue_run(catalog)
    slow, release = start_hanging_worker(catalog, tmp_path, "slow")
    try:
        hung_at = get_job(db, job.id).heartbeat_at
        deadline = time.monotonic() + 60
        # The unit hangs; the heartbeat thread must keep the job fresh past several stale limits.
        while (get_job(db, job.id).heartbeat_at - hung_at).total_seconds() < 3 * STALE_S:
            assert time.monotonic() < deadline, "no heartbeat while a unit runs: the job would be taken away"
            assert requeue_stale_jobs(db, STALE_S) == []
            time.sleep(0.05)
        assert requeue_stale_jobs(db, STALE_S) == [] and get_job(db, job.id).worker_id == "slow"
    finally:
        release.touch()
    out, err = slow.communicate(timeout=120)
    assert slow.returncode == 0 and out.startswith("1 0 ['completed']"), err
    done = get_job(db, job.id)
    assert done.state == "completed" and done.worker_id == "slow"
    assert_every_result_once(catalog, [r["run_id"] for r in results(catalog, "format.placeholders")][0])


def test_a_worker_whose_job_was_taken_over_stops_and_publishes_nothing(catalog):
    from curation.jobs.engines.local import LocalEngine

    db = open_state(catalog.db_url)
    job = queue_run(catalog)
    first = claim_next_job(db, "paused")

    class TakenOverAfterOne(LocalEngine):
        def map_shards(self, tasks, on_rows=None):
            for result in super().map_shards(tasks):
                # the worker was paused past the stale limit: the queue re-queued the job, another worker took it
                assert requeue_stale_jobs(db, 0) == [job.id] and claim_next_job(db, "other").id == job.id
                yield result

    summary = run_job(catalog, db, first, engine=TakenOverAfterOne(), heartbeat_s=BEAT_S)
    assert summary.state == "lost"
    held = get_job(db, job.id)
    assert (held.state, held.worker_id) == ("running", "other")  # the other worker's, untouched
    assert not (Path(catalog.results_dir) / summary.run_id).exists()


INGEST_HOLDER = """
import sys, time
from pathlib import Path
from db.catalog import open_for_writing

catalog, holding, release = sys.argv[1:4]
with open_for_writing(catalog) as w:  # as ingest does: the ingest lock and DuckDB's write lock, in place
    assert w.in_place
    Path(holding).touch()
    while not Path(release).exists():
        time.sleep(0.02)
"""


def test_a_run_queued_while_an_ingest_holds_the_catalog_waits_for_it_and_runs(catalog, tmp_path, caplog):
    db = open_state(catalog.db_url)
    job = queue_run(catalog)
    holding, release = tmp_path / "holding", tmp_path / "release"
    holder = subprocess.Popen([sys.executable, "-c", INGEST_HOLDER, str(catalog.catalog_path), str(holding),
                               str(release)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not holding.exists():
            assert holder.poll() is None and time.monotonic() < deadline, holder.stderr.read()
            time.sleep(0.02)
        box = {}
        caplog.set_level(logging.WARNING, logger="curation.jobs.run")
        worker = threading.Thread(target=lambda: box.update(report=run_worker(catalog, worker_id="w", once=True)))
        worker.start()
        # The worker tries the catalog for the 5 s a read-only open waits, then says it waits for the ingest (where
        # it used to fail the job with CatalogBusy).
        while "waiting for it to finish" not in caplog.text:
            assert worker.is_alive(), f"the worker gave up: {get_job(db, job.id).error}"
            assert time.monotonic() < deadline + 60
            time.sleep(0.05)
        assert get_job(db, job.id).state == "running"
    finally:
        release.touch()
        holder.wait(timeout=60)
    worker.join(timeout=120)
    (summary,) = box["report"].jobs
    assert summary.state == "completed" and get_job(db, job.id).state == "completed"
    assert_every_result_once(catalog, summary.run_id)


def test_the_default_limits_take_a_killed_workers_job_over_within_30_seconds():
    poll_s = 2.0  # the worker's default look at the queue (curation.cli.checks)
    assert STALE_AFTER_S + poll_s <= 30  # a killed worker's job is back in the queue and claimed by then
    assert STALE_AFTER_S >= 3 * HEARTBEAT_S  # a live worker may miss a couple of beats (a busy state database)
