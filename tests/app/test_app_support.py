"""Helpers for the app's AppTest stories (no tests here): a data home per test that reuses the ingested demo
catalog but keeps its own state database and caches, and a small home with broken media and scenes."""

from __future__ import annotations

import gc
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from curation.ingest.run import ingest
from curation.settings import Settings, load_settings
from tests.support.shards import small_vst_tree

REPO = Path(__file__).resolve().parents[2]
HOME_PAGE = str(REPO / "app" / "Home.py")
TIMEOUT = 60  # seconds per run; a cold first run imports plotly, open3d and PyAV
_ENV_KEYS = ["CURATOR_HOME", "CURATOR_CATALOG", "CURATOR_TEXT_INDEX", "CURATOR_SCENE_ROOT", "CURATOR_DB_URL",
             "CURATOR_RESULTS", "CURATOR_MEDIA_CACHE", "CURATOR_SETTINGS"]


def point_app_at(monkeypatch: pytest.MonkeyPatch, home: Path, **overrides: str) -> Settings:
    """Make the app (which reads load_settings() from the environment) use ``home`` plus ``overrides``."""
    for key in _ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("CURATOR_HOME", str(home))
    for key, value in overrides.items():
        monkeypatch.setenv(key, value)
    return load_settings().ensure_dirs()


def demo_app_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, demo_home: Settings) -> Settings:
    """The shared demo catalog, text index and scenes; a state database and caches of this test's own."""
    return point_app_at(monkeypatch, tmp_path / "home", CURATOR_CATALOG=str(demo_home.catalog_path),
                        CURATOR_TEXT_INDEX=str(demo_home.text_index_dir), CURATOR_SCENE_ROOT=str(demo_home.scene_root))


def broken_app_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """A small home (tests/shards.py) with an unreadable shard, a video that is missing and one that is not a video,
    and a scene root where room_0001's cloud is garbage and the others are gone."""
    src = small_vst_tree(tmp_path / "src")
    (src / "vst_p/si_distance/part-00009.parquet").write_bytes(b"not parquet at all")
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    (scenes / "room_0001.ply").write_bytes(b"ply\nformat nonsense\n")
    settings = point_app_at(monkeypatch, tmp_path / "home", CURATOR_SCENE_ROOT=str(scenes))
    ingest([src / "vst_p", src / "vst_r"], settings, progress=False)
    return settings


def app_at(page: str | None = None, **query: str) -> AppTest:
    """An AppTest of the whole multipage app, on ``page`` (e.g. "pages/2_Sample.py") with a query string."""
    at = AppTest.from_file(HOME_PAGE, default_timeout=TIMEOUT)
    if page:
        at.run()
        at.switch_page(page)
    at.query_params.clear()
    at.query_params.update(query)
    return at.run()


def forget_app_caches() -> None:
    """Drop the cached catalog connections and results, so the next test opens its own home."""
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    gc.collect()


def texts(at: AppTest, kind: str) -> list[str]:
    """The Markdown source of each element of a kind."""
    return [str(e.value) for e in getattr(at, kind)]


def shown(at: AppTest, kind: str) -> list[str]:
    """The text of each element of a kind as the viewer reads it: Markdown's backslash escapes removed (pages escape
    what they did not write themselves, app.components.text)."""
    return [unescaped(t) for t in texts(at, kind)]


def unescaped(markdown: str) -> str:
    return _ESCAPED.sub(r"\1", markdown)


_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")
