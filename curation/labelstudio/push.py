"""Push samples to Label Studio: one project per sample kind, media via local-files storage, check results
as predictions, sample_id in every task's data, links recorded; pushing the same samples again adds nothing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from curation.labelstudio.client import LabelStudioClient
from curation.labelstudio.configs import SampleKind, labeling_config, sample_kind, verdict_result
from curation.labelstudio.files import MediaFolder
from curation.labelstudio.server import MEDIA_SUBDIR
from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from curation.query.results import sample_results
from curation.query.severity import SEVERITIES
from curation.review.actors import Actor
from curation.review.roles import require
from curation.settings import Settings

PUSH_COLUMNS = [
    "sample_id", "dataset", "skill", "sample_group", "question", "answer", "reasoning", "has_reasoning",
    "answer_kind", "n_images", "n_videos", "media", "camera", "boxes_3d", "source_file", "row_group",
    "row_in_group",
]  # fmt: skip
IMPORT_BATCH = 500
DEFAULT_PROJECT = "VST review"

# A failed check's name -> the verdict label it predicts (first match wins; default: wrong answer).
_CHECK_LABELS: list[tuple[tuple[str, ...], str]] = [
    (("media", "image", "video", "decod", "aspect", "token", "missing", "placeholder", "size"), "bad media"),
    (("reason", "think", "trace", "cot", "conclusion"), "bad reasoning"),
    (("ambig", "duplicate", "contamination"), "ambiguous"),
]


def check_label(check_name: str) -> str:
    """The verdict a failed check suggests to the annotator (shown as a prediction they can accept)."""
    name = check_name.lower()
    for keys, label in _CHECK_LABELS:
        if any(k in name for k in keys):
            return label
    return "wrong answer"


@dataclass
class KindPush:
    """What one push did in one project (one sample kind)."""

    kind: SampleKind
    project_id: int
    title: str
    created: bool
    new_tasks: int = 0
    already_there: int = 0
    media_files_written: int = 0
    media_problems: int = 0
    severities: dict[str, int] = field(default_factory=dict)  # new tasks by their worst failure's severity ('none')

    def severity_text(self) -> str:
        """'error 2 · warning 5 · none 40': the new tasks by worst severity, most severe first."""
        order = [*SEVERITIES, "unstated", "none"]
        items = sorted(self.severities.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))
        return " · ".join(f"{k} {v:,}" for k, v in items)


@dataclass
class PushReport:
    projects: list[KindPush] = field(default_factory=list)
    samples: int = 0
    seconds: float = 0.0

    @property
    def new_tasks(self) -> int:
        return sum(p.new_tasks for p in self.projects)

    @property
    def already_there(self) -> int:
        return sum(p.already_there for p in self.projects)

    def lines(self, url: str = "") -> list[str]:
        out = [
            (
                f"pushed {self.samples} sample(s): {self.new_tasks} new task(s), {self.already_there} already in "
                f"Label Studio [{self.seconds:.1f} s]"
            )
        ]
        for p in self.projects:
            out.append(
                f"  {p.title} (project {p.project_id}{', created' if p.created else ''}): {p.new_tasks} new, "
                f"{p.already_there} already there, {p.media_files_written} media file(s) written"
                + (f", {p.media_problems} sample(s) with media problems" if p.media_problems else "")
                + (f"; new tasks by worst failure: {p.severity_text()}" if p.severities else "")
                + (f"  {url}/projects/{p.project_id}/data" if url else "")
            )
        return out


def project_title(base: str, kind: SampleKind) -> str:
    return f"{base} · {kind.title}"


def iter_rows(query: CatalogQuery, spec: FilterSpec, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Catalog rows for a filter in sample_id order, at most ``limit``."""
    n = 0
    for batch in query.iter_batches(spec, columns=PUSH_COLUMNS, batch_rows=2_000):
        for row in batch.to_pylist():
            if limit is not None and n >= limit:
                return
            n += 1
            yield row


def _worst_first(result: dict[str, Any]) -> tuple[int, str]:
    severity = result.get("severity")
    return (SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES), result["check_name"])


def failure_line(result: dict[str, Any]) -> str:
    """One failure as annotators read it: 'check (severity): reason'."""
    return f"{result['check_name']} ({result.get('severity') or 'unstated'}): {result.get('reason') or 'failed'}"


def sample_failures(results: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per sample, its failed checks (latest run of each, curation.query.results.sample_results rows), the most
    severe first."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        if r["passed"] is False:
            out.setdefault(r["sample_id"], []).append(r)
    for failed in out.values():
        failed.sort(key=_worst_first)
    return out


def check_predictions(results: list[dict[str, Any]]) -> dict[str, list[dict]]:
    """Per sample, one prediction per check run: model_version = the run id; the verdict suggested by the most
    severe failed check (``correct`` when all passed) and the failures, most severe first, as the note."""
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        runs.setdefault((r["sample_id"], str(r["run_id"])), []).append(r)
    out: dict[str, list[dict]] = {}
    for (sid, run_id), in_run in runs.items():
        failed = sorted((r for r in in_run if r["passed"] is False), key=_worst_first)
        label = check_label(failed[0]["check_name"]) if failed else "correct"
        note = "; ".join(failure_line(r) for r in failed) or None
        scores = [r["score"] for r in in_run if r["score"] is not None]
        prediction: dict[str, Any] = {"model_version": run_id, "result": verdict_result(label, note=note)}
        if scores:
            prediction["score"] = float(min(scores))
        out.setdefault(sid, []).append(prediction)
    return out


def task_data(row: dict[str, Any], kind: SampleKind, urls: list[str], media_note: str,
              failures: list[dict[str, Any]] = (), pushed_by: str = "") -> dict[str, Any]:
    """A task's data. ``severity`` (the worst failure's: error, warning, info; 'none') and ``failures`` (one line
    each, the most severe first) are columns annotators can filter and sort by in Label Studio's data manager;
    ``pushed_by`` is the curator who sent the task (Actor.who)."""
    data: dict[str, Any] = {
        "sample_id": row["sample_id"],
        "skill": f"{row.get('skill')} · {row.get('dataset')}",
        "question": row.get("question") or "",
        "answer": row.get("answer") or "",
        "reasoning": row.get("reasoning") or "",
        "media_note": media_note,
        "severity": (failures[0].get("severity") or "unstated") if failures else "none",
        "failures": "\n".join(failure_line(r) for r in failures),
        "pushed_by": pushed_by,
    }
    if kind is SampleKind.SINGLE_IMAGE:
        data["image"] = urls[0] if urls else ""
    elif kind is not SampleKind.TEXT_ONLY:
        data["images"] = urls
    return data


class _KindTarget:
    """One kind's project during a push: what the server already has and the rows waiting to be imported."""

    def __init__(self, kp: KindPush, on_server: dict[str, int]) -> None:
        self.kp = kp
        self.on_server = on_server
        self.fresh: list[dict[str, Any]] = []
        self.seen: list[tuple[str, int]] = []


def push(
    settings: Settings,
    spec: FilterSpec,
    *,
    by: Actor,
    project: str = DEFAULT_PROJECT,
    limit: int | None = None,
    predictions: bool = True,
    client: LabelStudioClient | None = None,
    state_db: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> PushReport:
    """Push the samples matching ``spec`` (e.g. ``FilterSpec(flagged=True)``) for review, as ``by`` (a curator or
    admin; each new task's data says pushed_by).

    Reuses the project of each kind by title, creates it otherwise; samples already in a project (by
    ``data.sample_id`` on the server) are not pushed again, only their links are recorded. Rows stream
    from the catalog and go out in batches, so memory stays flat for large filters.
    """
    from curation.labelstudio.links import record_links, record_project
    from db.engine import open_state

    require(by, "ls_push")  # before the server hears of it
    started = time.perf_counter()
    client = client or LabelStudioClient.from_settings(settings)
    client.whoami()  # server down or bad token: stop before anything is written
    db = state_db or open_state(settings.db_url)
    query = CatalogQuery(settings, state_db=db)
    report = PushReport()
    folder = MediaFolder(settings.labelstudio_files_root, MEDIA_SUBDIR, settings.media_roots)
    targets: dict[SampleKind, _KindTarget] = {}

    def target_for(kind: SampleKind) -> _KindTarget:
        if kind not in targets:
            title = project_title(project, kind)
            pid, created = client.ensure_project(
                title, labeling_config(kind), description=f"VST Curator review of {kind.title} samples"
            )
            record_project(db, pid, title, kind.value, f"{client.url}/projects/{pid}")
            client.ensure_local_storage(pid, folder.root)
            kp = KindPush(kind, pid, title, created)
            report.projects.append(kp)
            targets[kind] = _KindTarget(kp, client.task_sample_ids(pid))
        return targets[kind]

    def flush(target: _KindTarget) -> None:
        kp = target.kp
        if target.seen:  # already on the server: make sure the links say so
            record_links(db, kp.project_id, target.seen)
            kp.already_there += len(target.seen)
            target.seen = []
        if not target.fresh:
            return
        batch, target.fresh = target.fresh, []
        results = sample_results(settings.results_dir, [r["sample_id"] for r in batch])
        failures = sample_failures(results)
        preds = check_predictions(results) if predictions else {}
        tasks = []
        for row in batch:
            media = folder.media_for(row)
            kp.media_files_written += media.written
            kp.media_problems += bool(media.problems)
            task: dict[str, Any] = {"data": task_data(row, kp.kind, media.urls, media.note,
                                                      failures.get(row["sample_id"], []), pushed_by=by.who)}
            if row["sample_id"] in preds:
                task["predictions"] = preds[row["sample_id"]]
            tasks.append(task)
            worst = task["data"]["severity"]
            kp.severities[worst] = kp.severities.get(worst, 0) + 1
        ids = client.import_tasks(kp.project_id, tasks)
        record_links(db, kp.project_id, [(row["sample_id"], tid) for row, tid in zip(batch, ids, strict=True)])
        kp.new_tasks += len(ids)
        for row, tid in zip(batch, ids, strict=True):
            target.on_server[row["sample_id"]] = tid

    try:
        total = query.count(spec) if progress else 0
        total = min(total, limit) if limit is not None else total
        for row in iter_rows(query, spec, limit):
            report.samples += 1
            target = target_for(sample_kind(row))
            task_id = target.on_server.get(row["sample_id"])
            if task_id is not None:
                target.seen.append((row["sample_id"], task_id))
            else:
                target.fresh.append(row)
            if len(target.fresh) >= IMPORT_BATCH or len(target.seen) >= 10 * IMPORT_BATCH:
                flush(target)
            if progress and report.samples % IMPORT_BATCH == 0:
                progress(report.samples, total)
        for target in targets.values():
            flush(target)
        if progress:
            progress(report.samples, total)
    finally:
        query.close()
        if state_db is None:
            db.close()
    report.projects.sort(key=lambda p: list(SampleKind).index(p.kind))
    report.seconds = time.perf_counter() - started
    return report
