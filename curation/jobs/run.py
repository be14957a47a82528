"""Check runs as background jobs: queue a run, split it into shard units, run them on an engine, publish the results.

A run's results are written under ``<results_dir>/.inprogress/<run_id>/<check>/part-*.parquet`` (each file written to a
temporary name, then renamed) and the folder is renamed to ``<results_dir>/<run_id>`` when the run completes, so the
app never sees half a run. Each shard (catalog ``source_file``) is one unit; a unit's completion is recorded in the
state database, so a killed worker's job resumes where it stopped. Cross-sample checks run after the shards, each as
one ``global:<check>`` unit. A job waits for an ingest that holds the catalog instead of failing.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation.checks.base import Check, GlobalContext, RunCancelled, with_check_columns
from curation.checks.registry import select_checks
from curation.checks.runner import PARQUET_OPTIONS, CheckStats, ShardTask, ShardUnit, tune
from curation.jobs.queue import (
    HEARTBEAT_S,
    JobInfo,
    claim_job,
    claim_next_job,
    create_job,
    done_units,
    fail_job,
    finish_job,
    get_job,
    heartbeat,
    is_cancelled,
    keep_alive,
    list_jobs,
    mark_unit_done,
    requeue_job,
    update_progress,
)
from curation.query.results import RESULT_SCHEMA, STAGING
from curation.review.actors import Actor
from curation.review.roles import require
from curation.settings import Settings
from db.catalog import CatalogBusy, open_catalog
from db.engine import StateDB, open_state
from db.models import as_utc

log = logging.getLogger(__name__)
JOB_KIND = "check"
ENGINES = ("local", "ray")
GLOBAL_MEMORY = "2GB"  # DuckDB's share for the cross-sample checks; the 4 GiB budget must hold Python too
CATALOG_WAIT_S = 1.0  # between looks at a catalog an ingest is writing
_T = TypeVar("_T")


class RunInterrupted(Exception):
    """The worker was told to stop: the job goes back to the queue, its finished units stay done."""


@dataclass
class RunParams:
    """What a check run does; stored as the job's params (JSON)."""

    checks: list[str] | None = None  # names, families or patterns; None: every default check
    engine: str = "local"
    address: str | None = None  # Ray cluster address (engine=ray)
    workers: int = 1  # local engine: processes
    batch_rows: int = 50_000  # rows checked together: DuckDB plans each SQL check once per batch
    benchmarks: list[str] = field(default_factory=list)  # files/folders for contamination.*
    model_path: str | None = None  # local Hugging Face model directory for model.*
    embedder: str | None = None  # 'minilm' (default), 'hashing', or a sentence-transformers folder
    check_params: dict[str, Any] = field(default_factory=dict)  # thresholds etc., passed to every check
    run_id: str | None = None
    queued_by: str | None = None  # who queued the run (Actor.who)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine: {self.engine!r} is not one of {', '.join(ENGINES)}")
        if isinstance(self.checks, str):
            self.checks = [c.strip() for c in self.checks.split(",") if c.strip()] or None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunParams:
        known = {k: v for k, v in (data or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def check_kwargs(self) -> dict[str, Any]:
        """The parameters every check receives."""
        out = dict(self.check_params)
        out.update(benchmarks=list(self.benchmarks), model_path=self.model_path, embedder=self.embedder)
        return out


@dataclass
class RunSummary:
    job_id: int
    run_id: str
    state: str  # completed | cancelled | interrupted (worker stopped: re-queued) | lost (another worker has it)
    results_dir: Path
    units_done: int = 0
    units_skipped: int = 0
    rows: int = 0
    seconds: float = 0.0
    stats: dict[str, CheckStats] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- queueing


def queue_checks(settings: Settings, checks: str | list[str] | None = None, engine: str = "local",
                 address: str | None = None, db: StateDB | None = None, *, by: Actor, **params: Any) -> JobInfo:
    """Queue a check run for ``by`` (a curator or admin; recorded as the run's queued_by); validates the check names
    now, so a typo fails at once, not in the worker."""
    require(by, "run_checks")
    run = RunParams(checks=checks, engine=engine, address=address, queued_by=by.who, **params)
    resolve_checks(run)
    own = db is None
    db = db or open_state(settings.db_url)
    try:
        return create_job(db, JOB_KIND, run.to_json())
    finally:
        if own:
            db.close()


def resolve_checks(run: RunParams) -> list[type[Check]]:
    checks = select_checks(run.checks)
    if not checks:
        raise ValueError("no checks selected")
    if any(c.family() == "model" for c in checks) and not run.model_path:
        if run.checks is None:
            checks = [c for c in checks if c.family() != "model"]
        else:
            raise ValueError("model checks need a local model directory: pass --model PATH")
    return checks


def run_id_for(job: JobInfo) -> str:
    """Run ids sort by creation time, so the latest run of a check is max(run_id) (curation.query.results)."""
    created: datetime = job.created_at
    return f"{created:%Y%m%dT%H%M%S}-j{job.id:06d}"


def default_benchmarks(settings: Settings) -> list[str]:
    """Benchmark folders found under the data home (<home>/benchmarks, the demo's benchmarks)."""
    return [str(p) for p in (settings.home / "benchmarks", settings.home / "demo" / "benchmarks") if p.is_dir()]


# ------------------------------------------------ cross-sample checks (a shard's checks: curation.checks.runner)


def run_global_check(check: Check, gctx: GlobalContext, out_dir: Path, run_id: str,
                     on_rows: Callable[[int], None] | None = None) -> CheckStats:
    """Stream a cross-sample check's outcomes into one Parquet file, renamed into place when complete;
    ``on_rows`` hears the outcome rows written so far after each batch."""
    t0 = time.perf_counter()
    stats = CheckStats()
    path = out_dir / check.name / "part-global.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    writer: pq.ParquetWriter | None = None
    try:
        for outcomes in check.run_global(gctx):
            if not outcomes.num_rows:
                continue
            table = with_check_columns(outcomes, check.name, check.version, run_id)
            if writer is None:
                writer = pq.ParquetWriter(tmp, RESULT_SCHEMA, **PARQUET_OPTIONS)
            writer.write_table(table)
            stats.rows += table.num_rows
            stats.failed += table.num_rows - int(pc.sum(table.column("passed")).as_py() or 0)
            if on_rows is not None:
                on_rows(stats.rows)
    finally:
        if writer is not None:
            writer.close()
    if writer is not None:
        os.replace(tmp, path)
    stats.seconds = time.perf_counter() - t0
    return stats


def shard_units(catalog_path: Path) -> list[ShardUnit]:
    con = open_catalog(catalog_path, read_only=True)
    try:
        rows = con.sql("SELECT source_file, count(*) FROM samples GROUP BY source_file ORDER BY source_file").fetchall()
    finally:
        con.close()
    return [ShardUnit(f, int(n)) for f, n in rows]


# --------------------------------------------------------------------------------------------- time left

ROW_PHASE = "rows"  # the row checks over every shard; each cross-sample check is a phase of its own, "global:<name>"


@dataclass(frozen=True)
class Phase:
    """One stretch of a run whose speed is its own: the row checks, or one cross-sample check."""

    key: str
    passes: int  # row passes it counts for in the job's done / total


def time_left(current: Phase, done: int, resumed_at: int, elapsed_s: float, later: list[Phase],
              seconds_per_pass: Mapping[str, float]) -> tuple[float | None, float | None]:
    """(rate, seconds left) of a run ``done`` row passes into its ``current`` phase, which this worker took up
    ``elapsed_s`` ago at ``resumed_at`` passes.

    The rate is the current phase's own: a cross-sample check that embeds every question runs a hundred times slower
    than the rule checks before it, and an average over both promised the end long before it came. A phase not
    started yet takes what it took per pass in the last completed run; without one that ran it, the time left is
    unknown (None) rather than a guess.
    """
    rate = (done - resumed_at) / elapsed_s if done > resumed_at and elapsed_s > 0 else None
    left = current.passes - done
    if left <= 0:
        eta: float | None = 0.0
    elif rate:
        eta = left / rate
    else:
        eta = left * seconds_per_pass[current.key] if current.key in seconds_per_pass else None
    for phase in later:
        if eta is None or phase.key not in seconds_per_pass:
            return rate, None
        eta += phase.passes * seconds_per_pass[phase.key]
    return rate, eta


def past_seconds_per_pass(db: StateDB, but: int) -> dict[str, float]:
    """Seconds per row pass of each phase in the latest completed check run other than job ``but``, read from when
    its units finished (a resumed run's pause counts against the phase it interrupted)."""
    last = next((j for j in list_jobs(db, states=["completed"], kind=JOB_KIND, limit=2)
                 if j.id != but and j.started_at is not None), None)
    if last is None:
        return {}
    units = sorted(done_units(db, last.id).values(), key=lambda u: u.finished_at)
    shard_rows = sum(u.rows for u in units if not u.unit_key.startswith("global:"))
    globals_done = [u for u in units if u.unit_key.startswith("global:")]
    rows = shard_rows or (last.total or 0) // max(1, len(globals_done))
    if not rows:
        return {}
    out: dict[str, float] = {}
    started = as_utc(last.started_at)
    previous, shards_end = started, None
    for u in units:
        finished = as_utc(u.finished_at)
        if u.unit_key.startswith("global:"):
            out[u.unit_key] = max(0.0, (finished - previous).total_seconds()) / rows
        else:
            shards_end = finished
        previous = finished
    if shard_rows and shards_end is not None:
        out[ROW_PHASE] = max(0.0, (shards_end - started).total_seconds()) / shard_rows
    return out


# --------------------------------------------------------------------------------------------- one job


def make_engine(run: RunParams):
    if run.engine == "ray":
        from curation.jobs.engines.ray_data import RayEngine

        return RayEngine(address=run.address)
    from curation.jobs.engines.local import LocalEngine

    return LocalEngine(workers=run.workers)


def run_job(settings: Settings, db: StateDB, job: JobInfo, stop: threading.Event | None = None,
            engine=None, max_units: int | None = None, heartbeat_s: float = HEARTBEAT_S,
            on_progress: Callable[[int], None] | None = None) -> RunSummary:
    """Run a claimed check job to the end (or until cancelled / stopped / taken over), resuming from its done units.

    A thread sends the job's heartbeat every ``heartbeat_s`` meanwhile (curation.jobs.queue.keep_alive); a catalog
    that an ingest is writing is waited for. Progress is recorded after every batch of every phase, with the phase's
    own rate and the time left (time_left); ``on_progress`` hears each recorded value once it is in the job's row.
    ``max_units`` stops after that many new units as if the worker had been killed (tests of resume).
    """
    started = time.perf_counter()
    run = RunParams.from_json(job.params)
    run_id = run.run_id or run_id_for(job)
    if not run.benchmarks:
        run.benchmarks = default_benchmarks(settings)
    checks = resolve_checks(run)
    params = run.check_kwargs()
    params["media_roots"] = [str(r) for r in settings.media_roots]  # besides each shard's folder, files are read there
    row_checks = tuple(c.name for c in checks if c.scope == "row")
    global_checks = [c for c in checks if c.scope == "global"]
    staging = Path(settings.results_dir) / STAGING / run_id
    final = Path(settings.results_dir) / run_id
    summary = RunSummary(job.id, run_id, "completed", final)

    worker_id = job.worker_id
    with keep_alive(db, job.id, worker_id, heartbeat_s) as lost:
        def stop_requested() -> None:
            if lost.is_set():
                raise RunCancelled(f"job {job.id} is no longer this worker's")
            if stop is not None and stop.is_set():
                raise RunInterrupted(f"job {job.id}: worker stopping")
            if max_units is not None and summary.units_done >= max_units:
                raise RunInterrupted(f"job {job.id}: stopped after {max_units} unit(s)")

        def enter(key: str) -> None:
            """A phase starts (or resumes): its rate is measured from here."""
            i = next(k for k, ph in enumerate(phases) if ph.key == key)
            clock.update(i=i, t0=time.monotonic(), at=rows_done() - phase_start(i))

        def phase_start(i: int) -> int:
            return sum(ph.passes for ph in phases[:i])

        def progress(rows: int) -> None:
            if rows == clock.get("shown"):  # said already (a check's last batch, then its unit done)
                return
            clock["shown"] = rows
            i = clock["i"]
            later = [ph for ph in phases[i + 1:] if ph.key not in done]
            rate, eta = time_left(phases[i], rows - phase_start(i), clock["at"], time.monotonic() - clock["t0"],
                                  later, history) if phases else (None, None)
            if not update_progress(db, job.id, rows, total, worker_id, timing=(rate, eta)):
                raise RunCancelled(f"job {job.id} is no longer running")
            if on_progress is not None:
                on_progress(rows)

        def run_shards() -> None:
            """The row checks of the shards not done yet (again after a wait for an ingest)."""
            pending = [u for u in units if u.key not in done]
            tasks = [ShardTask(str(settings.catalog_path), str(staging), run_id, u, row_checks, params, run.batch_rows)
                     for u in pending]
            enter(ROW_PHASE)
            live = {"checked": 0, "marked": 0, "shown": rows_done()}

            def show() -> None:
                """Record the rows done: the marked shards' and those checked here in shards not marked yet (a chunk's
                shards are marked when the whole chunk is done), never fewer than shown before."""
                rows = min(rows_total, rows_done() + max(0, live["checked"] - live["marked"]))
                if rows > live["shown"]:
                    live["shown"] = rows
                    progress(rows)

            def on_rows(n: int) -> None:  # in-process engines report each batch
                live["checked"] += n
                show()
                stop_requested()

            stop_requested()
            try:
                for result in engine.map_shards(tasks, on_rows=on_rows):
                    mark_unit_done(db, job.id, result.unit.key, rows=result.unit.rows,
                                   output_path=str(staging / "*" / result.unit.part))
                    done.add(result.unit.key)
                    summary.units_done += 1
                    summary.rows += result.unit.rows
                    for name, s in result.stats.items():
                        summary.stats.setdefault(name, CheckStats()).add(s)
                    live["marked"] += result.unit.rows
                    show()
                    stop_requested()
            finally:
                engine.close()  # its processes and connections: a retry after a wait starts afresh

        def run_globals() -> None:
            con = open_catalog(settings.catalog_path, read_only=True)
            tune(con, None, params.get("duckdb_memory", GLOBAL_MEMORY))
            try:
                gctx = GlobalContext(con, params, heartbeat=lambda: heartbeat(db, job.id, worker_id))
                for cls in global_checks:
                    key = f"global:{cls.name}"
                    if key in done:
                        continue
                    stop_requested()
                    enter(key)
                    base, reached = rows_done(), [0]

                    def advance(rows: int, base: int = base, reached: list[int] = reached) -> None:
                        """The check's rows so far (outcomes written, or its own word on how far it is)."""
                        rows = min(max(0, rows), rows_total)
                        if rows > reached[0]:
                            reached[0] = rows
                            progress(base + rows)

                    gctx.progress = lambda fraction: advance(int(fraction * rows_total))
                    stats = run_global_check(cls(params), gctx, staging, run_id, on_rows=advance)
                    mark_unit_done(db, job.id, key, rows=stats.rows, output_path=str(staging / cls.name))
                    done.add(key)
                    summary.units_done += 1
                    summary.stats.setdefault(cls.name, CheckStats()).add(stats)
                    progress(rows_done())
            finally:
                con.close()

        def rows_done() -> int:
            shards = sum(u.rows for u in units if u.key in done) if row_checks else 0
            return shards + rows_total * sum(1 for c in global_checks if f"global:{c.name}" in done)

        done = set(done_units(db, job.id))
        summary.units_skipped = len(done)
        units: list[ShardUnit] = []
        phases: list[Phase] = []
        clock: dict[str, Any] = {"i": 0, "t0": time.monotonic(), "at": 0}
        history = past_seconds_per_pass(db, job.id)
        rows_total = total = 0
        try:
            units = _while_catalog_busy(lambda: shard_units(settings.catalog_path), job.id, stop_requested)
            rows_total = sum(u.rows for u in units)
            total = rows_total * ((1 if row_checks else 0) + len(global_checks))
            phases = ([Phase(ROW_PHASE, rows_total)] if row_checks else []) + [
                Phase(f"global:{c.name}", rows_total) for c in global_checks]
            todo = [ph.key for ph in phases if ph.key not in done
                    and not (ph.key == ROW_PHASE and all(u.key in done for u in units))]
            if todo:
                enter(todo[0])
            progress(rows_done())
            if row_checks:
                engine = engine or make_engine(run)
                _while_catalog_busy(run_shards, job.id, stop_requested)
            if global_checks:
                _while_catalog_busy(run_globals, job.id, stop_requested)
        except RunCancelled:
            # Cancelled by a curator, or taken back by the queue (our heartbeat looked stale): only the first deletes.
            summary.state = "cancelled" if is_cancelled(db, job.id) else "lost"
        except RunInterrupted as exc:
            log.info("%s", exc)
            summary.state = "interrupted"
        finally:
            if engine is not None:
                engine.close()
        if summary.state == "completed" and not heartbeat(db, job.id, worker_id):
            summary.state = "cancelled" if is_cancelled(db, job.id) else "lost"  # never publish another's run
        if summary.state == "cancelled":
            shutil.rmtree(staging, ignore_errors=True)
        elif summary.state == "completed":
            _publish(staging, final)
            finish_job(db, job.id, worker_id)
    summary.seconds = time.perf_counter() - started
    return summary


def _while_catalog_busy(step: Callable[[], _T], job_id: int, stop_requested: Callable[[], None]) -> _T:
    """Run ``step``; while an ingest (or any writer) holds the catalog, wait for it and run it again, instead of
    failing the job. The job's heartbeat goes on meanwhile, and a stop or a cancel ends the wait."""
    told = False
    while True:
        try:
            return step()
        except CatalogBusy as exc:
            if not told:
                log.warning("job %s: %s; waiting for it to finish", job_id, exc)
                told = True
        deadline = time.monotonic() + CATALOG_WAIT_S
        while time.monotonic() < deadline:
            stop_requested()
            time.sleep(0.1)


def _publish(staging: Path, final: Path) -> None:
    """Make a finished run visible: one folder rename (merged into the final folder if part of it is there)."""
    if not staging.exists():
        final.mkdir(parents=True, exist_ok=True)  # a run whose checks applied to nothing
        return
    if not final.exists():
        os.replace(staging, final)
        return
    for src in staging.rglob("*.parquet"):
        dst = final / src.relative_to(staging)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
    shutil.rmtree(staging, ignore_errors=True)


def execute_job(settings: Settings, db: StateDB, job: JobInfo, worker_id: str,
                stop: threading.Event | None = None, **kwargs: Any) -> RunSummary | None:
    """Run one claimed job and leave it in its final state: completed, cancelled, failed (with the error) or
    back in the queue when the worker stops."""
    try:
        summary = run_job(settings, db, job, stop=stop, **kwargs)
    except Exception as exc:  # a bug or bad input must not kill the worker: the job says what went wrong
        log.exception("check job %s failed", job.id)
        tb = traceback.format_exc(limit=6)
        fail_job(db, job.id, f"{type(exc).__name__}: {exc}\n{tb}")
        return None
    if summary.state == "interrupted":
        requeue_job(db, job.id, worker_id)
    return summary


def run_checks(settings: Settings, checks: str | list[str] | None = None, engine: str = "local",
               db: StateDB | None = None, worker_id: str = "foreground", *, by: Actor, **params: Any) -> RunSummary:
    """Queue a run for ``by`` and execute it in this process now (CLI `check --wait`, tests, benches)."""
    require(by, "run_checks")  # before a state database is opened
    own = db is None
    db = db or open_state(settings.db_url)
    try:
        job = queue_checks(settings, checks, engine=engine, db=db, by=by, **params)
        claimed = claim_job(db, job.id, worker_id)  # this very job: older queued ones are the worker's
        summary = execute_job(settings, db, claimed, worker_id)
        if summary is None:
            raise RuntimeError(f"check run failed: {get_job(db, job.id).error}")
        return summary
    finally:
        if own:
            db.close()


def claim_check_job(db: StateDB, worker_id: str) -> JobInfo | None:
    """The oldest queued check run, claimed atomically for this worker."""
    return claim_next_job(db, worker_id, kinds=[JOB_KIND])
