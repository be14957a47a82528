"""Stories of undo: my latest action comes back without touching others', and an undone event stays undone."""

from __future__ import annotations

import pytest

from curation.review.audit import history
from curation.review.errors import StateError
from curation.review.flags import add_flag, flags_for
from curation.review.reviews import add_review, review_for, reviews_for
from curation.review.undo import undo, undo_last
from tests.support.actors import person


def test_undo_last_takes_back_my_latest_action_and_leaves_others_alone(db):
    add_flag(db, "s1", "duplicate", None, person("ann"))
    add_review(db, "s1", "reject", person("ann"))
    add_review(db, "s1", "approve", person("bob"))

    undone = undo_last(db, person("ann"))  # ann's reject, although bob reviewed after her
    assert undone.action == "undo" and undone.table_name == "reviews"
    current = review_for(db, "s1")
    assert (current.verdict, current.reviewer, current.n_reviews) == ("approve", "bob", 1)

    undo_last(db, person("ann"))  # then her flag
    assert flags_for(db, "s1") == []
    assert undo_last(db, person("ann")) is None  # nothing of hers is left to undo

    actions = [(e.who, e.action) for e in history(db, "s1")]
    assert actions == [
        ("ann", "flag_added"),
        ("ann", "review_added"),
        ("bob", "review_added"),
        ("ann", "undo"),
        ("ann", "undo"),
    ]


def test_undoing_the_only_review_leaves_the_sample_unreviewed_and_cannot_be_repeated(db):
    add_review(db, "s1", "fix", person("bob"), fixed_answer="C")
    (event,) = history(db, "s1")

    undo_entry = undo(db, event.id, person("ann"))
    assert undo_entry.undoes_id == event.id and undo_entry.new_value is None
    assert review_for(db, "s1") is None
    assert reviews_for(db, "s1")[0].undone_by == "ann"
    with pytest.raises(StateError, match="already undone"):
        undo(db, event.id, person("bob"))
    with pytest.raises(StateError, match="itself an undo"):
        undo(db, undo_entry.id, person("bob"))
