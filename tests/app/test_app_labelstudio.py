"""The Label Studio page: a curator sees whether the server is there (and how to start it when it is not), pushes
the Browse filter from the link or the flagged set, watches each project's tasks / annotated / pulled counts, pulls
the verdicts back and imports an exported file, with every problem shown as a message."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from curation.labelstudio.configs import verdict_result
from curation.labelstudio.links import list_projects
from curation.labelstudio.server import pick_free_port
from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec, spec_from_link
from curation.review.flags import add_flag, flags_for
from curation.review.reviews import add_review, review_for
from db.engine import open_state
from tests.app.test_app_support import app_at, demo_app_home, forget_app_caches, shown
from tests.support.actors import person

PAGE = "pages/5_Label_Studio.py"
_LS_ENV = ["LABEL_STUDIO_URL", "LABEL_STUDIO_TOKEN", "CURATOR_LS_FILES_ROOT"]


def _ls_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for key in _LS_ENV:
        monkeypatch.delenv(key, raising=False)
    for key, value in values.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def down(monkeypatch, tmp_path, demo_home):
    """The demo catalog, and a Label Studio URL where nothing listens."""
    _ls_env(monkeypatch, LABEL_STUDIO_URL=f"http://127.0.0.1:{pick_free_port()}", LABEL_STUDIO_TOKEN="0" * 40)
    yield demo_app_home(monkeypatch, tmp_path, demo_home)
    forget_app_caches()


@pytest.fixture
def live(ls_server_booting, demo_home, ls_server, monkeypatch, tmp_path):
    """The demo catalog with a state database of this test's own, and the real server (booting meanwhile)."""
    _ls_env(monkeypatch, LABEL_STUDIO_URL=ls_server.url, LABEL_STUDIO_TOKEN=ls_server.token,
            CURATOR_LS_FILES_ROOT=str(ls_server.files_root))  # fmt: skip
    yield demo_app_home(monkeypatch, tmp_path, demo_home)
    forget_app_caches()


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def table(at, column: str) -> list[dict]:
    """The first dataframe that has ``column``, as rows."""
    frame = next(d.value for d in at.dataframe if column in d.value.columns)
    return frame.to_dict("records")


def ids_of(settings, spec: FilterSpec, n: int) -> list[str]:
    q = CatalogQuery(settings)
    try:
        return [r["sample_id"] for r in q.page(spec, limit=n).rows]
    finally:
        q.close()


# --------------------------------------------------------------------------------------------- the real server
# (first, so the server boots while the demo catalog is generated)


def test_a_wrong_token_is_reported_as_refused(monkeypatch, live):
    monkeypatch.setenv("LABEL_STUDIO_TOKEN", "f" * 40)
    at = app_at(PAGE)
    assert not at.exception
    assert any("refused the token" in e for e in shown(at, "error"))
    assert at.button(key="ls_push_btn").disabled


def test_push_the_browse_filter_watch_the_project_then_pull_the_verdicts(live, ls_client):
    title = f"App {uuid.uuid4().hex[:8]}"  # the session's server is shared: a project of this test's own
    spec = FilterSpec(skills=["si_distance"])
    at = app_at(PAGE, **spec.to_query_params())
    assert not at.exception
    assert any(s.startswith("Label Studio 1.") for s in shown(at, "success"))
    at.text_input(key="ls_project").input(title)
    at.number_input(key="ls_limit").set_value(6)
    at.run()
    assert at.button(key="ls_push_btn").label == "Push 6 sample(s) to Label Studio"
    at.button(key="ls_push_btn").click().run()
    assert not at.exception
    assert any(s.startswith("Pushed 6 sample(s): 6 new task(s), 0 already in") for s in shown(at, "success"))
    (project,) = table(at, "linked samples")
    assert (project["tasks"], project["annotated"], project["pulled"], project["linked samples"]) == (6, 0, 0, 6)
    assert project["open in Label Studio"] == f"{live.labelstudio_url}/projects/{project['id']}/data"
    (pushed,) = table(at, "new tasks")
    assert (pushed["new tasks"], pushed["already there"]) == (6, 0)

    at.button(key="ls_push_btn").click().run()  # again: nothing new
    assert any("0 new task(s), 6 already in Label Studio" in s for s in shown(at, "info"))

    with open_state(live.db_url) as db:
        (pid,) = [p.id for p in list_projects(db)]
    tasks = ls_client.task_sample_ids(pid)
    first, second = sorted(tasks)[:2]
    ls_client.create_annotation(tasks[first], verdict_result("correct"))
    ls_client.create_annotation(tasks[second], verdict_result("wrong answer", fixed_answer="3.2"))
    at.button(key="ls_pull_btn").click().run()
    assert not at.exception
    m = metrics(at)
    assert (m["tasks read"], m["annotations"], m["reviews imported"], m["not annotated yet"]) == ("6", "2", "2", "4")
    (project,) = table(at, "linked samples")
    assert (project["annotated"], project["pulled"]) == (2, 2)
    with open_state(live.db_url) as db:
        assert review_for(db, second).fixed_answer == "3.2"

    at.button(key="ls_pull_btn").click().run()  # again: nothing new
    assert (metrics(at)["reviews imported"], metrics(at)["already pulled"]) == ("0", "2")


def test_the_whole_catalog_is_pushed_only_when_the_curator_says_so(live):
    at = app_at(PAGE)
    assert at.button(key="ls_push_btn").disabled
    at.checkbox(key="ls_push_all").check().run()
    assert not at.button(key="ls_push_btn").disabled


# --------------------------------------------------------------------------------------------- no server


def test_with_the_server_down_the_page_says_so_and_how_to_start_it(down):
    at = app_at(PAGE)
    assert not at.exception
    assert any("Label Studio is not reachable at http://127.0.0.1" in e for e in shown(at, "error"))
    assert any("make labelstudio" in i for i in shown(at, "info"))
    assert any("No project yet" in i for i in shown(at, "info"))
    assert at.button(key="ls_push_btn").disabled and at.button(key="ls_pull_btn").disabled


def test_without_a_server_or_a_token_the_page_says_no_server_first(monkeypatch, down):
    # Starting the local server is the fix for both (it writes the token): the missing server comes first.
    monkeypatch.delenv("LABEL_STUDIO_TOKEN")
    at = app_at(PAGE)
    assert not at.exception
    (error,) = shown(at, "error")
    assert error.startswith("Label Studio is not reachable at http://127.0.0.1"), error
    assert error.index("not reachable") < error.index("no Label Studio token")
    assert any(i.startswith("Start the local server in a terminal with `make labelstudio`") for i in shown(at, "info"))


def test_without_a_token_a_server_that_answers_is_told_apart(monkeypatch, ls_server, demo_home, tmp_path):
    _ls_env(monkeypatch, LABEL_STUDIO_URL=ls_server.url)
    settings = demo_app_home(monkeypatch, tmp_path, demo_home)
    try:
        at = app_at(PAGE)
        assert not at.exception
        (error,) = shown(at, "error")
        assert error.startswith("no Label Studio token") and "make labelstudio" in error
        assert "not reachable" not in error and settings.labelstudio_url == ls_server.url
    finally:
        forget_app_caches()


def test_the_push_can_be_narrowed_to_samples_failing_with_a_severity(down):
    from tests.support.exports_fixtures import write_results

    q = CatalogQuery(down)
    try:
        clean = [r["sample_id"] for r in q.page(FilterSpec(skills=["si_depth_comparison"]), limit=50).rows
                 if q.count(FilterSpec(sample_ids=[r["sample_id"]], failed_severities=["error", "warning", "info"]))
                 == 0][:3]
    finally:
        q.close()
    write_results(down, "format.answer_present", {clean[0]: (False, "turns: no answer"), clean[1]: (True, None)},
                  severity="error")
    write_results(down, "consistency.reasoning_vs_answer", {clean[2]: (False, "says A, answers B")},
                  severity="warning")
    at = app_at(PAGE, sample_ids=",".join(clean))
    assert at.button(key="ls_push_btn").label == "Push 3 sample(s) to Label Studio"
    at.multiselect(key="ls_push_severity").select("error").run()
    assert not at.exception
    assert at.button(key="ls_push_btn").label == "Push 1 sample(s) to Label Studio"
    at.multiselect(key="ls_push_severity").select("warning").run()
    assert at.button(key="ls_push_btn").label == "Push 2 sample(s) to Label Studio"


def test_the_push_form_counts_the_filter_from_the_link_and_the_flagged_set(down):
    flagged = ids_of(down, FilterSpec(skills=["si_measurement"]), 2)
    with open_state(down.db_url) as db:
        for sid in flagged:
            add_flag(db, sid, "unit_error", "cm vs m", person("ann"))
    spec = FilterSpec(skills=["si_distance"])
    expected = len(ids_of(down, spec, 10_000))
    at = app_at(PAGE, **spec.to_query_params())
    assert any(m.startswith(f"**{expected:,}** samples match the Browse filter") for m in shown(at, "markdown"))
    at.radio(key="ls_push_what").set_value("flagged").run()
    assert at.button(key="ls_push_btn").label == "Push 2 sample(s) to Label Studio"
    assert at.query_params["skills"] == "si_distance"  # the page leaves the filter in the link alone


def test_a_pasted_browse_link_becomes_the_filter(down):
    at = app_at(PAGE)
    at.text_input(key="ls_link").input("http://127.0.0.1:8501/Browse?skills=si_distance,si_depth&flagged=0").run()
    at.button(key="ls_link_btn").click().run()
    assert not at.exception
    assert at.query_params["skills"] == "si_distance,si_depth" and at.query_params["flagged"] == "0"
    at.text_input(key="ls_link").input("http://127.0.0.1:8501/Browse?review=maybe").run()
    at.button(key="ls_link_btn").click().run()
    assert any("bad value in `review`" in e for e in shown(at, "error"))
    assert spec_from_link("?groups=multi&id=x") == FilterSpec(groups=["multi"])


def test_the_filter_browse_showed_last_is_offered_when_the_link_has_none(down):
    at = app_at(PAGE)
    assert "ls_browse_btn" not in [b.key for b in at.button]  # nothing browsed yet
    at.session_state["browse_spec"] = FilterSpec(skills=["si_measurement"]).model_dump_json()
    at.run()
    assert any("Browse showed `skills=si_measurement` last" in i for i in shown(at, "info"))
    at.button(key="ls_browse_btn").click().run()
    assert at.query_params["skills"] == "si_measurement"
    assert any(m.endswith("samples match the Browse filter · `skills=si_measurement`") for m in shown(at, "markdown"))


def test_an_export_file_imports_without_a_server_and_lists_conflicts_and_skipped_tasks(down):
    wrong, local, other = ids_of(down, FilterSpec(skills=["si_distance"]), 3)
    when = datetime.now(UTC) - timedelta(days=1)
    with open_state(down.db_url) as db:  # a colleague approved this one today, after the annotation
        add_review(db, local, "approve", person("bea"))

    def task(tid: int, sid: str, result: list[dict]) -> dict:
        return {"id": tid, "project": 41, "data": {"sample_id": sid},
                "annotations": [{"id": tid * 10, "completed_by": {"id": 3, "email": "ada@example.com"},
                                 "result": result, "updated_at": when.isoformat()}]}  # fmt: skip

    export = [task(1, wrong, verdict_result("wrong answer", note="should be 2.1 m")),
              task(2, local, verdict_result("bad media")),
              task(3, "not-in-the-catalog", verdict_result("correct")),
              task(4, other, [{"from_name": "note", "to_name": "question", "type": "textarea",
                               "value": {"text": ["no verdict"]}}]),
              {"id": 5, "project": 41, "data": {"sample_id": other}, "annotations": []}]  # fmt: skip
    at = app_at(PAGE)
    at.file_uploader(key="ls_upload").set_value(("project-41.json", json.dumps(export).encode(), "application/json"))
    at.run()
    at.button(key="ls_import_btn").click().run()
    assert not at.exception
    m = metrics(at)
    assert (m["tasks read"], m["reviews imported"], m["flags added"], m["conflicts"]) == ("5", "1", "1", "1")
    assert (m["unknown samples"], m["malformed"], m["not annotated yet"]) == ("1", "1", "1")
    (conflict,) = table(at, "resolution")
    assert (conflict["sample"], conflict["local reviewer"], conflict["resolution"]) == (local, "bea",
                                                                                        "kept local (newer)")
    skipped = {row["why"]: row for row in table(at, "why")}
    assert skipped["unknown sample"]["sample"] == "not-in-the-catalog"
    assert "no 'verdict' choice" in skipped["malformed"]["details"]
    with open_state(down.db_url) as db:
        assert review_for(db, wrong).reviewer == "ada@example.com"
        assert [f.reason for f in flags_for(db, wrong)] == ["wrong_answer"]
        assert review_for(db, local).reviewer == "bea"


def test_a_file_that_is_not_an_export_is_named_in_the_message(down):
    at = app_at(PAGE)
    at.file_uploader(key="ls_upload").set_value(("notes.json", b"{not json", "application/json")).run()
    at.button(key="ls_import_btn").click().run()
    assert not at.exception
    assert any(e.startswith("notes.json: ") for e in shown(at, "error"))
    assert not at.metric
