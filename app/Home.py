"""Overview: samples per dataset, group, skill and source (a click opens them in Browse), the share without a skill,
flag and review progress per skill, rows read with problems, and ingest errors."""


import streamlit as st

from app.components import data, filters, identity
from app.components.page_icon import PAGE_ICON
from app.components.text import plain
from curation.presenters.checks import ingest_problems
from curation.presenters.overview import (
    browse_spec_for_bar,
    clicked_value,
    counts_figure,
    has_progress,
    ingest_error_kinds,
    problems_text,
    progress_figure,
    skill_label,
    skill_progress,
    unknown_share_rows,
    unknown_share_text,
)
from curation.query.filters import FilterSpec
from curation.query.stats import UNKNOWN_SKILL
from curation.settings import Settings

BROWSE_PAGE = "pages/1_Browse.py"
CHARTS = (("datasets", "Samples per dataset"), ("groups", "Samples per group"), ("skills", "Samples per skill"),
          ("sources", "Samples per source"))


@st.cache_data(show_spinner=False, max_entries=8)
def problem_codes(key: str, version: str, _settings: Settings) -> dict[str, int]:
    """Problems ingest recorded against samples, per code (read once per catalog version)."""
    return ingest_problems(_settings, limit=0)[0]


def load_overview(b: data.Backend) -> dict:
    everything = FilterSpec()
    counts = data.facets(b, everything, ["datasets", "groups", "skills", "sources"])
    by_state = {
        name: b.query.facets(spec, ["skills"])["skills"]
        for name, spec in (("flagged", FilterSpec(flagged=True)), ("approved", FilterSpec(review="approved")),
                           ("rejected", FilterSpec(review="rejected")), ("fixed", FilterSpec(review="fixed")))
    }
    return {"total": data.count(b, everything), "counts": counts, "state": by_state,
            "unknown": data.facets(b, FilterSpec(skills=[UNKNOWN_SKILL]), ["datasets", "sources"]),
            "with_problems": data.count(b, FilterSpec(has_problems=True)),
            "problem_codes": problem_codes(b.key, b.query.version(), b.settings),
            "errors": b.query.ingest_errors(limit=1000)}


def catalog_charts(counts: dict[str, dict[str, int]]) -> None:
    """The four bar charts; a click on a bar opens Browse filtered to it."""
    st.caption("Click a bar to open its samples in Browse.")
    for row in (CHARTS[:2], CHARTS[2:]):
        for col, (field, title) in zip(st.columns(2), row, strict=True):
            fig = counts_figure(counts[field], title, label=skill_label if field == "skills" else None)
            event = col.plotly_chart(fig, key=f"by_{field.removesuffix('s')}", on_select="rerun",
                                     selection_mode="points", config={"displaylogo": False})
            value = clicked_value(event.selection if event else None)
            if value is not None:
                st.switch_page(BROWSE_PAGE, query_params=filters.url_params(browse_spec_for_bar(field, value)))


def unknown_skills(ov: dict) -> None:
    totals = {dim: ov["counts"][dim] for dim in ("datasets", "sources")}
    rows = unknown_share_rows(totals, ov["unknown"])
    st.caption(plain(unknown_share_text(ov["total"], totals, ov["unknown"])))
    if rows:
        st.dataframe(rows, hide_index=True, key="unknown_share",
                     column_config={"share": st.column_config.NumberColumn("share", format="percent")})


def review_progress(ov: dict) -> None:
    st.subheader("Flag and review progress per skill")
    state = ov["state"]
    progress = skill_progress(ov["counts"]["skills"], state["flagged"], state["approved"], state["rejected"],
                              state["fixed"])
    if not has_progress(progress):
        st.info("No sample has been flagged or reviewed yet. Open a sample from Browse and approve, reject, fix or "
                "flag it: each skill's progress shows here.")
        return
    st.plotly_chart(progress_figure(progress), key="progress", config={"displaylogo": False})
    st.dataframe(
        [{"skill": skill_label(p.skill), "id": p.skill, "samples": p.samples, "flagged": p.flagged,
          "approved": p.approved, "fixed": p.fixed, "rejected": p.rejected,
          "reviewed %": round(100 * p.reviewed_share, 1)} for p in progress],
        hide_index=True, key="progress_table",
    )


def problems_and_errors(ov: dict) -> None:
    st.subheader("Rows read with problems")
    line = problems_text(ov["with_problems"], ov["total"], ov["problem_codes"])
    if ov["with_problems"]:
        st.warning(plain(line))
        st.page_link(BROWSE_PAGE, label=f"Open the {ov['with_problems']:,} samples with problems in Browse",
                     icon=":material/search:", query_params=filters.url_params(FilterSpec(has_problems=True)))
    else:
        st.success(plain(line))

    st.subheader("Ingest errors")
    errors = ov["errors"]
    if not errors:
        st.success("No ingest errors: no file or row was skipped.")
        return
    kinds = ingest_error_kinds(errors)
    st.plotly_chart(counts_figure(kinds, "Ingest errors by reason", top=15, unit="errors"), key="errors_by_reason")
    st.dataframe(errors, hide_index=True, key="errors_table")


def main() -> None:
    st.set_page_config(page_title="VST Curator · Overview", page_icon=PAGE_ICON, layout="wide")
    st.title("VST Curator")
    identity.signed_in()  # stops here with a sign-in button when sign-in is configured and no one is signed in
    try:
        b = data.backend()
        ov = load_overview(b)
    except data.AppDataError as exc:
        st.error(plain(exc))
        return
    except Exception as exc:
        st.error(f"The overview cannot be computed: {plain(exc)}")
        return
    state = ov["state"]
    flagged = sum(state["flagged"].values())
    reviewed = sum(sum(state[k].values()) for k in ("approved", "rejected", "fixed"))
    m = st.columns(5)
    m[0].metric("Samples", f"{ov['total']:,}")
    m[1].metric("Flagged", f"{flagged:,}")
    share = f" ({100 * reviewed / ov['total']:.1f}%)" if ov["total"] else ""
    m[2].metric("Reviewed", f"{reviewed:,}{share}")
    m[3].metric("With problems", f"{ov['with_problems']:,}")
    m[4].metric("Ingest errors", f"{len(ov['errors']):,}" + ("+" if len(ov["errors"]) >= 1000 else ""))
    st.page_link(BROWSE_PAGE, label="Browse and review samples", icon=":material/search:")

    st.subheader("What is in the catalog")
    catalog_charts(ov["counts"])
    unknown_skills(ov)
    review_progress(ov)
    problems_and_errors(ov)


main()
