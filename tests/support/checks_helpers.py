"""Small builders for check tests: catalog-shaped rows and a one-call runner."""

from __future__ import annotations

from typing import Any

from curation.checks import CheckContext, rows_to_table
from curation.checks.base import with_check_columns
from curation.checks.registry import get_check


def image(w: int = 400, h: int = 300, **kw) -> dict[str, Any]:
    return {"kind": "image", "digest": kw.get("digest", f"d{w}x{h}"), "width": w, "height": h,
            "path": kw.get("path", ""),
            "byte_size": 100, "embedded": kw.get("embedded", True), "problem": kw.get("problem")}


def video(path: str = "videos/v.mp4", problem: str | None = None) -> dict[str, Any]:
    return {"kind": "video", "digest": None if problem else "dv", "width": None, "height": None, "path": path,
            "byte_size": None, "embedded": False, "problem": problem}


def sample(sample_id: str, question: str = "What?", answer: str = "A", **kw) -> dict[str, Any]:
    """A catalog row: one human and one gpt turn, one image unless told otherwise."""
    media = kw.pop("media", [image()])
    human = kw.pop("human", "<|image_pad|>" * sum(m["kind"] == "image" for m in media)
                   + "<|video_pad|>" * sum(m["kind"] == "video" for m in media) + question)
    gpt = kw.pop("gpt", answer)
    row = {"sample_id": sample_id, "kind": "sft", "dataset": "vst-p", "source_file": "/data/x.parquet",
           "turns": [{"role": "human", "text": human}, {"role": "gpt", "text": gpt}], "question": question,
           "answer": answer, "media": media, "n_images": sum(m["kind"] == "image" for m in media),
           "n_videos": sum(m["kind"] == "video" for m in media)}
    row.update(kw)
    return row


def run(check_name: str, rows: list[dict[str, Any]], **params) -> dict[str, dict[str, Any]]:
    """Outcomes by sample id as the results store them (with each failure's severity); rows the check does not
    apply to are absent."""
    check = get_check(check_name)(params)
    out = with_check_columns(check.run(rows_to_table(rows), CheckContext(params)), check.name, check.version, "t")
    return {r["sample_id"]: r for r in out.to_pylist()}
