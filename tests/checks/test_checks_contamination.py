"""Contamination: training rows that share a scene, an image or a question with a benchmark the curator points to."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from curation.checks.base import GlobalContext, rows_to_table
from curation.checks.benchmarks import load_benchmarks
from curation.checks.registry import get_check
from curation.ingest.readers.media_refs import digest_bytes
from tests.support.checks_helpers import image, sample
from tests.support.shards import png


def write_benchmarks(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "vsi_bench.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"id": 0, "dataset": "scannet", "scene_name": "scene0011_00", "question_type": "object_counting",
         "question": "How many chair(s) are in this room?", "ground_truth": "4", "options": None},
        {"id": 1, "dataset": "scannet", "scene_name": "scene0011_00", "question_type": "object_abs_distance",
         "question": "Measuring from the center of each object, what is the direct distance between the sofa and "
                     "the lamp (in meters)?", "ground_truth": "2.1", "options": None},
    ]) + "\n")
    pq.write_table(pa.table({"idx": [7], "question": ["Which object is closer to the camera taking this photo, the "
                                                      "lamp or the bed?"],
                             "image": [{"bytes": png(32, 32, (1, 2, 3)), "path": "img/000000397133.jpg"}],
                             "answer": ["(A)"]}), root / "cv_bench_test.parquet")
    (root / "3dsrbench.tsv").write_text("index\tquestion\tA\tB\tanswer\timage\n"
                                        f"5\tIs the cup taller than the vase?\tyes\tno\tA\t"
                                        f"{base64.b64encode(png(40, 40, (9, 9, 9))).decode()}\n")
    return root


def run_global(name: str, rows: list[dict], benchmarks: Path) -> dict[str, dict]:
    con = duckdb.connect()
    con.register("samples", rows_to_table(rows))
    params = {"embedder": "hashing", "benchmarks": [str(benchmarks)]}
    return {r["sample_id"]: r for t in get_check(name)(params).run_global(GlobalContext(con, params))
            for r in t.to_pylist()}


def test_benchmark_files_of_four_formats_are_read(tmp_path):
    items = load_benchmarks([write_benchmarks(tmp_path / "bench")])
    by_name = {i.benchmark: i for i in items}
    assert set(by_name) == {"VSI-Bench", "CV-Bench", "3DSRBench"} and len(items) == 4
    assert by_name["CV-Bench"].image_names == ("000000397133.jpg",)
    assert by_name["CV-Bench"].image_digests == (digest_bytes(png(32, 32, (1, 2, 3))),)
    assert by_name["3DSRBench"].image_digests == (digest_bytes(png(40, 40, (9, 9, 9))),)


def test_scene_image_and_question_overlaps_are_found(tmp_path):
    bench = write_benchmarks(tmp_path / "bench")
    video_q = "<|video_pad|>\nThese are frames of a video.\nHow many chair(s) are in this room?"
    rows = [
        sample("copied", "These are frames of a video.\nHow many chair(s) are in this room?", "4", human=video_q,
               scene_id="scene0011_00"),
        sample("same-template-other-scene", "How many chair(s) are in this room?", "2", scene_id="scene0500_00"),
        sample("paraphrase", "Measuring from the centre of each object, what is the direct distance between the sofa "
                             "and the lamp (in meters)?", "2.1", scene_id="scene0011_00"),
        sample("coco-image", "What is on the table?", "a cup",
               media=[image(digest="x", path="coco/000000397133.jpg")]),
        sample("same-bytes", "Describe it.", "a grey square",
               media=[image(digest=digest_bytes(png(40, 40, (9, 9, 9))))]),
        sample("clean", "Is the cup taller than the vase?", "no", scene_id=None, media=[image(digest="y")]),
    ]
    scene = run_global("contamination.scene", rows, bench)
    assert not scene["copied"]["passed"] and scene["same-template-other-scene"]["passed"]
    assert scene["copied"]["reason"] == ("scene_id: scene0011_00 is a scene of VSI-Bench "
                                         "(vsi_bench.jsonl: 2 question(s))")
    question = run_global("contamination.question", rows, bench)
    assert "VSI-Bench item 0" in question["copied"]["reason"]
    assert question["same-template-other-scene"]["passed"]  # templated wording, another scene: not contamination
    assert not question["paraphrase"]["passed"]
    assert "3DSRBench item 5" in question["clean"]["reason"]  # no scene on either side: the text decides
    images = run_global("contamination.image", rows, bench)
    assert "the same file name 000000397133.jpg as CV-Bench item 7" in images["coco-image"]["reason"]
    assert "the same bytes as 3DSRBench item 5" in images["same-bytes"]["reason"]
    assert images["clean"]["passed"]


def test_no_benchmarks_means_no_contamination_results(tmp_path):
    rows = [sample("a")]
    empty = tmp_path / "none"
    empty.mkdir()
    assert run_global("contamination.question", rows, empty) == {}
