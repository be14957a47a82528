"""Every job-queue story here runs on SQLite and on PostgreSQL (tests/support/state_db.py)."""

from tests.support.state_db import db, db_url  # noqa: F401 - fixtures
