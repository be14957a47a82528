"""Label Studio without a server: configs per sample kind, media files for tasks, and reading verdicts back
from an export (by sample_id, idempotent, conflicts stated, bad tasks reported and skipped)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from curation.ingest.run import ingest
from curation.labelstudio.configs import VERDICTS, SampleKind, labeling_config, sample_kind, verdict_result
from curation.labelstudio.files import MediaFolder, draw_boxes, image_extension
from curation.labelstudio.pull import (
    ExportFileError,
    PullReport,
    apply_verdicts,
    load_export_file,
    parse_export,
    pull_file,
)
from curation.labelstudio.push import check_label
from curation.review.flags import flags_for
from curation.review.reviews import add_review, review_for, reviews_for
from db.engine import open_state
from tests.support.actors import CURATOR, person
from tests.support.shards import png

WHEN = "2026-01-02T03:04:05.000001Z"


def task(tid: int, sample_id: str | None, *annotations: dict, project: int = 7) -> dict:
    data = {"question": "q"} if sample_id is None else {"sample_id": sample_id, "question": "q"}
    return {"id": tid, "project": project, "data": data, "annotations": list(annotations)}


def annotation(aid: int, label: str | None = "correct", fix: str | None = None, note: str | None = None,
               by: int | dict = 3, when: str = WHEN, **extra) -> dict:  # fmt: skip
    result = verdict_result(label, fixed_answer=fix, note=note) if label in VERDICTS else []
    return {"id": aid, "completed_by": by, "result": result, "was_cancelled": False, "created_at": when,
            "updated_at": when, **extra}  # fmt: skip


# --------------------------------------------------------------------------------------------- configs


@pytest.mark.parametrize("kind", list(SampleKind))
def test_every_kind_gets_a_config_with_verdict_fix_and_note(kind):
    root = ET.fromstring(labeling_config(kind))
    names = {el.get("name"): el.tag for el in root.iter() if el.get("name")}
    assert names["verdict"] == "Choices" and names["fixed_answer"] == "TextArea" and names["note"] == "TextArea"
    assert [c.get("value") for c in root.iter("Choice")] == list(VERDICTS)
    assert ("reasoning" in names) == (kind is SampleKind.REASONING)
    images = [el for el in root.iter("Image")]
    if kind is SampleKind.SINGLE_IMAGE:
        assert images[0].get("value") == "$image"
    elif kind is SampleKind.TEXT_ONLY:
        assert not images
    else:
        assert images[0].get("valueList") == "$images"


def test_a_sample_is_reviewed_as_the_kind_its_media_and_trace_call_for():
    assert sample_kind({"sample_group": "single", "n_images": 1}) is SampleKind.SINGLE_IMAGE
    assert sample_kind({"sample_group": "multi", "n_images": 3}) is SampleKind.MULTI_IMAGE
    assert sample_kind({"sample_group": "video", "n_videos": 1}) is SampleKind.VIDEO_FRAMES
    assert sample_kind({"sample_group": "single", "n_images": 1, "has_reasoning": True}) is SampleKind.REASONING
    assert sample_kind({"sample_group": "text"}) is SampleKind.TEXT_ONLY


def test_failed_checks_suggest_a_verdict_by_family():
    assert check_label("media_decodable") == "bad media"
    assert check_label("reasoning_conclusion_matches") == "bad reasoning"
    assert check_label("answer_recompute") == "wrong answer"


# --------------------------------------------------------------------------------------------- media files


def test_media_is_written_once_per_digest_and_addressed_by_local_files_urls(tmp_path):
    folder = MediaFolder(tmp_path / "files", "vst")
    item = {"kind": "image", "digest": "abcdef", "embedded": False, "path": str(tmp_path / "a.png")}
    row = {"sample_id": "s1", "media": [item], "source_file": str(tmp_path / "x.json")}
    (tmp_path / "a.png").write_bytes(png(40, 30))
    first = folder.media_for(row)
    again = folder.media_for(row)
    assert first.urls == again.urls == ["/data/local-files/?d=vst/ab/abcdef.png"]
    assert (first.written, again.written) == (1, 0)
    assert (tmp_path / "files/vst/ab/abcdef.png").read_bytes() == png(40, 30)  # as it was, not re-encoded


def test_missing_media_becomes_a_placeholder_card_and_a_note(tmp_path):
    folder = MediaFolder(tmp_path / "files", "vst")
    item = {"kind": "image", "digest": "123456", "embedded": False, "path": str(tmp_path / "gone.png")}
    row = {"sample_id": "s2", "media": [item], "source_file": str(tmp_path / "x.json")}
    out = folder.media_for(row)
    assert len(out.urls) == 1 and "problem-" in out.urls[0]
    assert "gone.png" in out.note


def test_3d_boxes_are_drawn_into_the_image(tmp_path):
    image = Image.new("RGB", (320, 240), (0, 0, 0))
    camera = {"fx": 200.0, "fy": 200.0, "cx": 160.0, "cy": 120.0, "width": 320, "height": 240}
    from curation.vst.geometry import Box3D

    drawn = draw_boxes(image, camera, [Box3D.from_vst("chair", [0, 0, 3, 1, 1, 1, 0, 0, 0])])
    # The front face of a 1 m cube 2.5 m ahead spans 160 +- 40 px: its left edge is drawn at u = 120.
    assert drawn.getpixel((120, 120)) != (0, 0, 0)
    assert drawn.getpixel((5, 5)) == (0, 0, 0)
    assert image_extension(png()) == "png"


# --------------------------------------------------------------------------------------------- parsing


def test_annotations_map_to_samples_by_sample_id_not_by_position():
    tasks = [
        task(11, "s-b", annotation(101, "wrong answer", fix="4.2", note="off by a metre")),
        task(10, "s-a", annotation(100, "correct")),
        task(12, "s-c"),  # not annotated yet
    ]
    parsed = parse_export(tasks, {"s-a", "s-b", "s-c"}, users={3: "ada@example.com"})
    by_sample = {v.sample_id: v for v in parsed.verdicts}
    assert by_sample["s-a"].review_verdict == "approve" and by_sample["s-a"].task_id == 10
    fix = by_sample["s-b"]
    assert (fix.review_verdict, fix.fixed_answer, fix.annotator) == ("fix", "4.2", "ada@example.com")
    assert fix.annotated_at == datetime(2026, 1, 2, 3, 4, 5, 1, tzinfo=UTC)
    assert parsed.counts["unannotated_tasks"] == 1


def test_unknown_samples_and_malformed_annotations_are_counted_and_skipped_the_rest_imported():
    two_choices = annotation(203)
    two_choices["result"][0]["value"]["choices"] = ["correct", "ambiguous"]
    tasks = [
        task(20, "s-a", annotation(200, "bad media")),
        task(21, "not-in-catalog", annotation(201)),
        task(22, "s-b", annotation(202, None)),  # no verdict chosen
        task(23, "s-c", two_choices),
        task(24, "s-d", {**annotation(204), "result": "oops"}),
        task(25, None, annotation(205)),  # no sample_id in data
        task(26, "s-e", annotation(206, was_cancelled=True) | {"was_cancelled": True}),
    ]
    parsed = parse_export(tasks, {"s-a", "s-b", "s-c", "s-d", "s-e"})
    assert [v.sample_id for v in parsed.verdicts] == ["s-a"]
    assert parsed.counts == {"tasks": 7, "annotations": 1, "unannotated_tasks": 0, "cancelled": 1,
                             "unknown_sample": 1, "malformed": 4}  # fmt: skip
    messages = " | ".join(s.message for s in parsed.skipped)
    assert "task 21" in messages and "not-in-catalog" in messages
    assert "task 22 annotation 202" in messages and "no 'verdict' choice" in messages
    assert "task 25: field data.sample_id is missing" in messages


def test_an_export_file_that_is_not_label_studio_json_says_so(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(ExportFileError, match="x.json: not JSON"):
        load_export_file(bad)
    bad.write_text(json.dumps([{"id": 1, "verdict": "correct"}]))
    with pytest.raises(ExportFileError, match="no 'data' field"):
        load_export_file(bad)


def test_an_export_with_wrong_types_names_each_bad_task_and_field_and_pulls_the_others(home, small_tree, tmp_path):
    """An export edited by hand or by a script: every JSON type where another was expected. Each bad task or
    annotation is one line naming it and the field; the good tasks around them are pulled."""
    ingest([small_tree], home, progress=False)
    settings = replace(home, db_url=f"sqlite:///{tmp_path / 'state.sqlite'}")
    nested_choice = annotation(307)
    nested_choice["result"][0]["value"]["choices"] = [["correct"]]  # a list inside the list: unhashable
    export = tmp_path / "edited.json"
    export.write_text(json.dumps([
        task(1, "id-0", annotation(1, "correct")),
        5,  # not a task at all
        {**task(2, "id-1"), "annotations": 5},
        {**task(3, "id-1"), "annotations": {"id": 9}},
        {**task(4, "id-1", annotation(4)), "data": "id-1"},
        {**task(5, "id-1", annotation(5)), "data": {"sample_id": 17}},
        task(6, "id-1", "correct", [1, 2], {**annotation(61), "id": "61"}),
        task(7, "id-1", {**annotation(70), "result": {"verdict": "correct"}}),
        task(8, "id-1", {**annotation(80), "result": ["correct"]}),
        task(9, "id-1", nested_choice, annotation(90, "bad media", by="bob"), {**annotation(91), "created_at": 5,
                                                                              "updated_at": None}),
        task(10, "id-2", annotation(100, "wrong answer", note="off")),
    ]))  # fmt: skip
    report = pull_file(settings, export, by=CURATOR)  # no exception: every problem is a line of the report
    assert report.added == 2 and report.parsed.counts["tasks"] == 11
    with open_state(settings.db_url) as db:
        assert review_for(db, "id-0").verdict == "approve" and review_for(db, "id-2").verdict == "reject"
        assert review_for(db, "id-1") is None
    lines = [s.message for s in report.parsed.skipped]
    expected = [
        "task #1: is a number, not an object",
        "task 2: field annotations is a number, not a list",
        "task 3: field annotations is an object, not a list",
        "task 4: field data.sample_id is missing (field data is a string, not an object)",
        "task 5: field data.sample_id is a number 17, not a string",
        "task 6: annotation #0 is a string, not an object",
        "task 6: annotation #1 is a list, not an object",
        "task 6: annotation #2 has no id (field annotations[2].id is a string)",
        "task 7 annotation 70 (sample id-1): result is not a list",
        "task 8 annotation 80 (sample id-1): a result item is not an object",
        "task 9 annotation 307 (sample id-1): 'verdict' must hold exactly one choice (a string)",
        "task 9 annotation 90 (sample id-1): field completed_by is a string, not a user",
        "task 9 annotation 91 (sample id-1): no created_at / updated_at time",
    ]
    assert len(lines) == len(expected) and all(line.startswith(want) for line, want in zip(lines, expected)), lines
    assert "skipped: 0 with a sample_id not in the catalog, 13 malformed" in "\n".join(report.lines())


def test_an_export_nested_a_hundred_thousand_deep_is_refused_naming_the_file(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ExportFileError, match=r"deep.json: JSON nested too deep to read"):
        load_export_file(deep)


# --------------------------------------------------------------------------------------------- writing


@pytest.fixture
def state(tmp_path):
    db = open_state(f"sqlite:///{tmp_path / 'state.sqlite'}")
    yield db
    db.close()


def test_verdicts_become_reviews_and_reject_reasons_become_flags_once(state):
    parsed = parse_export([
        task(1, "s-a", annotation(1, "correct")),
        task(2, "s-b", annotation(2, "bad reasoning", note="skips a step")),
        task(3, "s-c", annotation(3, "wrong answer", fix="B")),
    ], users={3: "ada@example.com"})  # fmt: skip
    report = PullReport(parsed=parsed)
    apply_verdicts(state, parsed.verdicts, report, by=CURATOR)
    assert report.added == 3 and report.flags_added == 1
    assert review_for(state, "s-a").verdict == "approve"
    b = review_for(state, "s-b")
    assert (b.verdict, b.reviewer, b.source) == ("reject", "ada@example.com", "labelstudio:7")
    assert "bad reasoning" in b.note and "skips a step" in b.note
    assert [f.reason for f in flags_for(state, "s-b")] == ["bad_reasoning"]
    assert review_for(state, "s-c").fixed_answer == "B"

    again = PullReport(parsed=parsed)
    apply_verdicts(state, parsed.verdicts, again, by=CURATOR)
    assert (again.added, again.already_pulled, again.flags_added) == (0, 3, 0)
    assert len(reviews_for(state, "s-b")) == 1


def test_an_annotation_edited_after_a_pull_comes_in_as_a_newer_review(state):
    first = parse_export([task(1, "s-a", annotation(1, "correct"))]).verdicts
    apply_verdicts(state, first, PullReport(), by=CURATOR)
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    edited = parse_export([task(1, "s-a", annotation(1, "ambiguous", when=later))]).verdicts
    report = PullReport()
    apply_verdicts(state, edited, report, by=CURATOR)
    assert report.added == 1 and review_for(state, "s-a").verdict == "reject"
    assert report.conflicts[0].resolution == "took Label Studio (newer)"


def test_a_newer_local_review_is_kept_and_the_conflict_shown(state):
    add_review(state, "s-a", "approve", person("curator@lab"))  # now: after the annotation of 2026-01-02
    verdicts = parse_export([task(1, "s-a", annotation(1, "bad media"))]).verdicts
    report = PullReport()
    apply_verdicts(state, verdicts, report, by=CURATOR)
    assert report.added == 0 and review_for(state, "s-a").reviewer == "curator@lab"
    (conflict,) = report.conflicts
    assert (conflict.local_verdict, conflict.ls_verdict, conflict.resolution) == ("approve", "reject",
                                                                                   "kept local (newer)")  # fmt: skip
    assert "s-a: local approve by curator@lab" in "\n".join(report.lines())


def test_an_older_local_review_gives_way_to_a_newer_annotation(state):
    add_review(state, "s-a", "approve", person("curator@lab"))
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    verdicts = parse_export([task(1, "s-a", annotation(1, "wrong answer", fix="7", when=later))]).verdicts
    report = PullReport()
    apply_verdicts(state, verdicts, report, by=CURATOR)
    assert report.added == 1 and review_for(state, "s-a").fixed_answer == "7"
    assert report.conflicts[0].resolution == "took Label Studio (newer)"


def test_a_curator_imports_an_export_file_without_a_server(home, small_tree, tmp_path):
    ingest([small_tree], home, progress=False)
    settings = replace(home, db_url=f"sqlite:///{tmp_path / 'state.sqlite'}")
    export = tmp_path / "project-7.json"
    export.write_text(json.dumps([
        task(1, "id-0", annotation(1, "wrong answer", fix="1.9", by={"id": 3, "email": "ada@example.com"})),
        task(2, "id-1", annotation(2, "correct")),
        task(3, "ghost", annotation(3, "correct")),
    ]))  # fmt: skip
    report = pull_file(settings, export, by=CURATOR)
    assert (report.added, report.parsed.counts["unknown_sample"]) == (2, 1)
    assert "1 with a sample_id not in the catalog" in "\n".join(report.lines())
    assert pull_file(settings, export, by=CURATOR).added == 0
    with open_state(settings.db_url) as db:
        assert review_for(db, "id-0").reviewer == "ada@example.com"
        assert review_for(db, "id-1").reviewer == "labelstudio-user-3"
