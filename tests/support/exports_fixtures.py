"""Shards, homes and check results for the mixture and export tests (hand-made, independent of the demo)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curation.ingest.run import ingest
from curation.settings import Settings, load_settings
from tests.support.shards import png, sft_row, write_rl, write_sft

DIST_Q = "What is the distance between the {a} and the {b} in meters?"
DEPTH_Q = "Which is closer to the camera, the {a} or the {b}?\nA: {a}\nB: {b}\nAnswer with the option's letter."
OBJECTS = ["chair", "table", "sofa", "lamp", "bed", "desk", "tv", "plant"]


def _pair(i: int) -> dict[str, str]:
    return {"a": OBJECTS[i % 8], "b": OBJECTS[(i + 3) % 8]}


def build_tree(root: Path, n_dist: int = 12, n_depth: int = 10, n_cot: int = 6) -> Path:
    """vst_p/si_distance (n_dist rows + 1 exact copy of row 0 under a new id), vst_p/si_depth_comparison
    (n_depth rows, two images each), vst_r/cot/cot_sr_si (CoT rows), vst_p/video (3 rows, one video missing),
    vst_r/rl/rl_gr_math (3 RL rows)."""
    dist = [sft_row(i, DIST_Q.format(**_pair(i)), f"{1 + i / 10:.1f}", id=f"dist-{i:03d}") for i in range(n_dist)]
    copy = dict(dist[0], id="dist-copy")
    write_sft(root / "vst_p/si_distance/part-00000.parquet", [*dist, copy])
    depth = [
        sft_row(100 + i, DEPTH_Q.format(**_pair(i)), "A" if i % 2 else "B", n_images=2, type_="depth",
                id=f"depth-{i:03d}", data_source="arkitscenes")
        for i in range(n_depth)
    ]
    write_sft(root / "vst_p/si_depth_comparison/part-00000.parquet", depth)
    cot = [
        sft_row(200 + i, DEPTH_Q.format(**_pair(i)),
                f"<think>The {_pair(i)['a']} looks nearer. So the answer is A.</think> A", type_="depth_thought",
                id=f"cot-{i:03d}", data_source="scannet")
        for i in range(n_cot)
    ]
    write_sft(root / "vst_r/cot/cot_sr_si/part-00000.parquet", cot)
    vdir = root / "vst_p/video"
    (vdir / "videos").mkdir(parents=True, exist_ok=True)
    for k in (1, 3):
        (vdir / f"videos/room_{k:04d}_path0.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42fake-" + bytes([k]))
    (vdir / "video_train.json").write_text(json.dumps([
        {"id": f"vid-{k}", "conversations": [
            {"from": "human", "value": "<|video_pad|>These are frames of a video. How many chairs are in this room?"},
            {"from": "gpt", "value": str(k + 1)}], "data_source": "arkitscenes",
         "video": f"videos/room_{k:04d}_path0.mp4", "type": "video"}
        for k in (1, 2, 3)  # room_0002's video is missing
    ]))
    write_rl(root / "vst_r/rl/rl_gr_math/part-00000.parquet", [
        {"id": f"rl-{k}", "images": [{"bytes": png(40 + k, 30), "path": ""}], "question": f"What is {k}+{k}?",
         "answer": str(2 * k), "meta_info": json.dumps({"mode": ["math_score"], "question_type": "math"})}
        for k in range(3)
    ])
    return root


def make_home(base: Path, **tree) -> Settings:
    """A data home with build_tree() ingested."""
    src = build_tree(base / "src", **tree)
    settings = load_settings(base / "home").ensure_dirs()
    ingest([src / "vst_p", src / "vst_r"], settings, progress=False)
    return settings


def write_results(settings: Settings, check: str, rows: dict[str, tuple[bool, str | None]],
                  run_id: str = "run-0001", severity: str | None = None) -> Path:
    """Check results as the worker writes them: <results>/<run>/<check>/part-0.parquet (failures with
    ``severity`` when given; without one, as results written before failures carried a severity)."""
    path = Path(settings.results_dir) / run_id / check / "part-0.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = sorted(rows)
    table = pa.table({
        "sample_id": pa.array(ids, pa.string()),
        "check_name": pa.array([check] * len(ids), pa.string()),
        "check_version": pa.array(["1"] * len(ids), pa.string()),
        "passed": pa.array([rows[i][0] for i in ids], pa.bool_()),
        "score": pa.array([None] * len(ids), pa.float64()),
        "reason": pa.array([rows[i][1] for i in ids], pa.string()),
        "run_id": pa.array([run_id] * len(ids), pa.string()),
    })
    if severity is not None:
        table = table.append_column("severity", pa.array([None if rows[i][0] else severity for i in ids], pa.string()))
    pq.write_table(table, path)
    return path


def recipe(**kw) -> dict:
    """A recipe dict with one component taking everything single-image, overridable by keyword."""
    base = {"name": "test-mix", "seed": 17,
            "components": [{"name": "all", "filter": {}, "fraction": 1.0}]}
    return {**base, **kw}
