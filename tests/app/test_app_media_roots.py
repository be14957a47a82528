"""The Sample page never shows a file from outside the shard's folder and the media roots: a shard naming a real
image elsewhere on the machine gets a message, not the image."""

from __future__ import annotations

import pytest

from curation.ingest.run import ingest
from tests.app.test_app_support import app_at, forget_app_caches, point_app_at, shown
from tests.support.hostile_media import build_hostile_tree

SAMPLE = "pages/2_Sample.py"


@pytest.fixture
def tree_home(monkeypatch, tmp_path):
    tree = build_hostile_tree(tmp_path / "src", "json")
    monkeypatch.delenv("CURATOR_MEDIA_ROOTS", raising=False)
    settings = point_app_at(monkeypatch, tmp_path / "home")
    ingest([tree.ingest_root], settings, progress=False)
    yield tree
    forget_app_caches()


def test_the_sample_page_shows_no_image_from_outside_the_roots(tree_home, monkeypatch):
    for sid in ("absolute", "climb", "file-link", "dir-link"):  # real PNGs elsewhere on the machine
        at = app_at(SAMPLE, id=sid)
        assert not at.exception
        assert not at.get("image"), sid
        warning = " ".join(shown(at, "warning"))
        assert "Image 1 cannot be shown" in warning and "outside the shard's folder" in warning, (sid, warning)
    at = app_at(SAMPLE, id="ok")
    assert not at.exception and at.get("image")
    at = app_at(SAMPLE, id="shared")  # not allowed until its folder is a media root
    assert not at.get("image")
    monkeypatch.setenv("CURATOR_MEDIA_ROOTS", str(tree_home.media_root))
    at = app_at(SAMPLE, id="shared")
    assert not at.exception and at.get("image")
