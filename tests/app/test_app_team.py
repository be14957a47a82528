"""The Team and Review Queue pages in single-user mode (the local user, an admin): an admin pastes a Browse link, sees
how many samples it holds and makes a queue of them; grants and takes away roles (the last admin stays one, said on
the page); reads agreement per skill and per reviewer; settles a conflict. A reviewer takes the next sample, judges it
without seeing the others' verdicts, sees them once theirs is in, takes back their verdict, and is told when nothing
is left for them."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from curation.presenters.team import conflict_tag
from curation.query.filters import FilterSpec
from curation.review.actors import local_actor
from curation.review.assignment import conflicts, create_queue, next_item, queue_progress, queues, submit
from curation.review.reviews import review_for
from curation.review.roles import roles
from db.engine import open_state
from tests.app.test_app_support import app_at, shown, texts, unescaped
from tests.support.actors import ADMIN, person

TEAM = "pages/7_Team.py"
BROWSE = "pages/1_Browse.py"
QUEUE = "pages/6_Review_Queue.py"
ANN, BOB = person("ann", "annotator"), person("bob", "annotator")


@pytest.fixture
def db(settings):
    with open_state(settings.db_url) as state:
        yield state


def ids_of(catalog, spec: FilterSpec, n: int) -> list[tuple[str, str]]:
    return [(r["sample_id"], r["skill"]) for r in catalog.page(spec, limit=n).rows]


def errors(at) -> list[str]:
    return shown(at, "error")


_NONE = object()


def table_with(at, *columns: str, default=_NONE):
    """The first table that has ``columns`` (tables that are not widgets carry no key in AppTest)."""
    found = next((d.value for d in at.dataframe if set(columns) <= set(d.value.columns)), default)
    if found is _NONE:
        raise AssertionError(f"no table with {columns} on the page")
    return found


def verdicts_shown(at) -> list[tuple[str, str]]:
    """(reviewer, verdict) of every verdict table on the page, as the viewer reads them."""
    return sorted((unescaped(r["reviewer"]), unescaped(r["verdict"])) for t in at.table
                  for r in t.value.to_dict("records"))


def progress_texts(at) -> list[str]:
    """The text of each st.progress bar, as the viewer reads it."""
    return [unescaped(e.proto.text) for e in at.get("progress")]


# --- Team: queues -----------------------------------------------------------------------------------------------


def test_an_admin_pastes_a_browse_link_sees_its_count_and_makes_a_queue_of_those_samples(settings, catalog, db):
    at = app_at(TEAM)
    assert not at.exception and not errors(at)
    assert any("No review queues yet" in t for t in shown(at, "info"))
    spec = FilterSpec(skills=["si_distance"], has_reasoning=False)
    n = catalog.count(spec)
    link = "http://127.0.0.1:8501/Browse?" + "&".join(f"{k}={v}" for k, v in spec.to_query_params().items())
    at.text_input(key="team_queue_link").input(link).run()
    assert any(m.startswith(f"**{n:,}** samples match") for m in texts(at, "markdown"))
    create = at.button(key="team_queue_create")
    assert create.label == f"Create queue of {n:,} samples" and create.disabled  # no name yet
    at.text_input(key="team_queue_name").input("distances, round 1").run()
    at.number_input(key="team_queue_overlap").set_value(3).run()
    at.button(key="team_queue_create").click().run()
    assert not at.exception and not errors(at)
    assert any("created with" in t for t in shown(at, "success"))

    (q,) = queues(db)
    assert (q.name, q.overlap, q.blind, q.created_by, q.filter_link) == ("distances, round 1", 3, True,
                                                                         local_actor().who, link)
    assert queue_progress(db, q.id).n_samples == n
    # The queue is listed with its progress and a link to work it.
    assert [t.startswith(f"0 of {n:,} samples settled") for t in progress_texts(at)] == [True]


def test_browse_offers_an_admin_a_queue_of_its_filter_and_the_team_page_opens_with_that_link(settings, catalog, db):
    spec = FilterSpec(skills=["si_distance"])
    n = catalog.count(spec)
    browse = app_at(BROWSE, **spec.to_query_params())
    browse.radio(key="bulk_target").set_value("filter").run()
    assert not browse.exception
    [params] = [{k: v[-1] for k, v in parse_qs(e.proto.query_string).items()} for e in browse.get("page_link")
                if e.proto.label == f"Make a review queue of {n:,}"]
    at = app_at(TEAM, **params)
    assert at.text_input(key="team_queue_link").value == params["link"]
    assert any(m.startswith(f"**{n:,}** samples match") for m in texts(at, "markdown"))
    at.text_input(key="team_queue_name").input("from browse").run()
    at.button(key="team_queue_create").click().run()
    assert not at.exception and not errors(at)
    assert queue_progress(db, queues(db)[0].id).n_samples == n
    assert at.text_input(key="team_queue_link").value == ""  # made: the link is not offered again


def test_a_link_without_a_filter_or_with_a_bad_value_is_refused_naming_what_is_wrong(settings, db):
    at = app_at(TEAM)
    at.text_input(key="team_queue_link").input("http://127.0.0.1:8501/Browse").run()
    assert any("no filter in" in e for e in errors(at))
    at.text_input(key="team_queue_link").input("?review=maybe").run()
    assert any("review" in e for e in errors(at))
    assert not [b for b in at.button if b.key == "team_queue_create"]
    assert queues(db) == []


# --- Team: roles ------------------------------------------------------------------------------------------------


def test_an_admin_grants_and_revokes_roles_and_the_last_admin_is_kept_with_a_message(settings, db):
    at = app_at(TEAM, tab="Roles")
    at.text_input(key="team_grant_who").input("Alice@Example.com").run()
    at.selectbox(key="team_grant_role").set_value("admin").run()
    at.button(key="team_grant").click().run()
    assert not at.exception and not errors(at)
    assert [(r.who, r.role, r.granted_by) for r in roles(db)] == [("alice@example.com", "admin", local_actor().who)]
    table = table_with(at, "who", "role")
    assert list(table["who"]) == ["alice@example.com"] and list(table["role"]) == ["admin"]

    # Alice is the only admin in the state database: taking her role away is refused, on the page.
    at.selectbox(key="team_revoke_who").set_value("alice@example.com").run()
    at.button(key="team_revoke").click().run()
    assert not at.exception
    assert any("last admin" in e for e in errors(at))
    assert [r.role for r in roles(db)] == ["admin"]

    at.text_input(key="team_grant_who").input("bob@example.com").run()
    at.selectbox(key="team_grant_role").set_value("annotator").run()
    at.button(key="team_grant").click().run()
    at.selectbox(key="team_revoke_who").set_value("bob@example.com").run()
    at.button(key="team_revoke").click().run()
    assert not errors(at)
    assert [r.who for r in roles(db)] == ["alice@example.com"]


# --- Team: agreement and conflicts ------------------------------------------------------------------------------


def _two_people_work(db, catalog, n: int = 6):
    """A queue of ``n`` si_distance samples (overlap 2): Ann approves all, Bob rejects the first."""
    items = ids_of(catalog, FilterSpec(skills=["si_distance"]), n)
    q = create_queue(db, ADMIN, "two people", items, filter_link="?skills=si_distance", overlap=2)
    for who in (ANN, BOB):
        while (r := next_item(db, who, q.id)) is not None:
            verdict = "reject" if who is BOB and r.sample_id == items[0][0] else "approve"
            submit(db, who, q.id, r.sample_id, verdict, note=f"{who.name} says so")
    return q, [sid for sid, _ in items]


def test_agreement_starts_empty_then_shows_numbers_per_skill_and_per_reviewer(settings, catalog, db):
    items = ids_of(catalog, FilterSpec(skills=["si_distance"]), 2)
    create_queue(db, ADMIN, "empty", items, filter_link="?skills=si_distance")
    assert any("No conflicts" in t for t in shown(app_at(TEAM, tab="Conflicts"), "info"))
    at = app_at(TEAM, tab="Agreement")  # the tab is in the link
    assert any("two verdicts yet" in t for t in shown(at, "info"))
    assert not at.get("plotly_chart") and not table_with(at, "skill", "items", default=None)

    q, _ = _two_people_work(db, catalog)
    at.run()  # the new queue joins the list
    at.selectbox(key="team_agreement_queue").set_value(q.id).run()
    assert not at.exception and not errors(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Samples with ≥ 2 verdicts"] == "6" and metrics["Verdicts"] == "12"
    assert metrics["Percent agreement"] == "83%"
    skills = table_with(at, "skill", "items")
    assert list(skills["skill"]) == ["Distance Prediction"] and list(skills["items"]) == [6]  # as the chart says
    people = table_with(at, "reviewer", "items")
    assert sorted(people["reviewer"]) == ["ann", "bob"]
    assert len(at.get("plotly_chart")) == 1


def test_an_admin_sees_a_conflict_side_by_side_and_settles_it(settings, catalog, db):
    q, ids = _two_people_work(db, catalog, n=3)
    at = app_at(TEAM, tab="Conflicts")
    assert verdicts_shown(at) == [("ann", "approve"), ("bob", "reject")]
    assert any(ids[0] in m for m in shown(at, "markdown"))
    at.button(key=f"team_adj_reject_{conflict_tag(q.id, ids[0])}").click().run()
    assert not at.exception and not errors(at)
    assert any(f"Sample {ids[0]} settled as reject" in t for t in shown(at, "success"))
    assert conflicts(db) == []
    settled = review_for(db, ids[0])
    assert settled.verdict == "reject"
    assert any("No conflicts" in t for t in shown(at, "info"))


# --- Review Queue ------------------------------------------------------------------------------------------------


def test_a_reviewer_judges_blind_then_sees_the_others_and_is_told_when_nothing_is_left(settings, catalog, db):
    at = app_at(QUEUE)
    assert any("no review queue yet" in t for t in shown(at, "info"))
    items = ids_of(catalog, FilterSpec(skills=["si_distance"]), 2)
    q = create_queue(db, ADMIN, "blind pair", items, filter_link="?skills=si_distance", overlap=2)
    first = items[0][0]
    r = next_item(db, ANN, q.id)
    submit(db, ANN, q.id, r.sample_id, "reject", note="the distance is off")

    at = app_at(QUEUE, queue=str(q.id))
    assert not at.exception and not errors(at)
    at.button(key="btn_next").click().run()
    assert not at.exception and not errors(at)
    assert any(f"Sample {first}" in s for s in shown(at, "subheader"))
    captions = " ".join(shown(at, "caption"))
    assert "Reserved for you until" in captions and "Blind review" in captions
    page_text = " ".join(shown(at, "markdown") + shown(at, "caption") + shown(at, "text"))
    assert "the distance is off" not in page_text  # Ann's note, and her verdict, are not on the page
    assert verdicts_shown(at) == []

    at.button(key="btn_approve").click().run()
    assert not at.exception and not errors(at)
    assert any("Your verdict on" in t and "approved" in t for t in shown(at, "success"))
    assert verdicts_shown(at) == [("ann", "reject"), (local_actor().who, "approve")]
    assert [c.sample_id for c in conflicts(db, q.id)] == [first]

    # Undo takes the verdict back (the item is a conflict, not settled): the sample is free for me again.
    at.button(key="rq_undo").click().run()
    assert any("Undid your last verdict" in t for t in shown(at, "success"))
    assert conflicts(db, q.id) == []
    at.button(key="btn_next").click().run()
    assert any(f"Sample {first}" in s for s in shown(at, "subheader"))
    at.button(key="btn_reject").click().run()
    at.button(key="btn_next").click().run()  # the second sample
    at.button(key="btn_approve").click().run()
    at.button(key="btn_next").click().run()
    assert not at.exception and not errors(at)
    assert any("Nothing left for you" in t for t in shown(at, "info"))
    assert queue_progress(db, q.id).per_reviewer[local_actor().who] == 2


def test_an_admin_settles_a_conflict_with_one_reviewers_fix(settings, catalog, db):
    (sid, skill), = ids_of(catalog, FilterSpec(skills=["si_distance"]), 1)
    q = create_queue(db, ADMIN, "fixes", [(sid, skill)], filter_link="?skills=si_distance", overlap=2)
    for who in (ANN, BOB):
        next_item(db, who, q.id)
    submit(db, ANN, q.id, sid, "fix", fixed_answer="2.5 meters", note="measured again")
    submit(db, BOB, q.id, sid, "approve")
    at = app_at(TEAM, tab="Conflicts")
    fix = at.button(key=f"team_adj_fix_{conflict_tag(q.id, sid)}_0")
    assert fix.label.replace("\\", "") == "Settle: ann's fix"
    fix.click().run()
    assert not at.exception and not errors(at)
    settled = review_for(db, sid)
    assert (settled.verdict, settled.fixed_answer) == ("fix", "2.5 meters")
    assert conflicts(db) == []


def test_names_notes_and_fixes_of_other_people_are_shown_as_text_never_as_markdown(settings, catalog, db):
    from tests.app.test_app_hostile_links import EVIL, HTML, IMAGE, LINK, rendered_markdown, unsafe_parts

    (sid, skill), = ids_of(catalog, FilterSpec(skills=["si_distance"]), 1)
    q = create_queue(db, ADMIN, f"queue {IMAGE}", [(sid, skill)], filter_link=f"?text={IMAGE}", overlap=2)
    mallory = person(f"mallory {LINK}", "annotator")
    for who in (mallory, ANN):
        next_item(db, who, q.id)
    submit(db, mallory, q.id, sid, "fix", fixed_answer=HTML, note=IMAGE)
    submit(db, ANN, q.id, sid, "reject", note=LINK)
    pages = {tab: app_at(TEAM, tab=tab) for tab in ("Queues", "Agreement", "Conflicts")}
    pages["work"] = app_at(QUEUE, queue=str(q.id))
    pages["work"].button(key="btn_next").click().run()  # the overlap is full: nothing left for me, said with the name
    # The queue's name; (agreement: names in a grid, never Markdown); mallory (table, fix button), both notes, the fix;
    # the queue's name again.
    for at, least in zip(pages.values(), (1, 0, 5, 1), strict=True):
        assert not at.exception
        texts = (rendered_markdown(at) + [p.proto.text for p in at.get("progress")] + [b.label for b in at.button]
                 + [str(v) for t in at.table for v in t.value.to_numpy().ravel()])
        on_page = [t for t in texts if EVIL in unescaped(t)]
        assert len(on_page) >= least, texts
        assert not {t: unsafe_parts(t) for t in on_page if unsafe_parts(t)}
