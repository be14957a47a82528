"""Roles in the state database (SQLite and PostgreSQL): granted and audited, refused for the wrong role in the domain
layer itself, never undone as if they were sample events, and carried through the migration from 0001."""

from __future__ import annotations

import uuid

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from curation.review.actors import Actor, local_actor
from curation.review.audit import history, table_history
from curation.review.errors import StateError
from curation.review.flags import add_flag, flags_for
from curation.review.roles import (
    ACTIONS,
    DEFAULT_ROLE,
    PermissionDenied,
    actor_for,
    grant_role,
    require,
    revoke_role,
    role_of,
    roles,
)
from curation.review.undo import undo, undo_last
from db.engine import MIGRATIONS_DIR, open_state

ADMIN = Actor("Ada Admin", "ada@example.com", "admin")


def test_a_granted_role_is_found_by_email_in_any_case_and_everyone_else_is_a_viewer(db):
    grant_role(db, local_actor(), "Alice@Example.COM ", "curator")

    assert role_of(db, "alice@example.com") == "curator"
    assert actor_for(db, "Alice Example", "ALICE@example.com") == Actor("Alice Example", "alice@example.com", "curator")
    stranger = f"{uuid.uuid4()}@example.com"
    assert role_of(db, stranger) == DEFAULT_ROLE == "viewer"
    assert actor_for(db, None, stranger).role == "viewer"
    assert [(r.who, r.role, r.granted_by) for r in roles(db)] == [("alice@example.com", "curator",
                                                                   local_actor().who)]


def test_a_viewer_is_refused_every_write_by_the_domain_layer_and_the_message_says_what_would_allow_it(db):
    viewer = actor_for(db, "Vera Viewer", "vera@example.com")
    for action in ACTIONS:
        with pytest.raises(PermissionDenied) as refused:
            require(viewer, action)
        message = str(refused.value)
        assert "vera@example.com" in message and "'viewer'" in message and "'admin'" in message
        assert "python -m curation roles grant" in message
    assert isinstance(refused.value, StateError)  # the pages already show StateError's text to the person

    annotator = Actor("Ann", "ann@example.com", "annotator")
    for action in ("flag", "review", "fix", "undo"):
        require(annotator, action)
    for action in ("bulk", "export", "run_checks", "ls_push", "ls_pull", "grant_role"):
        with pytest.raises(PermissionDenied, match="annotator"):
            require(annotator, action)
    for action in ACTIONS:
        require(ADMIN, action)


def test_only_an_admin_grants_and_each_grant_is_audited_with_its_old_and_new_role(db):
    grant_role(db, local_actor(), ADMIN.who, "admin")
    curator = Actor("Cy", "cy@example.com", "curator")
    with pytest.raises(PermissionDenied, match="cy@example.com"):
        grant_role(db, curator, "cy@example.com", "admin")
    with pytest.raises(StateError, match="field 'role' is 'owner'; use one of admin, curator, annotator, viewer"):
        grant_role(db, ADMIN, "bob@example.com", "owner")

    grant_role(db, ADMIN, "bob@example.com", "annotator")
    grant_role(db, ADMIN, "bob@example.com", "annotator")  # the same again changes nothing, audits nothing
    grant_role(db, ADMIN, "bob@example.com", "curator")
    revoke_role(db, ADMIN, "bob@example.com")

    assert role_of(db, "bob@example.com") == DEFAULT_ROLE
    trail = [(e.who, e.action, e.sample_id, e.old_value, e.new_value) for e in table_history(db, "user_roles")
             if "bob" in str(e.new_value or e.old_value)]
    assert trail == [
        ("ada@example.com", "role_granted", None, None, {"who": "bob@example.com", "role": "annotator"}),
        ("ada@example.com", "role_granted", None, {"who": "bob@example.com", "role": "annotator"},
         {"who": "bob@example.com", "role": "curator"}),
        ("ada@example.com", "role_revoked", None, {"who": "bob@example.com", "role": "curator"}, None),
    ]


def test_the_last_admin_cannot_be_demoted_or_revoked_so_someone_can_always_grant(db):
    grant_role(db, local_actor(), ADMIN.who, "admin")
    with pytest.raises(StateError, match="last admin"):
        grant_role(db, ADMIN, ADMIN.who, "viewer")
    with pytest.raises(StateError, match="last admin"):
        revoke_role(db, ADMIN, ADMIN.who)
    grant_role(db, ADMIN, "bea@example.com", "admin")
    grant_role(db, ADMIN, ADMIN.who, "curator")
    assert role_of(db, ADMIN.who) == "curator"


def test_undo_takes_back_the_admins_last_sample_event_never_a_role_grant(db):
    sample = str(uuid.uuid4())
    grant_role(db, local_actor(), ADMIN.who, "admin")
    add_flag(db, sample, "wrong_answer", None, ADMIN)
    grant_role(db, ADMIN, "bob@example.com", "annotator")  # the admin's latest audit entry

    undone = undo_last(db, ADMIN)
    assert undone is not None and undone.sample_id == sample and flags_for(db, sample) == []
    assert undo_last(db, ADMIN) is None  # only the role grant is left: not a sample event
    assert role_of(db, "bob@example.com") == "annotator"
    grant_entry = table_history(db, "user_roles")[-1]
    with pytest.raises(StateError, match=f"undo of audit entry {grant_entry.id}: it changed user_roles"):
        undo(db, grant_entry.id, ADMIN)
    assert [e.action for e in history(db, sample)] == ["flag_added", "undo"]


def test_a_database_of_0001_with_curation_state_migrates_keeps_it_and_goes_back(db_url):
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    old = open_state(db_url, upgrade=False)
    with old.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    sample = str(uuid.uuid4())
    with old:  # what the 0001 schema held: a flag and its audit entry
        with old.write() as s:
            s.execute(text("INSERT INTO flags (sample_id, reason, who, source, created_at) "
                           "VALUES (:s, 'duplicate', 'ann', 'person', CURRENT_TIMESTAMP)"), {"s": sample})
            s.execute(text("INSERT INTO audit_log (at, who, action, sample_id, table_name, row_id) "
                           "VALUES (CURRENT_TIMESTAMP, 'ann', 'flag_added', :s, 'flags', 1)"), {"s": sample})

    with open_state(db_url) as db:  # opening migrates to head
        assert [f.reason for f in flags_for(db, sample)] == ["duplicate"]
        assert [e.action for e in history(db, sample)] == ["flag_added"]
        grant_role(db, local_actor(), "ann", "annotator")
        assert role_of(db, "ann") == "annotator"
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0001")
        with db.read() as s:
            assert s.execute(text("SELECT action FROM audit_log")).scalars().all() == ["flag_added"]
    with open_state(db_url) as again:  # and up again
        assert role_of(again, "ann") == DEFAULT_ROLE and len(flags_for(again, sample)) == 1
