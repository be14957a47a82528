"""Reviewing one sample: who is reviewing (asked once per browser session), flag / approve / reject / fix / undo
through curation.review, and the keyboard shortcuts that press the same buttons."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from app.components.text import plain
from curation.presenters.sample import BOX_COLUMNS, BoxEditError, boxes_answer, boxes_from_answer, is_fenced
from curation.review.audit import history
from curation.review.errors import StateError
from curation.review.flags import FLAG_REASONS, add_flag, flags_for, remove_flag
from curation.review.reviews import add_review, review_for
from curation.review.state_db import StateDB
from curation.review.undo import undo_last

REVIEWER_COOKIE = "curator_reviewer"
# Keyboard shortcuts: key -> the Streamlit key of the button it presses (its container has class st-key-<key>).
SHORTCUTS = {"j": "btn_next", "k": "btn_prev", "a": "btn_approve", "r": "btn_reject", "f": "btn_flag"}


def reviewer() -> str | None:
    """This browser session's reviewer name: from the session, else from the session cookie set earlier."""
    name = st.session_state.get("reviewer")
    if name:
        return name
    if st.session_state.get("reviewer_no_cookie"):  # the curator chose to switch: the cookie is stale
        return None
    try:
        cookie = st.context.cookies.get(REVIEWER_COOKIE)
    except Exception:  # no browser context (AppTest, bare mode)
        cookie = None
    if isinstance(cookie, str) and cookie.strip():  # (AppTest hands out a mock here)
        st.session_state["reviewer"] = cookie.strip()[:80]
        return st.session_state["reviewer"]
    return None


def _remember_in_browser(name: str) -> None:
    # A session cookie (no expiry): a reload or a new tab keeps the name, closing the browser forgets it.
    value = json.dumps(name).replace("</", "<\\/")
    st.html(f"<script>document.cookie = '{REVIEWER_COOKIE}=' + encodeURIComponent({value}) + "
            "'; path=/; SameSite=Lax';</script>", unsafe_allow_javascript=True)


def _switch_reviewer() -> None:
    st.session_state.pop("reviewer", None)
    st.session_state["reviewer_forget"] = True
    st.session_state["reviewer_no_cookie"] = True


def reviewer_form() -> str | None:
    """Ask for the reviewer's name when this browser session has none yet; returns the name or None."""
    if st.session_state.pop("reviewer_forget", False):
        st.html(f"<script>document.cookie = '{REVIEWER_COOKIE}=; path=/; max-age=0';</script>",
                unsafe_allow_javascript=True)
        name = None
    else:
        name = reviewer()
    if name:
        if st.session_state.pop("reviewer_new", False):
            _remember_in_browser(name)
        c1, c2 = st.columns([6, 1], vertical_alignment="center")
        c1.markdown(f":material/person: Reviewing as **{plain(name)}**")
        c2.button("Switch", key="btn_switch_reviewer", on_click=_switch_reviewer, help="Review under another name")
        return name
    with st.form("reviewer_form", border=False):
        c1, c2 = st.columns([5, 1], vertical_alignment="bottom")
        entered = c1.text_input("Who is reviewing? Your name goes with every flag and review (asked once per "
                                "browser session).", key="reviewer_input", max_chars=80, placeholder="your name")
        if c2.form_submit_button("Start reviewing"):
            if entered and entered.strip():
                st.session_state["reviewer"] = entered.strip()
                st.session_state["reviewer_new"] = True
                st.rerun()
            st.warning("Type a name first.")
    return None


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
        fn(*args, **kwargs)
    except StateError as exc:
        st.session_state["review_msg"] = ("error", str(exc), sample_id)
        return False
    except Exception as exc:  # a database that went away: a message, not a traceback
        st.session_state["review_msg"] = ("error", f"The state database refused the change: {exc}", sample_id)
        return False
    st.session_state["review_msg"] = ("success", ok, sample_id)
    return True


def _verdict(db: StateDB, sample_id: str, verdict: str, who: str, next_id: str | None, move_to) -> None:
    # A button callback: the review is stored and the queue moves on before the page runs again, so the next sample
    # is drawn by one run (no half run of the sample just reviewed).
    done = "Approved" if verdict == "approve" else "Rejected"
    if _act(add_review, db, sample_id, verdict, who, ok=f"{done} sample {sample_id}.", sample_id=sample_id) \
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


def review_panel(db: StateDB, sample_id: str, answer: str | None, reasoning: str | None,
                 next_id: str | None, go_to, move_to=None, boxes: list[dict] | None = None) -> None:
    """Current flags and review, the actions, the fix editor and the history of one sample. ``go_to`` opens another
    sample now (a rerun); ``move_to`` only points the page at it (for button callbacks, which rerun anyway).
    ``boxes`` (box_table rows of the answer's 3D boxes) gets a structured fix editor."""
    who = reviewer_form()
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
            if who and c2.button("remove", key=f"btn_unflag_{f.id}", help="Remove this flag"):
                if _act(remove_flag, db, f.id, who, ok=f"Removed flag {f.reason}.", sample_id=sample_id):
                    st.rerun()
    else:
        status.caption("No flags.")
    if state:
        badge = {"approve": ":green-badge[approved]", "reject": ":red-badge[rejected]", "fix": ":blue-badge[fixed]"}
        status.markdown(f"{badge.get(state.verdict, plain(state.verdict))} by {plain(state.reviewer)}"
                        + (f" — {plain(state.note)}" if state.note else ""))
    else:
        status.caption("Not reviewed yet.")

    disabled = who is None
    move_to = move_to or go_to
    c = st.columns([1, 1, 2, 3, 1, 1])
    c[0].button("Approve", key="btn_approve", disabled=disabled, help="a", type="primary", on_click=_verdict,
                args=(db, sample_id, "approve", who, next_id, move_to))
    c[1].button("Reject", key="btn_reject", disabled=disabled, help="r", on_click=_verdict,
                args=(db, sample_id, "reject", who, next_id, move_to))
    reason = c[2].selectbox("Flag reason", FLAG_REASONS, key="flag_reason", label_visibility="collapsed")
    note = c[3].text_input("Note", key="flag_note", placeholder="note (optional)", label_visibility="collapsed")
    flag = c[4].button("Flag", key="btn_flag", disabled=disabled, help="f: flag with the reason and note")
    undo = c[5].button("Undo", key="btn_undo", disabled=disabled, help="Undo your last flag or review")
    st.toggle("Go to the next sample after approve / reject", value=True, key="auto_advance")

    if who and flag and _act(add_flag, db, sample_id, reason, (note or "").strip() or None, who,
                             ok=f"Flagged sample {sample_id} as {reason}.", sample_id=sample_id):
        st.session_state["flag_note_clear"] = True
        st.rerun()
    if who and undo:
        try:
            done = undo_last(db, who)
            st.session_state["review_msg"] = (
                ("success", f"Undid your last {done.table_name[:-1]} change on {done.sample_id}.", done.sample_id)
                if done else ("error", "Nothing of yours to undo.", None))
            if done and done.sample_id != sample_id:
                go_to(done.sample_id)
        except StateError as exc:
            st.session_state["review_msg"] = ("error", str(exc), sample_id)
        st.rerun()

    if boxes is not None:
        _box_fix(db, sample_id, boxes, answer, state, who)
    with st.expander("Fix the answer or the reasoning", expanded=False):
        with st.form(f"fix_{sample_id}", border=False):
            new_answer = st.text_area("Answer", value=(state.fixed_answer if state and state.fixed_answer is not None
                                                       else answer or ""), height=100)
            new_reasoning = st.text_area("Reasoning", value=(state.fixed_reasoning if state and
                                                             state.fixed_reasoning is not None else reasoning or ""),
                                         height=160)
            fix_note = st.text_input("Note", key=f"fix_note_{sample_id}")
            if st.form_submit_button("Save fix", disabled=disabled):
                fixed_answer = new_answer if new_answer.strip() != (answer or "").strip() else None
                fixed_reasoning = new_reasoning if new_reasoning.strip() != (reasoning or "").strip() else None
                if fixed_answer is None and fixed_reasoning is None:
                    st.session_state["review_msg"] = ("error", "Nothing changed: edit the answer or the reasoning.",
                                                      sample_id)
                else:
                    _act(add_review, db, sample_id, "fix", who, fixed_answer=fixed_answer,
                         fixed_reasoning=fixed_reasoning, note=fix_note or None, ok="Fix saved.", sample_id=sample_id)
                st.rerun()
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


def _box_fix(db: StateDB, sample_id: str, boxes: list[dict], answer: str | None, state, who: str | None) -> None:
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
        if st.button("Save box fix", key=f"btn_box_fix_{sample_id}", disabled=who is None):
            try:
                fixed_answer = boxes_answer(edited.to_dict("records"), fenced=is_fenced(answer))
            except BoxEditError as exc:
                st.session_state["review_msg"] = ("error", f"The boxes were not saved: {exc}", sample_id)
            else:
                _act(add_review, db, sample_id, "fix", who, fixed_answer=fixed_answer, ok="Box fix saved.",
                     sample_id=sample_id)
            st.rerun()
