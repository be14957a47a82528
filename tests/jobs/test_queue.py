"""Stories of the job queue: claim, progress, finish, cancel, fail, requeue a dead worker's job, race for jobs."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import update

from curation.jobs.queue import (
    cancel_job,
    claim_job,
    claim_next_job,
    create_job,
    done_units,
    fail_job,
    finish_job,
    get_job,
    heartbeat,
    is_cancelled,
    list_jobs,
    mark_unit_done,
    requeue_job,
    requeue_stale_jobs,
    update_progress,
)
from curation.review.errors import StateError
from db.engine import open_state
from db.models import Job, utcnow
from tests.support.actors import CURATOR
from tests.support.state_db import postgres_only, run_together


def test_a_check_job_runs_reports_progress_and_finishes(db):
    job = create_job(db, "check", {"checks": ["geometry"]}, total=3)
    assert job.state == "queued" and job.params == {"checks": ["geometry"]}
    assert claim_next_job(db, "w1", kinds=["export"]) is None

    running = claim_next_job(db, "w1")
    assert (running.id, running.state, running.worker_id) == (job.id, "running", "w1")
    mark_unit_done(db, job.id, "shard-000.parquet", rows=1000, output_path="results/run/000.parquet")
    assert update_progress(db, job.id, 1) is True
    mid = get_job(db, job.id)
    assert mid.done == 1 and mid.fraction == pytest.approx(1 / 3) and mid.heartbeat_at is not None

    assert finish_job(db, job.id) is True
    done = get_job(db, job.id)
    assert done.state == "completed" and done.finished_at is not None
    assert finish_job(db, job.id) is False  # completed is final


def test_a_cancelled_job_tells_its_worker_to_stop_and_cannot_complete(db):
    job = create_job(db, "export", {"recipe": "sft.yaml"})
    claim_next_job(db, "w1")
    assert cancel_job(db, job.id, by=CURATOR) is True

    assert is_cancelled(db, job.id)
    assert update_progress(db, job.id, 10) is False  # the worker's cue to stop
    assert finish_job(db, job.id) is False
    assert get_job(db, job.id).state == "cancelled"


def test_a_failed_job_keeps_its_error_for_the_ui(db):
    job = create_job(db, "check", {})
    claim_next_job(db, "w1")
    assert fail_job(db, job.id, "shard-003.parquet row 17 field 'images': file missing")
    failed = get_job(db, job.id)
    assert failed.state == "failed" and "row 17" in failed.error


def test_a_job_whose_worker_died_is_requeued_and_resumes_after_its_done_units(db):
    job = create_job(db, "check", {"shards": ["a", "b", "c"]})
    claim_next_job(db, "w1")
    mark_unit_done(db, job.id, "a", rows=10)
    mark_unit_done(db, job.id, "a", rows=12)  # marking again updates, never duplicates

    assert requeue_stale_jobs(db, older_than_s=60) == []  # heartbeat is fresh
    assert requeue_stale_jobs(db, older_than_s=60, now=utcnow() + timedelta(minutes=5)) == [job.id]
    again = claim_next_job(db, "w2")
    assert again.id == job.id and again.worker_id == "w2"
    units = done_units(db, job.id)
    assert set(units) == {"a"} and units["a"].rows == 12
    with pytest.raises(StateError, match="'job_id' is 999"):
        mark_unit_done(db, 999, "a")


def test_a_worker_whose_job_was_taken_over_hears_so_and_cannot_finish_it(db):
    job = create_job(db, "check")
    claim_next_job(db, "w1")
    assert heartbeat(db, job.id, "w1") and update_progress(db, job.id, 1, 3, "w1")
    assert requeue_stale_jobs(db, older_than_s=0) == [job.id]  # w1 looked dead
    claim_next_job(db, "w2")
    assert not heartbeat(db, job.id, "w1") and not update_progress(db, job.id, 2, 3, "w1")
    assert not finish_job(db, job.id, "w1")
    assert heartbeat(db, job.id, "w2") and finish_job(db, job.id, "w2")
    assert (get_job(db, job.id).state, get_job(db, job.id).worker_id) == ("completed", "w2")


def test_a_stopping_worker_gives_its_job_back_to_the_queue(db):
    job = create_job(db, "check")
    claim_next_job(db, "w1")
    assert not requeue_job(db, job.id, "w2")  # not w2's job
    assert requeue_job(db, job.id, "w1")
    again = get_job(db, job.id)
    assert again.state == "queued" and again.worker_id is None
    assert not requeue_job(db, job.id, "w1")  # only a running job goes back


def test_claiming_one_job_by_id_leaves_older_ones_queued_and_starts_it_clean(db):
    older = create_job(db, "check")
    job = create_job(db, "check")
    claim_job(db, job.id, "w1")
    fail_job(db, job.id, "disk full")
    with db.write() as s:  # back in the queue by hand, as an operator retrying it would do
        s.execute(update(Job).where(Job.id == job.id).values(state="queued"))

    claimed = claim_job(db, job.id, "foreground")  # the same claim as claim_next_job: nothing of the failure stays
    assert (claimed.state, claimed.worker_id) == ("running", "foreground")
    assert (claimed.error, claimed.finished_at) == (None, None)
    assert get_job(db, older.id).state == "queued"
    with pytest.raises(StateError, match="'job_id' is .*running, not queued"):
        claim_job(db, job.id, "w2")


def test_two_workers_never_claim_the_same_job(db_url):
    open_state(db_url).close()
    seed = open_state(db_url)
    job_ids = {create_job(seed, "check", {"checks": ["format"], "shard": i}).id for i in range(30)}
    claimed: dict[str, list[int]] = {"w1": [], "w2": []}
    barrier = threading.Barrier(2)

    def work(worker: str) -> None:
        db = open_state(db_url)  # own engine, as a separate worker process would have
        barrier.wait()
        while (job := claim_next_job(db, worker)) is not None:
            claimed[worker].append(job.id)
        db.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert not set(claimed["w1"]) & set(claimed["w2"])
    assert set(claimed["w1"]) | set(claimed["w2"]) == job_ids
    assert {j.worker_id for j in list_jobs(seed, states=["running"], limit=100)} <= {"w1", "w2"}
    seed.close()


WORKER = """
import sys
from curation.jobs.queue import claim_next_job, finish_job, mark_unit_done
from db.engine import open_state
from tests.support.state_db import wait_for_go

wait_for_go()  # imports done: everyone starts the race together
url, worker = sys.argv[1], sys.argv[2]
db = open_state(url)
claimed = []
while (job := claim_next_job(db, worker)) is not None:
    claimed.append(job.id)
    mark_unit_done(db, job.id, "shard-000", rows=1)
    finish_job(db, job.id)
print(" ".join(map(str, claimed)))
"""


@postgres_only
def test_three_worker_processes_share_a_queue_and_run_every_job_exactly_once(db, tmp_path):
    job_ids = {create_job(db, "check", {"shard": i}).id for i in range(30)}
    outs = run_together(WORKER, [[db.url, f"w{i}"] for i in range(3)], tmp_path / "go")

    claimed = [int(x) for out in outs for x in out.split()]
    assert sorted(claimed) == sorted(job_ids)  # every job once, none twice
    assert {j.state for j in list_jobs(db, limit=100)} == {"completed"}
    assert all(set(done_units(db, j)) == {"shard-000"} for j in job_ids)


def test_a_running_job_whose_worker_went_silent_shows_no_worker_is_there(db):
    """A worker killed with -9 leaves its job 'running'; only another worker re-queues it. With none running, the
    Checks page must say no worker is there, not show the job as in progress for ever."""
    from curation.jobs.queue import STALE_AFTER_S
    from curation.jobs.run import JOB_KIND
    from curation.presenters.checks import check_jobs, worker_seems_absent

    job = create_job(db, JOB_KIND, {"checks": ["format.placeholders"]})
    claim_next_job(db, "killed-worker")
    assert not worker_seems_absent(check_jobs(db))  # its heartbeat is fresh: the worker is at work
    with db.write() as s:  # the worker died: its last heartbeat is now older than the stale limit
        s.execute(update(Job).where(Job.id == job.id)
                  .values(heartbeat_at=utcnow() - timedelta(seconds=STALE_AFTER_S + 5)))
    (view,) = check_jobs(db)
    assert view.state == "running" and worker_seems_absent([view])
