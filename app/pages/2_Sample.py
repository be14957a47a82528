"""Sample view and review queue: one sample (``?id=...``) with its turns, reasoning, media with boxes drawn in and
its 3D scene; flag / approve / reject / fix / undo as the signed-in person (what their role allows); step through the
filter in the URL with j/k.

A review step must be usable within a second: the image, turns and buttons come first, the checks panel (filled
last into its place near the top) and the 3D view after them, and the next sample of the queue is read ahead."""

from pathlib import Path

import streamlit as st

from app.components import data, filters, identity, review, sample_view
from app.components.page_icon import PAGE_ICON
from app.components.text import code, plain
from curation.presenters.sample import answer_boxes
from curation.query.filters import FilterSpec
from curation.vst.reasoning import split_reasoning
from curation.vst.vocabulary import ASSISTANT_ROLES

BROWSE_PAGE = "pages/1_Browse.py"


def go_to(spec: FilterSpec, sample_id: str) -> None:
    filters.write_url(spec, id=sample_id)
    st.rerun()


def ask_for_id(spec: FilterSpec) -> None:
    st.info("No sample chosen: open one from Browse, or type its id.")
    sid = st.text_input("Sample id", key="sample_id_input")
    if sid.strip():
        go_to(spec, sid.strip())
    st.page_link(BROWSE_PAGE, label="Browse", icon=":material/search:", query_params=filters.url_params(spec))


def header(row: dict, spec: FilterSpec, b: data.Backend) -> tuple[str | None, str | None]:
    """Title, facts and the review-queue steps (previous / next sample under the filter)."""
    sid = row["sample_id"]
    st.title(f"Sample {plain(sid)}")
    facts = [row.get("dataset"), row.get("skill"), row.get("sample_group"), row.get("source"), row.get("kind"),
             f"type {row.get('type')}" if row.get("type") else None,
             f"scene {row['scene_id']}" if row.get("scene_id") else None,
             f"{Path(row['source_file']).name} row {row.get('row_index')}"]
    st.caption(" · ".join(plain(f) for f in facts if f))
    try:
        prev_id, next_id = data.neighbours(b, spec, sid)
    except Exception as exc:
        st.warning(f"The review queue cannot step through this filter: {plain(exc)}")
        prev_id = next_id = None
    c = st.columns([1, 1, 4, 2])
    if c[0].button("◀ Prev", key="btn_prev", disabled=prev_id is None, help="k: previous sample in the filter"):
        go_to(spec, prev_id)
    if c[1].button("Next ▶", key="btn_next", disabled=next_id is None, help="j: next sample in the filter"):
        go_to(spec, next_id)
    c[2].caption(f"Queue: {filters.describe(spec)} · keys: j next, k previous, a approve, r reject, f flag")
    c[3].page_link(BROWSE_PAGE, label="Back to Browse", icon=":material/search:", query_params=filters.url_params(spec))
    for p in row.get("problems") or []:
        st.warning(f"Ingest problem {code(p.get('code'))} in {code(p.get('field'))}: {plain(p.get('message'))}")
    return prev_id, next_id


def main() -> None:
    st.set_page_config(page_title="VST Curator · Sample", page_icon=PAGE_ICON, layout="wide")
    by = identity.signed_in()  # stops here with a sign-in button when sign-in is configured and no one is signed in
    try:
        b = data.backend()
    except data.AppDataError as exc:
        st.error(plain(exc))
        return
    spec = filters.spec_from_url()
    sid = (st.query_params.get("id") or "").strip()
    if not sid:
        ask_for_id(spec)
        return
    try:
        row = data.sample(b, sid)
    except Exception as exc:
        st.error(f"Sample {code(sid)} cannot be read from the catalog: {plain(exc)}")
        return
    if row is None:
        st.error(f"There is no sample {code(sid)} in the catalog (re-ingested under a new id, or a mistyped link).")
        ask_for_id(spec)
        return
    _, next_id = header(row, spec, b)
    checks_slot = st.container()
    review.keyboard_shortcuts()
    first_answer = next((t.get("text") for t in row.get("turns") or [] if t.get("role") in ASSISTANT_ROLES),
                        row.get("answer"))
    parts = split_reasoning(first_answer or "")
    sc = data.scene_of(b.settings, row)
    geom = sample_view.selected_box(data.geometry(row, sc), sid)
    fixable = answer_boxes(geom)
    with st.container(border=True):
        review.review_panel(b.state, by, sid, parts.final if parts.reasoning is not None else row.get("answer"),
                            parts.reasoning, next_id, lambda target: go_to(spec, target),
                            move_to=lambda target: filters.write_url(spec, id=target),
                            boxes=fixable if fixable else None)
    left, right = st.columns([3, 2])
    with left:
        st.subheader("Media")
        sample_view.media(row, geom)
        sample_view.boxes(geom, sid)
    with right:
        st.subheader("Conversation")
        sample_view.conversation(row, spec.text)
    with checks_slot:
        sample_view.checks(b.settings, sid)
    st.subheader("3D view")
    sample_view.scene(sc, geom, b.settings, list(row.get("media") or []))
    if next_id:
        sample_view.read_ahead(b, spec, next_id)


main()
