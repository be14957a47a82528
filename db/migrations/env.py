"""Alembic environment for the curation-state database; `db.engine.open_state` runs it programmatically."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection

from db.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    # The CLI (`alembic -c db/alembic.ini ...`) names its database itself: storage does not read the app's settings.
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("CURATOR_DB_URL")
    if not url:
        raise RuntimeError(
            "alembic: no database URL; set CURATOR_DB_URL (the app's default is sqlite:///<CURATOR_HOME>/state.sqlite)"
        )
    return url


def _configure(connection: Connection) -> None:
    # Batch mode: SQLite cannot ALTER most things in place; on PostgreSQL batch ops are plain ALTERs.
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        # open_state passes a connection already inside its (locked) transaction; it commits.
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url())
    with engine.begin() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
