"""What the Checks page (and the Sample page's checks panel) show: registry, jobs, failures, scores, results."""

from __future__ import annotations

import math
import os
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import plotly.graph_objects as go
import pyarrow as pa

from curation.checks.base import FAMILIES
from curation.checks.registry import describe_checks
from curation.checks.report import iter_failures
from curation.jobs.queue import JobInfo, list_jobs, worker_died
from curation.jobs.run import JOB_KIND, RunSummary, run_checks, run_id_for
from curation.presenters.overview import skill_label
from curation.query.filters import FilterSpec
from curation.query.results import checks_with_results, latest_results_sql, sample_results
from curation.query.severity import SEVERITIES
from curation.review.actors import Actor
from curation.review.roles import require
from curation.settings import Settings
from db.engine import StateDB, open_state
from db.models import as_utc

ACTIVE_STATES = ("queued", "running")
INGEST_PREFIX = "ingest."
# A queued job nobody claims for this long (and nothing running) means no worker is there.
NO_WORKER_AFTER_S = 20.0
# What each failure severity means, in the words the page shows beside it.
SEVERITY_MEANING = {
    "error": "breaks training (missing or undecodable media, placeholder mismatch, empty answer, unparsable RL ground "
             "truth)",
    "warning": "a quality doubt (reasoning vs answer, implausible geometry, near duplicate, model disagreement)",
    "info": "a known upstream quirk the catalog normalised (`unknow` type, `byres` images)",
}


# --------------------------------------------------------------------------------------------- the registry


def checks_by_family() -> dict[str, list[dict[str, str]]]:
    """The registered checks (describe_checks rows) grouped by family, families in pipeline order."""
    grouped: dict[str, list[dict[str, str]]] = {f: [] for f in FAMILIES}
    for c in describe_checks():
        grouped.setdefault(c["family"], []).append(c)
    return {f: cs for f, cs in grouped.items() if cs}


def is_scored(check: dict[str, str]) -> bool:
    """Whether a check stores a measurement worth a threshold (its score meaning is not 'none')."""
    meaning = (check.get("score") or "").strip().lower()
    return bool(meaning) and meaning != "none"


# --------------------------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class JobView:
    """One check run as the page lists it."""

    id: int
    run_id: str
    state: str
    checks: str  # what was asked for ("every default check" when None)
    done: int
    total: int | None
    rate: float | None
    eta_s: float | None
    created_at: datetime
    worker_id: str | None
    error: str | None
    heartbeat_at: datetime | None = None  # the last sign of life of the worker running it
    started_at: datetime | None = None
    finished_at: datetime | None = None
    queued_by: str | None = None  # who queued it (runs queued before sign-in existed name no one)
    cancelled_by: str | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def seconds(self, now: datetime | None = None) -> float | None:
        """How long the run took (from its last start to its end), or has taken so far while it runs; None when it
        never started or ended without a time."""
        if self.started_at is None:
            return None
        end = self.finished_at or (now or datetime.now(UTC) if self.state == "running" else None)
        return None if end is None else max(0.0, (as_utc(end) - as_utc(self.started_at)).total_seconds())

    @property
    def fraction(self) -> float:
        if self.state == "completed":
            return 1.0
        if not self.total:
            return 0.0
        return max(0.0, min(1.0, self.done / self.total))

    def progress_text(self) -> str:
        """'1,200 / 4,000 row passes · 350/s · ETA 8 s' (what is known of it). A row pass is one sample through
        the row checks or through one cross-sample check, the unit the worker counts progress in."""
        parts = [f"{self.done:,} / {self.total:,} row passes" if self.total else f"{self.done:,} row passes"]
        if self.rate:
            parts.append(f"{self.rate:,.0f}/s")
        if self.state == "running" and self.eta_s is not None:
            parts.append(f"ETA {format_seconds(self.eta_s)}")
        elif self.state == "running" and self.done:  # a check still to come never ran here: no guess (time_left)
            parts.append("ETA not known yet")
        return " · ".join(parts)


def format_seconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def describe_selection(checks: list[str] | None) -> str:
    """'every default check', the names when few, else how many and from which families."""
    if not checks:
        return "every default check"
    if len(checks) <= 4:
        return ", ".join(checks)
    families = list(dict.fromkeys(c.split(".")[0] for c in checks))
    return f"{len(checks)} checks ({', '.join(families)})"


def job_view(job: JobInfo) -> JobView:
    params = job.params or {}
    return JobView(id=job.id, run_id=params.get("run_id") or run_id_for(job), state=job.state,
                   checks=describe_selection(params.get("checks")), done=job.done or 0,
                   total=job.total, rate=job.rate, eta_s=job.eta_s, created_at=job.created_at,
                   worker_id=job.worker_id, error=job.error, heartbeat_at=job.heartbeat_at,
                   started_at=job.started_at, finished_at=job.finished_at, queued_by=params.get("queued_by"),
                   cancelled_by=params.get("cancelled_by"))


def check_jobs(db: StateDB, limit: int = 20) -> list[JobView]:
    """Check runs, newest first."""
    return [job_view(j) for j in list_jobs(db, kind=JOB_KIND, limit=limit)]


def worker_seems_absent(jobs: list[JobView], now: datetime | None = None,
                        after_s: float = NO_WORKER_AFTER_S) -> bool:
    """True when a running job's worker stopped sending heartbeats (a live worker would have taken the job back), or
    a run has waited in the queue for a while and nothing is running: no worker is picking it up."""
    now = now or datetime.now(UTC)
    if any(worker_died(j.state, j.heartbeat_at, now) for j in jobs):
        return True
    if any(j.state == "running" for j in jobs):
        return False
    waited = [(now - as_utc(j.created_at)).total_seconds() for j in jobs if j.state == "queued"]
    return bool(waited) and max(waited) >= after_s


def run_in_process(settings: Settings, checks: list[str] | None, on_progress: Callable[[JobView], None],
                   poll_s: float = 0.5, db: StateDB | None = None, *, by: Actor, **params: Any) -> RunSummary:
    """Queue a run for ``by`` and execute it in this process now (a session without a background worker), calling
    ``on_progress`` with the job's row while it runs; raises what the run raised."""
    require(by, "run_checks")  # refused here, in the caller's thread
    worker_id = f"app:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["summary"] = run_checks(settings, checks, db=db, worker_id=worker_id, by=by, **params)
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=work, name=f"checks-{worker_id}", daemon=True)
    thread.start()
    watch = db or open_state(settings.db_url)
    try:
        while thread.is_alive():
            thread.join(poll_s)
            mine = [j for j in list_jobs(watch, kind=JOB_KIND, limit=20) if j.worker_id == worker_id]
            if mine:
                on_progress(job_view(mine[0]))
    finally:
        if db is None:
            watch.close()
    if "error" in box:
        raise box["error"]
    return box["summary"]


# --------------------------------------------------------------------------------------------- results


def result_check_names(settings: Settings) -> list[str]:
    """Checks with results on disk (any published run), for the Browse and Checks pages' choices."""
    return checks_with_results(settings.results_dir)


def has_results(settings: Settings) -> bool:
    return bool(result_check_names(settings))


def summary_matrix(summary: pa.Table) -> tuple[list[str], list[str], dict[tuple[str, str], dict[str, Any]]]:
    """check_summary's rows as (checks, skills, cells keyed by (check, skill))."""
    cells = {(r["check_name"], r["skill"] or "(none)"): r for r in summary.to_pylist()}
    checks = sorted({c for c, _ in cells}, key=lambda n: (n.startswith(INGEST_PREFIX), n))
    skills = sorted({s for _, s in cells})
    return checks, skills, cells


def heatmap_figure(summary: pa.Table, label: Callable[[str], str] = skill_label) -> go.Figure:
    """Failure rate per check (rows) x skill (columns, by the taxonomy's names); each cell says failed / checked and
    carries its check and skill id, so a click names the cell (clicked_cell)."""
    checks, ids, cells = summary_matrix(summary)
    skills = [label(s) for s in ids]
    z, text, custom = [], [], []
    for c in checks:
        zr, tr, cr = [], [], []
        for s in ids:
            cell = cells.get((c, s))
            if cell is None:
                zr.append(None)
                tr.append("")
                cr.append([0, 0])
            else:
                zr.append(float(cell["fail_rate"] or 0.0))
                tr.append(str(cell["failed"]) if cell["failed"] else "")
                cr.append([int(cell["failed"]), int(cell["checked"])])
        z.append(zr)
        text.append(tr)
        custom.append(cr)
    fig = go.Figure(go.Heatmap(
        z=z, x=skills, y=checks, text=text, texttemplate="%{text}", zmin=0, hoverinfo="skip",
        zmax=max([v for c, row in zip(checks, z, strict=True) if not c.startswith(INGEST_PREFIX)
                  for v in row if v is not None] + [0.01]),  # ingest.* rows fail by construction: not the scale
        colorscale="Reds", colorbar={"title": "failed", "tickformat": ".0%"}, xgap=1, ygap=1,
    ))
    # Streamlit cannot select heatmap cells (streamlit#8760): an invisible marker on every cell takes the click
    # (and the hover), so a click on a cell reports its check and skill.
    xs, ys, cd = [], [], []
    for i, c in enumerate(checks):
        for j, s in enumerate(skills):
            if custom[i][j][1]:
                xs.append(s)
                ys.append(c)
                cd.append([*custom[i][j], z[i][j], c, ids[j]])
    fig.add_scatter(x=xs, y=ys, customdata=cd, mode="markers", showlegend=False, name="cells",
                    marker={"symbol": "square", "size": 18, "color": "rgba(0,0,0,0)"},
                    hovertemplate="%{y} on %{x}<br>%{customdata[0]} failed of %{customdata[1]} checked"
                                  " (%{customdata[2]:.1%})<extra></extra>")
    fig.update_layout(height=max(320, 22 * len(checks) + 160), margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      xaxis={"side": "top", "tickangle": -45}, yaxis={"autorange": "reversed"},
                      clickmode="event+select", dragmode=False)
    return fig


def clicked_cell(selection: Any) -> tuple[str, str] | None:
    """(check, skill id) of the heatmap cell a click selected, from st.plotly_chart's selection state (the cell's
    marker carries both: the axis shows the skill's name)."""
    for p in (selection or {}).get("points") or []:
        custom = p.get("customdata")
        if isinstance(custom, list) and len(custom) >= 5:
            return str(custom[3]), str(custom[4])
    return None


def browse_spec_for(check: str, skill: str | None = None, severities: list[str] | None = None) -> FilterSpec:
    """The Browse filter for the samples that failed ``check`` (in ``skill``; with a failure of ``severities`` when
    given); ingest.* problems are not check results, so they map to 'has ingest problems' (of those severities)."""
    skills = [skill] if skill else []
    if check.startswith(INGEST_PREFIX):
        return FilterSpec(skills=skills, failed_severities=severities) if severities else \
            FilterSpec(skills=skills, has_problems=True)
    return FilterSpec(skills=skills, failed_checks=[check], failed_severities=severities or [])


def severity_totals(summary: pa.Table) -> dict[str, int]:
    """Failures per severity over check_summary's rows, every severity present (0 when none), worst first."""
    rows = summary.to_pylist()
    return {s: sum(int(r.get(f"{s}s") or 0) for r in rows) for s in SEVERITIES}


def score_range(settings: Settings, check: str) -> tuple[float, float] | None:
    """Lowest and highest finite score of the check's latest run; None when it stored no scores."""
    sql = (f"SELECT min(score), max(score) FROM {latest_results_sql(settings.results_dir)} "
           "WHERE check_name = ? AND score IS NOT NULL AND isfinite(score)")
    con = duckdb.connect()
    try:
        lo, hi = con.execute(sql, [check]).fetchone()
    finally:
        con.close()
    return None if lo is None else (float(lo), float(hi))


def histogram_figure(hist: pa.Table, check: str, threshold: float | None = None) -> go.Figure:
    """score_histogram's bins as stacked bars (passed / failed), with the threshold drawn in."""
    rows = hist.to_pylist()
    mids = [(r["bin_start"] + r["bin_end"]) / 2 for r in rows]
    widths = [max(r["bin_end"] - r["bin_start"], 1e-9) for r in rows]
    fig = go.Figure()
    fig.add_bar(x=mids, y=[r["count"] - r["failed"] for r in rows], width=widths, name="passed",
                marker_color="#4c78a8")
    fig.add_bar(x=mids, y=[r["failed"] for r in rows], width=widths, name="failed", marker_color="#e45756")
    if threshold is not None:
        fig.add_vline(x=threshold, line_dash="dash", line_color="black",
                      annotation_text=f"< {threshold:g}", annotation_position="top left")
    fig.update_layout(barmode="stack", height=300, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      xaxis_title=f"{check} score", yaxis_title="samples", bargap=0.05,
                      legend={"orientation": "h", "y": 1.12})
    return fig


def ingest_problems(settings: Settings, limit: int = 500) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Problems ingest recorded against samples (the ingest.* pseudo-checks): counts per code, first rows (sample_id,
    check, severity, reason)."""
    counts: dict[str, int] = defaultdict(int)
    rows: list[dict[str, Any]] = []
    for batch in iter_failures(settings, check=INGEST_PREFIX + "*"):
        for code in batch.column("check").to_pylist():
            counts[code] += 1
        if len(rows) < limit:
            rows.extend(batch.slice(0, limit - len(rows)).select(["sample_id", "check", "severity", "reason"])
                        .to_pylist())
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))), rows


def check_results_for(settings: Settings, sample_id: str) -> list[dict[str, Any]]:
    """The latest outcome of every check that looked at this sample: failing first, then by check name.

    Each dict has check, passed, severity (of a failure), score, reason, check_version and run_id.
    """
    rows = [{"check": r["check_name"], "passed": r["passed"], "severity": r["severity"], "score": r["score"],
             "reason": r["reason"], "check_version": r["check_version"], "run_id": r["run_id"]}
            for r in sample_results(settings.results_dir, [sample_id])]
    for r in rows:  # NaN scores read as "no score"
        if isinstance(r["score"], float) and not math.isfinite(r["score"]):
            r["score"] = None
    rank = {s: i for i, s in enumerate(SEVERITIES)}  # failing first, the worst of them first, then by check
    rows.sort(key=lambda r: (r["passed"] is None, r["passed"] is True, rank.get(r["severity"], len(rank)), r["check"]))
    return rows
