"""What the Team and Review Queue pages show: a queue's samples are exactly the Browse link's (with their skills), the
roles table, reservations in minutes, queues with their progress, and agreement as tables and a chart."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from curation.ingest.run import ingest
from curation.presenters.overview import skill_label
from curation.presenters.team import (
    agreement_figure,
    agreement_rows,
    queue_row,
    queue_samples,
    reservation_text,
    reviewer_rows,
    role_rows,
    verdict_rows,
)
from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec, spec_from_link
from curation.review.agreement import queue_agreement
from curation.review.assignment import create_queue, next_item, queue, queue_progress, submit, verdicts_visible_to
from curation.review.roles import grant_role, roles
from db.engine import open_state
from tests.support.actors import ADMIN, person


@pytest.fixture
def state(tmp_path):
    with open_state(f"sqlite:///{tmp_path / 'state.sqlite'}") as db:
        yield db


@pytest.fixture
def catalog(home, small_tree):
    ingest([small_tree / "vst_p", small_tree / "vst_r"], home, progress=False)
    q = CatalogQuery(home)
    yield q
    q.close()


def test_a_queue_takes_every_sample_of_the_browse_link_with_its_skill(catalog):
    link = "http://127.0.0.1:8501/Browse?has_reasoning=0"
    spec = spec_from_link(link)
    got = list(queue_samples(catalog, spec, batch_rows=2))  # several Arrow batches
    expected = {(r["sample_id"], r["skill"]) for r in catalog.page(spec, limit=10_000).rows}
    assert set(got) == expected and len(got) == catalog.count(spec) > 2
    assert len({skill for _, skill in got}) > 1
    assert list(queue_samples(catalog, FilterSpec(sample_ids=[f"no-such-{uuid.uuid4()}"]))) == []


def test_the_roles_table_says_who_granted_what(state):
    grant_role(state, ADMIN, "Alice@Example.com", "annotator")
    rows = role_rows(roles(state))
    assert [(r["who"], r["role"], r["granted by"]) for r in rows] == [("alice@example.com", "annotator",
                                                                      ADMIN.who)]
    assert rows[0]["granted at"].endswith(" UTC")


def test_a_reservation_says_until_when_and_how_long_is_left():
    now = datetime(2026, 5, 1, 14, 0, tzinfo=UTC)
    assert reservation_text(now + timedelta(minutes=29, seconds=30), now) == \
        "Reserved for you until 14:29 UTC (29 min left)"
    assert "under a minute" in reservation_text(now + timedelta(seconds=20), now)
    naive = (now + timedelta(minutes=5)).replace(tzinfo=None)  # SQLite hands back naive UTC
    assert "(5 min left)" in reservation_text(naive, now)
    assert reservation_text(now - timedelta(minutes=1), now).startswith("Your reservation ran out at 13:59 UTC")


def _random_ids(n: int) -> list[tuple[str, str]]:
    skills = ("si_distance", "si_depth")
    return [(str(uuid.uuid4()), skills[i % 2]) for i in range(n)]


def _work(db, queue_id: int, reviewer, verdicts: dict[str, str]) -> None:
    """``reviewer`` takes samples in queue order and gives each the verdict ``verdicts`` names."""
    while (r := next_item(db, reviewer, queue_id)) is not None:
        submit(db, reviewer, queue_id, r.sample_id, verdicts[r.sample_id])


def test_a_queue_row_counts_settled_waiting_and_conflicting_samples_and_verdicts_per_person(state):
    ann, bob = person("ann", "annotator"), person("bob", "annotator")
    items = _random_ids(4)
    q = create_queue(state, ADMIN, "distances", items, filter_link="?skills=si_distance", overlap=2)
    ids = [sid for sid, _ in items]
    _work(state, q.id, ann, dict.fromkeys(ids, "approve"))
    # Bob agrees on the first two, disagrees on the third and leaves the fourth.
    for sid, verdict in zip(ids[:3], ["approve", "approve", "reject"], strict=True):
        r = next_item(state, bob, q.id)
        assert r.sample_id == sid
        submit(state, bob, q.id, sid, verdict)
    p = queue_progress(state, q.id)
    row = queue_row(queue(state, q.id), p)
    assert (row.samples, row.done, row.waiting, row.conflicts) == (4, 2, 1, 1)
    assert row.share_done == 0.5
    assert row.progress_text.startswith("2 of 4 samples settled · 1 waiting for verdicts · 1 in conflict")
    assert reviewer_rows(p) == [{"reviewer": "ann", "verdicts": 4}, {"reviewer": "bob", "verdicts": 3}]
    # The third sample's verdicts side by side, once bob may see them (he has judged it).
    shown = verdict_rows(verdicts_visible_to(state, bob, q.id, ids[2]))
    assert sorted((v["reviewer"], v["verdict"]) for v in shown) == [("ann", "approve"), ("bob", "reject")]


def test_agreement_shows_alpha_per_skill_as_bars_and_kappa_per_reviewer_as_a_table(state):
    ann, bob = person("ann", "annotator"), person("bob", "annotator")
    items = _random_ids(8)  # 4 per skill
    q = create_queue(state, ADMIN, "agreement", items, filter_link="?skills=si_distance,si_depth", overlap=2)
    ids = [sid for sid, _ in items]
    ann_says = {sid: ("approve" if i % 4 else "reject") for i, sid in enumerate(ids)}
    bob_says = dict(ann_says)
    bob_says[ids[1]] = "reject"  # one disagreement, on a si_depth sample
    _work(state, q.id, ann, ann_says)
    _work(state, q.id, bob, bob_says)
    a = queue_agreement(state, q.id)
    skills = agreement_rows(a.by_skill, "skill")
    assert [r["skill"] for r in skills] == ["si_depth", "si_distance"]
    by_skill = {r["skill"]: r for r in skills}
    assert by_skill["si_distance"]["Krippendorff's alpha"] == pytest.approx(1.0)
    assert by_skill["si_depth"]["agreement"] == pytest.approx(0.75)
    shown = [r["skill"] for r in agreement_rows(a.by_skill, "skill", label=skill_label)]
    assert shown == ["si_depth", "Distance Prediction"]  # as the chart names them (si_depth is no known skill)
    people = agreement_rows(a.by_reviewer, "reviewer")
    assert {r["reviewer"] for r in people} == {"ann", "bob"} and all("Cohen's kappa" in r for r in people)

    fig = agreement_figure(a.by_skill)
    bars = fig.data[0]
    assert list(bars.y) == [skill_label("si_distance"), skill_label("si_depth")]
    assert bars.x[0] == pytest.approx(1.0) and bars.text[0].startswith("1.00 · 4 items")


def test_verdicts_side_by_side_show_the_fixed_text_only_where_someone_fixed(state):
    ann, bob = person("ann", "annotator"), person("bob", "annotator")
    (first, _), (second, _) = items = _random_ids(2)
    q = create_queue(state, ADMIN, "fixes", items, filter_link="?skills=si_distance", overlap=2)
    for who, verdicts in ((ann, {first: "approve", second: "approve"}), (bob, {first: "reject", second: "fix"})):
        while (r := next_item(state, who, q.id)) is not None:
            fix = {"fixed_answer": "3.2 meters"} if verdicts[r.sample_id] == "fix" else {}
            submit(state, who, q.id, r.sample_id, verdicts[r.sample_id], note=f"{who.name}'s note", **fix)
    plain_rows = verdict_rows(verdicts_visible_to(state, ADMIN, q.id, first))
    assert [list(r) for r in plain_rows] == [["reviewer", "verdict", "note", "submitted"]] * 2
    fixed_rows = verdict_rows(verdicts_visible_to(state, ADMIN, q.id, second))
    assert [(r["reviewer"], r["verdict"], r["fixed answer"]) for r in fixed_rows] == [
        ("ann", "approve", ""), ("bob", "fix", "3.2 meters")]
