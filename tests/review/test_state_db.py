"""Stories of the state database itself: migrations build the models' schema, concurrent curators lose nothing."""

from __future__ import annotations

import io
import itertools
import sqlite3
import threading
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from curation.review.audit import history
from curation.review.flags import add_flag, flags_for
from curation.review.reviews import review_for, reviews_for
from db.engine import MIGRATIONS_DIR, open_state
from db.models import Base
from tests.support.actors import person
from tests.support.state_db import postgres_only, run_together, sqlite_only

HEAD = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()  # the newest migration

# ----------------------------------------------------------------------------------------------- migrations


@sqlite_only
def test_migrations_build_exactly_the_schema_the_models_describe(db):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == []
        assert set(inspect(conn).get_table_names()) >= {
            "flags", "reviews", "audit_log", "jobs", "job_units", "ls_projects", "ls_links", "alembic_version",
        }  # fmt: skip
        pragmas = {p: conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("journal_mode", "foreign_keys")}
    assert pragmas == {"journal_mode": "wal", "foreign_keys": 1}


@postgres_only
def test_opening_a_fresh_postgresql_database_builds_exactly_the_schema_the_models_describe(db):
    assert db.engine.dialect.name == "postgresql"
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == []
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]
        flags = {c["name"]: c for c in inspect(conn).get_columns("flags")}
        checks = {c["name"] for c in inspect(conn).get_check_constraints("reviews")}
    assert str(flags["created_at"]["type"]) == "TIMESTAMP" and flags["created_at"]["type"].timezone
    assert checks == {"ck_reviews_verdict", "ck_reviews_fix_has_text", "ck_reviews_only_fix_has_text"}
    # timestamps come back aware from the server itself, not only through db.models.as_utc
    flag = add_flag(db, "s1", "other", None, person("ann"))
    assert flag.created_at.utcoffset() is not None


@postgres_only
def test_the_database_constraints_hold_even_for_writes_that_bypass_the_state_functions(db):
    with pytest.raises(IntegrityError, match="ck_flags_reason"), db.write() as s:
        s.execute(text("INSERT INTO flags (sample_id, reason, who, source, created_at) "
                       "VALUES ('s1', 'looks_odd', 'ann', 'person', now())"))  # fmt: skip
    with pytest.raises(IntegrityError, match="ck_reviews_fix_has_text"), db.write() as s:
        s.execute(text("INSERT INTO reviews (sample_id, verdict, reviewer, source, created_at) "
                       "VALUES ('s1', 'fix', 'ann', 'person', now())"))  # fmt: skip
    assert flags_for(db, "s1") == [] and review_for(db, "s1") is None


def test_migrations_go_down_and_up_again_and_opening_twice_is_harmless(db_url):
    db = open_state(db_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    with db.engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) == {"alembic_version"}
    db.close()
    with open_state(db_url) as again, open_state(db_url) as third:
        add_flag(again, "s1", "other", None, person("ann"))
        assert len(flags_for(third, "s1")) == 1


def test_the_same_migrations_render_for_postgresql():
    ddl = io.StringIO()
    cfg = Config(output_buffer=ddl)
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", "postgresql://curator@localhost/curator")
    command.upgrade(cfg, "head", sql=True)  # offline: renders the DDL without a server or a driver

    text = ddl.getvalue()
    assert "CREATE TABLE flags" in text and "TIMESTAMP WITH TIME ZONE" in text and "PRAGMA" not in text


# ----------------------------------------------------------------------------------------------- concurrency

CURATOR = """
import sys
from curation.review.flags import add_flag
from curation.review.reviews import add_review
from db.engine import open_state
from tests.support.actors import person
from tests.support.state_db import wait_for_go

wait_for_go()  # imports done: everyone starts the race together
url, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
db = open_state(url)  # both open a fresh database at once: migrations must not collide
for i in range(n):
    add_flag(db, f"shared-{i}", "wrong_answer", f"{who} disagrees", person(who))
    add_flag(db, f"{who}-own-{i}", "bad_media", None, person(who))
    add_review(db, "contested", "fix", person(who), fixed_answer=f"{who}-{i}")
print("ok")
"""


def test_two_curators_in_two_processes_flag_and_fix_at_once_and_nothing_is_lost(db_url, tmp_path):
    n = 25
    outs = run_together(CURATOR, [[db_url, who, str(n)] for who in ("ann", "bob")], tmp_path / "go")
    assert outs == ["ok", "ok"]

    db = open_state(db_url)
    for i in range(n):
        assert sorted(f.who for f in flags_for(db, f"shared-{i}")) == ["ann", "bob"]
        assert len(flags_for(db, f"ann-own-{i}")) == len(flags_for(db, f"bob-own-{i}")) == 1

    reviews = reviews_for(db, "contested")
    assert len(reviews) == 2 * n
    current = review_for(db, "contested")
    assert current.review_id == reviews[-1].id and current.fixed_answer == reviews[-1].fixed_answer
    # the audit saw every review, each one's "old" being exactly the previous one's "new"
    trail = [e for e in history(db, "contested") if e.action == "review_added"]
    assert len(trail) == 2 * n
    for before, after in itertools.pairwise(trail):
        assert after.old_value["fixed_answer"] == before.new_value["fixed_answer"]
    db.close()


@sqlite_only
def test_opening_waits_for_another_process_that_holds_a_fresh_file(db_url):
    # SQLite refuses the switch to WAL at once (no busy handler) while another connection holds a lock on a
    # file still in rollback mode: the race two curators hit when they open a fresh file together.
    path = Path(db_url.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE busy (i INTEGER)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO busy VALUES (1)")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    try:
        db = open_state(db_url)
    finally:
        release.join()
        other.close()
    add_flag(db, "s1", "wrong_answer", None, person("ann"))
    assert [f.who for f in flags_for(db, "s1")] == ["ann"]
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    db.close()


SAME_SAMPLE = """
import sys
from curation.review.flags import add_flag, add_flags
from curation.review.reviews import add_review
from db.engine import open_state
from tests.support.actors import person
from tests.support.state_db import wait_for_go

wait_for_go()  # imports done: everyone starts the race together
url, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
db = open_state(url)  # all open a database no one has migrated yet: the migration lock lets one build it
for i in range(n):
    # everyone flags the very same sample for the very same reason under one shared name, and reviews it
    add_flag(db, f"hot-{i}", "duplicate", None, person("team"))
    add_review(db, "hot", "approve" if i % 2 else "reject", person(who))
    add_flags(db, [f"bulk-{j}" for j in range(20)], "bad_media", person("check:media"), source="run-1")
print("ok")
"""


@postgres_only
def test_three_curators_open_a_fresh_database_at_once_and_hammer_one_sample_without_losing_anything(db_url, tmp_path):
    n = 10
    outs = run_together(SAME_SAMPLE, [[db_url, who, str(n)] for who in ("ann", "bob", "cy")], tmp_path / "go")

    assert outs == ["ok"] * 3
    with open_state(db_url) as db:
        with db.engine.connect() as conn:  # migrated once, by whichever opener got the lock first
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]
        for i in range(n):  # same who, same reason, same source: one flag however many pressed at once
            assert len(flags_for(db, f"hot-{i}")) == 1
            assert len(history(db, f"hot-{i}")) == 1
        assert all(len(flags_for(db, f"bulk-{j}")) == 1 for j in range(20))
        trail = [e for e in history(db, "hot") if e.action == "review_added"]
        assert len(trail) == len(reviews_for(db, "hot")) == 3 * n
        # each change saw exactly the state the previous one left: replaying the trail never contradicts itself
        replayed: dict[str, object] = {}
        for entry in trail:
            old = entry.old_value or {}
            assert {k: replayed.get(k) for k in old} == old
            replayed.update(entry.new_value)
        assert review_for(db, "hot").review_id == trail[-1].row_id
