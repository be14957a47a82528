"""Fixtures of the page tests: the demo data home the app is pointed at, and a catalog query over it."""

from __future__ import annotations

import pytest

from curation.query.catalog import CatalogQuery
from tests.app.test_app_support import demo_app_home, forget_app_caches


@pytest.fixture
def settings(monkeypatch, tmp_path, demo_home):
    yield demo_app_home(monkeypatch, tmp_path, demo_home)
    forget_app_caches()


@pytest.fixture
def catalog(settings):
    q = CatalogQuery(settings)
    yield q
    q.close()
