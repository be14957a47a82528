"""Stories of flags: who flagged a sample, why and when; one flag per person and reason; removing keeps the row."""

from __future__ import annotations

import pytest

from curation.review.audit import history
from curation.review.errors import StateError
from curation.review.flags import FLAG_REASONS, add_flag, add_flags, clear_flags, flags_for, remove_flag
from curation.review.undo import undo
from tests.support.actors import person


def test_a_curator_flags_a_sample_and_the_history_says_who_why_and_when(db):
    flag = add_flag(db, "scannet-0001", "wrong_answer", "the chair is left of the table", person("ann"))

    assert flag.active and flag.source == "person" and flag.created_at.tzinfo is not None
    assert flags_for(db, "scannet-0001") == [flag]
    (entry,) = history(db, "scannet-0001")
    assert (entry.action, entry.who, entry.table_name, entry.row_id) == ("flag_added", "ann", "flags", flag.id)
    assert entry.old_value is None
    assert entry.new_value == {
        "reason": "wrong_answer",
        "note": "the chair is left of the table",
        "who": "ann",
        "source": "person",
    }


def test_a_reason_outside_the_fixed_list_is_refused_naming_the_field(db):
    assert "contamination" in FLAG_REASONS and len(FLAG_REASONS) == 11
    with pytest.raises(StateError, match="scannet-0001.*'reason'.*wrong_answer"):
        add_flag(db, "scannet-0001", "looks_odd", None, person("ann"))
    with pytest.raises(StateError, match="'who'"):
        add_flag(db, "scannet-0001", "other", None, person(""))


def test_flagging_the_same_sample_twice_for_the_same_reason_keeps_one_flag(db):
    first = add_flag(db, "s1", "bad_media", None, person("ann"))
    again = add_flag(db, "s1", "bad_media", None, person("ann"))
    by_bob = add_flag(db, "s1", "bad_media", None, person("bob"))

    assert again.id == first.id and by_bob.id != first.id
    assert len(flags_for(db, "s1")) == 2
    assert [e.action for e in history(db, "s1")] == ["flag_added", "flag_added"]


def test_removing_a_flag_keeps_its_row_and_undo_brings_it_back(db):
    flag = add_flag(db, "s1", "ambiguous", "two sofas", person("ann"))

    removed = remove_flag(db, flag.id, person("bob"))
    assert removed.removed_by == "bob" and flags_for(db, "s1") == []
    assert flags_for(db, "s1", include_removed=True)[0].id == flag.id

    removal = history(db, "s1")[-1]
    assert removal.action == "flag_removed" and removal.new_value is None
    undo(db, removal.id, person("bob"))
    assert [f.id for f in flags_for(db, "s1")] == [flag.id]
    with pytest.raises(StateError, match="no flag"):
        remove_flag(db, 999, person("bob"))


def test_a_check_run_flags_many_samples_at_once_and_a_rerun_adds_nothing(db):
    ids = [f"arkit-{i:04d}" for i in range(500)]
    notes = {"arkit-0007": "box outside the frustum"}

    assert add_flags(db, ids, "bad_geometry", person("check:geometry"), source="run-42", notes=notes) == 500
    assert add_flags(db, ids, "bad_geometry", person("check:geometry"), source="run-42") == 0

    (flag,) = flags_for(db, "arkit-0007")
    assert (flag.source, flag.note, flag.who) == ("run-42", "box outside the frustum", "check:geometry")
    assert history(db, "arkit-0499")[0].row_id == flags_for(db, "arkit-0499")[0].id
    removed = clear_flags(db, "arkit-0007", person("ann"), reason="bad_geometry")
    assert [f.id for f in removed] == [flag.id] and flags_for(db, "arkit-0007") == []
