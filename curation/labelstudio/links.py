"""Which Label Studio project and task shows which sample, recorded by a push; pulls map annotations back by these."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select

from curation.review.errors import StateError
from db.engine import StateDB, to_record
from db.models import LSLink, LSProject, utcnow


@dataclass(frozen=True)
class ProjectRecord:
    """A Label Studio project we pushed to (its id is Label Studio's)."""

    id: int
    title: str
    kind: str
    url: str | None
    created_at: datetime


@dataclass(frozen=True)
class TaskLink:
    """One pushed task: the sample it shows in a project."""

    project_id: int
    task_id: int
    sample_id: str
    kind: str
    pushed_at: datetime


def record_project(db: StateDB, project_id: int, title: str, kind: str, url: str | None = None) -> ProjectRecord:
    """Remember a Label Studio project (created or found); recording it again updates title, kind and url."""
    with db.write() as s:
        project = s.get(LSProject, project_id)
        if project is None:
            project = LSProject(id=project_id, title=title, kind=kind, url=url)
            s.add(project)
        else:
            project.title, project.kind, project.url = title, kind, url
        s.flush()
        return to_record(ProjectRecord, project)


def list_projects(db: StateDB, kind: str | None = None) -> list[ProjectRecord]:
    with db.read() as s:
        q = select(LSProject)
        if kind is not None:
            q = q.where(LSProject.kind == kind)
        return [to_record(ProjectRecord, p) for p in s.scalars(q.order_by(LSProject.id))]


def record_links(db: StateDB, project_id: int, links: Mapping[str, int] | Iterable[tuple[str, int]]) -> int:
    """Record pushed tasks as sample_id -> task_id for a recorded project; returns how many links were new.

    A sample pushed again to the same project points at its newest task.
    """
    pairs = list(links.items()) if isinstance(links, Mapping) else list(links)
    with db.write() as s:
        project = s.get(LSProject, project_id)
        if project is None:
            raise StateError(f"links: field 'project_id' is {project_id}, not a recorded project; record_project first")
        existing = {link.sample_id: link for link in s.scalars(select(LSLink).where(LSLink.project_id == project_id))}
        now = utcnow()
        new_rows: list[dict[str, Any]] = []
        for sample_id, task_id in pairs:
            link = existing.get(sample_id)
            if link is None:
                new_rows.append(
                    {
                        "project_id": project_id,
                        "task_id": int(task_id),
                        "sample_id": sample_id,
                        "kind": project.kind,
                        "pushed_at": now,
                    }
                )
            elif link.task_id != int(task_id):
                link.task_id, link.pushed_at = int(task_id), now
        s.flush()
        if new_rows:
            s.execute(insert(LSLink), new_rows)
        return len(new_rows)


def links_for_project(db: StateDB, project_id: int) -> list[TaskLink]:
    with db.read() as s:
        q = select(LSLink).where(LSLink.project_id == project_id).order_by(LSLink.task_id)
        return [to_record(TaskLink, link) for link in s.scalars(q)]


def links_for_sample(db: StateDB, sample_id: str) -> list[TaskLink]:
    with db.read() as s:
        q = select(LSLink).where(LSLink.sample_id == sample_id).order_by(LSLink.project_id)
        return [to_record(TaskLink, link) for link in s.scalars(q)]


def link_counts(db: StateDB) -> dict[int, int]:
    """Recorded task links per project id."""
    with db.read() as s:
        rows = s.execute(select(LSLink.project_id, func.count()).group_by(LSLink.project_id)).all()
    return {int(project): int(n) for project, n in rows}
