"""Agreement in a review queue: Krippendorff's alpha overall and per skill, Cohen's kappa per reviewer (the libraries').

Only submitted verdicts that are not undone count, on items with at least two of them (agreement needs a pair); an
admin's adjudication is a decision, not a verdict, and does not count. Agreement is on the verdict (approve / reject /
fix) as a nominal label; two fixes with different text agree here, though the queue does not settle them.

A statistic that cannot be computed is None, never NaN, and the row still carries its counts: fewer than MIN_ITEMS
items, or no variation at all (every verdict the same: the expected disagreement is zero and the ratio is undefined;
the percent agreement still says 100%).
"""

from __future__ import annotations

from dataclasses import dataclass

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score
from sqlalchemy import case, select

from curation.review.assignment import queue as queue_record
from db.engine import StateDB
from db.models import VERDICTS, QueueItem, QueueVerdict

MIN_ITEMS = 2  # one item shared says nothing about agreement


@dataclass(frozen=True)
class GroupAgreement:
    """Agreement among everyone over a group of items (the whole queue, or one skill)."""

    group: str  # "all" or the skill
    n_items: int  # items with at least two verdicts
    n_verdicts: int  # the verdicts on those items
    percent_agreement: float | None  # share of pairs of verdicts on the same item that agree
    alpha: float | None  # Krippendorff's alpha, nominal


@dataclass(frozen=True)
class ReviewerAgreement:
    """One reviewer against the others who judged the same items."""

    group: str  # the reviewer
    n_items: int  # their items that someone else judged too
    n_verdicts: int  # pairs (their verdict, a co-reviewer's verdict) on those items
    percent_agreement: float | None  # share of those pairs that agree
    kappa: float | None  # Cohen's kappa over those pairs


@dataclass(frozen=True)
class Agreement:
    queue_id: int
    overall: GroupAgreement
    by_skill: list[GroupAgreement]  # by skill name
    by_reviewer: list[ReviewerAgreement]  # by reviewer


def queue_agreement(db: StateDB, queue_id: int) -> Agreement:
    """Agreement of a queue's reviewers: overall, per skill, per reviewer (see the module docstring).

    Vectorised over an (items x verdicts) count matrix: no Python loop over items or verdicts."""
    queue_record(db, queue_id)  # a StateError naming the queue when there is none
    code_of = case(*((QueueVerdict.verdict == v, i) for i, v in enumerate(VERDICTS)))
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(QueueItem.position, QueueItem.skill, QueueVerdict.who, code_of)
            .join(QueueVerdict, (QueueVerdict.queue_id == QueueItem.queue_id)
                  & (QueueVerdict.sample_id == QueueItem.sample_id))
            .where(QueueItem.queue_id == queue_id, QueueItem.n_verdicts >= 2,  # shared items only
                   QueueVerdict.submitted_at.is_not(None), QueueVerdict.undone_at.is_(None))
        ).all()  # fmt: skip
    if not rows:
        return Agreement(queue_id, _group("all", np.zeros((0, len(VERDICTS)), np.int64)), [], [])
    positions, skills, whos, codes = zip(*rows, strict=True)
    items, unit = np.unique(np.array(positions, dtype=np.int64), return_inverse=True)
    code = np.array(codes, dtype=np.int64)
    counts = np.zeros((len(items), len(VERDICTS)), dtype=np.int64)  # one row per item, one column per verdict
    np.add.at(counts, (unit, code), 1)
    item_skill = np.empty(len(items), dtype=object)
    item_skill[unit] = skills
    by_skill = [_group(skill, counts[item_skill == skill]) for skill in sorted(set(skills))]
    return Agreement(queue_id, _group("all", counts), by_skill,
                     _reviewers(np.array(whos, dtype=object), unit, code, counts))  # fmt: skip


def _group(name: str, counts: np.ndarray) -> GroupAgreement:
    """Agreement over items given as their verdict counts (rows with at least two verdicts)."""
    per_item = counts.sum(axis=1)
    pairs = int((per_item * (per_item - 1) // 2).sum())
    agreeing = int((counts * (counts - 1) // 2).sum())
    alpha = None
    if len(counts) >= MIN_ITEMS and np.count_nonzero(counts.sum(axis=0)) > 1:
        alpha = float(krippendorff.alpha(value_counts=counts, level_of_measurement="nominal"))
    return GroupAgreement(name, len(counts), int(per_item.sum()), agreeing / pairs if pairs else None, alpha)


def _reviewers(whos: np.ndarray, unit: np.ndarray, code: np.ndarray, counts: np.ndarray) -> list[ReviewerAgreement]:
    """Each reviewer's verdicts against their co-reviewers' on the same items: every verdict pairs with the item's
    other verdicts, given to Cohen's kappa as (mine, theirs) pairs weighted by how many co-verdicts say theirs."""
    labels = np.arange(len(VERDICTS))
    out = []
    for who in sorted({str(w) for w in whos}):
        mine = whos == who
        their = counts[unit[mine]] - np.eye(len(VERDICTS), dtype=np.int64)[code[mine]]  # co-verdicts per label
        n_pairs = int(their.sum())
        percent = float(their[np.arange(len(their)), code[mine]].sum()) / n_pairs
        used = their.sum(axis=0) + np.bincount(code[mine], minlength=len(VERDICTS))
        kappa = None
        if int(mine.sum()) >= MIN_ITEMS and np.count_nonzero(used) > 1:
            kappa = float(cohen_kappa_score(np.repeat(code[mine], len(labels)), np.tile(labels, int(mine.sum())),
                                            labels=labels, sample_weight=their.ravel()))  # fmt: skip
        out.append(ReviewerAgreement(who, int(mine.sum()), n_pairs, percent, kappa))
    return out
