"""Browse: filter the catalog (sidebar, facet counts, text search), page through the matches by keyset (in the
catalog's order, or by relevance under a search), open a sample by clicking its row, and flag, approve or reject the
ticked rows or the whole filter as one batch that one undo takes back (a curator's or an admin's action, as the
signed-in person). The filter lives in the URL."""

from urllib.parse import urlencode

import streamlit as st

from app.components import data, filters, identity, review
from app.components.page_icon import PAGE_ICON
from app.components.text import plain
from curation.presenters.browse import MARK_CLOSE, MARK_OPEN, PAGE_COLUMNS, BrowseRow, browse_rows
from curation.presenters.checks import result_check_names
from curation.query.filters import FilterSpec
from curation.review.actors import Actor
from curation.review.bulk import Batch, filter_sample_ids, flag_samples, review_samples, undo_batch
from curation.review.errors import StateError
from curation.review.flags import FLAG_REASONS
from curation.review.roles import allowed

PAGE_SIZE = 50
ROW_HEIGHT = 44  # room for a thumbnail
SAMPLE_PAGE = "pages/2_Sample.py"
LS_PAGE = "pages/5_Label_Studio.py"
TEAM_PAGE = "pages/7_Team.py"
# The curation state first, so it shows without scrolling sideways; the search hit beside the text it was found in.
COLUMNS = ["thumbnail", "sample_id", "skill", "flags", "review", "severity", "failed", "match", "question", "answer",
           "source", "dataset", "sample_group", "answer_kind", "n_images", "n_videos", "has_reasoning"]
ACTIONS = {"flag": "Flag", "approve": "Approve", "reject": "Reject"}
DONE = {"flag_added": "Flagged", "review_added": "Reviewed"}
TARGETS = {"selected": "The ticked rows", "filter": "The whole filter"}


def cursor_for(spec: FilterSpec, order: str) -> list[str | None]:
    """The keyset cursors of the pages seen so far under this filter and order (a new one starts at page 1)."""
    ss = st.session_state
    view = f"{order}|{spec.model_dump_json()}"
    if ss.get("browse_spec") != view:
        ss["browse_spec"] = view
        ss["browse_cursors"] = [None]
    return ss["browse_cursors"]


def order_for(spec: FilterSpec) -> data.Order:
    """Under a text search the curator may rank by relevance; otherwise rows come in the catalog's order."""
    if not spec.text.strip():
        return "catalog"
    labels = {"catalog": "Catalog order", "relevance": "Best match first"}
    return st.radio("Order", list(labels), format_func=labels.get, key="browse_order", horizontal=True)


def open_sample(spec: FilterSpec, sample_id: str) -> None:
    st.switch_page(SAMPLE_PAGE, query_params=filters.url_params(spec, id=sample_id))


def table(rows: list[BrowseRow], searching: bool, key: str, tick: bool):
    """The page's rows: a click on a cell opens its sample; with ``tick``, boxes on the left tick rows for a bulk
    action."""
    shown = [c for c in COLUMNS if searching or c != "match"]
    return st.dataframe(
        [{c: getattr(r, c) for c in shown} for r in rows], key=key, on_select="rerun",
        selection_mode=["multi-row", "single-cell"] if tick else "single-cell", hide_index=True, column_order=shown,
        row_height=ROW_HEIGHT,
        height=40 + ROW_HEIGHT * len(rows),  # every row of the page in view, no scrolling inside the grid
        column_config={
            "thumbnail": st.column_config.ImageColumn("image", width="small"),
            "sample_id": st.column_config.TextColumn("sample", width="medium"),
            "question": st.column_config.TextColumn(width="large"),
            "match": st.column_config.TextColumn("search hit", width="large",
                                                 help=f"Where the search matched, words set {MARK_OPEN}like this"
                                                      f"{MARK_CLOSE}"),
            "flags": st.column_config.TextColumn("flags", help="Active flags' reasons"),
            "review": st.column_config.TextColumn("review"),
            "failed": st.column_config.TextColumn("failed checks", width="medium",
                                                  help="Latest run of each check, most severe first"),
            "severity": st.column_config.TextColumn("worst", help="The most severe failure: error, warning or info"),
        },
    )


def results(b: data.Backend, by: Actor, spec: FilterSpec) -> None:
    order = order_for(spec)
    cursors = cursor_for(spec, order)
    total = data.count(b, spec)
    page = data.page(b, spec, cursors[-1], PAGE_SIZE, order, columns=PAGE_COLUMNS)
    first = (len(cursors) - 1) * PAGE_SIZE
    for warning in page.warnings:  # the search could not read part of the query, or there is no index yet
        st.warning(f"Text search: {plain(warning)}")
    st.markdown(f"**{total:,}** samples match · {filters.describe(spec)}")
    if not page.rows:
        st.info("No sample matches this filter. Loosen it in the sidebar, or reset it.")
        return
    rows = browse_rows(page.rows, b.state, b.settings.results_dir, spec.text, thumbnail=data.thumbnail)
    bulk = allowed(by, "bulk")
    event = table(rows, bool(spec.text.strip()), key=f"browse_table_{len(cursors)}", tick=bulk)
    selection = event.selection if event else None
    cells = list(selection.cells) if selection and selection.cells else []
    if cells:
        open_sample(spec, rows[cells[0][0]].sample_id)
    ticked = [rows[i].sample_id for i in (selection.rows if selection else [])]
    c = st.columns([1, 1, 3, 2])
    if c[0].button("◀ Previous", disabled=len(cursors) == 1, key="browse_prev"):
        cursors.pop()
        st.rerun()
    if c[1].button("Next ▶", disabled=page.next_after is None, key="browse_next"):
        cursors.append(page.next_after)
        st.rerun()
    c[2].caption(f"page {len(cursors)} · rows {first + 1:,}–{first + len(rows):,} of {total:,} · click a row to open "
                 "it" + (", tick rows for the actions below" if bulk else ""))
    if c[3].button("Review this filter one by one", key="browse_review", type="primary"):
        open_sample(spec, rows[0].sample_id)  # the first sample of this page
    bulk_actions(b, by, spec, total, ticked)
    with st.expander("Open a sample by id"):
        sid = st.selectbox("Sample on this page", [r.sample_id for r in rows], key="browse_pick")
        if st.button("Open", key="browse_open"):
            open_sample(spec, sid)


def bulk_actions(b: data.Backend, by: Actor, spec: FilterSpec, total: int, ticked: list[str]) -> None:
    """Flag, approve or reject the ticked rows or the whole filter: a count, a confirmation, one undo for the batch."""
    ss = st.session_state
    if not allowed(by, "bulk"):
        review.role_note(by, "act on many samples at once (curators and admins may)")
        return
    with st.container(border=True, key="bulk"):
        st.markdown("**Act on many samples at once**")
        last_done(b, by)
        c = st.columns([2, 1, 2, 3], vertical_alignment="bottom")
        # Counts go into the captions: option labels that change between runs lose the choice in the browser.
        target = c[0].radio("Act on", list(TARGETS), format_func=TARGETS.get, key="bulk_target", horizontal=True,
                            captions=[f"{len(ticked):,} on this page", f"{total:,} samples"])
        action = c[1].selectbox("Action", list(ACTIONS), format_func=ACTIONS.get, key="bulk_action")
        reason = c[2].selectbox("Reason", FLAG_REASONS, key="bulk_reason", disabled=action != "flag")
        note = c[3].text_input("Note (optional)", key="bulk_note", max_chars=500)
        n = len(ticked) if target == "selected" else total
        what = f"{ACTIONS[action]} {n:,} sample{'s' if n != 1 else ''}" + (f" as {reason}" if action == "flag" else "")
        links = st.columns([2, 2, 2, 3])
        if links[0].button(f"{what}…", key="bulk_apply", disabled=n == 0):
            ss["bulk_pending"] = {"action": action, "reason": reason, "note": note.strip() or None, "n": n,
                                  "what": what, "ids": ticked if target == "selected" else None,
                                  "spec": spec.model_dump_json()}
        chosen = spec.model_copy(update={"sample_ids": ticked}) if target == "selected" and ticked else spec
        if allowed(by, "ls_push"):
            links[1].page_link(LS_PAGE, label=f"Send {n:,} to Label Studio", icon=":material/send:",
                               query_params=filters.url_params(chosen), disabled=n == 0)
        if allowed(by, "assign"):  # the Team page opens with this filter's link filled in
            links[2].page_link(TEAM_PAGE, label=f"Make a review queue of {n:,}", icon=":material/group_work:",
                               query_params={"tab": "Queues", "link": "?" + urlencode(filters.url_params(chosen))},
                               disabled=n == 0)
        pending = ss.get("bulk_pending")
        if pending:
            confirm(b, by, pending)


def confirm(b: data.Backend, by: Actor, pending: dict) -> None:
    ss = st.session_state
    st.warning(f"{pending['what']}? It is one batch: one undo takes all of it back.")
    c = st.columns([1, 1, 4])
    if c[1].button("Cancel", key="bulk_cancel"):
        ss.pop("bulk_pending", None)
        st.rerun()
    if not c[0].button("Confirm", key="bulk_confirm", type="primary"):
        return
    ss.pop("bulk_pending", None)
    spec = FilterSpec.model_validate_json(pending["spec"])
    ids = pending["ids"] if pending["ids"] is not None else filter_sample_ids(b.query, spec)
    try:
        with st.spinner(f"{pending['what']}…"):
            if pending["action"] == "flag":
                batch = flag_samples(b.state, ids, pending["reason"], by, note=pending["note"])
            else:
                batch = review_samples(b.state, ids, pending["action"], by, note=pending["note"])
    except StateError as exc:  # PermissionDenied among them: a message, not a traceback
        st.error(plain(exc))
        return
    ss["bulk_last"] = batch
    st.rerun()


def last_done(b: data.Backend, by: Actor) -> None:
    """What the last batch of this session did, with its undo."""
    ss = st.session_state
    if msg := ss.pop("bulk_message", None):
        st.info(msg)
    batch: Batch | None = ss.get("bulk_last")
    if batch is None:
        return
    c = st.columns([5, 1], vertical_alignment="center")
    c[0].success(f"{DONE[batch.action]} {batch.samples:,} samples as one batch by {plain(batch.who)} at "
                 f"{batch.at:%H:%M:%S} UTC (samples already in that state were left alone).")
    if c[1].button("Undo this batch", key="bulk_undo"):
        try:
            n = undo_batch(b.state, batch, by)
        except StateError as exc:
            st.error(plain(exc))
            return
        ss.pop("bulk_last", None)
        ss["bulk_message"] = f"Undone: {n:,} changes of the batch taken back."
        st.rerun()


def main() -> None:
    st.set_page_config(page_title="VST Curator · Browse", page_icon=PAGE_ICON, layout="wide")
    by = identity.signed_in()  # stops here with a sign-in button when sign-in is configured and no one is signed in
    st.title("Browse")
    try:
        b = data.backend()
    except data.AppDataError as exc:
        st.error(str(exc))
        return
    spec = filters.current_spec()
    try:
        facet_counts = {**data.facets(b, spec), "difficulty": b.query.difficulty_facet(spec)}
    except Exception as exc:
        st.error(f"The filter cannot be applied: {exc}")
        facet_counts = {}
    filters.sidebar_filters(spec, facet_counts, result_check_names(b.settings))
    try:
        results(b, by, spec)
    except Exception as exc:  # e.g. a text index that is missing: a message, not a traceback
        st.error(f"The filter cannot be applied: {exc}")


main()
