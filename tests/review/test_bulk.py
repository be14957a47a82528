"""Stories of bulk actions: a curator flags, approves or rejects a whole filter (or the rows she ticked) in one go,
sees how many samples changed, and takes the whole batch back with one undo; nothing of anyone else's moves."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from curation.review.audit import history
from curation.review.bulk import filter_sample_ids, flag_samples, review_samples, undo_batch
from curation.review.errors import StateError
from curation.review.flags import add_flag, flags_for
from curation.review.reviews import add_review, review_for
from curation.review.state_tables import state_table
from curation.review.undo import undo
from db.models import AuditEntry
from tests.support.actors import person
from tests.support.state_db import REPO, sqlite_only

N = 12_000  # more than two chunks of every statement


def uuids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def audit_count(db) -> int:
    with db.read() as s:
        return s.query(AuditEntry).count()


def test_a_bulk_flag_is_one_batch_that_one_undo_takes_back_whole(db):
    ids = uuids(N)
    add_flag(db, ids[0], "wrong_answer", "already", person("ann"))  # hers already: kept, not doubled
    add_flag(db, ids[1], "wrong_answer", None, person("bob"))  # bob's: untouched by her batch and its undo

    batch = flag_samples(db, iter(ids), "wrong_answer", person("ann"), note="boxes in the wrong image")
    assert batch.samples == N - 1 and batch.who == "ann" and batch.action == "flag_added"
    table = state_table(db)
    assert table.num_rows == N
    assert [(f.who, f.note) for f in flags_for(db, ids[5])] == [("ann", "boxes in the wrong image")]
    assert [f.note for f in flags_for(db, ids[0])] == ["already"]

    assert undo_batch(db, batch, person("ann")) == N - 1
    assert [(f.who, f.note) for f in flags_for(db, ids[0])] == [("ann", "already")]  # not part of the batch
    assert [f.who for f in flags_for(db, ids[1])] == ["bob"]
    assert flags_for(db, ids[5]) == [] and state_table(db).num_rows == 2
    assert [(e.action, e.who) for e in history(db, ids[5])] == [("flag_added", "ann"), ("undo", "ann")]
    undo_entry = history(db, ids[5])[-1]
    assert undo_entry.old_value["note"] == "boxes in the wrong image" and undo_entry.new_value is None
    assert undo_batch(db, batch, person("ann")) == 0  # a second undo finds nothing left to take back


def test_bulk_approve_keeps_an_earlier_fix_and_undo_brings_back_each_samples_own_state(db):
    ids = uuids(N)
    add_review(db, ids[0], "fix", person("bob"), fixed_answer="3.5")
    add_review(db, ids[1], "reject", person("carl"))
    add_review(db, ids[2], "approve", person("ann"))  # already approved by her: left alone

    batch = review_samples(db, ids, "approve", person("ann"))
    assert batch.samples == N - 1
    fixed = review_for(db, ids[0])
    assert (fixed.verdict, fixed.reviewer, fixed.fixed_answer, fixed.n_reviews) == ("approve", "ann", "3.5", 2)
    assert review_for(db, ids[2]).n_reviews == 1
    event = history(db, ids[1])[-1]
    assert event.old_value == {"verdict": "reject", "reviewer": "carl"}
    assert event.new_value == {"verdict": "approve", "reviewer": "ann"}
    with pytest.raises(StateError, match="bulk review is 'approve' or 'reject'"):
        review_samples(db, ids[:3], "fix", person("ann"))

    assert undo_batch(db, batch, person("ann")) == N - 1
    back = review_for(db, ids[0])
    assert (back.verdict, back.reviewer, back.fixed_answer) == ("fix", "bob", "3.5")
    assert review_for(db, ids[1]).verdict == "reject" and review_for(db, ids[2]).reviewer == "ann"
    assert review_for(db, ids[9]) is None
    assert history(db, ids[9])[-1].new_value is None  # unreviewed again


def test_an_event_undone_alone_is_skipped_by_the_batch_undo(db):
    ids = uuids(20)
    batch = review_samples(db, ids, "reject", person("ann"))
    first = history(db, ids[0])[0]
    undo(db, first.id, person("ann"))
    assert undo_batch(db, batch, person("bob")) == 19
    assert all(review_for(db, i) is None for i in ids)
    assert [e.who for e in history(db, ids[3])] == ["ann", "bob"]


def test_a_whole_filter_is_read_from_the_catalog_in_batches(demo_home, db):
    q = CatalogQuery(demo_home)
    try:
        spec = FilterSpec(skills=["si_distance", "si_3d_detection"])
        batch = flag_samples(db, filter_sample_ids(q, spec, batch_rows=7), "bad_geometry", person("ann"))
        assert batch.samples == q.count(spec) > 7
        flagged = set(state_table(db).column("sample_id").to_pylist())
        assert flagged == {r["sample_id"] for r in q.page(spec, limit=1000).rows}
    finally:
        q.close()


KILLED = """
import os, signal, sys, uuid
from curation.review.bulk import flag_samples
from db.engine import open_state
from tests.support.actors import person

def ids():
    for i in range(200_000):
        if i == 120_000:  # a chunk of ids already written, inside the batch's transaction
            os.kill(os.getpid(), signal.SIGKILL)
        yield str(uuid.uuid4())

with open_state(sys.argv[1]) as db:
    flag_samples(db, ids(), "duplicate", person("ann"))
"""


@sqlite_only
def test_a_bulk_flag_killed_half_way_leaves_nothing_behind(db, db_url):
    before = audit_count(db)
    proc = subprocess.run([sys.executable, "-c", KILLED, db_url], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    assert state_table(db).num_rows == 0 and audit_count(db) == before
    batch = flag_samples(db, uuids(10), "duplicate", person("ann"))  # and the database takes the next batch as usual
    assert batch.samples == 10
