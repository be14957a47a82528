"""The Checks page: a curator starts a check run (queued for the worker, or here and now), follows and cancels runs,
reads failures per check x skill, moves a score threshold without a re-run, and opens the failing samples in
Browse; the sample view lists a sample's check results and Browse's sidebar offers the checks that ran."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from curation.checks.report import check_summary
from curation.jobs.queue import get_job, list_jobs
from curation.jobs.run import run_checks
from curation.presenters.checks import (
    JobView,
    browse_spec_for,
    check_results_for,
    checks_by_family,
    clicked_cell,
    describe_selection,
    format_seconds,
    result_check_names,
    severity_totals,
    worker_seems_absent,
)
from curation.presenters.overview import skill_label
from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from curation.settings import Settings, load_settings
from db.engine import open_state
from tests.app.test_app_support import app_at, forget_app_caches, point_app_at, shown
from tests.support.actors import CURATOR

CHECKS = "pages/3_Checks.py"
FAST = {"embedder": "hashing"}  # no MiniLM load in tests


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory) -> Settings:
    """A 150-sample demo of our own (the session's demo_home is shared read-only), ingested, no checks run yet."""
    from curation.demo import generate_demo
    from curation.ingest.run import ingest

    root = tmp_path_factory.mktemp("checks_demo")
    generate_demo(root / "demo", samples=150, seed=11, progress=False)
    settings = load_settings(root / "home", env={"CURATOR_SCENE_ROOT": str(root / "demo" / "scenes")}).ensure_dirs()
    ingest([root / "demo" / "vst_p", root / "demo" / "vst_r"], settings, progress=False)
    return settings


@pytest.fixture(scope="module")
def checked(small_demo: Settings, tmp_path_factory) -> Settings:
    """The same catalog with four families of checks run once (results in a folder of their own, read-only)."""
    results = tmp_path_factory.mktemp("checks_results")
    settings = load_settings(small_demo.home, env={"CURATOR_RESULTS": str(results),
                                                   "CURATOR_DB_URL": f"sqlite:///{results.parent / 'run.db'}",
                                                   "CURATOR_SCENE_ROOT": str(small_demo.scene_root)})
    run_checks(settings, "format,geometry,duplicates,consistency", **FAST, by=CURATOR)
    return settings


def app_home(monkeypatch, tmp_path: Path, catalog: Settings, results: Path | None = None) -> Settings:
    """The shared catalog and text index; a state database (and, unless given, results) of this test's own."""
    env = {"CURATOR_CATALOG": str(catalog.catalog_path), "CURATOR_TEXT_INDEX": str(catalog.text_index_dir),
           "CURATOR_SCENE_ROOT": str(catalog.scene_root)}
    if results is not None:
        env["CURATOR_RESULTS"] = str(results)
    return point_app_at(monkeypatch, tmp_path / "home", **env)


@pytest.fixture
def fresh(monkeypatch, tmp_path, small_demo):
    yield app_home(monkeypatch, tmp_path, small_demo)
    forget_app_caches()


@pytest.fixture
def with_results(monkeypatch, tmp_path, checked):
    yield app_home(monkeypatch, tmp_path, checked, checked.results_dir)
    forget_app_caches()


def page_links(at) -> dict[str, dict[str, str]]:
    """Label -> query params of every st.page_link on the page."""
    return {e.proto.label: {k: v[-1] for k, v in parse_qs(e.proto.query_string).items()} for e in at.get("page_link")}


def table_with(at, column: str):
    """The first st.dataframe with this column (AppTest's dataframes carry no key)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def chart(at, key: str) -> dict:
    return json.loads(next(c for c in at.get("plotly_chart") if c.key == key).proto.spec)


# --------------------------------------------------------------------------------------------- the page


def test_before_any_run_the_page_says_how_to_run_checks_and_shows_ingest_problems(fresh):
    at = app_at(CHECKS)
    assert not at.exception
    assert any("No check has run yet" in i for i in shown(at, "info"))
    assert "No check run yet." in shown(at, "caption")
    # The demo's rows with ingest problems are listed as ingest.* pseudo-checks.
    counts = table_with(at, "problem")
    assert all(p.startswith("ingest.") for p in counts["problem"]) and counts["samples"].sum() > 0
    assert at.expander[0].label == "Start a check run"  # open, since nothing has run


def test_without_a_catalog_the_page_says_how_to_build_one(monkeypatch, tmp_path):
    point_app_at(monkeypatch, tmp_path / "empty")
    at = app_at(CHECKS)
    assert not at.exception
    assert "No catalog" in at.error[0].value
    forget_app_caches()


def test_the_run_form_offers_every_registered_check_grouped_by_family(fresh):
    at = app_at(CHECKS)
    families = checks_by_family()
    for family, checks in families.items():
        widget = at.multiselect(key=f"chk_pick_{family}")
        assert widget.options == [c["name"].removeprefix(family + ".") for c in checks]
        assert widget.value == [c["name"] for c in checks if c["default"] == "yes"]
    assert at.multiselect(key="chk_pick_model").value == []  # opt-in: it needs a local model


def test_running_checks_here_fills_in_the_heatmap_and_links_a_cell_to_browse(fresh):
    at = app_at(CHECKS)
    for family in checks_by_family():
        if family != "format":
            at.multiselect(key=f"chk_pick_{family}").set_value([])
    at.selectbox(key="chk_embedder").set_value("hashing")
    at.button(key="chk_here").click().run()
    assert not at.exception
    (job,) = list_jobs(open_state(fresh.db_url), kind="check")
    assert job.state == "completed" and job.done == job.total > 0
    assert all(n.startswith("format.") for n in result_check_names(fresh))

    heat, cells = chart(at, "chk_heatmap")["data"][:2]
    summary = check_summary(fresh).to_pylist()
    assert set(heat["y"]) == {r["check_name"] for r in summary}
    assert set(heat["x"]) == {skill_label(r["skill"]) for r in summary}  # the taxonomy's names, not ids
    assert "Distance Prediction" in heat["x"]
    # A click on a cell names its check and skill id (clicked_cell), which open Browse at once.
    failing = next(r for r in summary if r["failed"] and not r["check_name"].startswith("ingest."))
    point = {"customdata": cells["customdata"][[(c[3], c[4]) for c in cells["customdata"]].index(
        (failing["check_name"], failing["skill"]))]}
    assert clicked_cell({"points": [point]}) == (failing["check_name"], failing["skill"])
    assert chart(at, "chk_heatmap")["layout"]["clickmode"] == "event+select"
    assert list(next(c for c in at.get("plotly_chart") if c.key == "chk_heatmap").proto.selection_mode)

    at.selectbox(key="chk_open_check").set_value(failing["check_name"])
    at.selectbox(key="chk_open_skill").set_value(failing["skill"]).run()
    link = page_links(at)["Open in Browse"]
    assert link == {"skills": failing["skill"], "failed_checks": failing["check_name"]}
    q = CatalogQuery(fresh)
    assert q.count(FilterSpec.from_query_params(link)) == failing["failed"]  # Browse shows exactly the cell
    q.close()
    finished = table_with(at, "run id")
    assert finished["state"].tolist() == ["completed"]
    assert finished["took"].iloc[0].endswith(" s") or "min" in finished["took"].iloc[0]  # how long the run took

    # Failures by severity, each a way into Browse.
    totals = severity_totals(check_summary(fresh))
    assert {m.label: m.value for m in at.metric if m.label.endswith(" failures")} == {
        f"{s} failures": f"{n:,}" for s, n in totals.items()}
    for severity in totals:
        link = page_links(at)[f"Open the {severity} samples in Browse"]
        assert link == {"failed_severities": severity}


def test_a_queued_run_waits_for_the_worker_and_can_be_cancelled(fresh):
    at = app_at(CHECKS)
    at.button(key="chk_queue").click().run()
    assert not at.exception
    (job,) = list_jobs(open_state(fresh.db_url), kind="check")
    assert job.state == "queued"
    assert any(f"Run #{job.id}" in m for m in shown(at, "markdown"))
    at.button(key=f"chk_cancel_{job.id}").click().run()
    assert get_job(open_state(fresh.db_url), job.id).state == "cancelled"
    assert table_with(at, "run id")["state"].tolist() == ["cancelled"]


def test_the_score_threshold_counts_the_samples_below_it_without_a_rerun(with_results):
    at = app_at(CHECKS)
    assert not at.exception
    assert at.selectbox(key="chk_score_check").options  # scored checks with results
    at.selectbox(key="chk_score_check").set_value("duplicates.near").run()
    slider = at.slider(key="chk_threshold_duplicates.near")
    lo, hi = slider.min, slider.max
    q = CatalogQuery(with_results)
    for value in (lo + (hi - lo) * 0.25, hi):
        slider.set_value(value).run()
        expected = q.count(FilterSpec(score_below={"duplicates.near": value}))
        assert any(m.startswith(f"**{expected:,}** sample") and " below " in m for m in shown(at, "markdown"))
        link = page_links(at)["Open these in Browse"]
        assert FilterSpec.from_query_params(link).score_below == {"duplicates.near": pytest.approx(value)}
    q.close()
    assert len(list_jobs(open_state(with_results.db_url), kind="check")) == 0  # nothing was re-run
    hist = chart(at, "chk_histogram")
    assert {t["name"] for t in hist["data"]} == {"passed", "failed"}


# --------------------------------------------------------------------------------------------- elsewhere


def test_a_sample_lists_its_check_results_failing_first(with_results):
    summary = [r for r in check_summary(with_results).to_pylist() if r["failed"] and "." in r["check_name"]
               and not r["check_name"].startswith("ingest.")]
    q = CatalogQuery(with_results)
    sid = q.page(FilterSpec(failed_checks=[summary[0]["check_name"]]), limit=1).rows[0]["sample_id"]
    q.close()
    results = check_results_for(with_results, sid)
    verdicts = [r["passed"] for r in results]
    assert verdicts == sorted(verdicts) and verdicts[0] is False  # failing first
    assert {"check", "passed", "score", "reason", "run_id", "check_version"} <= set(results[0])
    assert check_results_for(with_results, "no-such-sample") == []

    at = app_at("pages/2_Sample.py", id=sid)
    assert not at.exception
    assert any(f"of {len(results)} failed" in e.label for e in at.expander)
    table = table_with(at, "check")
    assert table["check"].tolist() == [r["check"] for r in results]


def test_browse_offers_the_checks_that_ran_and_filters_by_them(with_results):
    names = result_check_names(with_results)
    at = app_at("pages/1_Browse.py")
    failed = at.sidebar.multiselect(key="flt_failed_checks")
    assert failed.options == names
    failed.select("format.placeholders").run()
    assert at.query_params["failed_checks"] == "format.placeholders"
    at.sidebar.selectbox(key="flt_score_check").set_value("duplicates.near").run()
    at.sidebar.number_input(key="flt_score_max").set_value(0.5).run()
    assert at.query_params["score_below"] == "duplicates.near:0.5"
    q = CatalogQuery(with_results)
    expected = q.count(FilterSpec(failed_checks=["format.placeholders"], score_below={"duplicates.near": 0.5}))
    q.close()
    assert any(m.startswith(f"**{expected:,}** samples match") for m in shown(at, "markdown"))
    # A link with thresholds seeds the widgets.
    at = app_at("pages/1_Browse.py", score_below="duplicates.near:0.9")
    assert at.sidebar.selectbox(key="flt_score_check").value == "duplicates.near"
    assert at.sidebar.number_input(key="flt_score_max").value == pytest.approx(0.9)


# --------------------------------------------------------------------------------------------- helpers


def _job(state: str, age_s: float) -> JobView:
    return JobView(id=1, run_id="r", state=state, checks="x", done=0, total=None, rate=None, eta_s=None,
                   created_at=datetime.now(UTC) - timedelta(seconds=age_s), worker_id=None, error=None)


def test_a_run_left_in_the_queue_means_no_worker_is_there():
    assert worker_seems_absent([_job("queued", 60)])
    assert not worker_seems_absent([_job("queued", 1)])
    assert not worker_seems_absent([_job("queued", 60), _job("running", 5)])
    assert not worker_seems_absent([_job("completed", 600)])


def test_a_run_names_its_checks_briefly():
    assert describe_selection(None) == "every default check"
    assert describe_selection(["format.placeholders"]) == "format.placeholders"
    many = ["format.a", "format.b", "media.c", "geometry.d", "geometry.e"]
    assert describe_selection(many) == "5 checks (format, media, geometry)"


def test_ingest_problems_open_browse_on_samples_with_problems_and_times_read_well():
    assert browse_spec_for("ingest.bad_media", "si_distance") == FilterSpec(skills=["si_distance"], has_problems=True)
    assert browse_spec_for("format.placeholders").failed_checks == ["format.placeholders"]
    assert [format_seconds(s) for s in (None, 4.4, 75, 7300)] == ["?", "4 s", "1 min 15 s", "2 h 01 min"]


def test_a_running_run_says_how_far_it_is_how_long_it_took_and_never_guesses_the_time_left():
    started = datetime.now(UTC) - timedelta(seconds=90)
    running = replace(_job("running", 100), done=10_000, total=14_000, rate=120.0, eta_s=None, started_at=started)
    assert running.progress_text() == "10,000 / 14,000 row passes · 120/s · ETA not known yet"
    assert replace(running, eta_s=33.0).progress_text() == "10,000 / 14,000 row passes · 120/s · ETA 33 s"
    assert running.seconds(now=started + timedelta(seconds=90)) == 90.0
    finished = replace(running, state="completed", finished_at=started + timedelta(seconds=75))
    assert finished.seconds() == 75.0 and finished.fraction == 1.0
    assert replace(running, state="queued", started_at=None).seconds() is None
