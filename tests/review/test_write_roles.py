"""Every review write checks the acting person's role in the domain layer itself (SQLite and PostgreSQL): a viewer's
flag, unflag, review, fix, undo and bulk action are refused with nothing written, an annotator works one sample at a
time and takes back only their own changes, curators and admins take back anyone's."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from curation.review.audit import history
from curation.review.bulk import flag_samples, review_samples, undo_batch
from curation.review.flags import add_flag, add_flags, clear_flags, flags_for, remove_flag
from curation.review.reviews import add_review, review_for
from curation.review.roles import PermissionDenied
from curation.review.undo import undo, undo_last
from db.models import AuditEntry, Flag, Review
from tests.support.actors import ADMIN, ANNOTATOR, CURATOR, VIEWER, person


def written(db) -> tuple[int, int, int]:
    """How many flag, review and audit rows the state database holds."""
    with db.read() as s:
        return tuple(s.scalar(select(func.count()).select_from(t)) for t in (Flag, Review, AuditEntry))


def never_read() -> Iterator[str]:
    """Sample ids a refused bulk action must not even start reading (the whole filter of a big catalog)."""
    raise AssertionError("a refused bulk action read its sample ids")
    yield ""  # pragma: no cover - makes this a generator


def refused(role: str, action: str):
    return pytest.raises(PermissionDenied, match=rf"has the role '{role}', which may not {action}.*roles grant")


def test_a_viewers_every_review_write_is_refused_by_the_domain_layer_and_nothing_is_written(db):
    sample = str(uuid.uuid4())
    flag = add_flag(db, sample, "wrong_answer", "the chair is left", CURATOR)
    add_review(db, sample, "approve", CURATOR)
    batch = flag_samples(db, [str(uuid.uuid4()) for _ in range(50)], "duplicate", CURATOR)
    event = history(db, sample)[-1]
    before = written(db)

    with refused("viewer", "flag"):
        add_flag(db, sample, "bad_media", None, VIEWER)
    with refused("viewer", "flag"):
        add_flags(db, [sample, str(uuid.uuid4())], "bad_media", VIEWER)
    with refused("viewer", "flag"):  # unflagging someone's flag is a flag change too
        remove_flag(db, flag.id, VIEWER)
    with refused("viewer", "flag"):
        clear_flags(db, sample, VIEWER)
    with refused("viewer", "review"):
        add_review(db, sample, "reject", VIEWER)
    with refused("viewer", "fix"):
        add_review(db, sample, "fix", VIEWER, fixed_answer="2.5 m")
    with refused("viewer", "undo"):
        undo(db, event.id, VIEWER)
    with refused("viewer", "undo"):
        undo_last(db, VIEWER)
    with refused("viewer", "bulk"):
        flag_samples(db, never_read(), "duplicate", VIEWER)
    with refused("viewer", "bulk"):
        review_samples(db, never_read(), "approve", VIEWER)
    with refused("viewer", "bulk"):
        undo_batch(db, batch, VIEWER)
    # Refused before the database is read: an audit id that does not exist gets the same answer, not a lookup.
    with refused("viewer", "undo"):
        undo(db, 10**9, VIEWER)

    assert written(db) == before
    assert [f.id for f in flags_for(db, sample)] == [flag.id]
    assert (review_for(db, sample).verdict, review_for(db, sample).reviewer) == ("approve", CURATOR.who)


def test_an_annotator_reviews_and_fixes_one_sample_at_a_time_but_no_bulk_action(db):
    ids = [str(uuid.uuid4()) for _ in range(20)]
    add_flag(db, ids[0], "bad_geometry", None, ANNOTATOR)
    add_review(db, ids[0], "fix", ANNOTATOR, fixed_answer="1.5 m")
    batch = review_samples(db, ids, "approve", CURATOR)
    before = written(db)

    with refused("annotator", "bulk"):
        flag_samples(db, never_read(), "duplicate", ANNOTATOR)
    with refused("annotator", "bulk"):
        review_samples(db, never_read(), "reject", ANNOTATOR)
    with refused("annotator", "bulk"):
        undo_batch(db, batch, ANNOTATOR)

    assert written(db) == before
    assert review_for(db, ids[5]).verdict == "approve"
    assert review_for(db, ids[0]).fixed_answer == "1.5 m"  # the batch approved her fixed text


def test_an_annotator_undoes_only_her_own_changes_and_a_curator_or_admin_undoes_anyones(db):
    sample = str(uuid.uuid4())
    bobs_flag = add_flag(db, sample, "ambiguous", "two sofas", person("bob", "annotator"))
    add_review(db, sample, "reject", ANNOTATOR)
    bobs_flag_event, her_review = history(db, sample)
    before = written(db)

    not_hers = rf"audit entry {bobs_flag_event.id}: it is bob's change.*may undo only their own"
    with pytest.raises(PermissionDenied, match=not_hers):
        undo(db, bobs_flag_event.id, ANNOTATOR)
    assert written(db) == before and [f.id for f in flags_for(db, sample)] == [bobs_flag.id]

    undo(db, her_review.id, ANNOTATOR)  # her own: allowed
    assert review_for(db, sample) is None
    assert undo_last(db, ANNOTATOR) is None  # bob's flag is not hers: her undo_last finds nothing

    undo(db, bobs_flag_event.id, CURATOR)
    assert flags_for(db, sample) == []
    restored = add_flag(db, sample, "ambiguous", None, person("bob", "annotator"))
    undo(db, history(db, sample)[-1].id, ADMIN)
    assert flags_for(db, sample, include_removed=True)[-1].id == restored.id
    assert flags_for(db, sample) == []
    assert [(e.who, e.action) for e in history(db, sample)] == [
        ("bob", "flag_added"), (ANNOTATOR.who, "review_added"), (ANNOTATOR.who, "undo"), (CURATOR.who, "undo"),
        ("bob", "flag_added"), (ADMIN.who, "undo"),
    ]
