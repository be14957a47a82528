"""Pytest fixtures for a real Label Studio server (loaded by tests/conftest.py via ``pytest_plugins``).

``ls_server`` starts ``label-studio`` from ``.venv-ls`` once per test session on a free port, with its
SQLite database and the folder it serves under a temporary directory, and stops it at the end. The
environment is built if missing (``make test`` builds it first); only when it cannot be built are the
tests skipped, with the reason. A migrated data folder is kept inside .venv-ls, so after the very first
start (~30 s) each session's server is up in ~5 s.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from curation.labelstudio.client import Connection, LabelStudioClient
from curation.labelstudio.server import (
    LabelStudioServer,
    LabelStudioServerError,
    ensure_template,
    ensure_venv,
    start_server,
)


@pytest.fixture(scope="session")
def ls_server_booting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioServer]:
    """The server process, started but maybe not ready yet: request it before slow fixtures (the demo
    catalog) so Label Studio boots meanwhile; ``ls_server`` then waits for it."""
    try:
        ensure_venv()
    except LabelStudioServerError as exc:
        pytest.skip(f"Label Studio server environment (.venv-ls) cannot be built here: {exc}")
    template = ensure_template()
    base = tmp_path_factory.mktemp("labelstudio")
    server = start_server(base / "data", files_root=base / "files", template=template, wait=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ls_server(ls_server_booting: LabelStudioServer) -> LabelStudioServer:
    """A running Label Studio: ``.url``, ``.token`` (legacy), ``.credentials`` (login), ``.files_root``."""
    return ls_server_booting.wait_ready()


@pytest.fixture(scope="session")
def ls_client(ls_server: LabelStudioServer) -> LabelStudioClient:
    """The app's client for ``ls_server``, with the legacy token."""
    return LabelStudioClient(Connection(ls_server.url, ls_server.token))
