"""The job queue in the state database: queued -> running -> completed | failed | cancelled, with per-unit progress.

Every move is a conditional UPDATE, so two workers never claim the same job and a cancelled job cannot be marked
completed. A job's units (shards) record their completion, so a job re-queued after its worker died resumes.

Liveness: a worker sends a heartbeat every HEARTBEAT_S while it holds a job (a thread, so a long unit keeps it alive);
a running job whose heartbeat is older than STALE_AFTER_S lost its worker and goes back in the queue. The heartbeat,
progress and finish of a job name the worker, so a worker whose job was taken over learns it and stops.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from curation.review.actors import Actor
from curation.review.errors import StateError, require_text
from curation.review.roles import require
from db.engine import StateDB, to_record
from db.models import Job, JobUnit, as_utc, utcnow

log = logging.getLogger(__name__)
HEARTBEAT_S = 5.0  # how often a worker holding a job says it is alive
STALE_AFTER_S = 20.0  # a running job without a heartbeat for this long lost its worker (4 heartbeats missed)


@dataclass(frozen=True)
class JobInfo:
    id: int
    kind: str
    params: dict[str, Any]
    state: str
    done: int
    total: int | None
    rate: float | None
    eta_s: float | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    worker_id: str | None

    @property
    def fraction(self) -> float | None:
        return None if not self.total else min(1.0, self.done / self.total)


@dataclass(frozen=True)
class UnitRecord:
    job_id: int
    unit_key: str
    state: str
    rows: int
    output_path: str | None
    finished_at: datetime


def create_job(db: StateDB, kind: str, params: Mapping[str, Any] | None = None, total: int | None = None) -> JobInfo:
    """Queue a job (params must be JSON-serialisable)."""
    require_text(kind, "kind", "new job")
    with db.write() as s:
        job = Job(kind=kind, params=dict(params or {}), total=total)
        s.add(job)
        s.flush()
        return to_record(JobInfo, job)


def get_job(db: StateDB, job_id: int) -> JobInfo:
    with db.read() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise StateError(f"job: field 'job_id' is {job_id}, which is no job in the state database")
        return to_record(JobInfo, job)


def list_jobs(
    db: StateDB, states: Iterable[str] | None = None, kind: str | None = None, limit: int = 50
) -> list[JobInfo]:
    """Jobs, newest first."""
    with db.read() as s:
        q = select(Job)
        if states is not None:
            q = q.where(Job.state.in_(list(states)))
        if kind is not None:
            q = q.where(Job.kind == kind)
        return [to_record(JobInfo, j) for j in s.scalars(q.order_by(Job.id.desc()).limit(limit))]


def _take(s: Session, job_id: int, worker_id: str) -> JobInfo | None:
    """queued -> running for ``worker_id``, clearing what an earlier run of the job left; None when not queued."""
    now = utcnow()
    # Only one UPDATE can move it out of 'queued': of two workers racing for it, one gets None.
    res = s.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == "queued")
        .values(
            state="running",
            worker_id=worker_id,
            started_at=now,
            heartbeat_at=now,
            finished_at=None,
            error=None,
            rate=None,
            eta_s=None,
        )
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:
        return None
    job = s.scalars(select(Job).where(Job.id == job_id).execution_options(populate_existing=True)).one()
    return to_record(JobInfo, job)


def claim_next_job(db: StateDB, worker_id: str, kinds: Iterable[str] | None = None) -> JobInfo | None:
    """Atomically take the oldest queued job for this worker; None when the queue is empty."""
    require_text(worker_id, "worker_id", "claim job")
    kinds = list(kinds) if kinds is not None else None
    while True:
        with db.write() as s:
            q = select(Job.id).where(Job.state == "queued")
            if kinds is not None:
                q = q.where(Job.kind.in_(kinds))
            job_id = s.scalar(q.order_by(Job.id).limit(1))
            if job_id is None:
                return None
            job = _take(s, job_id, worker_id)
            if job is not None:  # else another worker won the race: try the next job
                return job


def claim_job(db: StateDB, job_id: int, worker_id: str) -> JobInfo:
    """Atomically take this very job for this worker (older queued jobs are left to the queue), as claim_next_job
    would take it; a StateError when it is not queued."""
    require_text(worker_id, "worker_id", f"claim job {job_id}")
    with db.write() as s:
        job = _take(s, job_id, worker_id)
    if job is None:
        state = get_job(db, job_id).state
        raise StateError(f"claim job: field 'job_id' is {job_id}, a job that is {state}, not queued")
    return job


def _held_by(job_id: int, states: tuple[str, ...], worker_id: str | None) -> list:
    """WHERE clauses: this job, in one of ``states`` and, when ``worker_id`` is given, still held by that worker."""
    return [Job.id == job_id, Job.state.in_(states), *([Job.worker_id == worker_id] if worker_id is not None else [])]


def _set_if(db: StateDB, job_id: int, states: tuple[str, ...], worker_id: str | None = None, **values: Any) -> bool:
    with db.write() as s:
        res = s.execute(
            update(Job)
            .where(*_held_by(job_id, states, worker_id))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return res.rowcount == 1


def update_progress(db: StateDB, job_id: int, done: int, total: int | None = None,
                    worker_id: str | None = None, timing: tuple[float | None, float | None] | None = None) -> bool:
    """Record progress (and a heartbeat) of a running job; False means it is no longer running (or, with
    ``worker_id``, no longer this worker's): stop. ``timing`` is (rate, seconds left) when the worker knows better
    than the average since the start (curation.jobs.run.time_left)."""
    now = utcnow()
    held = _held_by(job_id, ("running",), worker_id)
    with db.write() as s:
        row = s.execute(select(Job.started_at, Job.total).where(*held)).first()
        if row is None:
            return False
        started, known_total = as_utc(row.started_at), total if total is not None else row.total
        elapsed = (now - started).total_seconds() if started else 0.0
        rate = done / elapsed if elapsed > 0 else None
        eta = (known_total - done) / rate if rate and known_total is not None else None
        if timing is not None:
            rate, eta = timing
        values: dict[str, Any] = {"done": done, "heartbeat_at": now, "rate": rate, "eta_s": eta}
        if total is not None:
            values["total"] = total
        res = s.execute(
            update(Job).where(*held).values(**values).execution_options(synchronize_session=False)
        )
        return res.rowcount == 1


def heartbeat(db: StateDB, job_id: int, worker_id: str | None = None) -> bool:
    """Tell watchers the worker is alive; False means the job is no longer running (or, with ``worker_id``, was
    re-queued as stale and is no longer this worker's)."""
    return _set_if(db, job_id, ("running",), worker_id, heartbeat_at=utcnow())


@contextmanager
def keep_alive(db: StateDB, job_id: int, worker_id: str | None, every_s: float = HEARTBEAT_S
               ) -> Iterator[threading.Event]:
    """Send the job's heartbeat from a thread every ``every_s`` while the block runs, however long one unit takes.

    The event yielded is set once the job is no longer this worker's (cancelled, or re-queued as stale and claimed
    by another worker): the run checks it between batches and stops.
    """
    lost, done = threading.Event(), threading.Event()

    def beat() -> None:
        while not done.wait(every_s):
            try:
                alive = heartbeat(db, job_id, worker_id)
            except Exception as exc:  # a state database briefly out of reach: the next beat tries again
                log.warning("job %s: heartbeat not recorded (%s)", job_id, exc)
                continue
            if not alive:
                lost.set()
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-job-{job_id}", daemon=True)
    thread.start()
    try:
        yield lost
    finally:
        done.set()
        thread.join()


def finish_job(db: StateDB, job_id: int, worker_id: str | None = None) -> bool:
    """running -> completed; False when the job was cancelled (or failed, or taken over from ``worker_id``)."""
    return _set_if(db, job_id, ("running",), worker_id, state="completed", finished_at=utcnow(), eta_s=0.0)


def fail_job(db: StateDB, job_id: int, error: str) -> bool:
    """queued|running -> failed, keeping the error text for the UI."""
    return _set_if(db, job_id, ("queued", "running"), None, state="failed", error=error, finished_at=utcnow())


def cancel_job(db: StateDB, job_id: int, by: Actor) -> bool:
    """queued|running -> cancelled by ``by`` (a curator or admin; recorded in the job's params as cancelled_by); a
    running worker sees it through update_progress / is_cancelled. False when the job had ended already."""
    require(by, "run_checks")
    active = _held_by(job_id, ("queued", "running"), None)
    with db.write() as s:
        params = s.scalar(select(Job.params).where(*active))
        if params is None:
            return False
        res = s.execute(
            update(Job)
            .where(*active)
            .values(state="cancelled", finished_at=utcnow(), eta_s=None, params={**params, "cancelled_by": by.who})
            .execution_options(synchronize_session=False)
        )
        return res.rowcount == 1


def is_cancelled(db: StateDB, job_id: int) -> bool:
    with db.read() as s:
        return s.scalar(select(Job.state).where(Job.id == job_id)) == "cancelled"


def _stale_before(now: datetime | None, older_than_s: float) -> datetime:
    """Heartbeats before this moment are stale: the worker that sent them died."""
    return (now or utcnow()) - timedelta(seconds=older_than_s)


def worker_died(state: str, heartbeat_at: datetime | None, now: datetime | None = None,
                older_than_s: float = STALE_AFTER_S) -> bool:
    """Whether a job in ``state`` whose last heartbeat was ``heartbeat_at`` lost its worker: running, and silent
    for longer than ``older_than_s`` (the jobs ``requeue_stale_jobs`` puts back once a worker looks at the queue)."""
    if state != "running" or heartbeat_at is None:
        return False
    return as_utc(heartbeat_at) < as_utc(_stale_before(now, older_than_s))


def requeue_stale_jobs(db: StateDB, older_than_s: float = STALE_AFTER_S, now: datetime | None = None) -> list[int]:
    """Put running jobs whose heartbeat is older than ``older_than_s`` back in the queue (their worker died).

    Units already marked done stay done, so the next worker resumes where the dead one stopped.
    """
    cutoff = _stale_before(now, older_than_s)
    with db.write() as s:
        ids = list(s.scalars(select(Job.id).where(Job.state == "running", Job.heartbeat_at < cutoff)))
        if ids:
            s.execute(
                update(Job)
                .where(Job.id.in_(ids), Job.state == "running")
                .values(state="queued", worker_id=None, rate=None, eta_s=None)
                .execution_options(synchronize_session=False)
            )
        return ids


def requeue_job(db: StateDB, job_id: int, worker_id: str) -> bool:
    """running -> queued when the worker holding it stops (SIGTERM); its done units stay done. False when the job is
    no longer this worker's (cancelled, or re-queued as stale and claimed by another)."""
    with db.write() as s:
        res = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == "running", Job.worker_id == worker_id)
            .values(state="queued", worker_id=None, rate=None, eta_s=None)
            .execution_options(synchronize_session=False)
        )
        return res.rowcount == 1


def mark_unit_done(db: StateDB, job_id: int, unit_key: str, rows: int = 0, output_path: str | None = None) -> None:
    """Leave the completion marker of one unit (shard) of a job; marking it again updates the marker."""
    values = {"state": "done", "rows": rows, "output_path": output_path, "finished_at": utcnow()}
    with db.write() as s:
        res = s.execute(
            update(JobUnit)
            .where(JobUnit.job_id == job_id, JobUnit.unit_key == unit_key)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount == 0:
            try:
                with s.begin_nested():
                    s.execute(insert(JobUnit).values(job_id=job_id, unit_key=unit_key, **values))
            except IntegrityError as exc:
                if s.get(Job, job_id) is None:
                    raise StateError(f"unit {unit_key!r}: field 'job_id' is {job_id}, which is no job") from exc
                # Same unit marked by someone else in the meantime: keep ours (last write wins).
                s.execute(
                    update(JobUnit)
                    .where(JobUnit.job_id == job_id, JobUnit.unit_key == unit_key)
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )


def done_units(db: StateDB, job_id: int) -> dict[str, UnitRecord]:
    """The units of a job that are done, by unit key."""
    with db.read() as s:
        q = select(JobUnit).where(JobUnit.job_id == job_id, JobUnit.state == "done")
        return {u.unit_key: to_record(UnitRecord, u) for u in s.scalars(q)}
