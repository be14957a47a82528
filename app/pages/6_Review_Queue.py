"""Review Queue: work a queue an admin made on the Team page. "Next sample" reserves one for you (until the time
shown); you see its media and turns and approve, reject or fix it. In a blind queue the others' verdicts show only
once yours is in; then the next sample. Keys: a approve, r reject, j next sample."""

import streamlit as st

from app.components import data, identity, review, sample_view
from app.components.page_icon import PAGE_ICON
from app.components.text import code, plain
from app.components.text_table import text_table
from curation.presenters.team import VERDICT_WORDS, queue_row, reservation_text, verdict_rows
from curation.review.actors import Actor
from curation.review.assignment import (
    QueueRecord,
    Reservation,
    Submission,
    next_item,
    queue_progress,
    queues,
    release,
    submit,
    verdicts_visible_to,
)
from curation.review.errors import StateError
from curation.review.roles import GRANT_HINT, allowed
from curation.review.undo import undo_last
from curation.vst.reasoning import split_reasoning
from curation.vst.vocabulary import ASSISTANT_ROLES

TEAM_PAGE = "pages/7_Team.py"
SAMPLE_PAGE = "pages/2_Sample.py"
# Session keys: the sample this session holds a reservation on, the one it just judged, and the queue found empty.
CURRENT, SUBMITTED, EMPTY, MSG, ASKED = "rq_current", "rq_submitted", "rq_empty", "rq_msg", "rq_asked"


def _say(kind: str, text: str) -> None:
    st.session_state[MSG] = (kind, text)


def message() -> None:
    if msg := st.session_state.pop(MSG, None):
        {"success": st.success, "info": st.info}.get(msg[0], st.error)(plain(msg[1]))


def _held(key: str, queue_id: int):
    """What the session keeps under ``key`` for this queue (another queue's is not this one's)."""
    value = st.session_state.get(key)
    return value if value is not None and value.queue_id == queue_id else None


# --- actions ---------------------------------------------------------------------------------------------------
# A button's callback only records what was asked (_ask); the run that follows does it first thing, as the person
# signed in now (do_asked): a callback's arguments are from the run that drew the button, and a role taken away since
# then must count. The change still lands before anything of the page is drawn.


def _ask(*action) -> None:
    st.session_state[ASKED] = action


def do_asked(b: data.Backend, actor: Actor) -> None:
    """Do what the last button press asked, as ``actor``; its outcome is the message this run shows."""
    action = st.session_state.pop(ASKED, None)
    if action is None:
        return
    name, *args = action
    try:
        {"next": _take_next, "submit": _submit, "release": _give_back, "undo": _undo}[name](b, actor, *args)
    except Exception as exc:  # the state database went away (refusals are StateErrors, said by each action)
        _say("error", f"The state database refused the change: {exc}")


def _take_next(b: data.Backend, actor: Actor, queue_id: int) -> None:
    ss = st.session_state
    ss.pop(SUBMITTED, None)
    ss.pop(EMPTY, None)
    try:
        reservation = next_item(b.state, actor, queue_id)
    except StateError as exc:
        _say("error", str(exc))
        return
    if reservation is None:
        ss.pop(CURRENT, None)
        ss[EMPTY] = queue_id
    else:
        ss[CURRENT] = reservation


def _submit(b: data.Backend, actor: Actor, queue_id: int, sample_id: str, verdict: str,
            fix: dict | None = None) -> None:
    ss = st.session_state
    note = (ss.get("rq_note") or "").strip() or None
    try:
        done = submit(b.state, actor, queue_id, sample_id, verdict, note=note, **(fix or {}))
    except StateError as exc:
        _say("error", str(exc))
        return
    ss.pop(CURRENT, None)
    ss[SUBMITTED] = done
    ss["rq_note_clear"] = True  # the note widget may be drawn already (the fix form): cleared on the next run


def _give_back(b: data.Backend, actor: Actor, queue_id: int, sample_id: str) -> None:
    try:
        release(b.state, actor, queue_id, sample_id)
    except StateError as exc:
        _say("error", str(exc))
        return
    st.session_state.pop(CURRENT, None)
    _say("info", f"Gave sample {sample_id} back to the queue: someone else may take it.")


def _undo(b: data.Backend, actor: Actor) -> None:
    ss = st.session_state
    try:
        done = undo_last(b.state, actor)
    except StateError as exc:
        _say("error", str(exc))
        return
    if done is None:
        _say("error", "Nothing of yours to undo.")
        return
    what = "verdict" if done.table_name == "queue_verdicts" else done.table_name.removesuffix("s").replace("_", " ")
    _say("success", f"Undid your last {what}" + (f" on sample {done.sample_id}." if done.sample_id else ".")
         + (" Take the next sample to judge it again." if what == "verdict" else ""))
    ss.pop(SUBMITTED, None)
    ss.pop(EMPTY, None)


# --- layout ----------------------------------------------------------------------------------------------------


def pick_queue(b: data.Backend) -> QueueRecord | None:
    """The queue to work: from the link (?queue=ID), else the one picked."""
    listed = queues(b.state)
    if not listed:
        st.info("There is no review queue yet: an admin makes one on the Team page from a Browse link.")
        st.page_link(TEAM_PAGE, label="Team", icon=":material/group:")
        return None
    by_id = {q.id: q for q in listed}
    wanted = st.query_params.get("queue", "")
    ids = list(by_id)
    first = ids.index(int(wanted)) if wanted.isdigit() and int(wanted) in by_id else 0
    qid = st.selectbox("Queue", ids, index=first, format_func=lambda i: by_id[i].name, key="rq_queue")
    if st.query_params.get("queue") != str(qid):
        st.query_params["queue"] = str(qid)  # the link names the queue: share it with the reviewers
    return by_id[qid]


def controls(q: QueueRecord) -> None:
    """Next sample (while you hold one it is that one: judge it or give it back to move on) and undo."""
    c = st.columns([2, 2, 5], vertical_alignment="center")
    c[0].button("Next sample ▶", key="btn_next", type="primary", on_click=_ask, args=("next", q.id),
                help="j: reserve the next sample of this queue for you (the one you hold, until you judge it or give "
                     "it back)")
    c[1].button("Undo my last verdict", key="rq_undo", on_click=_ask, args=("undo",),
                help="Takes back your last change while the sample is not settled")
    c[2].caption(f"Keys: a approve · r reject · j next sample. A sample is kept for you {q.reservation_minutes} "
                 "minutes from when you take it.")


def judged(b: data.Backend, actor: Actor, q: QueueRecord, done: Submission) -> None:
    """After submitting: your verdict and now the others' (blind no more), then the next sample."""
    st.success(f"Your verdict on {code(done.sample_id)}: {plain(VERDICT_WORDS.get(done.verdict, done.verdict))}.")
    shown = verdicts_visible_to(b.state, actor, q.id, done.sample_id)
    others = [v for v in shown if v.who != actor.who]
    if others:
        st.markdown(f"**The verdicts on this sample** ({len(shown)} of {q.overlap} in)")
        text_table(verdict_rows(shown))
    else:
        st.caption(f"No one else has judged this sample yet ({len(shown)} of {q.overlap} verdicts in).")


def sample(b: data.Backend, actor: Actor, q: QueueRecord, reservation: Reservation) -> None:
    """The reserved sample: the verdict buttons first, then its checks, media and turns."""
    sid = reservation.sample_id
    row = data.sample(b, sid)
    if row is None:
        st.error(f"Sample {code(sid)} is no longer in the catalog (re-ingested under a new id): give it back.")
        st.button("Give it back", key="rq_release", on_click=_ask, args=("release", q.id, sid))
        return
    st.subheader(f"Sample {plain(sid)}")
    st.caption(" · ".join(plain(f) for f in (row.get("dataset"), row.get("skill"), row.get("source")) if f)
               + f" · {plain(reservation_text(reservation.expires_at))}")
    if q.blind:
        st.caption(":material/visibility_off: Blind review: the other reviewers' verdicts show once yours is in.")
    else:
        shown = verdicts_visible_to(b.state, actor, q.id, sid)
        if shown:
            text_table(verdict_rows(shown))
    verdict_panel(b, actor, q, row)
    sample_view.checks(b.settings, sid)
    geom = sample_view.selected_box(data.geometry(row, data.scene_of(b.settings, row)), sid)
    left, right = st.columns([3, 2])
    with left:
        sample_view.media(row, geom)
        sample_view.boxes(geom, sid)
    with right:
        sample_view.conversation(row)
    st.page_link(SAMPLE_PAGE, label="Open the full sample view (3D scene, history)", icon=":material/open_in_new:",
                 query_params={"id": sid})


def verdict_panel(b: data.Backend, actor: Actor, q: QueueRecord, row: dict) -> None:
    sid = row["sample_id"]
    if st.session_state.pop("rq_note_clear", False):
        st.session_state["rq_note"] = ""
    with st.container(border=True, key="rq_verdict"):
        c = st.columns([1, 1, 4, 1], vertical_alignment="bottom")
        c[0].button("Approve", key="btn_approve", type="primary", help="a", on_click=_ask,
                    args=("submit", q.id, sid, "approve"))
        c[1].button("Reject", key="btn_reject", help="r", on_click=_ask, args=("submit", q.id, sid, "reject"))
        c[2].text_input("Note", key="rq_note", placeholder="note (optional)", label_visibility="collapsed",
                        max_chars=500)
        c[3].button("Give back", key="rq_release", on_click=_ask, args=("release", q.id, sid),
                    help="Leave this sample to someone else")
        first = next((t.get("text") for t in row.get("turns") or [] if t.get("role") in ASSISTANT_ROLES),
                     row.get("answer"))
        parts = split_reasoning(first or "")
        answer = parts.final if parts.reasoning is not None else row.get("answer")
        with st.expander("Fix the answer or the reasoning", expanded=False):
            with st.form(f"rq_fix_{sid}", border=False):
                new_answer = st.text_area("Answer", value=answer or "", height=100)
                new_reasoning = st.text_area("Reasoning", value=parts.reasoning or "", height=160)
                if st.form_submit_button("Submit fix"):
                    fixed_answer = new_answer if new_answer.strip() != (answer or "").strip() else None
                    fixed_reasoning = (new_reasoning if new_reasoning.strip() != (parts.reasoning or "").strip()
                                       else None)
                    if fixed_answer is None and fixed_reasoning is None:
                        _say("error", "Nothing changed: edit the answer or the reasoning, or approve.")
                    else:
                        _submit(b, actor, q.id, sid, "fix",  # a form: this run's person already
                                {"fixed_answer": fixed_answer, "fixed_reasoning": fixed_reasoning})
                    st.rerun()


def work(b: data.Backend, actor: Actor, q: QueueRecord) -> None:
    p = queue_progress(b.state, q.id)
    row = queue_row(q, p)
    st.progress(row.share_done, text=plain(row.progress_text + f" · you: {p.per_reviewer.get(actor.who, 0):,}"))
    message()
    current, done = _held(CURRENT, q.id), _held(SUBMITTED, q.id)
    review.keyboard_shortcuts()
    controls(q)
    if done is not None:
        judged(b, actor, q, done)
    if current is not None:
        sample(b, actor, q, current)
    elif st.session_state.get(EMPTY) == q.id:
        st.info(f"Nothing left for you in {plain(q.name)}: every other sample has its {q.overlap} verdicts (or is "
                f"reserved), or you judged it already. {p.n_waiting:,} samples still wait for other reviewers.")
    elif done is None:
        st.caption("Press Next sample to take one.")


def main() -> None:
    st.set_page_config(page_title="VST Curator · Review Queue", page_icon=PAGE_ICON, layout="wide")
    actor = identity.signed_in()
    st.title("Review queue")
    try:
        b = data.backend()
    except data.AppDataError as exc:
        st.error(plain(exc))
        return
    do_asked(b, actor)
    if not allowed(actor, "review"):
        message()  # a press made before the role was taken away: the domain layer's refusal
        st.info(f"You are {actor.role}: your role may look but not review; {plain(GRANT_HINT)}.")
        return
    try:
        q = pick_queue(b)
        if q is not None:
            work(b, actor, q)
    except StateError as exc:
        st.error(plain(exc))
    except Exception as exc:  # the state database went away: a message, not a traceback
        st.error(f"The queue cannot be read from the state database: {plain(exc)}")


main()
