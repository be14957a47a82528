"""A tiny random Qwen2.5-VL saved to a folder once per session (bench.model_shapes: from its config, no download)."""

from __future__ import annotations

from pathlib import Path

from bench.model_shapes import build_model

_BUILT: dict[str, Path] = {}


def tiny_model_dir(tmp_path_factory) -> Path:
    """The session's tiny model folder (built by the first test that asks)."""
    key = str(tmp_path_factory.getbasetemp())
    if key not in _BUILT:
        out = tmp_path_factory.mktemp("tiny-qwen") / "model"
        build_model("tiny", out)
        _BUILT[key] = out
    return _BUILT[key]
