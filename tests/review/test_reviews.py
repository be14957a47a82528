"""Stories of reviews: the latest verdict wins, fixes survive an approval, rules name the field, pulls repeat safely."""

from __future__ import annotations

import pytest

from curation.review.audit import history
from curation.review.errors import StateError
from curation.review.reviews import add_review, review_for, reviews_for
from tests.support.actors import CURATOR, person


def test_a_fix_then_an_approval_keeps_the_fixed_text_and_the_latest_verdict(db):
    add_review(db, "s1", "fix", person("bob"), fixed_answer="B. 2.4 meters", note="unit was feet")
    after_fix_reasoning = add_review(db, "s1", "fix", person("cy"), fixed_reasoning="The sofa is 2.4 m long.")
    approved = add_review(db, "s1", "approve", person("ann"))

    # last write wins per field: both fixes survive, the verdict is the latest one
    assert after_fix_reasoning.fixed_answer == "B. 2.4 meters"
    assert (approved.verdict, approved.reviewer, approved.note) == ("approve", "ann", None)
    assert (approved.fixed_answer, approved.fixed_reasoning) == ("B. 2.4 meters", "The sofa is 2.4 m long.")
    assert approved.fixed and approved.n_reviews == 3
    assert review_for(db, "s1") == approved
    assert [r.reviewer for r in reviews_for(db, "s1")] == ["bob", "cy", "ann"]
    last = history(db, "s1")[-1]
    assert last.old_value["verdict"] == "fix" and last.new_value["verdict"] == "approve"


def test_review_rules_are_enforced_with_the_field_named(db):
    with pytest.raises(StateError, match="'fix' needs field 'fixed_answer'"):
        add_review(db, "s1", "fix", person("bob"))
    with pytest.raises(StateError, match="use 'fix'"):
        add_review(db, "s1", "approve", person("bob"), fixed_answer="A")
    with pytest.raises(StateError, match="'verdict' is 'maybe'"):
        add_review(db, "s1", "maybe", person("bob"))
    assert review_for(db, "s1") is None


def test_pulling_the_same_label_studio_annotation_twice_adds_one_review(db):
    for _ in range(2):
        got = add_review(db, "s1", "reject", CURATOR, source="labelstudio:7", external_id="ls:7:annotation:31",
                         reviewer="annotator@lab")
    assert (got.source, got.reviewer) == ("labelstudio:7", "annotator@lab")  # the annotator's verdict ...
    assert len(reviews_for(db, "s1")) == 1 and [e.who for e in history(db, "s1")] == [CURATOR.who]  # ... pulled by
