"""Opening the curation-state database: SQLite (WAL) or PostgreSQL engines, write locks, migrations, sessions.

Several curators write at once: on SQLite every write transaction is ``BEGIN IMMEDIATE`` (writers queue on
busy_timeout instead of failing), on PostgreSQL it first takes one transaction-level advisory lock, so a
read-then-write step (is it flagged already? what did the review state look like before?) never interleaves.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Self, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from db.models import as_utc

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_IMMEDIATE = "curator_sqlite_immediate"  # execution option: this transaction will write
_PG_MIGRATION_LOCK = 0x5653_5443  # advisory-lock key serialising concurrent `upgrade head` on PostgreSQL
_PG_WRITE_LOCK = 0x5653_5457  # advisory-lock key every PostgreSQL write transaction queues on (see _pg_engine)

_R = TypeVar("_R")


@dataclass
class StateDB:
    """An open state database: one engine, a session factory for reads and one for writes."""

    url: str
    engine: Engine
    _read: sessionmaker[Session]
    _write: sessionmaker[Session]

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on success; it holds the write lock (SQLite, PostgreSQL) from its start."""
        with self._write.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def to_record(cls: type[_R], row: object) -> _R:
    """The dataclass ``cls`` from an ORM row with the same attribute names (timestamps made UTC-aware)."""
    values = {f.name: getattr(row, f.name) for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: as_utc(v) if isinstance(v, datetime) else v for k, v in values.items()})


def _enable_wal(cursor: Any, wait_s: float = 30.0) -> None:
    """Switch the file to WAL, retrying while another process holds it.

    Changing the journal mode needs an exclusive lock and SQLite answers "database is locked" at once, without
    calling the busy handler, when two processes open a fresh file together (one is already migrating). Once
    the file is in WAL mode the pragma is a no-op, so the retry only ever happens on that first open.
    """
    deadline = time.monotonic() + wait_s
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _sqlite_engine(db_url: str) -> Engine:
    url = make_url(db_url)
    database = url.database or ""
    memory = database in ("", ":memory:") or "mode=memory" in database or database.startswith("file::memory:")
    kwargs: dict[str, Any] = {"connect_args": {"timeout": 30, "check_same_thread": False}}
    if memory:
        kwargs["poolclass"] = StaticPool  # one shared connection, else every connection is its own empty DB
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so that we can say BEGIN IMMEDIATE (see _on_begin).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        if not memory:
            _enable_wal(cursor)
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A deferred transaction that reads and then writes fails with "database is locked" when another
        # writer committed in between (busy_timeout cannot help); IMMEDIATE takes the lock up front.
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _pg_engine(db_url: str) -> Engine:
    engine = create_engine(db_url, pool_pre_ping=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # PostgreSQL's BEGIN IMMEDIATE: without it two READ COMMITTED writers both pass a read-then-write step
        # (add_flag's "already flagged?", add_review's old/new fold for the audit) and store duplicates or a
        # broken audit chain. One writer at a time, as on SQLite; readers are never blocked.
        if conn.get_execution_options().get(_IMMEDIATE, False):
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_WRITE_LOCK})")

    return engine


def _make_engine(db_url: str) -> Engine:
    backend = make_url(db_url).get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(db_url)
    if backend == "postgresql":
        return _pg_engine(db_url)
    return create_engine(db_url, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Run ``alembic upgrade head`` inside one locked transaction, so two processes opening at once are safe."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.execution_options(**{_IMMEDIATE: True}).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def open_state(db_url: str, *, upgrade: bool = True) -> StateDB:
    """Open (creating and migrating as needed) the state database at any SQLAlchemy URL."""
    engine = _make_engine(db_url)
    if upgrade:
        try:
            migrate(engine)
        except Exception:
            engine.dispose()
            raise
    writer = engine.execution_options(**{_IMMEDIATE: True})
    return StateDB(
        url=db_url,
        engine=engine,
        _read=sessionmaker(engine, expire_on_commit=False),
        _write=sessionmaker(writer, expire_on_commit=False),
    )
