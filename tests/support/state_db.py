"""The curation-state database for tests: each story runs once on SQLite and once on the throwaway PostgreSQL cluster.

A conftest imports ``db_url`` and ``db``; a test asking for either runs as ``[sqlite]`` and ``[postgresql]`` (the
latter marked ``postgres``, with a fresh database from tests/support/pg_server.py). A story about one backend only
takes ``@sqlite_only`` or ``@postgres_only``. ``run_together`` races Python scripts (``wait_for_go``) on one database.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from db.engine import StateDB, open_state

REPO = Path(__file__).resolve().parents[2]

_POSTGRES = pytest.param("postgresql", marks=[pytest.mark.postgres, pytest.mark.timeout(120)])
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
postgres_only = pytest.mark.parametrize("db_url", [_POSTGRES], indirect=True)


@pytest.fixture(params=["sqlite", _POSTGRES])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a state database no one has opened yet: a SQLite file, or a new, empty PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'home' / 'state.sqlite'}"
    return request.getfixturevalue("pg_db_url")


@pytest.fixture
def db(db_url: str) -> Iterator[StateDB]:
    with open_state(db_url) as opened:
        yield opened


def run_together(script: str, args_per_process: list[list[str]], go: Path) -> list[str]:
    """Start one Python process per argument list, let them all go at once, return their stdout (all must pass)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, *args, str(go)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for args in args_per_process
    ]  # fmt: skip
    go.touch()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs.append(out.strip())
    return outs


def wait_for_go() -> None:
    """In a script ``run_together`` started: wait for the go file (the last argument), so all start at once."""
    go = Path(sys.argv[-1])
    while not go.exists():
        time.sleep(0.002)
