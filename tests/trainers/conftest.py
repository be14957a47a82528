"""Fixtures for loading exports with the trainers' own data code: the trainers' environment (.venv-trainers, built
by `make test`; built here if missing), a tiny Qwen2.5-VL processor made in it, and the demo exported in every format
through the command line. Every test in this folder carries the ``trainers`` marker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from curation.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
VENV = ROOT / ".venv-trainers"
LOADERS = ROOT / "tests" / "support" / "trainer_loaders"
FORMATS = ("vst-sft", "vst-rl", "llava", "llamafactory", "swift", "verl")
# What a curator exports by default: every demo row, nothing opted in (no placeholder repair, no exclusions).
DEFAULT_RECIPE = "name: demo-default\nseed: 0\ncomponents:\n  - {name: everything, fraction: 1.0}\n"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(HERE):
            item.add_marker("trainers")


@pytest.fixture(scope="session")
def trainers_python() -> Path:
    """.venv-trainers' python, the environment built with the Makefile's own recipe when it is missing."""
    if not (VENV / ".installed").exists():
        done = subprocess.run(["make", "-s", ".venv-trainers/.installed"], cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"the trainers' environment (.venv-trainers) cannot be built here: {done.stderr[-2000:]}")
    return VENV / "bin" / "python"


def run_loader(python: Path, script: str, export: Path, processor: Path, *extra: str | Path, cwd: Path,
               swift: bool = False, timeout: int = 900) -> dict:
    """Run a loader script in the trainers' environment from ``cwd`` on an export; the JSON report it writes."""
    report = cwd / f"{Path(script).stem}.json"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HOME=str(cwd / "hf"), MODELSCOPE_CACHE=str(cwd / "modelscope"), XDG_CACHE_HOME=str(cwd / "cache"))
    if swift:  # ms-swift's own newer `datasets` (requirements-trainers-swift.txt)
        env["PYTHONPATH"] = str(VENV / "swift-datasets")
    cwd.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([str(python), str(LOADERS / script), str(export), str(processor), str(report),
                           *map(str, extra)], cwd=cwd, env=env, capture_output=True, text=True, errors="replace",
                          timeout=timeout)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return json.loads(report.read_text())


@pytest.fixture(scope="session")
def tiny_processor(trainers_python: Path, tmp_path_factory) -> Path:
    """A Qwen2.5-VL processor folder built locally in the trainers' environment (no download)."""
    out = tmp_path_factory.mktemp("tiny-qwen") / "processor"
    code = f"import sys; sys.path.insert(0, {str(LOADERS)!r}); import prelude; prelude.build_tiny_qwen({str(out)!r})"
    done = subprocess.run([str(trainers_python), "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=out.parent)
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def export_demo(home: Settings, recipe_text: str, out: Path, formats: tuple[str, ...] = FORMATS) -> Path:
    """Export the demo home with ``python -m curation export`` (one folder per format under ``out``)."""
    recipe = out.parent / f"{out.name}.yaml"
    recipe.write_text(recipe_text, encoding="utf-8")
    env = {**os.environ, "CURATOR_HOME": str(home.home)}
    done = subprocess.run([sys.executable, "-m", "curation", "export", str(recipe), "--format", ",".join(formats),
                           "--out", str(out), "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.fixture(scope="session")
def demo_exports(demo_home: Settings, tmp_path_factory) -> Path:
    """The demo exported by default in every format: <dir>/<format>."""
    return export_demo(demo_home, DEFAULT_RECIPE, tmp_path_factory.mktemp("exports") / "demo")


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory that is not the export's (trainers are started from anywhere)."""
    path = tmp_path / "elsewhere"
    path.mkdir()
    return path
