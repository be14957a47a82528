"""Check runs as jobs: queue, work, publish, resume after a kill, cancel, and read back every failure."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curation.checks.report import check_summary, failures_text, score_histogram
from curation.jobs.queue import cancel_job, claim_next_job, done_units, get_job, list_jobs
from curation.jobs.run import queue_checks, run_checks, run_job
from curation.jobs.worker import run_worker
from curation.query.results import STAGING
from db.engine import open_state
from tests.jobs.conftest import FAST, results
from tests.support.actors import CURATOR


def test_a_queued_run_is_worked_off_and_published_in_one_folder(catalog):
    job = queue_checks(catalog, "format,geometry,media.min_side,duplicates.exact", **FAST, by=CURATOR)
    assert get_job(open_state(catalog.db_url), job.id).state == "queued"
    report = run_worker(catalog, worker_id="w1", once=True)
    (summary,) = report.jobs
    # 3 shards + 2 cross-sample checks (format.ids_unique, duplicates.exact), each over all 8 samples
    assert summary.state == "completed" and summary.units_done == 5
    info = get_job(open_state(catalog.db_url), job.id)
    assert info.state == "completed" and info.done == info.total == 8 * 3 and info.rate > 0
    run_dir = Path(catalog.results_dir) / summary.run_id
    assert not (Path(catalog.results_dir) / STAGING / summary.run_id).exists()
    parts = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*.parquet"))
    assert "duplicates.exact/part-global.parquet" in parts and any(p.startswith("format.placeholders/part-")
                                                                     for p in parts)
    table = pq.read_table(next(run_dir.glob("format.placeholders/*.parquet")))
    assert table.column_names == ["sample_id", "check_name", "check_version", "passed", "score", "reason", "run_id",
                                  "severity"]
    assert {r["sample_id"] for r in results(catalog, "duplicates.exact")} == {r["sample_id"] for r in results(
        catalog, "format.ids_unique")}  # every sample has a row, passed ones too


def test_a_killed_worker_resumes_where_it_stopped(catalog):
    db = open_state(catalog.db_url)
    job = queue_checks(catalog, "format.placeholders,media.min_side", db=db, **FAST, by=CURATOR)
    claimed = claim_next_job(db, "doomed")
    first = run_job(catalog, db, claimed, max_units=1)  # the worker dies after one shard
    assert first.state == "interrupted" and len(done_units(db, job.id)) == 1
    assert not (Path(catalog.results_dir) / first.run_id).exists()  # nothing half-published
    report = run_worker(catalog, worker_id="rescuer", once=True, stale_after_s=0)  # the heartbeat is stale
    (second,) = report.jobs
    assert second.run_id == first.run_id and second.units_skipped == 1 and second.units_done == 2
    assert get_job(db, job.id).state == "completed"
    assert len({r["sample_id"] for r in results(catalog, "format.placeholders")}) == 6  # all SFT rows, once


def test_a_cancelled_run_stops_and_publishes_nothing(catalog):
    from curation.jobs.engines.local import LocalEngine

    db = open_state(catalog.db_url)
    job = queue_checks(catalog, "format.placeholders", db=db, **FAST, by=CURATOR)
    claimed = claim_next_job(db, "w")

    class CancelAfterOne(LocalEngine):
        def map_shards(self, tasks, on_rows=None):
            for result in super().map_shards(tasks):
                cancel_job(db, job.id, by=CURATOR)  # a curator presses cancel in the app
                yield result

    summary = run_job(catalog, db, claimed, engine=CancelAfterOne())
    assert summary.state == "cancelled" and get_job(db, job.id).state == "cancelled"
    assert not any(Path(catalog.results_dir).rglob("*.parquet"))


def test_a_broken_run_fails_with_its_error_and_the_worker_goes_on(catalog, monkeypatch):
    import curation.jobs.engines.local as local

    broken = queue_checks(catalog, "format.placeholders", **FAST, by=CURATOR)
    ok = queue_checks(catalog, "media.min_side", **FAST, by=CURATOR)
    real = local.process_shards

    def process_shards(tasks, on_rows=None):
        if "format.placeholders" in tasks[0].checks:
            raise RuntimeError("disk full")
        return real(tasks, on_rows)

    monkeypatch.setattr(local, "process_shards", process_shards)
    report = run_worker(catalog, worker_id="w", once=True)
    assert report.failed == 1 and [s.job_id for s in report.jobs] == [ok.id]
    failed = get_job(open_state(catalog.db_url), broken.id)
    assert failed.state == "failed" and failed.error.startswith("RuntimeError: disk full")
    assert [j.id for j in list_jobs(open_state(catalog.db_url), states=["failed"])] == [broken.id]


def test_unknown_checks_are_refused_when_queued(catalog):
    with pytest.raises(ValueError, match="no check matches 'format.nope'"):
        queue_checks(catalog, "format.nope", by=CURATOR)
    with pytest.raises(ValueError, match="--model PATH"):
        queue_checks(catalog, "model.reanswer", by=CURATOR)


def test_failures_list_check_results_and_ingest_problems_together(catalog):
    run_checks(catalog, "format,media,geometry", **FAST, by=CURATOR)
    lines = [json.loads(line) for line in failures_text(catalog, "jsonl").splitlines()]
    checks = {line["check"] for line in lines}
    assert "media.video" in checks  # the missing video, found by the check
    assert "ingest.media_missing_file" in checks  # and recorded by ingest
    assert all(set(line) == {"sample_id", "check", "severity", "reason", "score"} for line in lines)
    only_media = failures_text(catalog, "csv", check="media").splitlines()
    assert only_media[0] == "sample_id,check,severity,reason,score" and all(",media." in row for row in only_media[1:])
    summary = check_summary(catalog).to_pylist()
    video = {r["skill"]: r for r in summary if r["check_name"] == "media.video"}
    assert set(video) == {"video_object_counting", "video_measurement"}
    assert all(r["checked"] == r["failed"] == 1 and r["fail_rate"] == 1.0 for r in video.values())
    reasons = sorted(line["reason"] for line in lines if line["check"] == "media.video")
    assert "video does not decode" in reasons[0] and "video file is missing" in reasons[1]  # a stub and a lost file
    hist = score_histogram(catalog, "media.min_side", bins=4).to_pylist()
    assert sum(b["count"] for b in hist) == len(results(catalog, "media.min_side"))


def test_the_command_line_queues_works_and_lists_failures(catalog, capsys):
    from curation.cli.checks import register
    from curation.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "check" not in sub.choices:
        register(sub)

    def cli(*argv: str) -> str:
        args = parser.parse_args(["--home", str(catalog.home), *argv])
        assert args.func(args, catalog) == 0
        return capsys.readouterr().out

    assert "queued check job" in cli("check", "--checks", "media.video", "--embedder", "hashing")
    assert "1 job(s) done, 0 failed" in cli("worker", "--once")
    out = cli("failures", "--check", "media.video", "--format", "jsonl")
    assert json.loads(out.splitlines()[0])["check"] == "media.video"
    assert "format.placeholders" in cli("check", "--list")


def test_two_local_processes_give_the_same_results_as_one(catalog):
    import duckdb

    checks = "format.placeholders,media.min_side,consistency.units"
    one = run_checks(catalog, checks, **FAST, by=CURATOR)
    two = run_checks(catalog, checks, workers=2, **FAST, by=CURATOR)

    def rows(run_id: str) -> set[tuple]:
        glob = f"{catalog.results_dir}/{run_id}/*/*.parquet"
        sql = f"SELECT sample_id, check_name, passed, score FROM read_parquet('{glob}')"
        return set(duckdb.connect().sql(sql).fetchall())

    assert two.units_done == one.units_done == 3 and rows(one.run_id) == rows(two.run_id)
