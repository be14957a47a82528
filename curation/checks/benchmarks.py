"""Evaluation benchmarks a user points to (VSI-Bench, MMSI-Bench, CV-Bench, 3DSRBench and alike), read in one shape."""

from __future__ import annotations

import base64
import binascii
import csv
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from db.media import digest_bytes, struct_bytes

SUFFIXES = (".json", ".jsonl", ".parquet", ".tsv", ".csv")
_NAMES = [(r"vsi", "VSI-Bench"), (r"mmsi", "MMSI-Bench"), (r"cv[-_]?bench", "CV-Bench"), (r"3dsr", "3DSRBench")]
_QUESTION_KEYS = ("question", "prompt", "query")
_SCENE_KEYS = ("scene_name", "scene_id", "scene")
_IMAGE_KEYS = ("image", "images", "image_bytes", "img")
_BASE64 = re.compile(r"[A-Za-z0-9+/\n\r]+={0,2}")
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8", b"GIF8", b"BM", b"RIFF")
_NAME_KEYS = ("filename", "source_filename", "image_path", "image_url", "image_source", "file_name")



@dataclass(frozen=True)
class BenchItem:
    """One benchmark question with what identifies its content: scene, image digests, image file names."""

    benchmark: str
    file: str
    item_id: str
    question: str
    scene: str | None = None
    image_digests: tuple[str, ...] = field(default_factory=tuple)
    image_names: tuple[str, ...] = field(default_factory=tuple)


def benchmark_name(path: Path) -> str:
    low = path.name.lower()
    for pattern, name in _NAMES:
        if re.search(pattern, low):
            return name
    return path.stem


def find_benchmark_files(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.suffix.lower() in SUFFIXES and f.is_file()))
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"benchmark path {p} does not exist")
    return out


def load_benchmarks(paths: Iterable[str | Path]) -> list[BenchItem]:
    items: list[BenchItem] = []
    for f in find_benchmark_files(paths):
        items.extend(load_benchmark(f))
    return items


def load_benchmark(path: Path) -> list[BenchItem]:
    """Items of one benchmark file; records without a question are skipped (they name no contamination)."""
    name = benchmark_name(path)
    out = []
    for i, rec in enumerate(_records(path)):
        question = next((str(rec[k]) for k in _QUESTION_KEYS if rec.get(k)), None)
        if not question:
            continue
        scene = next((str(rec[k]) for k in _SCENE_KEYS if rec.get(k)), None)
        digests = tuple(d for v in (rec.get(k) for k in _IMAGE_KEYS) if v is not None for d in _image_digests(v))
        names = tuple(dict.fromkeys(n for v in (rec.get(k) for k in (*_NAME_KEYS, *_IMAGE_KEYS)) if v
                                    for n in _image_names(v)))
        item_id = str(next((rec[k] for k in ("id", "idx", "index", "question_id") if rec.get(k) is not None), i))
        out.append(BenchItem(name, str(path), item_id, question, scene, digests, names))
    return out


def _records(path: Path) -> Iterator[dict[str, Any]]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        rec = json.loads(line)
                        if isinstance(rec, dict):
                            yield rec
        elif suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                data = next((v for v in data.values() if isinstance(v, list)), [data])
            yield from (r for r in data if isinstance(r, dict))
        elif suffix == ".parquet":
            pf = pq.ParquetFile(path)
            for batch in pf.iter_batches(batch_size=256):
                yield from batch.to_pylist()
        elif suffix in (".tsv", ".csv"):
            csv.field_size_limit(sys.maxsize)  # 3DSRBench's TSV holds base64 images in a cell
            with path.open(encoding="utf-8", newline="") as fh:
                yield from csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
        else:
            raise ValueError(f"{path}: not a benchmark file (expected one of {', '.join(SUFFIXES)})")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"benchmark file {path}: cannot be read ({exc})") from exc


def _image_digests(value: Any) -> list[str]:
    if isinstance(value, (bytes, bytearray)):
        return [digest_bytes(bytes(value))] if value else []
    if isinstance(value, dict):
        data = struct_bytes(value)
        return _image_digests(data) if data else []
    if isinstance(value, list):
        return [d for v in value for d in _image_digests(v)]
    if isinstance(value, str) and len(value) >= 64 and _BASE64.fullmatch(value.strip()):  # 3DSRBench's TSV cells
        try:
            data = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return []
        return [digest_bytes(data)] if data.startswith(_IMAGE_MAGIC) else []
    return []


def _image_names(value: Any) -> list[str]:
    if isinstance(value, list):
        return [n for v in value for n in _image_names(v)]
    if isinstance(value, dict):
        return _image_names(value.get("path") or "")
    if isinstance(value, str) and 0 < len(value) < 1024:
        name = value.rstrip("/").rsplit("/", 1)[-1].lower()
        # Only distinctive names (COCO's 000000397133.jpg), never "0.jpg".
        return [name] if len(name) >= 10 and re.search(r"\d{5,}", name) else []
    return []
