"""Failures carry a severity: `error` breaks training, `warning` doubts quality, `info` is a known quirk the catalog
normalised. Stored with the results, listed and filtered by `failures`, Browse's filter and the Checks page."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.checks.base import with_check_columns
from curation.checks.registry import all_checks
from curation.checks.report import check_summary, failures_text
from curation.ingest.run import ingest
from curation.jobs.run import run_checks
from curation.presenters.checks import browse_spec_for, check_results_for, ingest_problems, severity_totals
from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterParamError, FilterSpec
from curation.query.results import RESULT_SCHEMA, latest_results_sql
from curation.vst.vocabulary import MISSING_FILE
from tests.support.actors import CURATOR
from tests.support.checks_helpers import image, run, sample, video
from tests.support.shards import png, sft_row, small_vst_tree, write_sft

FAST = {"embedder": "hashing"}
RL_MC = "Which side?\nA: front\nB: back"


def severity(check: str, row: dict, **params) -> str | None:
    (out,) = run(check, [row], **params).values()
    assert not out["passed"], out
    return out["severity"]


# What each kind of failure is, by the definitions: error breaks training, warning is a quality doubt,
# info a known quirk the catalog normalised.
CASES = [
    ("error", "format.placeholders", sample("x", human="<|image_pad|><|image_pad|>Two pads, one image?")),
    ("error", "format.answer_present", sample("x", gpt="<think>The lamp is left.</think>   ")),
    ("error", "format.answer_present", sample("x", kind="rl", gpt="")),
    ("error", "format.answer_extractable", sample("x", kind="rl", question=RL_MC, answer="front",
                                                   answer_kind="choice", rl_modes=["multi_choices_score"])),
    ("warning", "format.answer_extractable", sample("x", question=RL_MC, answer="front", answer_kind="choice")),
    ("error", "format.answer_extractable", sample("x", kind="rl", question="How far is it in meters?",
                                                   answer="far", answer_kind="text", rl_modes=["relaxed_score"])),
    ("error", "format.rl_mode", sample("x", kind="rl", rl_modes=["accuracy_score"])),
    ("error", "format.meta_info", sample("x", kind="rl", meta_info='{"mode": ["vqa_score"]')),
    ("warning", "format.meta_info", sample("x", meta_info="[{'width': 1}]")),
    ("info", "format.type_known", sample("x", type="unknow")),
    ("warning", "format.type_known", sample("x", type="qa2")),
    ("warning", "format.think_tags", sample("x", kind="sft", type="depth_thought", gpt="B")),
    ("error", "media.decodable", sample("x", media=[image(problem=MISSING_FILE, embedded=False, path="a.png")])),
    ("error", "media.video", sample("x", media=[video(problem=MISSING_FILE)])),
    ("warning", "media.min_side", sample("x", media=[image(20, 15)])),
    ("warning", "media.aspect_ratio", sample("x", media=[image(1000, 8)])),
    ("error", "media.aspect_ratio", sample("x", media=[image(1000, 4)])),  # the image processor raises past 200:1
    ("warning", "media.token_budget", sample("x", kind="rl", media=[image(2100, 1575)] * 3)),
    ("error", "media.token_budget", sample("x", kind="rl", media=[image(64, 64)] * 5)),
]


@pytest.mark.parametrize("expected, check, row", CASES, ids=[f"{c}-{e}-{i}" for i, (e, c, _) in enumerate(CASES)])
def test_each_failure_has_the_severity_its_consequence_gives(expected, check, row):
    assert severity(check, row) == expected


def test_quality_families_fail_as_warnings_and_every_check_names_a_known_severity():
    checks = all_checks()
    for name, cls in checks.items():
        assert cls.severity in ("error", "warning", "info"), name
        if cls.family() in ("geometry", "consistency", "duplicates", "contamination", "model"):
            assert cls.severity == "warning", name


def test_a_shard_whose_images_say_byres_is_a_known_quirk_at_info(tmp_path, home):
    byres = pa.list_(pa.struct([("byres", pa.binary()), ("path", pa.string())]))
    write_sft(tmp_path / "vst_p" / "si_distance" / "part-00001.parquet",
              [sft_row(0, "What is the distance between the chair and the table?", "1.5",
                       images=[{"byres": png(), "path": ""}])], images_type=byres)
    write_sft(tmp_path / "vst_p" / "si_distance" / "part-00000.parquet",
              [sft_row(1, "What is the distance between the bed and the desk?", "2.5", id="id-9")])
    ingest([tmp_path / "vst_p"], home, progress=False)
    run_checks(home, "format.bytes_field", **FAST, by=CURATOR)
    lines = [json.loads(line) for line in failures_text(home, "jsonl", check="format.bytes_field").splitlines()]
    assert [(line["severity"], "`byres`" in line["reason"]) for line in lines] == [("info", True)]
    assert failures_text(home, "jsonl", severities=["error", "warning"]).strip() == ""


def test_a_check_stating_a_severity_that_does_not_exist_is_refused_naming_it():
    outcomes = pa.table({"sample_id": ["a"], "passed": [False], "score": [None], "reason": ["x"],
                         "severity": ["fatal"]})
    with pytest.raises(ValueError, match="format.placeholders: severity \\['fatal'\\]"):
        with_check_columns(outcomes, "format.placeholders", "1", "r1")


def test_results_written_before_severities_read_their_failures_as_warnings(tmp_path):
    old = pa.schema([f for f in RESULT_SCHEMA if f.name != "severity"])
    out = tmp_path / "r1" / "format.a"
    out.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([
        {"sample_id": "s1", "check_name": "format.a", "check_version": "1", "passed": False, "score": None,
         "reason": "bad", "run_id": "r1"},
        {"sample_id": "s2", "check_name": "format.a", "check_version": "1", "passed": True, "score": None,
         "reason": None, "run_id": "r1"}], schema=old), out / "part-0.parquet")
    import duckdb

    rows = duckdb.connect().sql(f"SELECT sample_id, severity FROM {latest_results_sql(tmp_path)} ORDER BY 1").fetchall()
    assert rows == [("s1", "warning"), ("s2", None)]


@pytest.fixture
def checked(home, tmp_path):
    """The small tree (a missing video, an RL row) plus a row with two placeholders for one image, checked."""
    root = small_vst_tree(tmp_path / "src")
    write_sft(root / "vst_p" / "si_measurement" / "part-00000.parquet",
              [sft_row(0, "<|image_pad|>How tall is the lamp?", "1.2", type_="unknow", id="pads-0")])
    ingest([root / "vst_p", root / "vst_r"], home, progress=False)
    run_checks(home, "format,media", **FAST, by=CURATOR)
    return home


def test_failures_lists_each_with_its_severity_and_filters_by_it(checked):
    lines = [json.loads(line) for line in failures_text(checked, "jsonl").splitlines()]
    got = {(line["check"], line["severity"]) for line in lines}
    assert {("format.placeholders", "error"), ("media.video", "error"), ("ingest.media_missing_file", "error"),
            ("format.type_known", "info")} <= got
    errors = [json.loads(line) for line in failures_text(checked, "jsonl", severities=["error"]).splitlines()]
    assert errors and all(line["severity"] == "error" for line in errors)
    assert {line["check"] for line in errors} >= {"format.placeholders", "media.video", "ingest.media_missing_file"}
    csv = failures_text(checked, "csv", check="format.type_known").splitlines()
    assert csv[0] == "sample_id,check,severity,reason,score" and ",format.type_known,info," in csv[1]
    with pytest.raises(ValueError, match="'fatal' is not one of error, warning, info"):
        failures_text(checked, "jsonl", severities=["fatal"])


def test_the_failures_command_takes_a_severity(checked, capsys):
    from curation.cli.main import main

    assert main(["--home", str(checked.home), "failures", "--severity", "info"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines and {line["severity"] for line in lines} == {"info"}
    assert main(["--home", str(checked.home), "failures", "--severity", "fatal"]) == 2
    assert "'fatal' is not one of error, warning, info" in capsys.readouterr().err


def test_browse_filters_by_severity_over_checks_and_ingest_problems(checked):
    q = CatalogQuery(checked)
    try:
        n_error = q.count(FilterSpec(failed_severities=["error"]))
        n_info = q.count(FilterSpec(failed_severities=["info"]))
        assert n_error == 3  # the two-placeholder row, the stub video (check), the missing video (check + ingest)
        assert n_info == 1  # the "unknow" row
        assert q.count(FilterSpec(failed_checks=["format.type_known"], failed_severities=["error"])) == 0
        assert q.count(FilterSpec(failed_checks=["format.type_known"], failed_severities=["info"])) == 1
    finally:
        q.close()
    with pytest.raises(FilterParamError, match="failed_severities"):
        FilterSpec.from_query_params({"failed_severities": "error,fatal"})
    spec = FilterSpec.from_query_params({"failed_severities": "error"})
    assert spec.failed_severities == ["error"] and FilterSpec.from_query_params(spec.to_query_params()) == spec


def test_the_checks_page_shows_failures_by_severity(checked):
    summary = check_summary(checked)
    totals = severity_totals(summary)
    assert totals["error"] >= 4 and totals["info"] == 1 and list(totals) == ["error", "warning", "info"]
    only_errors: dict[str, int] = {}
    for r in check_summary(checked, severities=["error"]).to_pylist():  # one row per check and skill
        only_errors[r["check_name"]] = only_errors.get(r["check_name"], 0) + r["failed"]
    assert only_errors["format.type_known"] == 0 and only_errors["format.placeholders"] == 1
    assert browse_spec_for("format.type_known", None, ["info"]) == FilterSpec(failed_checks=["format.type_known"],
                                                                              failed_severities=["info"])
    _, rows = ingest_problems(checked)
    assert rows and all(r["severity"] == "error" for r in rows if r["check"].startswith("ingest.media_"))
    video_row = next(r["sample_id"] for r in rows if r["check"] == "ingest.media_missing_file")
    results = check_results_for(checked, video_row)
    assert results[0]["severity"] == "error" and results[0]["passed"] is False
