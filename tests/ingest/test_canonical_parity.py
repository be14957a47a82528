"""Ingest derives fields in SQL at scale; the Python reference parsers must read every demo row the same way."""

from __future__ import annotations

import pytest

from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from curation.vst.answers import classify_answer
from curation.vst.reasoning import split_reasoning
from curation.vst.spatial_text import parse_boxes_3d, parse_camera


@pytest.fixture(scope="module")
def demo_rows(demo_home):
    q = CatalogQuery(demo_home)
    rows = [r for b in q.iter_batches(FilterSpec()) for r in b.to_pylist()]
    q.close()
    return rows


def test_answer_kind_matches_reference(demo_rows):
    mismatches = [(r["sample_id"], r["answer_kind"], classify_answer(r["answer"], r["question"]))
                  for r in demo_rows if r["answer_kind"] != classify_answer(r["answer"], r["question"])]
    assert not mismatches, mismatches[:5]


def test_reasoning_split_matches_reference(demo_rows):
    for r in demo_rows:
        if r["kind"] != "sft" or not r["has_reasoning"]:
            continue
        gpt = next(t["text"] for t in r["turns"] if t["role"] == "gpt")
        parts = split_reasoning(gpt)
        if parts.think_open == 1 and parts.think_close == 1:
            assert (r["reasoning"] or "").strip() == (parts.reasoning or "").strip(), r["sample_id"]
            assert r["answer"] == parts.final, r["sample_id"]


def test_camera_and_boxes_match_reference(demo_rows):
    checked = 0
    for r in demo_rows:
        human = next(t["text"] for t in r["turns"] if t["role"] == "human")
        img = next((m for m in r["media"] if m["kind"] == "image"), None)
        ref = parse_camera(human, img and img["width"], img and img["height"])
        if ref is None:
            assert r["camera"] is None, r["sample_id"]
            continue
        cam = r["camera"]
        assert cam["stated_as"] == ref.stated_as
        assert cam["fx"] == pytest.approx(ref.camera.fx, rel=1e-6) and cam["cy"] == pytest.approx(ref.camera.cy)
        assert (cam["width"], cam["height"]) == (ref.camera.width, ref.camera.height)
        checked += 1
        if r["answer_kind"] == "bbox3d":
            boxes = [b for b in parse_boxes_3d(r["answer"]) if b.encoding == "euler9"]
            assert [(b["label"], b["bbox"]) for b in r["boxes_3d"] or [] if b["encoding"] == "euler9"] == [
                (b.label, [float(v) for v in b.values]) for b in boxes], r["sample_id"]
    assert checked > 20
