"""Shared fixtures: a temporary data home per test, small hand-made shards, and one ingested demo home per run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from curation.settings import Settings, load_settings
from tests.support.shards import small_vst_tree

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest_plugins = ["tests.support.pg_server", "tests.support.ls_server"]

DEMO_SAMPLES = 300
DEMO_SEED = 7

# A test that needs a real server carries that server's marker because of the fixture it asks for, so
# `make test-fast` (-m "not labelstudio and not postgres and not browser") can never start one by accident.
SERVER_MARKERS = {"ls_server_booting": "labelstudio", "pg_server": "postgres"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, marker in SERVER_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


@pytest.fixture
def home(tmp_path: Path) -> Settings:
    """An empty data home of its own for one test."""
    return load_settings(tmp_path / "home").ensure_dirs()


@pytest.fixture
def small_tree(tmp_path: Path) -> Path:
    return small_vst_tree(tmp_path / "src")


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """A demo data set generated once per test run (read-only for tests: copy before changing it)."""
    from curation.demo import generate_demo

    out = tmp_path_factory.mktemp("demo") / "demo"
    generate_demo(out, samples=DEMO_SAMPLES, seed=DEMO_SEED, progress=False)
    return out


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory, demo_root: Path) -> Settings:
    """A data home with the demo ingested (catalog + text index), shared read-only by tests that only query."""
    from curation.ingest.run import ingest

    settings = load_settings(tmp_path_factory.mktemp("demo_home") / "home",
                             env={"CURATOR_SCENE_ROOT": str(demo_root / "scenes")}).ensure_dirs()
    ingest([demo_root / "vst_p", demo_root / "vst_r"], settings, progress=False)
    return settings
