"""Who may start and cancel check runs: curators and admins; a viewer's or an annotator's try is refused by the domain
layer itself (whatever the page shows) and leaves no job behind, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import pytest

from curation.jobs.queue import cancel_job, claim_next_job, get_job, list_jobs
from curation.jobs.run import queue_checks, run_checks
from curation.presenters.checks import job_view, run_in_process
from curation.review.roles import PermissionDenied
from tests.jobs.conftest import FAST
from tests.support.actors import ADMIN, ANNOTATOR, CURATOR, VIEWER

REFUSED = pytest.mark.parametrize("actor", [VIEWER, ANNOTATOR], ids=["viewer", "annotator"])


@REFUSED
def test_a_viewer_or_an_annotator_cannot_queue_or_run_checks(home, db, db_url, actor):
    settings = replace(home, db_url=db_url)
    with pytest.raises(PermissionDenied, match=f"{actor.who} has the role '{actor.role}'.*'curator'"):
        queue_checks(settings, "format.placeholders", db=db, by=actor, **FAST)
    with pytest.raises(PermissionDenied):
        run_checks(settings, "format.placeholders", db=db, by=actor, **FAST)
    with pytest.raises(PermissionDenied):  # "Run here now" on the Checks page
        run_in_process(settings, ["format.placeholders"], lambda job: None, db=db, by=actor, **FAST)
    assert list_jobs(db) == []  # no job row: a worker has nothing to pick up
    assert not any(home.results_dir.rglob("*"))  # and no results folder


@REFUSED
def test_a_viewer_or_an_annotator_cannot_cancel_a_run(home, db, actor):
    queued = queue_checks(home, "format.placeholders", db=db, by=CURATOR, **FAST)
    running = queue_checks(home, "format.placeholders", db=db, by=ADMIN, **FAST)
    assert claim_next_job(db, "w1").id == queued.id
    for job in (queued, running):
        with pytest.raises(PermissionDenied, match="may not run checks"):
            cancel_job(db, job.id, by=actor)
    assert (get_job(db, queued.id).state, get_job(db, running.id).state) == ("running", "queued")
    assert "cancelled_by" not in get_job(db, queued.id).params


def test_a_curator_queues_and_cancels_and_the_run_says_who(home, db):
    job = queue_checks(home, "format.placeholders", db=db, by=CURATOR, **FAST)
    assert job.params["queued_by"] == CURATOR.who == "cy@example.com"
    assert cancel_job(db, job.id, by=ADMIN) is True
    assert cancel_job(db, job.id, by=ADMIN) is False  # already cancelled: nothing to do, nothing recorded again
    view = job_view(get_job(db, job.id))
    assert (view.state, view.queued_by, view.cancelled_by) == ("cancelled", "cy@example.com", "ada@example.com")
