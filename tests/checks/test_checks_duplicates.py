"""Duplicate checks: an exact copy, a reworded copy, a question asked twice with shuffled options, a conflict."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from curation.checks.base import GlobalContext, rows_to_table
from curation.checks.embeddings import HashingEmbedder, get_embedder, question_core
from curation.checks.registry import get_check
from tests.support.checks_helpers import image, sample


def run_global(name: str, rows: list[dict], **params) -> dict[str, dict]:
    con = duckdb.connect()
    con.register("samples", rows_to_table(rows))
    check = get_check(name)({"embedder": "hashing", **params})
    gctx = GlobalContext(con, {"embedder": "hashing", **params})
    return {r["sample_id"]: r for t in check.run_global(gctx) for r in t.to_pylist()}


def ordered(rows: list[dict]) -> list[dict]:
    for i, r in enumerate(rows):
        r.setdefault("row_index", i)
    return rows


IMG = image(digest="img-1")
MC = "How did the camera move?\nA: moved left\nB: moved right\nC: turned left\nAnswer with the option's letter."
MC_SHUFFLED = ("How did the camera move?\nA: turned left\nB: moved left\nC: moved right\n"
               "Answer with the option's letter.")


def test_an_exact_copy_fails_and_the_first_copy_passes():
    out = run_global("duplicates.exact", ordered([
        sample("first", "What is 2+3?", "5", media=[IMG]), sample("other", "What is 2+4?", "6", media=[IMG]),
        sample("copy", "What is 2+3?", "5", media=[IMG]),
        sample("other-image", "What is 2+3?", "5", media=[image(digest="img-2")]),
    ]))
    assert out["first"]["passed"] and out["other"]["passed"] and out["other-image"]["passed"]
    assert out["copy"]["reason"] == "exact duplicate of sample first (same text and media; 2 copies)"


def test_near_duplicates_on_the_same_media():
    rows = ordered([
        sample("q1", "What is the distance between the chair and the table in meters?", "1.8", media=[IMG]),
        sample("reworded", "What's the distance between the chair and the table in metres?", "1.8", media=[IMG]),
        sample("other-question", "How many chairs are in the room?", "4", media=[IMG]),
        sample("mc", MC, "B", media=[image(digest="img-3")]),
        sample("mc-shuffled", MC_SHUFFLED, "C", media=[image(digest="img-3")]),
        sample("mc-conflict", MC, "A", media=[image(digest="img-3")]),
        sample("elsewhere", "What's the distance between the chair and the table in metres?", "1.8",
               media=[image(digest="img-9")]),
    ])
    out = run_global("duplicates.near", rows, near_threshold=0.8)
    assert out["q1"]["passed"] and out["other-question"]["passed"] and out["mc"]["passed"]
    assert out["elsewhere"]["passed"]  # same words, other media: another sample
    assert "near duplicate of sample q1: a reworded question" in out["reworded"]["reason"]
    assert "the same question with other options on the same media with the same answer" in \
        out["mc-shuffled"]["reason"]
    assert out["mc-conflict"]["reason"].startswith("conflicting duplicate of sample mc: the same question on the same "
                                                   "media answered 'moved left' here and 'moved right' there")


def test_big_media_groups_search_with_faiss(monkeypatch):
    import curation.checks.duplicates as dup

    monkeypatch.setattr(dup, "DENSE_GROUP", 2)  # force the ANN path on a small group
    rows = ordered([sample(f"s{i}", f"What colour is object number {i} in the picture?", str(i), media=[IMG])
                    for i in range(6)] + [sample("copy", "What colour is object number 3 in the picture ?", "3",
                                                 media=[IMG])])
    out = run_global("duplicates.near", rows, near_threshold=0.97)
    assert not out["copy"]["passed"] and "sample s3" in out["copy"]["reason"]
    assert sum(not r["passed"] for r in out.values()) == 1


def test_question_core_drops_placeholders_boilerplate_and_options():
    text = "<|video_pad|>\nThese are frames from a video.\nHow many chairs?\nA: 2\nB: 3\n" \
           "Answer with the option's letter from the given choices directly."
    assert question_core(text) == "how many chairs?"


def test_hashing_embedder_is_normalised_and_deterministic():
    e = HashingEmbedder()
    a, b = e.encode(["the chair", "The  chair"]), e.encode(["the chair"])
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0) and np.allclose(a[0], a[1]) and np.allclose(a[0], b[0])


@pytest.mark.slow
def test_minilm_ships_offline_and_tells_a_rewording_from_another_question():
    e = get_embedder("minilm")
    v = e.encode(["what is the distance between the chair and the table in meters?",
                  "what's the distance between the chair and the table in metres?",
                  "how many lamps are in this room?"])
    assert v.shape == (3, 384)
    assert float(v[0] @ v[1]) > 0.95 > float(v[0] @ v[2])
