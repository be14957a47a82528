"""The background worker (python -m curation worker): claims queued check runs from the state database and runs them.

It opens the catalog only while a job runs (an ingest needs the write lock between jobs), records progress and
per-shard completion, sends its job's heartbeat every HEARTBEAT_S from a thread, puts its job back in the queue when
told to stop (SIGINT/SIGTERM), and at every look at the queue re-queues jobs whose worker stopped sending heartbeats
for STALE_AFTER_S, so a run whose worker was killed (-9, a lost machine) resumes where it stopped within about
STALE_AFTER_S + poll_s.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field

from curation.jobs.queue import HEARTBEAT_S, STALE_AFTER_S, requeue_stale_jobs
from curation.jobs.run import RunSummary, claim_check_job, execute_job
from curation.settings import Settings
from db.engine import open_state

log = logging.getLogger(__name__)


@dataclass
class WorkerReport:
    worker_id: str
    jobs: list[RunSummary] = field(default_factory=list)
    failed: int = 0


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_worker(settings: Settings, worker_id: str | None = None, once: bool = False, poll_s: float = 2.0,
               stale_after_s: float = STALE_AFTER_S, stop: threading.Event | None = None,
               max_jobs: int | None = None, heartbeat_s: float = HEARTBEAT_S) -> WorkerReport:
    """Process queued check runs until stopped (``once``: until the queue is empty). Tests shorten the heartbeat
    period and the stale limit; keep ``stale_after_s`` several heartbeats long."""
    worker_id = worker_id or default_worker_id()
    stop = stop or threading.Event()
    report = WorkerReport(worker_id)
    db = open_state(settings.db_url)
    try:
        while not stop.is_set():
            for job_id in requeue_stale_jobs(db, stale_after_s):
                log.warning("job %s lost its worker (no heartbeat for %.0f s): back in the queue",
                            job_id, stale_after_s)
            job = claim_check_job(db, worker_id)
            if job is None:
                if once:
                    break
                stop.wait(poll_s)
                continue
            log.info("worker %s: running check job %s", worker_id, job.id)
            summary = execute_job(settings, db, job, worker_id, stop=stop, heartbeat_s=heartbeat_s)
            if summary is None:
                report.failed += 1
            else:
                report.jobs.append(summary)
                log.info("job %s %s: %d unit(s) in %.1f s", job.id, summary.state, summary.units_done, summary.seconds)
            if max_jobs is not None and len(report.jobs) + report.failed >= max_jobs:
                break
    finally:
        db.close()
    return report


def install_signal_handlers(stop: threading.Event) -> None:
    """SIGINT/SIGTERM finish the current batch, re-queue the job and exit."""
    def handler(signum, _frame) -> None:
        log.warning("worker: signal %s, stopping after the current batch", signum)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


def main_loop(settings: Settings, once: bool = False, poll_s: float = 2.0, worker_id: str | None = None) -> int:
    stop = threading.Event()
    install_signal_handlers(stop)
    started = time.perf_counter()
    report = run_worker(settings, worker_id=worker_id, once=once, poll_s=poll_s, stop=stop)
    print(f"worker {report.worker_id}: {len(report.jobs)} job(s) done, {report.failed} failed "
          f"[{time.perf_counter() - started:.1f} s]")
    return 1 if report.failed else 0
