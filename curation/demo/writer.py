"""On-disk layouts of the demo (the reader/ingest contract): SFT and RL Parquet, LLaVA and RL JSON, ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curation.demo.defects import DefectRecord
from curation.demo.rows import DemoRow

ROW_GROUP_SIZE = 64

TURNS_TYPE = pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))
IMAGES_TYPE = pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
# One upstream loader accepts this misspelling; the demo ships one small file that uses it.
IMAGES_TYPE_BYRES = pa.list_(pa.struct([("byres", pa.binary()), ("path", pa.string())]))

SFT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("conversations", TURNS_TYPE),
        ("images", IMAGES_TYPE),
        ("data_source", pa.string()),
        ("type", pa.string()),
        ("meta_info", pa.string()),
    ]
)
SFT_SCHEMA_BYRES = SFT_SCHEMA.set(2, pa.field("images", IMAGES_TYPE_BYRES))
RL_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("images", IMAGES_TYPE),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("meta_info", pa.string()),
    ]
)
DEFECTS_SCHEMA = pa.schema(
    [("file", pa.string()), ("row", pa.int64()), ("source_id", pa.string()), ("defect_type", pa.string())]
)

VIDEO_JSON = "vst_p/video/video_train.json"
RL_JSON = "vst_r/rl_json/rl_extra.json"


def file_for(row: DemoRow) -> str:
    """The file (relative to the demo folder) a row is written to."""
    if row.layout == "video":
        return VIDEO_JSON
    if row.layout == "rl_json":
        return RL_JSON
    if row.layout == "rl":
        return f"vst_r/rl/{row.skill}/part-00000.parquet"
    if row.skill.startswith("cot_"):
        return f"vst_r/cot/{row.skill}/part-00000.parquet"
    return f"vst_p/{row.skill}/part-00000.parquet"


def write_parquet(path: Path, table: pa.Table) -> None:
    """Fixed writer options (no timestamps, fixed codec and row groups): same rows give the same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        table,
        path,
        row_group_size=ROW_GROUP_SIZE,
        compression="snappy",
        version="2.6",
        use_dictionary=True,
        write_statistics=True,
    )


def _images(row: DemoRow, key: str = "bytes") -> list[dict]:
    return [{key: m.data, "path": m.path} for m in row.media]


def _turns(row: DemoRow) -> list[dict]:
    return [{"from": who, "value": text} for who, text in row.turns]


def write_sft(path: Path, rows: list[DemoRow], byres: bool = False) -> None:
    key = "byres" if byres else "bytes"
    data = {
        "id": [r.id for r in rows],
        "conversations": [_turns(r) for r in rows],
        "images": [_images(r, key) for r in rows],
        "data_source": [r.data_source for r in rows],
        "type": [r.type for r in rows],
        "meta_info": [r.meta_info for r in rows],
    }
    write_parquet(path, pa.Table.from_pydict(data, schema=SFT_SCHEMA_BYRES if byres else SFT_SCHEMA))


def write_rl(path: Path, rows: list[DemoRow]) -> None:
    data = {
        "id": [r.id for r in rows],
        "images": [_images(r) for r in rows],
        "question": [r.turns[0][1] for r in rows],
        "answer": [r.turns[1][1] for r in rows],
        "meta_info": [r.meta_info for r in rows],
    }
    write_parquet(path, pa.Table.from_pydict(data, schema=RL_SCHEMA))


def write_json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def write_video_json(path: Path, rows: list[DemoRow]) -> None:
    """LLaVA-style records; ``video`` is relative to the JSON file."""
    write_json(
        path,
        [
            {"id": r.id, "conversations": _turns(r), "data_source": r.data_source, "video": r.video, "type": r.type}
            for r in rows
        ],
    )


def write_rl_json(path: Path, rows: list[DemoRow]) -> list[Path]:
    """RL rows in the JSON form, their images written beside the file; returns every path written."""
    written = []
    records = []
    for r in rows:
        for m in r.media:
            img_path = path.parent / m.path
            img_path.parent.mkdir(parents=True, exist_ok=True)
            img_path.write_bytes(m.data)
            written.append(img_path)
        records.append(
            {
                "id": r.id,
                "images": [m.path for m in r.media],
                "question": r.turns[0][1],
                "answer": r.turns[1][1],
                "thought": r.thought,
                "answer_gt": r.answer_gt,
                "data_source": r.data_source,
                "meta_info": json.loads(r.meta_info),
            }
        )
    write_json(path, records)
    return [*written, path]


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )


def write_defects(path: Path, records: list[DefectRecord]) -> None:
    records = sorted(records, key=lambda d: (d.file, d.row))
    data = {
        "file": [d.file for d in records],
        "row": [d.row for d in records],
        "source_id": [d.source_id for d in records],
        "defect_type": [d.defect_type for d in records],
    }
    write_parquet(path, pa.Table.from_pydict(data, schema=DEFECTS_SCHEMA))
