"""Agreement in a review queue, checked by hand: Krippendorff's alpha overall and per skill, Cohen's kappa per
reviewer, and None (never NaN) with the counts when there is too little to say (SQLite and PostgreSQL)."""

from __future__ import annotations

import math
import uuid

import pytest

from curation.review.agreement import queue_agreement
from curation.review.assignment import adjudicate, create_queue, submit
from curation.review.errors import StateError
from curation.review.undo import undo
from tests.support.actors import ADMIN, person

ANN, BOB, CY = (person(n, "annotator") for n in ("ann", "bob", "cy"))
A, R = "approve", "reject"


def _queue(db, skills: list[str], overlap: int = 2):
    ids = [str(uuid.uuid4()) for _ in skills]
    q = create_queue(db, ADMIN, f"q {uuid.uuid4().hex[:6]}", list(zip(ids, skills, strict=True)), "/Browse",
                     overlap=overlap)  # fmt: skip
    return q, ids


def test_agreement_on_a_hand_checked_table(db):
    #            count                     distance
    #        s1      s2      s3        s4      s5
    # ann    A       R       A         .       R
    # bob    A       R       .         A       .
    # cy     .       .       R         A       R
    q, (s1, s2, s3, s4, s5) = _queue(db, ["count", "count", "count", "distance", "distance"])
    table = {s1: [(ANN, A), (BOB, A)], s2: [(ANN, R), (BOB, R)], s3: [(ANN, A), (CY, R)],
             s4: [(BOB, A), (CY, A)], s5: [(ANN, R), (CY, R)]}  # fmt: skip
    for sid, verdicts in table.items():
        for who, verdict in verdicts:
            submit(db, who, q.id, sid, verdict)
    adjudicate(db, ADMIN, q.id, s3, R)  # a decision, not a verdict: it changes no figure below

    a = queue_agreement(db, q.id)
    # Krippendorff's alpha, nominal, two values per item: each item adds its ordered pairs to the coincidence matrix
    # o (weight 1/(m-1) = 1). Overall: s1,s4 give o_AA = 2+2, s2,s5 give o_RR = 2+2, s3 gives o_AR = o_RA = 1;
    # n = 10, n_A = 5, n_R = 5. alpha = 1 - (n-1) * (o_AR + o_RA) / (n_A n_R + n_R n_A) = 1 - 9 * 2 / 50 = 0.64.
    # Pairs: 5, agreeing 4 -> 80%.
    assert (a.overall.n_items, a.overall.n_verdicts, a.overall.percent_agreement) == (5, 10, 0.8)
    assert a.overall.alpha == pytest.approx(0.64)
    # count: o_AA = 2, o_RR = 2, o_AR = o_RA = 1; n = 6, n_A = n_R = 3: alpha = 1 - 5 * 2 / 18 = 4/9;
    # 2 of 3 pairs agree.
    # distance: s4 (A, A), s5 (R, R): no disagreement, alpha = 1 - 3 * 0 / 8 = 1.
    count, distance = a.by_skill
    assert (count.group, count.n_items, count.n_verdicts, count.percent_agreement) == ("count", 3, 6, 2 / 3)
    assert count.alpha == pytest.approx(4 / 9)
    assert (distance.group, distance.n_items, distance.percent_agreement, distance.alpha) == ("distance", 2, 1.0, 1.0)
    # Cohen's kappa, each reviewer's verdict against their co-reviewer's on the same item: kappa = (po - pe) / (1 - pe).
    # ann: s1 A|A, s2 R|R, s3 A|R, s5 R|R: po = 3/4; ann A 2/4 R 2/4, others A 1/4 R 3/4: pe = 1/8 + 3/8 = 1/2;
    #      kappa = (3/4 - 1/2) / (1/2) = 0.5.
    # bob: s1 A|A, s2 R|R, s4 A|A: po = 1, pe = (2/3)^2 + (1/3)^2 = 5/9: kappa = 1.
    # cy:  s3 R|A, s4 A|A, s5 R|R: po = 2/3; cy A 1/3 R 2/3, others A 2/3 R 1/3: pe = 2/9 + 2/9 = 4/9;
    #      kappa = (2/3 - 4/9) / (5/9) = 0.4.
    rows = {r.group: r for r in a.by_reviewer}
    assert list(rows) == ["ann", "bob", "cy"]
    assert [(rows[w].n_items, rows[w].n_verdicts, rows[w].percent_agreement) for w in rows] == [
        (4, 4, 0.75), (3, 3, 1.0), (3, 3, 2 / 3)]  # fmt: skip
    assert [rows[w].kappa for w in rows] == [pytest.approx(0.5), pytest.approx(1.0), pytest.approx(0.4)]


def test_three_verdicts_per_item_and_an_undone_verdict_leaves_the_figures(db):
    q, (s1, s2) = _queue(db, ["count", "count"], overlap=3)
    entries = {}
    for sid, verdicts in {s1: [A, A, R], s2: [R, R, R]}.items():
        for who, verdict in zip((ANN, BOB, CY), verdicts, strict=True):
            entries[sid, who.who] = submit(db, who, q.id, sid, verdict).audit_id
    # Three values per item: each ordered pair weighs 1/(m-1) = 1/2. s1 (A, A, R): AA 2 pairs -> o_AA = 1, AR 2 -> 1,
    # RA 2 -> 1; s2 (R, R, R): RR 6 pairs -> o_RR = 3. n = 6, n_A = 2, n_R = 4:
    # alpha = 1 - (n-1) * (o_AR + o_RA) / (2 n_A n_R) = 1 - 5 * 2 / 16 = 0.375. Pairs: 3 + 3, agreeing 1 + 3.
    a = queue_agreement(db, q.id)
    assert (a.overall.n_items, a.overall.n_verdicts, a.overall.percent_agreement) == (2, 6, 4 / 6)
    assert a.overall.alpha == pytest.approx(0.375)
    # s1 is a conflict, so cy may take his verdict back; s1 keeps (A, A): no disagreement left, alpha = 1
    undo(db, entries[s1, "cy"], CY)
    a = queue_agreement(db, q.id)
    assert (a.overall.n_items, a.overall.n_verdicts, a.overall.percent_agreement, a.overall.alpha) == (2, 5, 1.0, 1.0)


def test_too_little_to_say_is_none_with_the_counts(db):
    q, (s1, s2, s3) = _queue(db, ["count", "count", "depth"])
    submit(db, ANN, q.id, s1, A)  # one verdict: not shared, not counted
    a = queue_agreement(db, q.id)
    assert (a.overall.n_items, a.overall.n_verdicts, a.overall.percent_agreement, a.overall.alpha) == (0, 0, None, None)
    assert a.by_skill == [] and a.by_reviewer == []
    submit(db, BOB, q.id, s1, R)  # one shared item: too few for alpha or kappa
    a = queue_agreement(db, q.id)
    assert (a.overall.n_items, a.overall.percent_agreement, a.overall.alpha) == (1, 0.0, None)
    assert [(r.group, r.n_items, r.percent_agreement, r.kappa) for r in a.by_reviewer] == [
        ("ann", 1, 0.0, None), ("bob", 1, 0.0, None)]  # fmt: skip
    for sid in (s2, s3):  # everyone approves everything else: no variation, so alpha and kappa are undefined
        submit(db, ANN, q.id, sid, A)
        submit(db, BOB, q.id, sid, A)
    a = queue_agreement(db, q.id)
    depth = a.by_skill[1]
    assert (depth.group, depth.n_items, depth.percent_agreement, depth.alpha) == ("depth", 1, 1.0, None)
    assert a.overall.alpha is not None and not math.isnan(a.overall.alpha)
    assert all(r.kappa is None or not math.isnan(r.kappa) for r in a.by_reviewer)
    with pytest.raises(StateError, match="no queue"):
        queue_agreement(db, 10_000)
