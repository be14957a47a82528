"""Who may push to and pull from Label Studio: curators and admins. A viewer's or an annotator's push, pull or file
import is refused by the domain layer before Label Studio hears a word (an HTTP listener standing in for the server
records every request) and before the state database changes, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from curation.ingest.run import ingest
from curation.labelstudio.client import LabelStudioAuthError
from curation.labelstudio.configs import verdict_result
from curation.labelstudio.pull import pull, pull_file
from curation.labelstudio.push import push
from curation.presenters.labelstudio import import_export_bytes
from curation.query.filters import FilterSpec
from curation.review.audit import history
from curation.review.flags import flags_for
from curation.review.reviews import review_for
from curation.review.roles import PermissionDenied
from db.models import AuditEntry, Flag, LSLink, LSProject, Review
from tests.support.actors import ANNOTATOR, CURATOR, VIEWER

WHEN = "2026-01-02T03:04:05Z"


@dataclass
class Listener:
    url: str
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def listener() -> Iterator[Listener]:
    """Answers every request with 401 (as Label Studio does to a token it does not know) and records it."""
    seen = Listener("")

    class Handler(BaseHTTPRequestHandler):
        def _refuse(self) -> None:
            seen.requests.append(f"{self.command} {self.path}")
            body = b'{"detail": "Invalid token."}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _refuse

        def log_message(self, *args) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # port 0: a free port the system picks
    seen.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def settings(home, small_tree, db_url, listener, tmp_path):
    ingest([small_tree], home, progress=False)
    return replace(home, db_url=db_url, labelstudio_url=listener.url, labelstudio_token="0" * 40,
                   labelstudio_files_root=tmp_path / "ls-files")


def export_file(tmp_path):
    """A Label Studio export: ada says id-0 is wrong (with a fix), id-1 has bad media (a reject and a flag)."""
    path = tmp_path / "project-7.json"
    ada = {"id": 3, "email": "ada@example.com"}
    path.write_text(json.dumps([
        {"id": 1, "project": 7, "data": {"sample_id": "id-0"}, "annotations": [
            {"id": 10, "completed_by": ada, "result": verdict_result("wrong answer", fixed_answer="1.9"),
             "created_at": WHEN, "updated_at": WHEN}]},
        {"id": 2, "project": 7, "data": {"sample_id": "id-1"}, "annotations": [
            {"id": 20, "completed_by": ada, "result": verdict_result("bad media"), "created_at": WHEN,
             "updated_at": WHEN}]},
    ]))  # fmt: skip
    return path


def state_rows(db) -> dict[str, int]:
    with db.read() as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m))
                for m in (Review, Flag, AuditEntry, LSProject, LSLink)}


@pytest.mark.parametrize("actor", [VIEWER, ANNOTATOR], ids=["viewer", "annotator"])
def test_a_viewer_or_an_annotator_cannot_push_pull_or_import(settings, db, listener, tmp_path, actor):
    export = export_file(tmp_path)
    before = state_rows(db)
    refusals = {
        "push": lambda: push(settings, FilterSpec(), by=actor, state_db=db),
        "push (its own state connection)": lambda: push(settings, FilterSpec(flagged=True), by=actor),
        "pull": lambda: pull(settings, by=actor, state_db=db),
        "pull of one project": lambda: pull(settings, [7], by=actor),
        "import a file": lambda: pull_file(settings, export, by=actor, state_db=db),
        "upload a file (Label Studio page)": lambda: import_export_bytes(settings, "p.json", export.read_bytes(),
                                                                         by=actor, state_db=db),
    }
    refused = f"{actor.who} has the role '{actor.role}', which may not ls p(ush|ull)"
    for what, attempt in refusals.items():
        with pytest.raises(PermissionDenied, match=refused):
            attempt()
        assert listener.requests == [], what  # Label Studio never heard of it
    assert state_rows(db) == before == {"reviews": 0, "flags": 0, "audit_log": 0, "ls_projects": 0, "ls_links": 0}
    assert not settings.labelstudio_files_root.exists()  # no media copied for tasks


def test_a_curators_push_and_pull_reach_the_server_and_a_pulled_review_is_the_annotators(settings, db, listener,
                                                                                          tmp_path):
    with pytest.raises(LabelStudioAuthError):  # the listener refuses the token: it did hear the push
        push(settings, FilterSpec(), by=CURATOR, state_db=db)
    with pytest.raises(LabelStudioAuthError):
        pull(settings, by=CURATOR, state_db=db)
    assert len(listener.requests) == 2

    report = pull_file(settings, export_file(tmp_path), by=CURATOR, state_db=db)
    assert (report.added, report.flags_added) == (2, 1)
    fixed = review_for(db, "id-0")
    assert (fixed.verdict, fixed.fixed_answer, fixed.reviewer) == ("fix", "1.9", "ada@example.com")
    assert {e.who for e in history(db, "id-0")} == {CURATOR.who}  # the audit log names who pulled it
    # A reject's flag is the annotator's too (two annotators' rejects stay two flags); its audit names the puller.
    assert [(f.reason, f.who) for f in flags_for(db, "id-1")] == [("bad_media", "ada@example.com")]
    assert {e.who for e in history(db, "id-1")} == {CURATOR.who}
