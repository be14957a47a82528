"""Label Studio round trips against a real server: a curator pushes 50 demo samples of three kinds, an
annotator answers them in Label Studio, the curator pulls the verdicts back; doing either again changes
nothing, and a wrong token or a stopped server leaves the state database untouched."""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from curation.cli.labelstudio import register
from curation.labelstudio.client import (
    Connection,
    LabelStudioAuthError,
    LabelStudioClient,
    LabelStudioUnreachable,
)
from curation.labelstudio.configs import SampleKind, verdict_result
from curation.labelstudio.links import links_for_project, list_projects
from curation.labelstudio.pull import PullReport, pull
from curation.labelstudio.push import PushReport, push
from curation.labelstudio.server import LabelStudioServerError, pick_free_port, start_server
from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from curation.review.flags import flags_for
from curation.review.reviews import review_for, reviews_for
from curation.review.roles import PermissionDenied
from curation.settings import Settings
from db.engine import open_state
from db.models import Review
from tests.support.actors import ANNOTATOR, CURATOR, VIEWER

pytestmark = pytest.mark.labelstudio

RUN_ID = "run-0001"


def _pick(settings: Settings) -> dict[str, list[str]]:
    """20 single-image samples (3D-box ones first), 15 multi-image, 15 with a reasoning trace."""
    q = CatalogQuery(settings)
    try:
        def ids(where: str, n: int, order: str = "sample_id") -> list[str]:
            rows = q.cursor().execute(f"SELECT sample_id FROM samples WHERE {where} ORDER BY {order} LIMIT {n}")
            return [r[0] for r in rows.fetchall()]

        boxes_first = "coalesce(len(boxes_3d), 0) > 0 DESC, sample_id"
        return {
            "single": ids("sample_group = 'single' AND NOT has_reasoning", 20, boxes_first),
            "multi": ids("sample_group = 'multi' AND NOT has_reasoning", 15),
            "reasoning": ids("has_reasoning", 15),
        }
    finally:
        q.close()


def _write_check_run(results_dir: Path, failing: list[str], passing: list[str]) -> None:
    """One check run, laid out as curation/query/results.py reads it."""
    rows = [(sid, False, 0.0, "image does not decode") for sid in failing]
    rows += [(sid, True, 1.0, None) for sid in passing]
    table = pa.table({
        "sample_id": [r[0] for r in rows], "check_name": ["media_decodable"] * len(rows),
        "check_version": ["1"] * len(rows), "passed": [r[1] for r in rows], "score": [r[2] for r in rows],
        "reason": [r[3] for r in rows], "run_id": [RUN_ID] * len(rows),
    })  # fmt: skip
    out = results_dir / RUN_ID / "media_decodable"
    out.mkdir(parents=True)
    pq.write_table(table, out / "part-0.parquet")


@dataclass
class RoundTrip:
    settings: Settings
    picked: dict[str, list[str]]
    first_push: PushReport
    first_pull: PullReport
    second_push: PushReport
    second_pull: PullReport
    tasks_after_first_push: dict[int, int]
    tasks_after_second_push: dict[int, int]
    project_of: dict[SampleKind, int]
    annotator: str


@pytest.fixture(scope="module")
def ls_home(ls_server_booting, demo_home, ls_server, tmp_path_factory) -> Settings:
    """The demo catalog (read-only), with a state database and check results of its own, and the server
    (booting while the demo is generated)."""
    tmp = tmp_path_factory.mktemp("ls_home")
    return replace(
        demo_home,
        db_url=f"sqlite:///{tmp / 'state.sqlite'}",
        results_dir=tmp / "results",
        labelstudio_url=ls_server.url,
        labelstudio_token=ls_server.token,
        labelstudio_files_root=ls_server.files_root,
    )


@pytest.fixture(scope="module")
def trip(ls_home, ls_client) -> RoundTrip:
    settings = ls_home
    picked = _pick(settings)
    _write_check_run(settings.results_dir, failing=picked["multi"][:3], passing=picked["single"][:5])
    spec = FilterSpec(sample_ids=[s for ids in picked.values() for s in ids])

    first_push = push(settings, spec, project="Story", by=CURATOR)
    project_of = {p.kind: p.project_id for p in first_push.projects}
    counts_1 = {pid: len(ls_client.task_sample_ids(pid)) for pid in project_of.values()}

    # An annotator answers in Label Studio (through the API, as the labeling UI does).
    annotator = "ada@example.com"
    uid = ls_client.create_user(annotator, "Ada", "Lovelace")
    tasks = {pid: ls_client.task_sample_ids(pid) for pid in project_of.values()}
    single, multi, reasoning = (project_of[k] for k in (SampleKind.SINGLE_IMAGE, SampleKind.MULTI_IMAGE,
                                                          SampleKind.REASONING))  # fmt: skip

    def annotate(pid: int, sample_id: str, result: list[dict]) -> None:
        ls_client.create_annotation(tasks[pid][sample_id], result, completed_by=uid)

    def annotate_all(pid: int, sample_ids: list[str], result: list[dict]) -> None:
        for sid in sample_ids:
            annotate(pid, sid, result)

    annotate_all(single, picked["single"][:6], verdict_result("correct"))
    for i, sid in enumerate(picked["single"][10:14]):
        annotate(single, sid, verdict_result("wrong answer", fixed_answer=f"fixed {i}", note="recomputed"))
    annotate_all(multi, picked["multi"][:3], verdict_result("bad media"))
    annotate_all(reasoning, picked["reasoning"][:3], verdict_result("bad reasoning", note="the trace skips a step"))
    # One malformed annotation (only a note, no verdict) and one task whose sample the catalog lacks.
    annotate(reasoning, picked["reasoning"][5], [{"from_name": "note", "to_name": "question", "type": "textarea",
                                                  "value": {"text": ["no idea"]}}])  # fmt: skip
    stray_data = {"sample_id": "not-in-the-catalog", "skill": "", "question": "?", "answer": "", "reasoning": "",
                  "media_note": "", "image": ""}  # fmt: skip
    (stray,) = ls_client.import_tasks(single, [{"data": stray_data}])
    ls_client.create_annotation(stray, verdict_result("correct"), completed_by=uid)

    first_pull = pull(settings, by=CURATOR)
    second_push = push(settings, spec, project="Story", by=CURATOR)
    counts_2 = {pid: len(ls_client.task_sample_ids(pid)) for pid in project_of.values()}
    second_pull = pull(settings, by=CURATOR)
    return RoundTrip(settings, picked, first_push, first_pull, second_push, second_pull, counts_1, counts_2,
                     project_of, annotator)  # fmt: skip


def test_push_makes_one_project_per_kind_with_media_from_local_files(trip, ls_client):
    assert trip.first_push.new_tasks == 50
    assert set(trip.project_of) == {SampleKind.SINGLE_IMAGE, SampleKind.MULTI_IMAGE, SampleKind.REASONING}
    assert trip.tasks_after_first_push == {trip.project_of[SampleKind.SINGLE_IMAGE]: 20,
                                           trip.project_of[SampleKind.MULTI_IMAGE]: 15,
                                           trip.project_of[SampleKind.REASONING]: 15}  # fmt: skip
    single = [t for t in ls_client.export_tasks(trip.project_of[SampleKind.SINGLE_IMAGE])
              if t["data"]["sample_id"] != "not-in-the-catalog"]  # fmt: skip
    assert len(single) == 20
    for t in single:
        image = t["data"]["image"]
        assert image.startswith("/data/local-files/?d=vst/") and "base64" not in image
        assert t["data"]["sample_id"]
    # 3D-box samples show the rendered overlay, not the bare image.
    assert "-boxes-" in next(t for t in single if t["data"]["sample_id"] == trip.picked["single"][0])["data"]["image"]
    multi = ls_client.export_tasks(trip.project_of[SampleKind.MULTI_IMAGE])
    assert all(len(t["data"]["images"]) >= 2 for t in multi)
    for pid in trip.project_of.values():
        assert len(ls_client.sdk.import_storage.local.list(project=pid)) == 1


def test_push_records_links_and_sends_check_results_as_predictions(trip, ls_client):
    with open_state(trip.settings.db_url) as db:
        links = [link for p in list_projects(db) for link in links_for_project(db, p.id)]
    assert len(links) == len({link.sample_id for link in links}) == 50
    assert all(link.pushed_at is not None for link in links)
    multi = {t["data"]["sample_id"]: t for t in ls_client.export_tasks(trip.project_of[SampleKind.MULTI_IMAGE])}
    failing = trip.picked["multi"][0]
    (prediction,) = ls_client.sdk.predictions.list(task=multi[failing]["id"])
    assert prediction.model_version == RUN_ID
    assert prediction.result[0]["value"]["choices"] == ["bad media"]
    assert not multi[trip.picked["multi"][10]]["predictions"]  # no check ran on it


def test_pull_turns_annotations_into_reviews_with_verdict_fix_and_annotator(trip):
    assert trip.first_pull.added == 16
    with open_state(trip.settings.db_url) as db:
        correct = review_for(db, trip.picked["single"][0])
        assert (correct.verdict, correct.reviewer, correct.source) == (
            "approve", trip.annotator, f"labelstudio:{trip.project_of[SampleKind.SINGLE_IMAGE]}")  # fmt: skip
        fixed = review_for(db, trip.picked["single"][12])
        assert (fixed.verdict, fixed.fixed_answer) == ("fix", "fixed 2")
        media = review_for(db, trip.picked["multi"][0])
        assert media.verdict == "reject" and [f.reason for f in flags_for(db, trip.picked["multi"][0])] == ["bad_media"]
        trace = review_for(db, trip.picked["reasoning"][0])
        assert trace.verdict == "reject" and "the trace skips a step" in trace.note
        assert review_for(db, trip.picked["single"][19]) is None  # not annotated yet


def test_pull_reports_unknown_samples_and_malformed_annotations_and_imports_the_rest(trip):
    counts = trip.first_pull.parsed.counts
    assert (counts["unknown_sample"], counts["malformed"]) == (1, 1)
    text = "\n".join(trip.first_pull.lines())
    assert "not-in-the-catalog" in text and "no 'verdict' choice" in text


def test_pushing_again_adds_no_task_and_pulling_again_adds_no_review(trip):
    assert (trip.second_push.new_tasks, trip.second_push.already_there) == (0, 50)
    assert trip.tasks_after_second_push == {pid: n + (pid == trip.project_of[SampleKind.SINGLE_IMAGE])
                                            for pid, n in trip.tasks_after_first_push.items()}  # fmt: skip
    assert (trip.second_pull.added, trip.second_pull.already_pulled) == (0, 16)
    with open_state(trip.settings.db_url) as db:
        assert len(reviews_for(db, trip.picked["single"][0])) == 1


def _state_counts(settings: Settings) -> tuple[int, int]:
    """(links, reviews) in the state database."""
    with open_state(settings.db_url) as db:
        links = sum(len(links_for_project(db, p.id)) for p in list_projects(db))
        with db.read() as s:
            reviews = s.scalar(select(func.count()).select_from(Review))
    return links, reviews


def test_a_wrong_token_or_a_stopped_server_writes_nothing_and_says_why(trip, capsys):
    before = _state_counts(trip.settings)
    bad_token = replace(trip.settings, labelstudio_token="0" * 40)
    with pytest.raises(LabelStudioAuthError, match="refused the token"):
        push(bad_token, FilterSpec(skills=["si_distance"]), by=CURATOR)
    down = replace(trip.settings, labelstudio_url=f"http://127.0.0.1:{pick_free_port()}")
    with pytest.raises(LabelStudioUnreachable, match="not reachable"):
        pull(down, by=CURATOR)
    assert _state_counts(trip.settings) == before

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["ls", "pull"])
    assert args.func(args, down) == 2
    assert "Label Studio is not reachable" in capsys.readouterr().err


def test_a_viewer_or_an_annotator_can_neither_push_nor_pull_and_the_server_sees_no_change(trip, ls_client):
    before_server = {p["id"]: (p["title"], p["task_number"]) for p in ls_client.projects()}
    before = _state_counts(trip.settings)
    for actor in (VIEWER, ANNOTATOR):
        with pytest.raises(PermissionDenied, match=f"{actor.who} has the role '{actor.role}', which may not ls push"):
            push(trip.settings, FilterSpec(skills=["si_distance"]), project="Refused", by=actor)
        with pytest.raises(PermissionDenied, match="which may not ls pull"):
            pull(trip.settings, by=actor)
    assert {p["id"]: (p["title"], p["task_number"]) for p in ls_client.projects()} == before_server
    assert _state_counts(trip.settings) == before
    # The curator's tasks say who sent them (a column in Label Studio's data manager).
    multi = ls_client.export_tasks(trip.project_of[SampleKind.MULTI_IMAGE])
    assert {t["data"]["pushed_by"] for t in multi} == {CURATOR.who}


def test_a_personal_access_token_works_as_well_as_the_legacy_token(trip, ls_client, ls_server):
    pat = ls_client.sdk.tokens.create().token
    client = LabelStudioClient(Connection(ls_server.url, pat))
    assert client.whoami()["email"] == ls_server.credentials.username
    again = pull(replace(trip.settings, labelstudio_token=pat), by=CURATOR)
    assert again.added == 0 and again.already_pulled == 16


def test_status_lists_the_pushed_projects(trip, capsys):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["ls", "status"])
    assert args.func(args, trip.settings) == 0
    out = capsys.readouterr().out
    assert "Label Studio 1.23" in out and "'Story · multi-image': 15 task(s), 3 annotated, 15 linked" in out


@pytest.mark.browser
def test_the_labeling_page_shows_the_sample_image(trip, ls_server, ls_client, tmp_path):
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("Chromium is not installed (make test-deps installs it)")
    from playwright.sync_api import sync_playwright

    pid = trip.project_of[SampleKind.SINGLE_IMAGE]
    sample_id = trip.picked["single"][0]
    task_id = ls_client.task_sample_ids(pid)[sample_id]
    image_url = next(t for t in ls_client.export_tasks(pid) if t["id"] == task_id)["data"]["image"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{ls_server.url}/user/login/")
            page.fill("input[name=email]", ls_server.credentials.username)
            page.fill("input[name=password]", ls_server.credentials.password)
            with page.expect_navigation():
                page.click("button[type=submit]")
            assert "/user/login" not in page.url, "login to Label Studio failed"
            page.goto(f"{ls_server.url}/projects/{pid}/data?task={task_id}")
            # The labeling panel's image: our overlay, loaded through /data/local-files/ and decoded.
            selector = f'img[src$="{image_url}"]'
            page.wait_for_function(
                "sel => [...document.querySelectorAll(sel)].some(i => i.complete && i.naturalWidth > 0)",
                arg=selector, timeout=60_000,
            )  # fmt: skip
            width = page.eval_on_selector_all(selector, "els => Math.max(...els.map(e => e.naturalWidth))")
            shot = tmp_path / "task.png"
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    q = CatalogQuery(trip.settings)
    try:
        expected = q.sample(sample_id)["media"][0]["width"]
    finally:
        q.close()
    assert width == expected
    assert shot.stat().st_size > 20_000


def test_a_second_server_on_a_taken_port_is_refused_not_moved(ls_server, tmp_path):
    # Label Studio itself would silently take the next free port; the manager refuses before starting.
    with pytest.raises(LabelStudioServerError, match=f"port {ls_server.port} on 127.0.0.1 is in use"):
        start_server(tmp_path / "data", port=ls_server.port)
    assert not (tmp_path / "data" / "server.log").exists()
