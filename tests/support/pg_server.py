"""Pytest fixtures for a real PostgreSQL server (loaded by tests/conftest.py via ``pytest_plugins``).

``pg_server`` runs a throwaway cluster once per test session with Debian's binaries
(/usr/lib/postgresql/*/bin, or initdb/pg_ctl on PATH): initdb into a temporary folder, listening on
127.0.0.1 only, on a free port, trust authentication, fsync off (the data is thrown away). The cluster
is stopped and its folder removed at the end. PostgreSQL refuses to run as root, so as root the server
runs as the ``postgres`` user that Debian's package creates. Only when the binaries are missing are
the tests skipped (``make test-deps`` installs them).

``pg_url`` is a SQLAlchemy URL (psycopg2) of the session's database; ``pg_db_url`` is the URL of a new,
empty database for one test.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from curation.labelstudio.server import pick_free_port

SUPERUSER = "curator"
DATABASE = "curator"


class PostgresServerError(RuntimeError):
    """The throwaway cluster could not be set up; the message carries the command and its output."""


def find_bindir() -> Path | None:
    """The newest Debian PostgreSQL bin folder with initdb and pg_ctl, else the folder of those on PATH."""
    candidates = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda d: [int(x) if x.isdigit() else 0 for x in d.parent.name.split(".")],
        reverse=True,
    )
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file() and (bindir / "postgres").is_file():
            return bindir
    return None


@dataclass
class PostgresServer:
    """A running throwaway cluster: ``url(db)`` for SQLAlchemy, ``create_database()`` for a fresh one."""

    bindir: Path
    base: Path
    port: int
    run_as: list[str]  # command prefix: ['runuser', '-u', 'postgres', '--'] as root, else []

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def logfile(self) -> Path:
        return self.base / "server.log"

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql+psycopg2://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [*self.run_as, *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if res.returncode != 0:
            log = self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""
            raise PostgresServerError(f"{' '.join(cmd)} exited {res.returncode}:\n{res.stdout}{res.stderr}{log}")
        return res

    def _admin(self, sql: str) -> None:
        import psycopg2  # imported late: a missing driver must not break collection of other tests

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres")
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a new name unless given) and return its URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # FORCE: ends sessions a test left open

    def start(self) -> None:
        pg = str(self.bindir)
        self._run(
            f"{pg}/initdb", "-D", str(self.datadir), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        # Only the loopback TCP port and a socket in our own folder: never the system's /var/run/postgresql.
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base / 'sock'} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
        )
        (self.base / "sock").mkdir()
        self._chown(self.base / "sock")
        self._run(f"{pg}/pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile), "-o", options, "-w", "-t", "60",
                  "start", timeout=90)  # fmt: skip
        self._admin(f'CREATE DATABASE "{DATABASE}"')

    def stop(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            self._run(f"{self.bindir}/pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "-t", "60", "stop",
                      timeout=90)  # fmt: skip

    def _chown(self, path: Path) -> None:
        if self.run_as:
            user = pwd.getpwnam(self.run_as[2])
            os.chown(path, user.pw_uid, user.pw_gid)


def start_server(bindir: Path, attempts: int = 3) -> PostgresServer:
    """initdb and start a cluster in a new temporary folder; retried on another port if the port was taken."""
    run_as: list[str] = []
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:
            raise PostgresServerError("running as root, but there is no 'postgres' user to run the server") from exc
        run_as = ["runuser", "-u", "postgres", "--"]
    error: PostgresServerError | None = None
    for _ in range(attempts):
        # Not under pytest's temp folders (private to root; the socket path must be short). In RAM when there is
        # /dev/shm: every test creates a database, and on disk that costs ~1 s each.
        root = "/dev/shm" if os.access("/dev/shm", os.W_OK) and shutil.disk_usage("/dev/shm").free > 1 << 30 else None
        base = Path(tempfile.mkdtemp(prefix="curator-pg-", dir=root))
        server = PostgresServer(bindir, base, pick_free_port(), run_as)
        server._chown(server.base)
        try:
            server.start()
            return server
        except PostgresServerError as exc:
            error = exc
            _stop_and_remove(server)
    assert error is not None
    raise error


def _stop_and_remove(server: PostgresServer) -> None:
    try:
        server.stop()
    finally:
        shutil.rmtree(server.base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A running throwaway PostgreSQL cluster for the whole test session."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found under /usr/lib/postgresql/*/bin "
            "or on PATH; install Debian's 'postgresql' package (make test-deps)"
        )
    server = start_server(bindir)
    try:
        yield server
    finally:
        _stop_and_remove(server)


@pytest.fixture(scope="session")
def pg_url(pg_server: PostgresServer) -> str:
    """SQLAlchemy URL (postgresql+psycopg2://...) of the session's database on the throwaway server."""
    return pg_server.url()


@pytest.fixture
def pg_db_url(pg_server: PostgresServer) -> Iterator[str]:
    """SQLAlchemy URL of a new, empty database for one test, dropped after it."""
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url.rsplit("/", 1)[-1])
