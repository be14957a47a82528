"""Pull verdicts back: a Label Studio JSON export -> one review per annotation, mapped by sample_id in task data.

Two halves: :func:`parse_export` is pure (export JSON -> :class:`AnnotationVerdict` records + a report of what
was skipped and why); :func:`apply_verdicts` writes them to the state database, idempotently.

How an annotation becomes a review (db.models.VERDICTS is approve / reject / fix):
- a non-empty corrected answer makes it a ``fix`` carrying that answer, whatever label was chosen;
- otherwise ``correct`` is ``approve`` and every other label (wrong answer, bad reasoning, bad media,
  ambiguous) is ``reject``, plus a flag with the matching reason (wrong_answer, bad_reasoning, ...) so the
  "why" stays filterable. The chosen label and the annotator's note go into the review note.
Idempotency: each review carries ``external_id = ls:<project>:<annotation id>:<updated_at>``; pulling again
adds nothing, and an annotation edited in Label Studio after a pull comes in once more as a newer review.
Conflict rule (shown in the report): when a sample's current review is a local one (not from Label Studio)
that is newer than the annotation and says something else, the local review stays and the annotation is not
imported; when the annotation is newer it is imported and becomes the sample's state (latest review wins).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from curation.labelstudio.configs import FIX_CONTROL, NOTE_CONTROL, VERDICT_CONTROL, VERDICTS
from curation.review.actors import Actor
from curation.review.roles import require

# Label Studio label -> flag reason recorded with a reject (db.models.FLAG_REASONS).
FLAG_FOR_LABEL: dict[str, str] = {
    "wrong answer": "wrong_answer",
    "bad reasoning": "bad_reasoning",
    "bad media": "bad_media",
    "ambiguous": "ambiguous",
}


@dataclass(frozen=True)
class AnnotationVerdict:
    """One Label Studio annotation read as a review of one sample."""

    sample_id: str
    label: str  # the verdict label the annotator chose (configs.VERDICTS keys)
    fixed_answer: str | None
    note: str | None
    annotator: str
    annotated_at: datetime
    project_id: int | None
    task_id: int
    annotation_id: int

    @property
    def review_verdict(self) -> str:
        """approve / reject / fix, as the state database stores it."""
        if self.fixed_answer:
            return "fix"
        return "approve" if self.label == "correct" else "reject"

    @property
    def flag_reason(self) -> str | None:
        return None if self.fixed_answer or self.label == "correct" else FLAG_FOR_LABEL[self.label]

    @property
    def review_note(self) -> str:
        return f"Label Studio: {self.label}" + (f" — {self.note}" if self.note else "")

    @property
    def external_id(self) -> str:
        return f"ls:{self.project_id or 0}:{self.annotation_id}:{self.annotated_at.isoformat()}"


@dataclass(frozen=True)
class SkippedAnnotation:
    """A task or annotation that was not imported, with where it is and why."""

    reason: str  # unknown_sample | malformed | no_sample_id
    message: str
    task_id: int | None = None
    annotation_id: int | None = None
    sample_id: str | None = None


@dataclass
class ParsedExport:
    """What an export holds: the verdicts to import and everything skipped, with counts."""

    verdicts: list[AnnotationVerdict] = field(default_factory=list)
    skipped: list[SkippedAnnotation] = field(default_factory=list)
    tasks: int = 0
    unannotated_tasks: int = 0
    cancelled: int = 0  # annotations the annotator skipped in Label Studio: not a verdict

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(s.reason for s in self.skipped)
        return {
            "tasks": self.tasks,
            "annotations": len(self.verdicts),
            "unannotated_tasks": self.unannotated_tasks,
            "cancelled": self.cancelled,
            "unknown_sample": c["unknown_sample"],
            "malformed": c["malformed"] + c["no_sample_id"],
        }


class MalformedAnnotation(ValueError):
    """An annotation whose result this project's config cannot have produced; the message says what is off."""


class ExportFileError(ValueError):
    """A file that is not a Label Studio JSON export; the message names the file and what is wrong."""


def load_export_file(path: str | Path) -> list[dict[str, Any]]:
    """Read a Label Studio JSON export (a list of tasks with ``data`` and ``annotations``)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ExportFileError(f"{path}: cannot read the export ({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise ExportFileError(f"{path}: not JSON ({exc}); export the project as 'JSON' in Label Studio") from exc
    except RecursionError:
        raise ExportFileError(f"{path}: JSON nested too deep to read (hundreds of levels of [ or {{); a Label "
                              "Studio export is a list of tasks a few levels deep") from None
    if isinstance(raw, dict) and "data" in raw:
        raw = [raw]  # a single task
    if not isinstance(raw, list):
        raise ExportFileError(f"{path}: expected a JSON list of tasks (Label Studio's 'JSON' export format)")
    # Entries that are not tasks are reported one by one by parse_export; the others are still pulled.
    if raw and not any(isinstance(t, dict) and "data" in t for t in raw):
        raise ExportFileError(
            f"{path}: tasks have no 'data' field; this looks like a JSON-MIN or CSV-style export: "
            "export the project as 'JSON' in Label Studio"
        )
    return raw


def parse_time(value: Any) -> datetime | None:
    """Label Studio's ISO timestamps ('2026-11-25T00:30:06.277567Z') as aware UTC datetimes."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)  # Python 3.11 reads the trailing Z
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)  # naive times in exports are UTC


def annotator_name(completed_by: Any, users: Mapping[int, str] | None = None) -> str | None:
    """The annotator's e-mail: exports carry a user id (or, in some versions, a user object)."""
    if isinstance(completed_by, dict):
        name = completed_by.get("email") or completed_by.get("username")
        if name:
            return str(name)
        completed_by = completed_by.get("id")
    if isinstance(completed_by, bool) or not isinstance(completed_by, int):
        return None
    return (users or {}).get(completed_by, f"labelstudio-user-{completed_by}")


def json_type(value: Any) -> str:
    """What a JSON value is, in the words of an error message ('a string', 'a list', ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    kinds = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}
    return next((name for t, name in kinds.items() if isinstance(value, t)), type(value).__name__)


def _texts(item: Mapping[str, Any]) -> str | None:
    value = item.get("value")
    text = value.get("text") if isinstance(value, dict) else None
    if isinstance(text, str):
        text = [text]
    if not isinstance(text, list) or not all(isinstance(t, str) for t in text):
        raise MalformedAnnotation(f"control '{item.get('from_name')}' has no text list in value.text")
    joined = "\n".join(t.strip() for t in text if t.strip())
    return joined or None


def read_result(result: Any) -> tuple[str, str | None, str | None]:
    """(label, fixed_answer, note) from an annotation ``result``; ValueError says what is malformed."""
    if not isinstance(result, list):
        raise MalformedAnnotation("result is not a list")
    label = fixed = note = None
    for item in result:
        if not isinstance(item, dict):
            raise MalformedAnnotation("a result item is not an object")
        name = item.get("from_name")
        if name == VERDICT_CONTROL:
            value = item.get("value")
            choices = value.get("choices") if isinstance(value, dict) else None
            if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], str):
                raise MalformedAnnotation(f"'{VERDICT_CONTROL}' must hold exactly one choice (a string) in "
                                          f"value.choices, got {choices!r}")
            if choices[0] not in VERDICTS:
                raise MalformedAnnotation(f"unknown verdict {choices[0]!r}; expected one of {', '.join(VERDICTS)}")
            label = choices[0]
        elif name == FIX_CONTROL:
            fixed = _texts(item)
        elif name == NOTE_CONTROL:
            note = _texts(item)
    if label is None:
        raise MalformedAnnotation(f"no '{VERDICT_CONTROL}' choice in the result")
    return label, fixed, note


def _any_sample(_sample_id: str) -> bool:
    return True


def parse_export(
    tasks: Iterable[Mapping[str, Any]],
    known_sample: Container[str] | Callable[[str], bool] | None = None,
    users: Mapping[int, str] | None = None,
    project_id: int | None = None,
) -> ParsedExport:
    """Turn exported tasks into verdicts, by ``data.sample_id`` (never by position).

    ``known_sample`` (a set of ids or a predicate) marks tasks whose sample the catalog lacks as
    ``unknown_sample``; None accepts every id. ``users`` maps Label Studio user ids to names.
    """
    if known_sample is None:
        is_known: Callable[[str], bool] = _any_sample
    elif callable(known_sample):
        is_known = known_sample  # type: ignore[assignment]
    else:
        is_known = known_sample.__contains__  # type: ignore[assignment]
    out = ParsedExport()
    for index, task in enumerate(tasks):
        out.tasks += 1
        try:
            _read_task(out, index, task, is_known, users, project_id)
        except (TypeError, AttributeError, KeyError, ValueError) as exc:  # a shape no check above foresaw
            task_id = task.get("id") if isinstance(task, Mapping) and isinstance(task.get("id"), int) else None
            where = f"task {task_id}" if task_id is not None else f"task #{index}"
            out.skipped.append(SkippedAnnotation("malformed", f"{where}: unexpected content ({exc})", task_id))
    return out


def _read_task(out: ParsedExport, index: int, task: Any, is_known: Callable[[str], bool],
               users: Mapping[int, str] | None, project_id: int | None) -> None:
    """One exported task's verdicts into ``out``; what is malformed is skipped with the task, annotation and field
    named (an export edited by hand or by a script can hold any JSON)."""
    if not isinstance(task, Mapping):
        out.skipped.append(SkippedAnnotation("malformed", f"task #{index}: is {json_type(task)}, not an object"))
        return
    task_id = task.get("id") if isinstance(task.get("id"), int) else None
    where = f"task {task_id}" if task_id is not None else f"task #{index} (no id)"
    annotations = task.get("annotations")
    if not annotations:
        out.unannotated_tasks += 1
        return
    if not isinstance(annotations, list):
        out.skipped.append(SkippedAnnotation(
            "malformed", f"{where}: field annotations is {json_type(annotations)}, not a list", task_id))
        return
    data = task.get("data")
    sample_id = data.get("sample_id") if isinstance(data, Mapping) else None
    if not isinstance(sample_id, str) or not sample_id:
        what = ("missing" if sample_id in (None, "") and isinstance(data, Mapping) else
                f"{json_type(sample_id)} {sample_id!r}, not a string" if isinstance(data, Mapping) else
                f"missing (field data is {json_type(data)}, not an object)")
        out.skipped.append(SkippedAnnotation("no_sample_id", f"{where}: field data.sample_id is {what}", task_id))
        return
    if not is_known(sample_id):
        out.skipped.append(SkippedAnnotation(
            "unknown_sample", f"{where}: sample {sample_id!r} is not in the catalog", task_id, None, sample_id))
        return
    pid = project_id if project_id is not None else task.get("project")
    for k, ann in enumerate(annotations):
        ann_id = ann.get("id") if isinstance(ann, Mapping) else None
        if not isinstance(ann, Mapping) or not isinstance(ann_id, int) or isinstance(ann_id, bool):
            what = (f"is {json_type(ann)}, not an object" if not isinstance(ann, Mapping)
                    else f"has no id (field annotations[{k}].id is {json_type(ann_id)})")
            out.skipped.append(SkippedAnnotation("malformed", f"{where}: annotation #{k} {what}", task_id))
            continue
        at = f"{where} annotation {ann_id}"
        if ann.get("was_cancelled") is True:
            out.cancelled += 1
            continue
        try:
            label, fixed, note = read_result(ann.get("result"))
            when = parse_time(ann.get("updated_at")) or parse_time(ann.get("created_at"))
            if when is None:
                raise MalformedAnnotation("no created_at / updated_at time")
            who = annotator_name(ann.get("completed_by"), users)
            if who is None:
                raise MalformedAnnotation(f"field completed_by is {json_type(ann.get('completed_by'))}, not a user")
        except MalformedAnnotation as exc:
            out.skipped.append(
                SkippedAnnotation("malformed", f"{at} (sample {sample_id}): {exc}", task_id, ann_id, sample_id)
            )
            continue
        out.verdicts.append(
            AnnotationVerdict(
                sample_id=sample_id,
                label=label,
                fixed_answer=fixed,
                note=note,
                annotator=who,
                annotated_at=when,
                project_id=int(pid) if isinstance(pid, int) and not isinstance(pid, bool) else None,
                task_id=int(task_id) if task_id is not None else -1,
                annotation_id=ann_id,
            )
        )


# --------------------------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class Conflict:
    """An annotation that disagrees with the sample's review state at the time it was pulled."""

    sample_id: str
    local_verdict: str
    local_reviewer: str
    local_source: str
    local_at: datetime
    ls_verdict: str
    annotator: str
    ls_at: datetime
    resolution: str  # "kept local (newer)" | "took Label Studio (newer)"

    def line(self) -> str:
        return (
            f"  {self.sample_id}: local {self.local_verdict} by {self.local_reviewer} ({self.local_source}, "
            f"{self.local_at:%Y-%m-%d %H:%M}) vs Label Studio {self.ls_verdict} by {self.annotator} "
            f"({self.ls_at:%Y-%m-%d %H:%M}) -> {self.resolution}"
        )


@dataclass
class PullReport:
    """What a pull found and did; ``lines()`` is what the CLI prints."""

    parsed: ParsedExport = field(default_factory=ParsedExport)
    added: int = 0
    already_pulled: int = 0
    flags_added: int = 0
    conflicts: list[Conflict] = field(default_factory=list)
    projects: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self, max_items: int = 20) -> list[str]:
        c = self.parsed.counts
        kept_local = sum(1 for x in self.conflicts if x.resolution.startswith("kept"))
        source = f"{len(self.projects)} project(s)" if self.projects else "an export file"
        out = [
            (
                f"pulled {c['tasks']} task(s) from {source}: {c['annotations']} annotation(s) read, "
                f"{self.added} review(s) added, {self.already_pulled} already pulled, {kept_local} kept local; "
                f"{c['unannotated_tasks']} task(s) not annotated yet, {c['cancelled']} skipped by annotators "
                f"[{self.seconds:.1f} s]"
            )
        ]
        if c["unknown_sample"] or c["malformed"]:
            unknown, malformed = c["unknown_sample"], c["malformed"]
            out.append(f"skipped: {unknown} with a sample_id not in the catalog, {malformed} malformed")
            out.extend(f"  {s.message}" for s in self.parsed.skipped[:max_items])
            if len(self.parsed.skipped) > max_items:
                out.append(f"  ... and {len(self.parsed.skipped) - max_items} more")
        if self.conflicts:
            out.append(f"{len(self.conflicts)} conflict(s) with existing reviews (rule: the newer decision wins):")
            out.extend(x.line() for x in self.conflicts[:max_items])
            if len(self.conflicts) > max_items:
                out.append(f"  ... and {len(self.conflicts) - max_items} more")
        return out


def _same_decision(state: Any, v: AnnotationVerdict) -> bool:
    if state.verdict != v.review_verdict:
        return False
    return v.review_verdict != "fix" or state.fixed_answer == v.fixed_answer


def apply_verdicts(db: Any, verdicts: list[AnnotationVerdict], report: PullReport, by: Actor) -> None:
    """Store verdicts as reviews (and reject reasons as flags), pulled by ``by``: each review is its annotator's,
    the audit log says who pulled it; see the module docstring for the rules."""
    from curation.review.flags import add_flag
    from curation.review.reviews import add_review, review_for, stored_external_ids

    ordered = sorted(verdicts, key=lambda v: (v.sample_id, v.annotated_at, v.annotation_id))
    stored = stored_external_ids(db, [v.external_id for v in ordered])
    for v in ordered:
        if v.external_id in stored:
            report.already_pulled += 1
            continue
        state = review_for(db, v.sample_id)
        if state is not None and not _same_decision(state, v):
            local = not state.source.startswith("labelstudio")
            newer_local = local and state.reviewed_at > v.annotated_at
            report.conflicts.append(
                Conflict(
                    sample_id=v.sample_id,
                    local_verdict=state.verdict,
                    local_reviewer=state.reviewer,
                    local_source=state.source,
                    local_at=state.reviewed_at,
                    ls_verdict=v.review_verdict,
                    annotator=v.annotator,
                    ls_at=v.annotated_at,
                    resolution="kept local (newer)" if newer_local else "took Label Studio (newer)",
                )
            )
            if newer_local:
                continue
        source = f"labelstudio:{v.project_id}" if v.project_id is not None else "labelstudio:file"
        add_review(
            db,
            v.sample_id,
            v.review_verdict,
            by=by,
            reviewer=v.annotator,
            fixed_answer=v.fixed_answer if v.review_verdict == "fix" else None,
            note=v.review_note,
            source=source,
            external_id=v.external_id,
        )
        report.added += 1
        if v.flag_reason:
            add_flag(db, v.sample_id, v.flag_reason, v.note, by=by, source=source, flagger=v.annotator)
            report.flags_added += 1


def known_samples(query: Any, sample_ids: Iterable[str]) -> set[str]:
    """Which of these ids the catalog holds (one query)."""
    ids = sorted(set(sample_ids))
    if not ids:
        return set()
    rows = query.cursor().execute("SELECT sample_id FROM samples WHERE sample_id IN (SELECT unnest(?::VARCHAR[]))",
                                  [ids])
    return {r[0] for r in rows.fetchall()}


def _sample_ids_in(tasks: list[dict[str, Any]]) -> list[str]:
    datas = [t.get("data") for t in tasks if isinstance(t, dict)]
    return [d["sample_id"] for d in datas if isinstance(d, dict) and isinstance(d.get("sample_id"), str)]


def _import(
    settings: Any,
    exports: list[tuple[int | None, list[dict[str, Any]]]],
    users: Mapping[int, str] | None,
    state_db: Any,
    report: PullReport,
    by: Actor,
) -> PullReport:
    from curation.query.catalog import CatalogQuery
    from db.engine import open_state

    db = state_db or open_state(settings.db_url)
    query = CatalogQuery(settings, state_db=db)
    try:
        for project_id, tasks in exports:
            known = known_samples(query, _sample_ids_in(tasks))
            parsed = parse_export(tasks, known, users, project_id)
            report.parsed.verdicts.extend(parsed.verdicts)
            report.parsed.skipped.extend(parsed.skipped)
            report.parsed.tasks += parsed.tasks
            report.parsed.unannotated_tasks += parsed.unannotated_tasks
            report.parsed.cancelled += parsed.cancelled
        apply_verdicts(db, report.parsed.verdicts, report, by)
    finally:
        query.close()
        if state_db is None:
            db.close()
    return report


def pull(
    settings: Any, project_ids: Iterable[int] | None = None, *, by: Actor, client: Any = None, state_db: Any = None
) -> PullReport:
    """Export every recorded project (or ``project_ids``) from the server and import its annotations, as ``by`` (a
    curator or admin).

    Everything is downloaded before anything is written: a server that is down or refuses the token
    raises a LabelStudioError and leaves the state database untouched.
    """
    import time

    from curation.labelstudio.client import LabelStudioClient
    from curation.labelstudio.links import list_projects
    from db.engine import open_state

    require(by, "ls_pull")  # before the server hears of it
    started = time.perf_counter()
    client = client or LabelStudioClient.from_settings(settings)
    client.whoami()
    if project_ids is None:
        db = state_db or open_state(settings.db_url)
        try:
            project_ids = [p.id for p in list_projects(db)]
        finally:
            if state_db is None:
                db.close()
    ids = list(project_ids)
    users = client.user_names()
    exports = [(pid, client.export_tasks(pid)) for pid in ids]
    report = PullReport(projects=ids)
    _import(settings, exports, users, state_db, report, by)
    report.seconds = time.perf_counter() - started
    return report


def pull_file(settings: Any, path: str | Path, *, by: Actor, project_id: int | None = None,
              state_db: Any = None) -> PullReport:
    """Import a Label Studio JSON export file (no server needed) as ``by`` (a curator or admin). Annotators appear
    as labelstudio-user-<id> unless the export carries user objects with e-mails."""
    import time

    require(by, "ls_pull")
    started = time.perf_counter()
    tasks = load_export_file(path)
    report = PullReport()
    _import(settings, [(project_id, tasks)], None, state_db, report, by)
    report.seconds = time.perf_counter() - started
    return report
