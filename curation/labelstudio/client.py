"""The only door to a Label Studio server: label-studio-sdk 2.x calls with clear errors (down, bad token)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from curation.labelstudio.server import data_dir_for_home, read_credentials
from curation.settings import Settings

T = TypeVar("T")


class LabelStudioError(RuntimeError):
    """A Label Studio call failed; the message names the server, the call and what to do."""


class LabelStudioUnreachable(LabelStudioError):
    """Nothing answers at the configured URL."""


class LabelStudioAuthError(LabelStudioError):
    """The server refused the token (401/403)."""


@dataclass(frozen=True)
class Connection:
    """Where the server is and the token to use (a legacy token or a personal access token)."""

    url: str
    token: str
    token_source: str = "settings"


def connection_from_settings(settings: Settings) -> Connection:
    """URL and token from the settings; without a token, the one `make labelstudio` wrote under the data home."""
    url = settings.labelstudio_url.rstrip("/")
    if settings.labelstudio_token:
        return Connection(url, settings.labelstudio_token, "settings (LABEL_STUDIO_TOKEN)")
    data_dir = data_dir_for_home(settings.home)
    creds = read_credentials(data_dir)
    if creds is None:
        raise LabelStudioAuthError(
            f"no Label Studio token: set LABEL_STUDIO_TOKEN (or labelstudio_token in curator.toml), "
            f"or start the local server with `make labelstudio` (it writes {data_dir}/credentials.json)"
        )
    return Connection(url, creds.token, f"{data_dir}/credentials.json")


def _detail(exc: ApiError) -> str:
    body = exc.body
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("detail", "validation_errors") if body.get(k)]
        return ": ".join(parts)[:600] if parts else str(body)[:600]
    return str(body)[:600]


class LabelStudioClient:
    """Thin, typed wrapper over ``label_studio_sdk.LabelStudio`` with the calls push and pull need."""

    def __init__(self, connection: Connection, timeout: float = 120.0) -> None:
        self.connection = connection
        self.url = connection.url
        try:
            self.sdk = LabelStudio(base_url=connection.url, api_key=connection.token, timeout=timeout)
        except ApiError as exc:  # an expired personal access token is refused before any call
            raise self._translate(exc, "connect") from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> LabelStudioClient:
        return cls(connection_from_settings(settings))

    # --- error handling -------------------------------------------------------------------------
    def _translate(self, exc: Exception, what: str) -> LabelStudioError:
        if isinstance(exc, ApiError):
            if exc.status_code in (401, 403):
                return LabelStudioAuthError(
                    f"Label Studio at {self.url} refused the token from {self.connection.token_source} "
                    f"(HTTP {exc.status_code} on {what}: {_detail(exc)}). Use the legacy token or a personal access "
                    "token of a user of that server (Account & Settings in Label Studio)."
                )
            return LabelStudioError(f"Label Studio at {self.url}: {what} failed with HTTP {exc.status_code}: "
                                    f"{_detail(exc)}")  # fmt: skip
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
            return LabelStudioUnreachable(
                f"Label Studio is not reachable at {self.url} ({exc}). Start it with `make labelstudio` "
                "or point LABEL_STUDIO_URL at a running server."
            )
        if isinstance(exc, httpx.HTTPError):
            return LabelStudioUnreachable(f"Label Studio at {self.url}: {what} failed: {type(exc).__name__}: {exc}")
        return LabelStudioError(f"Label Studio at {self.url}: {what} failed: {exc}")

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (ApiError, httpx.HTTPError) as exc:
            raise self._translate(exc, what) from exc

    # --- calls ----------------------------------------------------------------------------------
    def whoami(self) -> dict[str, Any]:
        """The token's user ({id, email, username, ...}); the cheapest way to check URL and token."""
        # No retries here: a server that refuses connections should say so at once, not after backoffs.
        me = self._call("who am I", lambda: self.sdk.users.whoami(request_options={"max_retries": 0}))
        return {"id": me.id, "email": me.email, "username": me.username}

    def version(self) -> str:
        info = self._call("version", self.sdk.versions.get)
        return str(getattr(info, "release", "") or "")

    def projects(self) -> list[dict[str, Any]]:
        """Every project: id, title, task_number, num_tasks_with_annotations."""
        rows = self._call("list projects", lambda: list(self.sdk.projects.list(page_size=100)))
        return [
            {
                "id": p.id,
                "title": p.title,
                "task_number": getattr(p, "task_number", None),
                "annotated": getattr(p, "num_tasks_with_annotations", None),
            }
            for p in rows
        ]

    def find_project(self, title: str) -> int | None:
        rows = self._call("find project", lambda: list(self.sdk.projects.list(title=title, page_size=100)))
        ids = sorted(p.id for p in rows if p.title == title)  # the filter is a substring match
        return ids[0] if ids else None

    def ensure_project(self, title: str, label_config: str, description: str = "") -> tuple[int, bool]:
        """Reuse the project with this exact title or create it; returns (id, created)."""
        found = self.find_project(title)
        if found is not None:
            return found, False
        project = self._call(
            f"create project {title!r}",
            lambda: self.sdk.projects.create(title=title, label_config=label_config, description=description),
        )
        return int(project.id), True

    def ensure_local_storage(self, project_id: int, path: Path, title: str = "VST media") -> int:
        """One local-files storage record per project pointing at the media folder (never synced, never deleted:
        deleting it breaks the images)."""
        path_str = str(Path(path).resolve())
        existing = self._call(
            f"list storages of project {project_id}", lambda: self.sdk.import_storage.local.list(project=project_id)
        )
        for storage in existing:
            if str(storage.path).rstrip("/") == path_str.rstrip("/"):
                return int(storage.id)
        try:
            storage = self._call(
                f"create local-files storage for project {project_id}",
                lambda: self.sdk.import_storage.local.create(
                    project=project_id, path=path_str, use_blob_urls=True, title=title
                ),
            )
        except LabelStudioError as exc:
            if "LOCAL_FILES" in str(exc):
                raise LabelStudioError(
                    f"{exc}. The media folder comes from labelstudio_files_root (CURATOR_LS_FILES_ROOT); it must lie "
                    "under the folder the server serves: start the server with `make labelstudio`, which sets "
                    "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT to it"
                ) from exc
            raise
        return int(storage.id)

    def task_sample_ids(self, project_id: int) -> dict[str, int]:
        """sample_id (from task data) -> task id for every task in the project."""
        tasks = self._call(
            f"list tasks of project {project_id}",
            lambda: list(self.sdk.tasks.list(project=project_id, include="id,data", page_size=1000)),
        )
        out: dict[str, int] = {}
        for task in tasks:
            sid = (task.data or {}).get("sample_id")
            if sid is not None:
                out.setdefault(str(sid), int(task.id))
        return out

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> list[int]:
        """Import tasks (with predictions); returns the new task ids in request order."""
        if not tasks:
            return []
        resp = self._call(
            f"import {len(tasks)} tasks into project {project_id}",
            lambda: self.sdk.projects.import_tasks(id=project_id, request=tasks, return_task_ids=True),
        )
        ids = list(resp.task_ids or [])
        if len(ids) != len(tasks):
            raise LabelStudioError(
                f"Label Studio at {self.url}: imported {len(tasks)} tasks into project {project_id} "
                f"but got {len(ids)} ids back"
            )
        return [int(i) for i in ids]

    def export_tasks(self, project_id: int) -> list[dict[str, Any]]:
        """All tasks of a project in Label Studio's JSON export format (annotated or not)."""

        def download() -> list[dict[str, Any]]:
            chunks = self.sdk.projects.exports.download_sync(id=project_id, export_type="JSON", download_all_tasks=True)
            return json.loads(b"".join(chunks))

        try:
            return self._call(f"export project {project_id}", download)
        except json.JSONDecodeError as exc:
            raise LabelStudioError(
                f"Label Studio at {self.url}: export of project {project_id} is not JSON: {exc}"
            ) from exc

    def user_names(self) -> dict[int, str]:
        """User id -> e-mail (the annotator name a review carries)."""
        users = self._call("list users", lambda: list(self.sdk.users.list()))
        return {int(u.id): str(u.email or u.username or f"labelstudio-user-{u.id}") for u in users}

    def create_user(self, email: str, first_name: str = "", last_name: str = "") -> int:
        user = self._call(
            f"create user {email}",
            lambda: self.sdk.users.create(
                username=email.split("@")[0], email=email, first_name=first_name, last_name=last_name
            ),
        )
        return int(user.id)

    def create_annotation(self, task_id: int, result: list[dict[str, Any]], completed_by: int | None = None) -> int:
        """Annotate a task as a user would (tests and scripted reviews)."""
        kwargs: dict[str, Any] = {"result": result}
        if completed_by is not None:
            kwargs["completed_by"] = completed_by
        ann = self._call(f"annotate task {task_id}", lambda: self.sdk.annotations.create(id=task_id, **kwargs))
        return int(ann.id)

    def delete_project(self, project_id: int) -> None:
        self._call(f"delete project {project_id}", lambda: self.sdk.projects.delete(id=project_id))

