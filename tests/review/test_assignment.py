"""Stories of review queues: overlap, reservations that expire, blind review, conflicts and adjudication, undo, roles,
the race for the last place, and a queue of 100k samples (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select, update

from curation.review.assignment import (
    adjudicate,
    conflicts,
    create_queue,
    next_item,
    queue_progress,
    release,
    submit,
    verdicts_visible_to,
)
from curation.review.audit import table_history
from curation.review.errors import StateError
from curation.review.reviews import add_review, review_for, reviews_for
from curation.review.roles import PermissionDenied
from curation.review.undo import undo, undo_last
from db.engine import open_state
from db.models import AuditEntry, QueueItem, QueueVerdict, ReviewQueue, utcnow
from tests.support.actors import ADMIN, CURATOR, VIEWER, person

ANN, BOB, CY = (person(n, "annotator") for n in ("ann", "bob", "cy"))


def _samples(n: int, skill: str = "object_count") -> list[tuple[str, str]]:
    return [(str(uuid.uuid4()), skill) for _ in range(n)]


def _queue(db, n=4, **kw):
    samples = _samples(n)
    q = create_queue(db, ADMIN, f"queue {uuid.uuid4().hex[:8]}", samples, "/Browse?skill=object_count", **kw)
    return q, [sid for sid, _ in samples]


def _rows(db, model) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_overlap_two_with_three_people_gives_each_sample_two_verdicts_by_different_people(db):
    q, ids = _queue(db, n=5, overlap=2)
    verdicts: dict[str, list[str]] = {sid: [] for sid in ids}
    told_nothing_left = set()
    while len(told_nothing_left) < 3:
        for p in (ANN, BOB, CY):
            r = next_item(db, p, q.id)
            if r is None:
                told_nothing_left.add(p.who)
                continue
            assert r.who == p.who and r.sample_id in verdicts
            done = submit(db, p, q.id, r.sample_id, "approve")
            verdicts[r.sample_id].append(p.who)
            assert done.outcome == ("agreed" if len(verdicts[r.sample_id]) == 2 else "waiting")

    assert all(len(whos) == 2 and len(set(whos)) == 2 for whos in verdicts.values())
    # queue order: the first sample was the first taken
    assert next(iter(verdicts)) == ids[0]
    p = queue_progress(db, q.id)
    assert (p.n_samples, p.n_done, p.n_waiting, p.n_conflicts, p.n_adjudicated) == (5, 5, 0, 0, 0)
    assert sum(p.per_reviewer.values()) == 10
    for sid, whos in verdicts.items():  # the reviews table holds the settled result only: one review per sample
        [review] = reviews_for(db, sid)
        assert (review.verdict, review.reviewer, review.source) == ("approve", ", ".join(whos), f"queue:{q.id}")
        assert review.note == f"agreed in queue {q.name}"
    # whoever asks now, including someone new, is told nothing is left
    assert next_item(db, person("dee", "annotator"), q.id) is None


def test_next_item_gives_back_my_live_reservation_and_release_frees_it(db):
    q, ids = _queue(db, n=3, overlap=1)
    first = next_item(db, ANN, q.id)
    assert first.sample_id == ids[0] and next_item(db, ANN, q.id) == first
    assert next_item(db, BOB, q.id).sample_id == ids[1]  # ann's place is taken (overlap 1)
    release(db, ANN, q.id, ids[0])
    assert next_item(db, CY, q.id).sample_id == ids[0]


def test_a_reservation_expires_and_its_place_goes_to_someone_else(db):
    q, ids = _queue(db, n=2, overlap=1, reservation_minutes=30)
    t0 = utcnow()
    assert next_item(db, ANN, q.id, now=t0).sample_id == ids[0]
    assert next_item(db, BOB, q.id, now=t0).sample_id == ids[1]
    assert next_item(db, CY, q.id, now=t0 + timedelta(minutes=29)) is None  # both places held
    later = t0 + timedelta(minutes=31)
    # cy takes ann's expired place; bob, whose own reservation expired too, gets his back as a new one
    assert next_item(db, CY, q.id, now=later).sample_id == ids[0]
    assert next_item(db, BOB, q.id, now=later).sample_id == ids[1]
    with pytest.raises(StateError, match="all 1 places on it are taken"):
        submit(db, ANN, q.id, ids[0], "approve", now=later)
    assert submit(db, CY, q.id, ids[0], "reject", now=later).outcome == "agreed"


def test_an_expired_reservation_nobody_took_can_still_be_submitted(db):
    q, ids = _queue(db, n=1, overlap=1, reservation_minutes=5)
    t0 = utcnow()
    next_item(db, ANN, q.id, now=t0)
    done = submit(db, ANN, q.id, ids[0], "approve", now=t0 + timedelta(hours=2))
    assert done.outcome == "agreed" and review_for(db, ids[0]).reviewer == "ann"


def test_a_viewer_cannot_create_take_or_submit_and_nothing_is_written(db):
    q, ids = _queue(db, n=2)
    before = (_rows(db, ReviewQueue), _rows(db, QueueItem), _rows(db, QueueVerdict), _rows(db, AuditEntry))
    with pytest.raises(PermissionDenied, match="may not assign"):
        create_queue(db, VIEWER, "mine", _samples(2), "/Browse")
    with pytest.raises(PermissionDenied, match="may not assign"):
        create_queue(db, CURATOR, "mine", _samples(2), "/Browse")
    with pytest.raises(PermissionDenied, match="vera@example.com has the role 'viewer'"):
        next_item(db, VIEWER, q.id)
    for verdict, fix in (("approve", {}), ("fix", {"fixed_answer": "3"})):
        with pytest.raises(PermissionDenied):
            submit(db, VIEWER, q.id, ids[0], verdict, **fix)
    with pytest.raises(PermissionDenied):
        release(db, VIEWER, q.id, ids[0])
    assert (_rows(db, ReviewQueue), _rows(db, QueueItem), _rows(db, QueueVerdict), _rows(db, AuditEntry)) == before


def test_creating_a_queue_is_audited_and_its_name_unique(db):
    q, ids = _queue(db, n=3)
    [entry] = table_history(db, "review_queues")
    assert (entry.action, entry.who, entry.row_id, entry.new_value["samples"]) == ("queue_created", ADMIN.who, q.id, 3)
    with pytest.raises(StateError, match="exists already"):
        create_queue(db, ADMIN, q.name, _samples(1), "/Browse")
    with pytest.raises(StateError, match="matches no sample"):
        create_queue(db, ADMIN, "empty", [], "/Browse?skill=none")


def test_blind_review_shows_others_verdicts_only_after_mine(db):
    q, ids = _queue(db, n=1, overlap=2, blind=True)
    sid = next_item(db, ANN, q.id).sample_id
    submit(db, ANN, q.id, sid, "fix", fixed_answer="three", note="ann counts 3")
    assert next_item(db, BOB, q.id).sample_id == sid
    assert verdicts_visible_to(db, BOB, q.id, sid) == []  # bob judges blind
    assert [v.who for v in verdicts_visible_to(db, ANN, q.id, sid)] == ["ann"]
    assert [v.who for v in verdicts_visible_to(db, ADMIN, q.id, sid)] == ["ann"]
    assert review_for(db, sid) is None  # nothing pending leaks into the reviews Browse and Sample show
    submit(db, BOB, q.id, sid, "fix", fixed_answer=" three ")
    shown = verdicts_visible_to(db, BOB, q.id, sid)
    assert [(v.who, v.verdict, v.fixed_answer) for v in shown] == [("ann", "fix", "three"), ("bob", "fix", " three ")]
    assert review_for(db, sid).fixed_answer == "three"
    assert [v.who for v in verdicts_visible_to(db, CY, q.id, sid)] == ["ann", "bob"]  # settled: public anyway


def test_an_open_queue_shows_verdicts_to_everyone(db):
    q, ids = _queue(db, n=1, overlap=2, blind=False)
    submit(db, ANN, q.id, ids[0], "approve")
    assert [v.who for v in verdicts_visible_to(db, BOB, q.id, ids[0])] == ["ann"]


def test_a_disagreement_is_a_conflict_until_an_admin_adjudicates(db):
    q, ids = _queue(db, n=2, overlap=2)
    sid = ids[0]
    assert submit(db, ANN, q.id, sid, "approve").outcome == "waiting"
    with pytest.raises(StateError, match="only 1 of its 2 verdicts are in"):
        adjudicate(db, ADMIN, q.id, sid, "approve")
    done = submit(db, BOB, q.id, sid, "reject", note="the box is off")
    assert (done.outcome, done.review) == ("conflict", None)
    # two fixes with different text disagree too: one review could not carry both
    submit(db, ANN, q.id, ids[1], "fix", fixed_answer="2")
    assert submit(db, CY, q.id, ids[1], "fix", fixed_answer="3").outcome == "conflict"
    found = conflicts(db, q.id)
    assert [c.sample_id for c in found] == [sid, ids[1]] and [c.sample_id for c in conflicts(db)] == [sid, ids[1]]
    assert [(v.who, v.verdict) for v in found[0].verdicts] == [("ann", "approve"), ("bob", "reject")]
    assert review_for(db, sid) is None
    assert queue_progress(db, q.id).n_conflicts == 2
    assert next_item(db, CY, q.id) is None  # a conflict takes no third verdict

    with pytest.raises(PermissionDenied, match="may not adjudicate"):
        adjudicate(db, CURATOR, q.id, sid, "reject")
    current = adjudicate(db, ADMIN, q.id, sid, "reject", note="bob is right")
    assert (current.verdict, current.reviewer, current.source, current.note) == (
        "reject", ADMIN.who, f"adjudication:{q.id}", "bob is right")  # fmt: skip
    assert [c.sample_id for c in conflicts(db, q.id)] == [ids[1]]
    p = queue_progress(db, q.id)
    assert (p.n_done, p.n_adjudicated, p.n_conflicts, p.n_waiting) == (1, 1, 1, 0)


def test_undo_takes_a_verdict_back_before_settlement_and_is_refused_after(db):
    q, ids = _queue(db, n=2, overlap=2)
    sid = next_item(db, ANN, q.id).sample_id
    first = submit(db, ANN, q.id, sid, "reject")
    undone = undo_last(db, ANN)
    assert (undone.undoes_id, undone.table_name, undone.old_value["verdict"]) == (first.audit_id, "queue_verdicts",
                                                                                  "reject")  # fmt: skip
    assert verdicts_visible_to(db, ADMIN, q.id, sid) == [] and queue_progress(db, q.id).per_reviewer == {}
    # ann may judge it again, and bob's agreeing verdict settles it
    assert next_item(db, ANN, q.id).sample_id == sid
    again = submit(db, ANN, q.id, sid, "approve")
    assert submit(db, BOB, q.id, sid, "approve").outcome == "agreed"
    with pytest.raises(StateError, match=r"is settled \(agreed\).*an admin adjudicates it instead"):
        undo(db, again.audit_id, ANN)
    with pytest.raises(StateError, match="gave a verdict on it already|settled already"):
        submit(db, ANN, q.id, sid, "reject")
    assert review_for(db, sid).verdict == "approve"
    # bob's agreeing verdict wrote the settled review as him: neither undo_last nor an undo by id takes that review
    # back (the item would stay settled with no review); an admin adjudicates again instead.
    with db.read() as s:
        settled = s.scalar(select(AuditEntry.id).where(AuditEntry.table_name == "reviews",
                                                       AuditEntry.sample_id == sid))
    with pytest.raises(StateError, match=r"settled result of a review queue \(queue:\d+\); an admin adjudicates"):
        undo(db, settled, BOB)
    with pytest.raises(StateError, match="an admin adjudicates it instead"):  # his verdict, not the review
        undo_last(db, BOB)
    with db.read() as s:  # the queue's creation is no sample change: the message says what to do instead
        created = s.scalar(select(AuditEntry.id).where(AuditEntry.action == "queue_created"))
    with pytest.raises(StateError, match="not a sample; close the queue on the Team page instead"):
        undo(db, created, ADMIN)
    assert review_for(db, sid).verdict == "approve"


def test_an_admin_overrules_a_settled_agreement(db):
    q, ids = _queue(db, n=1, overlap=2)
    submit(db, ANN, q.id, ids[0], "approve")
    submit(db, BOB, q.id, ids[0], "approve")
    current = adjudicate(db, ADMIN, q.id, ids[0], "fix", fixed_answer="4", note="both missed the fourth chair")
    assert (current.verdict, current.fixed_answer, current.source) == ("fix", "4", f"adjudication:{q.id}")
    assert [r.source for r in reviews_for(db, ids[0])] == [f"queue:{q.id}", f"adjudication:{q.id}"]
    p = queue_progress(db, q.id)
    assert (p.n_done, p.n_adjudicated) == (1, 1)


def _fail_once(db, statement_prefix: str):
    """The first statement starting with ``statement_prefix`` fails, as if the process died right there."""
    failed = []

    def before(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith(statement_prefix) and not failed:
            failed.append(statement)
            raise RuntimeError("killed here")

    event.listen(db.engine, "before_cursor_execute", before)
    return before


@pytest.mark.parametrize("dies_at", ["INSERT INTO REVIEWS", "INSERT INTO AUDIT_LOG", "UPDATE QUEUE_ITEMS"])
def test_a_death_while_settling_leaves_neither_the_settlement_nor_the_review(db, dies_at):
    """The k-th verdict, the settlement and the review are one transaction: a death at any of their statements leaves
    none of them (no settled item without its review, even for the last sample of a queue), and the retry settles."""
    q, ids = _queue(db, n=1, overlap=2)
    submit(db, ANN, q.id, ids[0], "approve")
    hook = _fail_once(db, dies_at)
    try:
        with pytest.raises(RuntimeError, match="killed here"):
            submit(db, BOB, q.id, ids[0], "approve")
    finally:
        event.remove(db.engine, "before_cursor_execute", hook)
    p = queue_progress(db, q.id)
    assert (p.n_done, p.per_reviewer) == (0, {ANN.who: 1}) and reviews_for(db, ids[0]) == []
    assert submit(db, BOB, q.id, ids[0], "approve").outcome == "agreed"  # bob tries again
    [review] = reviews_for(db, ids[0])
    assert (review.reviewer, review.source) == ("ann, bob", f"queue:{q.id}")
    with db.read() as s:
        assert s.scalar(select(QueueItem.review_id).where(QueueItem.queue_id == q.id)) == review.id


def test_one_verdict_per_person_and_sample(db):
    q, ids = _queue(db, n=1, overlap=3)
    submit(db, ANN, q.id, ids[0], "approve")
    with pytest.raises(StateError, match="ann gave a verdict on it already"):
        submit(db, ANN, q.id, ids[0], "reject")
    assert next_item(db, ANN, q.id) is None


def _pause_inside_write(engine, statement_prefix: str, inside: threading.Event, go_on: threading.Event):
    """The first statement starting with ``statement_prefix`` waits, inside its write transaction, until ``go_on``."""
    paused = []

    def before(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith(statement_prefix) and not paused:
            paused.append(statement)
            inside.set()
            assert go_on.wait(30)

    event.listen(engine, "before_cursor_execute", before)
    return before


def _announce_lock_wait(engine, asking: threading.Event):
    """Set ``asking`` when a transaction asks for the write lock (SQLite's BEGIN IMMEDIATE, PostgreSQL's advisory
    lock): from there on it proceeds only once the holder commits."""

    def before(conn, cursor, statement, *args):
        if "BEGIN IMMEDIATE" in statement.upper() or "PG_ADVISORY_XACT_LOCK" in statement.upper():
            asking.set()

    event.listen(engine, "before_cursor_execute", before)
    return before


def test_two_people_racing_for_the_last_place_one_gets_it(db):
    q, ids = _queue(db, n=1, overlap=2)
    submit(db, CY, q.id, ids[0], "approve")  # one place left
    inside, go_on, bob_asks = threading.Event(), threading.Event(), threading.Event()
    got: dict[str, object] = {}
    with open_state(db.url) as bobs_db:  # bob works through another engine, as another server process would
        pause = _pause_inside_write(db.engine, "INSERT INTO QUEUE_VERDICTS", inside, go_on)
        announce = _announce_lock_wait(bobs_db.engine, bob_asks)
        ann = threading.Thread(target=lambda: got.update(ann=next_item(db, ANN, q.id)))
        bob = threading.Thread(target=lambda: got.update(bob=next_item(bobs_db, BOB, q.id)))
        try:
            ann.start()
            assert inside.wait(30)  # ann found the free place and is about to take it
            bob.start()  # bob asks for the next sample at exactly that moment
            assert bob_asks.wait(30)
            bob.join(0.5)
            assert bob.is_alive() and "bob" not in got  # he waits for ann's transaction, he never reads beside it
        finally:
            go_on.set()
            ann.join(30)
            bob.join(30)
            event.remove(db.engine, "before_cursor_execute", pause)
            event.remove(bobs_db.engine, "before_cursor_execute", announce)
    assert got["ann"].sample_id == ids[0] and got["bob"] is None
    with pytest.raises(StateError, match="all 2 places on it are taken"):
        submit(db, BOB, q.id, ids[0], "approve")  # nor can he submit without a place
    assert submit(db, ANN, q.id, ids[0], "approve").outcome == "agreed"


@pytest.mark.slow
def test_a_queue_of_100k_samples_hands_out_the_first_open_one_deep_in_the_queue(db):
    n = 100_000
    q, ids = _queue(db, n=n, overlap=2)
    assert queue_progress(db, q.id).n_samples == n
    # every item but the last 3 settled, written directly (100k submits are bench/queue_scale.py's business)
    review_id = add_review(db, "elsewhere", "approve", ADMIN).review_id
    with db.write() as s:
        s.execute(update(QueueItem).where(QueueItem.queue_id == q.id, QueueItem.position <= n - 3)
                  .values(settled_at=utcnow(), settlement="agreed", verdict="approve", reviewer="earlier",
                          settle_count=1, review_id=review_id))  # fmt: skip
    assert submit(db, ANN, q.id, ids[n - 3], "approve").outcome == "waiting"
    assert next_item(db, ANN, q.id).sample_id == ids[n - 2]
    assert next_item(db, BOB, q.id).sample_id == ids[n - 3]
    p = queue_progress(db, q.id)
    assert (p.n_done, p.n_waiting, p.per_reviewer) == (n - 3, 3, {"ann": 1})
