"""What the Label Studio page shows: is the server up, what each pushed project holds, push and pull reports."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from curation.labelstudio.client import (
    LabelStudioAuthError,
    LabelStudioClient,
    LabelStudioError,
    LabelStudioUnreachable,
    connection_from_settings,
)
from curation.labelstudio.configs import SampleKind
from curation.labelstudio.links import link_counts, list_projects
from curation.labelstudio.pull import ExportFileError, PullReport, pull_file
from curation.labelstudio.push import PushReport, project_title
from curation.labelstudio.server import is_healthy
from curation.review.actors import Actor
from curation.review.reviews import reviewed_samples_by_source
from curation.review.roles import require
from curation.settings import Settings

# The page checks the server on every run: a server that hangs must not hang the page.
STATUS_TIMEOUT_S = 5.0
START_COMMAND = "make labelstudio"
MAX_UPLOAD_NAME = 120
LS_TITLE_LIMIT = 50  # Label Studio refuses longer project titles (HTTP 400)
# The longest name a curator may give: each kind's project is titled '<name> · <kind title>'.
MAX_PROJECT_NAME = LS_TITLE_LIMIT - max(len(project_title("", k)) for k in SampleKind)


@dataclass(frozen=True)
class ServerStatus:
    """Whether the configured Label Studio answers and accepts our token; ``message`` is what to tell the curator."""

    url: str
    state: str  # up | down | no_token | refused | error
    message: str
    user: str | None = None
    version: str | None = None
    token_source: str | None = None
    projects: tuple[Mapping[str, Any], ...] = ()  # every project on the server (id, title, task_number, annotated)

    @property
    def up(self) -> bool:
        return self.state == "up"


def server_status(settings: Settings, timeout: float = STATUS_TIMEOUT_S) -> ServerStatus:
    """Ask the server who our token belongs to, its version and its projects; never raises."""
    url = settings.labelstudio_url.rstrip("/")
    try:
        connection = connection_from_settings(settings)
    except LabelStudioAuthError as exc:  # no token configured and no local server has written one yet
        # A missing server is the first thing to fix (starting the local one also writes the token): say so first.
        if not is_healthy(url, timeout=timeout):
            return ServerStatus(url, "down", f"Label Studio is not reachable at {url} (no Label Studio answers "
                                f"there). Start it with `{START_COMMAND}`, which also writes the token this page "
                                f"uses, or point LABEL_STUDIO_URL at a running server. No token either: {exc}")
        return ServerStatus(url, "no_token", str(exc))
    try:
        client = LabelStudioClient(connection, timeout=timeout)
        me = client.whoami()
        version = client.version()
        projects = tuple(client.projects())
    except LabelStudioUnreachable as exc:
        return ServerStatus(url, "down", str(exc))
    except LabelStudioAuthError as exc:
        return ServerStatus(url, "refused", str(exc))
    except LabelStudioError as exc:
        return ServerStatus(url, "error", str(exc))
    except Exception as exc:  # not Label Studio at that URL (HTML, odd JSON): a message, never a traceback
        return ServerStatus(url, "error", f"{url} does not answer like Label Studio: {type(exc).__name__}: {exc}")
    user = str(me.get("email") or me.get("username") or f"user {me.get('id')}")
    message = f"Label Studio {version or '(version unknown)'} at {url}, as {user} (token: {connection.token_source})"
    return ServerStatus(url, "up", message, user, version, connection.token_source, projects)


def project_link(url: str, project_id: int) -> str:
    """The project's data manager (its task list) in Label Studio."""
    return f"{url.rstrip('/')}/projects/{project_id}/data"


@dataclass(frozen=True)
class ProjectRow:
    """One project pushed from here: what the server holds and what came back."""

    project_id: int
    title: str
    kind: str
    linked: int  # samples whose task in this project we recorded at push time
    pulled: int  # samples with a review pulled from this project (not undone)
    link: str
    tasks: int | None = None  # None: the server was not reached, or the project is gone from it
    annotated: int | None = None
    on_server: bool | None = None  # None: not known (server not reached)

    def as_table_row(self) -> dict[str, Any]:
        where = {True: "yes", False: "gone", None: "?"}[self.on_server]
        kind = SampleKind(self.kind).title if self.kind in SampleKind._value2member_map_ else self.kind
        return {"project": self.title, "id": self.project_id, "kind": kind, "tasks": self.tasks,
                "annotated": self.annotated, "pulled": self.pulled, "linked samples": self.linked,
                "on server": where, "open in Label Studio": self.link}  # fmt: skip


def _linked_and_pulled(db: Any) -> tuple[dict[int, int], dict[int, int]]:
    """Per project id: recorded links, and distinct samples with a live review whose source is that project."""
    pulled: dict[int, int] = {}
    for source, n in reviewed_samples_by_source(db, "labelstudio:%").items():
        tail = source.split(":", 1)[1]
        if tail.isdigit():
            pulled[int(tail)] = n
    return link_counts(db), pulled


def file_imports(db: Any) -> int:
    """Samples with a live review imported from an export file (not tied to a project)."""
    return reviewed_samples_by_source(db, "labelstudio:file").get("labelstudio:file", 0)


def project_rows(db: Any, url: str, server_projects: Sequence[Mapping[str, Any]] | None) -> list[ProjectRow]:
    """The projects recorded in the state database (pushed from here), with the server's counts when
    ``server_projects`` is given (None: the server was not reached)."""
    linked, pulled = _linked_and_pulled(db)
    on_server = {int(p["id"]): p for p in server_projects} if server_projects is not None else None
    rows = []
    for p in list_projects(db):
        server = on_server.get(p.id) if on_server is not None else None
        rows.append(
            ProjectRow(
                project_id=p.id,
                title=p.title,
                kind=p.kind,
                linked=linked.get(p.id, 0),
                pulled=pulled.get(p.id, 0),
                link=project_link(url, p.id),
                tasks=server.get("task_number") if server else None,
                annotated=server.get("annotated") if server else None,
                on_server=None if on_server is None else server is not None,
            )
        )
    return rows


def other_projects(server_projects: Sequence[Mapping[str, Any]], rows: Sequence[ProjectRow]) -> int:
    """Projects on the server that were not pushed from this data home."""
    ours = {r.project_id for r in rows}
    return sum(1 for p in server_projects if int(p["id"]) not in ours)


def projects_figure(rows: Sequence[ProjectRow]) -> go.Figure:
    """Grouped bars per project: tasks, annotated, pulled (linked samples stand in for tasks when the server is
    not reached)."""
    names = [r.title for r in rows]
    series: list[tuple[str, list[int | None], str]] = []
    if any(r.tasks is not None for r in rows):
        series += [("tasks", [r.tasks for r in rows], "#9ecae9"), ("annotated", [r.annotated for r in rows], "#4c78a8")]
    else:
        series.append(("linked samples", [r.linked for r in rows], "#9ecae9"))
    series.append(("pulled", [r.pulled for r in rows], "#54a24b"))
    fig = go.Figure([
        go.Bar(name=name, x=names, y=values, marker_color=colour, textposition="outside", cliponaxis=False,
               text=[f"{v:,}" if v is not None else "" for v in values])
        for name, values, colour in series
    ])  # fmt: skip
    fig.update_layout(barmode="group", height=300, margin=dict(l=10, r=10, t=40, b=10), yaxis_title="samples",
                      title="Tasks, annotated and pulled per project", legend=dict(orientation="h", y=-0.2))
    return fig


# --------------------------------------------------------------------------------------------- push and pull reports


def push_rows(report: PushReport, url: str) -> list[dict[str, Any]]:
    """One row per project a push touched."""
    return [
        {"project": p.title, "id": p.project_id, "kind": p.kind.title, "created": p.created, "new tasks": p.new_tasks,
         "already there": p.already_there, "media files written": p.media_files_written,
         "media problems": p.media_problems, "new tasks by worst failure": p.severity_text(),
         "open in Label Studio": project_link(url, p.project_id)}
        for p in report.projects
    ]  # fmt: skip


def pull_numbers(report: PullReport) -> dict[str, int]:
    """The counts a curator reads first, in reading order."""
    c = report.parsed.counts
    return {
        "tasks read": c["tasks"],
        "annotations": c["annotations"],
        "reviews imported": report.added,
        "already pulled": report.already_pulled,
        "flags added": report.flags_added,
        "conflicts": len(report.conflicts),
        "not annotated yet": c["unannotated_tasks"],
        "skipped by annotators": c["cancelled"],
        "unknown samples": c["unknown_sample"],
        "malformed": c["malformed"],
    }


def conflict_rows(report: PullReport) -> list[dict[str, Any]]:
    return [
        {"sample": x.sample_id, "resolution": x.resolution, "local verdict": x.local_verdict,
         "local reviewer": x.local_reviewer, "Label Studio verdict": x.ls_verdict, "annotator": x.annotator,
         "local at": x.local_at.strftime("%Y-%m-%d %H:%M"), "annotated at": x.ls_at.strftime("%Y-%m-%d %H:%M"),
         "local source": x.local_source}
        for x in report.conflicts
    ]  # fmt: skip


def skipped_rows(report: PullReport) -> list[dict[str, Any]]:
    return [
        {"why": s.reason.replace("_", " "), "task": s.task_id, "annotation": s.annotation_id, "sample": s.sample_id,
         "details": s.message}
        for s in report.parsed.skipped
    ]  # fmt: skip


def _safe_name(name: str) -> str:
    base = Path(name or "export.json").name
    return (re.sub(r"[^A-Za-z0-9._-]+", "_", base) or "export.json")[:MAX_UPLOAD_NAME]


def import_export_bytes(settings: Settings, name: str, data: bytes, *, by: Actor, state_db: Any = None) -> PullReport:
    """Import an uploaded Label Studio JSON export as ``by`` (see pull.pull_file); errors name the uploaded file."""
    require(by, "ls_pull")  # before the upload is written anywhere
    with tempfile.TemporaryDirectory(prefix="ls-upload-") as tmp:
        path = Path(tmp) / _safe_name(name)
        path.write_bytes(data)
        try:
            return pull_file(settings, path, by=by, state_db=state_db)
        except ExportFileError as exc:
            raise ExportFileError(str(exc).replace(str(path), name or path.name)) from exc
