"""Reviewing one sample as the signed-in person: flag / approve / reject / fix / undo through curation.review (only
what their role allows is offered; the domain layer checks it again), and the keyboard shortcuts that press the same
buttons."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from app.components import identity
from app.components.text import plain
from curation.presenters.sample import BOX_COLUMNS, BoxEditError, boxes_answer, boxes_from_answer, is_fenced
from curation.review.actors import Actor
from curation.review.audit import history
from curation.review.errors import StateError
from curation.review.flags import FLAG_REASONS, add_flag, flags_for, remove_flag
from curation.review.reviews import add_review, review_for
from curation.review.roles import GRANT_HINT, allowed
from curation.review.state_db import StateDB
from curation.review.undo import undo_last

# Keyboard shortcuts: key -> the Streamlit key of the button it presses (its container has class st-key-<key>).
SHORTCUTS = {"j": "btn_next", "k": "btn_prev", "a": "btn_approve", "r": "btn_reject", "f": "btn_flag"}
WRITES = {"flag": "flag", "review": "approve, reject", "fix": "fix", "undo": "undo"}  # what review_panel offers


def role_note(by: Actor, what: str) -> None:
    """Say what ``by``'s role may not do here and who can change that (in place of the widgets it may not use)."""
    st.caption(f":material/visibility: {plain(by.who)} has the role {plain(by.role)}, which may not {plain(what)}; "
               f"{GRANT_HINT}.")


def keyboard_shortcuts() -> None:
    """Keys press the review buttons (j/k next/prev, a approve, r reject, f flag) unless typing in a field."""
    mapping = json.dumps(SHORTCUTS)
    st.html(
        "<script>(function(){"
        "if (window.__curatorKeys) return; window.__curatorKeys = true;"
        f"const map = {mapping};"
        "document.addEventListener('keydown', function(e){"
        " if (e.ctrlKey || e.metaKey || e.altKey) return;"
        " const t = e.target; const tag = (t && t.tagName || '').toLowerCase();"
        " if (tag === 'input' || tag === 'textarea' || tag === 'select' || (t && t.isContentEditable)) return;"
        " const key = map[e.key]; if (!key) return;"
        " const b = document.querySelector('.st-key-' + key + '[data-stale=\"false\"] button')"
        "   || document.querySelector('.st-key-' + key + ' button');"
        " if (b && !b.disabled) { e.preventDefault(); b.click(); }"
        "});})();</script>",
        unsafe_allow_javascript=True,
    )


def _act(fn, *args, ok: str, sample_id: str | None = None, **kwargs) -> bool:
    """Run a state change; its outcome becomes the message shown next, tied to the sample it was about."""
    try:
        # In a button callback the Actor is the one of the run that drew the button: act with the role held now.
        fn(*(identity.as_now(a) if isinstance(a, Actor) else a for a in args),
           **{k: identity.as_now(v) if isinstance(v, Actor) else v for k, v in kwargs.items()})
    except StateError as exc:
        st.session_state["review_msg"] = ("error", str(exc), sample_id)
        return False
    except Exception as exc:  # a database that went away: a message, not a traceback
        st.session_state["review_msg"] = ("error", f"The state database refused the change: {exc}", sample_id)
        return False
    st.session_state["review_msg"] = ("success", ok, sample_id)
    return True


def _verdict(db: StateDB, sample_id: str, verdict: str, by: Actor, next_id: str | None, move_to) -> None:
    # A button callback: the review is stored and the queue moves on before the page runs again, so the next sample
    # is drawn by one run (no half run of the sample just reviewed).
    done = "Approved" if verdict == "approve" else "Rejected"
    if _act(add_review, db, sample_id, verdict, by, ok=f"{done} sample {sample_id}.", sample_id=sample_id) \
            and st.session_state.get("auto_advance", True) and next_id:
        move_to(next_id)


def _message(sample_id: str) -> None:
    """The outcome of the last action; one about another sample (the one just reviewed, before the queue moved on)
    says so, so it is never read as this sample's state."""
    msg = st.session_state.pop("review_msg", None)
    if not msg:
        return
    kind, text, about = (*msg, None)[:3]
    if about is not None and about != sample_id:
        text = f"{text} Now showing the next sample of the queue, {sample_id}."
    (st.success if kind == "success" else st.error)(plain(text))


def review_panel(db: StateDB, by: Actor, sample_id: str, answer: str | None, reasoning: str | None,
                 next_id: str | None, go_to, move_to=None, boxes: list[dict] | None = None) -> None:
    """Current flags and review, the actions ``by``'s role allows, the fix editor and the history of one sample.
    ``go_to`` opens another sample now (a rerun); ``move_to`` only points the page at it (for button callbacks, which
    rerun anyway). ``boxes`` (box_table rows of the answer's 3D boxes) gets a structured fix editor."""
    may = {action: allowed(by, action) for action in WRITES}
    if st.session_state.pop("flag_note_clear", False):
        st.session_state["flag_note"] = ""  # a new flag starts with an empty note
    _message(sample_id)
    try:
        flags = flags_for(db, sample_id)
        state = review_for(db, sample_id)
    except Exception as exc:
        st.error(f"Cannot read the curation state: {plain(exc)}")
        return
    status = st.container()
    if flags:
        for f in flags:
            c1, c2 = status.columns([6, 1])
            c1.markdown(f":orange-badge[flag] **{plain(f.reason)}** by {plain(f.who)}"
                        + (f" — {plain(f.note)}" if f.note else ""))
            if may["flag"] and c2.button("remove", key=f"btn_unflag_{f.id}", help="Remove this flag"):
                if _act(remove_flag, db, f.id, by, ok=f"Removed flag {f.reason}.", sample_id=sample_id):
                    st.rerun()
    else:
        status.caption("No flags.")
    if state:
        badge = {"approve": ":green-badge[approved]", "reject": ":red-badge[rejected]", "fix": ":blue-badge[fixed]"}
        status.markdown(f"{badge.get(state.verdict, plain(state.verdict))} by {plain(state.reviewer)}"
                        + (f" — {plain(state.note)}" if state.note else ""))
    else:
        status.caption("Not reviewed yet.")

    if not_here := [what for action, what in WRITES.items() if not may[action]]:
        role_note(by, " or ".join(", ".join(not_here).rsplit(", ", 1)))
    if may["review"] or may["flag"] or may["undo"]:
        _actions(db, by, sample_id, may, next_id, go_to, move_to or go_to)
    if may["fix"]:
        if boxes is not None:
            _box_fix(db, by, sample_id, boxes, answer, state)
        _text_fix(db, by, sample_id, answer, reasoning, state)
    with st.expander("History", expanded=False):
        try:
            entries = history(db, sample_id)
        except Exception as exc:
            st.error(f"Cannot read the history: {plain(exc)}")
            entries = []
        if not entries:
            st.caption("No changes yet.")
        for e in entries:
            st.markdown(f"`{e.at:%Y-%m-%d %H:%M:%S}` **{plain(e.who)}** {plain(e.action.replace('_', ' '))}"
                        + (f" ({plain(e.field)})" if e.field else "")
                        + (f" → {plain(json.dumps(e.new_value))}" if e.new_value else ""))


def _actions(db: StateDB, by: Actor, sample_id: str, may: dict[str, bool], next_id: str | None, go_to,
             move_to) -> None:
    """Approve / reject (which may move the queue on), flag with a reason and note, undo my last change."""
    c = st.columns([1, 1, 2, 3, 1, 1])
    if may["review"]:
        c[0].button("Approve", key="btn_approve", help="a", type="primary", on_click=_verdict,
                    args=(db, sample_id, "approve", by, next_id, move_to))
        c[1].button("Reject", key="btn_reject", help="r", on_click=_verdict,
                    args=(db, sample_id, "reject", by, next_id, move_to))
    flag = undo = False
    if may["flag"]:
        reason = c[2].selectbox("Flag reason", FLAG_REASONS, key="flag_reason", label_visibility="collapsed")
        note = c[3].text_input("Note", key="flag_note", placeholder="note (optional)", label_visibility="collapsed")
        flag = c[4].button("Flag", key="btn_flag", help="f: flag with the reason and note")
    if may["undo"]:
        undo = c[5].button("Undo", key="btn_undo", help="Undo your last flag or review")
    if may["review"]:
        st.toggle("Go to the next sample after approve / reject", value=True, key="auto_advance")

    if flag and _act(add_flag, db, sample_id, reason, (note or "").strip() or None, by,
                     ok=f"Flagged sample {sample_id} as {reason}.", sample_id=sample_id):
        st.session_state["flag_note_clear"] = True
        st.rerun()
    if undo:
        try:
            done = undo_last(db, by)
            st.session_state["review_msg"] = (
                ("success", f"Undid your last {done.table_name[:-1]} change on {done.sample_id}.", done.sample_id)
                if done else ("error", "Nothing of yours to undo.", None))
            if done and done.sample_id != sample_id:
                go_to(done.sample_id)
        except StateError as exc:  # PermissionDenied among them: a message, not a traceback
            st.session_state["review_msg"] = ("error", str(exc), sample_id)
        st.rerun()


def _text_fix(db: StateDB, by: Actor, sample_id: str, answer: str | None, reasoning: str | None, state) -> None:
    """The answer and reasoning as editable text; saving a change writes a fix through curation.review."""
    with st.expander("Fix the answer or the reasoning", expanded=False):
        with st.form(f"fix_{sample_id}", border=False):
            new_answer = st.text_area("Answer", value=(state.fixed_answer if state and state.fixed_answer is not None
                                                       else answer or ""), height=100)
            new_reasoning = st.text_area("Reasoning", value=(state.fixed_reasoning if state and
                                                             state.fixed_reasoning is not None else reasoning or ""),
                                         height=160)
            fix_note = st.text_input("Note", key=f"fix_note_{sample_id}")
            if st.form_submit_button("Save fix"):
                fixed_answer = new_answer if new_answer.strip() != (answer or "").strip() else None
                fixed_reasoning = new_reasoning if new_reasoning.strip() != (reasoning or "").strip() else None
                if fixed_answer is None and fixed_reasoning is None:
                    st.session_state["review_msg"] = ("error", "Nothing changed: edit the answer or the reasoning.",
                                                      sample_id)
                else:
                    _act(add_review, db, sample_id, "fix", by, fixed_answer=fixed_answer,
                         fixed_reasoning=fixed_reasoning, note=fix_note or None, ok="Fix saved.", sample_id=sample_id)
                st.rerun()


def _box_fix(db: StateDB, by: Actor, sample_id: str, boxes: list[dict], answer: str | None, state) -> None:
    """The answer's 3D boxes as an editable table (edit a cell, add or delete rows); saving writes the same JSON
    the format uses, as a fix through curation.review."""
    if state is not None and state.fixed_answer:
        fixed = boxes_from_answer(state.fixed_answer)  # a fix saved earlier is what the curator edits next
        boxes = fixed if fixed is not None else boxes
    with st.expander("Fix the 3D boxes", expanded=False):
        number = st.column_config.NumberColumn
        edited = st.data_editor(
            pd.DataFrame(boxes, columns=BOX_COLUMNS), key=f"box_editor_{sample_id}", num_rows="dynamic",
            hide_index=True, width="stretch",
            column_config={"label": st.column_config.TextColumn("label", required=True),
                           **{c: number(c, format="%.2f", step=0.01) for c in BOX_COLUMNS[1:7]},
                           **{c: number(c, format="%.1f", step=0.1, min_value=-180.0, max_value=180.0)
                              for c in BOX_COLUMNS[7:]}})
        st.caption("Metres and degrees, as in the box table; saved as the answer's JSON (angles divided by 180).")
        if st.button("Save box fix", key=f"btn_box_fix_{sample_id}"):
            try:
                fixed_answer = boxes_answer(edited.to_dict("records"), fenced=is_fenced(answer))
            except BoxEditError as exc:
                st.session_state["review_msg"] = ("error", f"The boxes were not saved: {exc}", sample_id)
            else:
                _act(add_review, db, sample_id, "fix", by, fixed_answer=fixed_answer, ok="Box fix saved.",
                     sample_id=sample_id)
            st.rerun()
