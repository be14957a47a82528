"""Browse: filter the catalog (sidebar, facet counts, text search), page through the matches by keyset (in the
catalog's order, or by relevance under a search), and open a sample by clicking its row. The filter lives in the
URL."""


import streamlit as st

from app.components import data, filters
from app.components.text import plain
from curation.presenters.checks import result_check_names
from curation.presenters.sample import table_rows
from curation.query.filters import FilterSpec

PAGE_SIZE = 50
SAMPLE_PAGE = "pages/2_Sample.py"
COLUMNS = ["sample_id", "skill", "question", "answer", "source", "dataset", "sample_group", "answer_kind",
           "n_images", "n_videos", "has_reasoning"]


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


def results(b: data.Backend, spec: FilterSpec) -> None:
    order = order_for(spec)
    cursors = cursor_for(spec, order)
    total = data.count(b, spec)
    page = data.page(b, spec, cursors[-1], PAGE_SIZE, order)
    first = (len(cursors) - 1) * PAGE_SIZE
    for warning in page.warnings:  # the search could not read part of the query, or there is no index yet
        st.warning(f"Text search: {plain(warning)}")
    st.markdown(f"**{total:,}** samples match · {filters.describe(spec)}")
    if not page.rows:
        st.info("No sample matches this filter. Loosen it in the sidebar, or reset it.")
        return
    rows = table_rows(page.rows)
    event = st.dataframe(
        [{c: r.get(c) for c in COLUMNS} for r in rows],
        key=f"browse_table_{len(cursors)}", on_select="rerun", selection_mode="single-row", hide_index=True,
        height=38 + 35 * min(len(rows), 15),
        column_config={"sample_id": st.column_config.TextColumn("sample", width="medium"),
                       "question": st.column_config.TextColumn(width="large")},
    )
    picked = event.selection.rows if event and event.selection else []
    if picked:
        open_sample(spec, rows[picked[0]]["sample_id"])
    c = st.columns([1, 1, 3, 2])
    if c[0].button("◀ Previous", disabled=len(cursors) == 1, key="browse_prev"):
        cursors.pop()
        st.rerun()
    if c[1].button("Next ▶", disabled=page.next_after is None, key="browse_next"):
        cursors.append(page.next_after)
        st.rerun()
    c[2].caption(f"page {len(cursors)} · rows {first + 1:,}–{first + len(rows):,} of {total:,}")
    if c[3].button("Review this filter one by one", key="browse_review", type="primary"):
        open_sample(spec, rows[0]["sample_id"])  # the first sample of this page
    # Sidebar links drop the query string: these carry the filter to the pages that act on it.
    links = st.columns([1, 1, 3])
    links[0].page_link("pages/5_Label_Studio.py", label="Send to Label Studio", icon=":material/send:",
                       query_params=filters.url_params(spec))
    with st.expander("Open a sample by id"):
        sid = st.selectbox("Sample on this page", [r["sample_id"] for r in rows], key="browse_pick")
        if st.button("Open", key="browse_open"):
            open_sample(spec, sid)


def main() -> None:
    st.set_page_config(page_title="VST Curator · Browse", page_icon=":material/search:", layout="wide")
    st.title("Browse")
    try:
        b = data.backend()
    except data.AppDataError as exc:
        st.error(str(exc))
        return
    spec = filters.current_spec()
    try:
        facet_counts = data.facets(b, spec)
    except Exception as exc:
        st.error(f"The filter cannot be applied: {exc}")
        facet_counts = {}
    filters.sidebar_filters(spec, facet_counts, result_check_names(b.settings))
    try:
        results(b, spec)
    except Exception as exc:  # e.g. a text index that is missing: a message, not a traceback
        st.error(f"The filter cannot be applied: {exc}")


main()
