"""Small hand-made shards in the real VST layouts, for reader and ingest tests (independent of the demo)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

CONV = pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))
IMAGES = pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))


def png(w: int = 64, h: int = 48, color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), color).save(buf, format="PNG")
    return buf.getvalue()


def sft_row(i: int, question: str, answer: str, n_images: int = 1, type_: str = "distance", **kw) -> dict:
    return {
        "id": kw.get("id", f"id-{i}"),
        "conversations": [
            {"from": "human", "value": "<|image_pad|>" * n_images + question},
            {"from": "gpt", "value": answer},
        ],
        "images": kw.get("images", [{"bytes": png(64 + i, 48), "path": f"scenes/room_{i:04d}/cam_00.png"}
                                    for _ in range(n_images)]),
        "data_source": kw.get("data_source", "scannet"),
        "type": type_,
        "meta_info": kw.get("meta_info", json.dumps([{"width": 64, "height": 48, "resized_width": 64,
                                                      "resized_height": 48}] * n_images)),
    }


def write_sft(path: Path, rows: list[dict], row_group_size: int = 4, images_type=IMAGES) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([("id", pa.string()), ("conversations", CONV), ("images", images_type),
                        ("data_source", pa.string()), ("type", pa.string()), ("meta_info", pa.string())])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=row_group_size)
    return path


def write_rl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([("id", pa.string()), ("images", IMAGES), ("question", pa.string()),
                        ("answer", pa.string()), ("meta_info", pa.string())])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def small_vst_tree(root: Path) -> Path:
    """vst_p/si_distance (4 rows), vst_p/video (LLaVA JSON, one video missing), vst_r/rl/rl_gr_math (2 rows)."""
    write_sft(root / "vst_p/si_distance/part-00000.parquet", [
        sft_row(0, "What is the distance between the chair and the table in meters?", "1.8"),
        sft_row(1, "What is the distance between the sofa and the lamp in meters?", "2.5 m"),
        sft_row(2, "How far apart are the bed and the desk?", "3.1"),
        sft_row(3, "Which is closer to the camera, the chair or the table?\nA: chair\nB: table", "A"),
    ])
    vdir = root / "vst_p/video"
    (vdir / "videos").mkdir(parents=True, exist_ok=True)
    (vdir / "videos/room_0001_path0.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42fake")
    (vdir / "video_train.json").write_text(json.dumps([
        {"id": "v-0", "conversations": [
            {"from": "human", "value": "<|video_pad|>These are frames of a video. How many chairs are in this room?"},
            {"from": "gpt", "value": "4"}], "data_source": "arkitscenes", "video": "videos/room_0001_path0.mp4",
         "type": "video"},
        {"id": "v-1", "conversations": [
            {"from": "human", "value": "<|video_pad|>These are frames of a video. What is the length of the sofa?"},
            {"from": "gpt", "value": "2.1"}], "data_source": "arkitscenes", "video": "videos/room_0002_path0.mp4",
         "type": "video"},
    ]))
    write_rl(root / "vst_r/rl/rl_gr_math/part-00000.parquet", [
        {"id": "rl-0", "images": [{"bytes": png(), "path": ""}], "question": "What is 2+3?", "answer": "5",
         "meta_info": json.dumps({"mode": ["math_score"], "question_type": "math"})},
        {"id": "rl-1", "images": [{"bytes": png(), "path": ""}], "question": "Which side?\nA: front\nB: back",
         "answer": "B", "meta_info": json.dumps({"mode": ["multi_choices_score"], "question_type": "multi_choices"})},
    ])
    return root
