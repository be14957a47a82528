"""Overview: samples per dataset, group, skill and source; flag and review progress per skill; ingest errors."""


import streamlit as st

from app.components import data
from app.components.text import plain
from curation.presenters.overview import counts_figure, ingest_error_kinds, progress_figure, skill_progress
from curation.query.filters import FilterSpec


def load_overview(b: data.Backend) -> dict:
    everything = FilterSpec()
    counts = data.facets(b, everything, ["datasets", "groups", "skills", "sources"])
    by_state = {
        name: b.query.facets(spec, ["skills"])["skills"]
        for name, spec in (("flagged", FilterSpec(flagged=True)), ("approved", FilterSpec(review="approved")),
                           ("rejected", FilterSpec(review="rejected")), ("fixed", FilterSpec(review="fixed")))
    }
    return {"total": data.count(b, everything), "counts": counts, "state": by_state,
            "errors": b.query.ingest_errors(limit=1000)}


def main() -> None:
    st.set_page_config(page_title="VST Curator · Overview", page_icon=":material/view_in_ar:", layout="wide")
    st.title("VST Curator")
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
    progress = skill_progress(ov["counts"]["skills"], state["flagged"], state["approved"], state["rejected"],
                              state["fixed"])
    reviewed = sum(p.reviewed for p in progress)
    flagged = sum(p.flagged for p in progress)
    m = st.columns(4)
    m[0].metric("Samples", f"{ov['total']:,}")
    m[1].metric("Flagged", f"{flagged:,}")
    share = f" ({100 * reviewed / ov['total']:.1f}%)" if ov["total"] else ""
    m[2].metric("Reviewed", f"{reviewed:,}{share}")
    m[3].metric("Ingest errors", f"{len(ov['errors']):,}" + ("+" if len(ov["errors"]) >= 1000 else ""))
    st.page_link("pages/1_Browse.py", label="Browse and review samples", icon=":material/search:")

    st.subheader("What is in the catalog")
    c1, c2 = st.columns(2)
    c1.plotly_chart(counts_figure(ov["counts"]["datasets"], "Samples per dataset"), key="by_dataset")
    c2.plotly_chart(counts_figure(ov["counts"]["groups"], "Samples per group"), key="by_group")
    c1, c2 = st.columns(2)
    c1.plotly_chart(counts_figure(ov["counts"]["skills"], "Samples per skill"), key="by_skill")
    c2.plotly_chart(counts_figure(ov["counts"]["sources"], "Samples per source"), key="by_source")

    st.subheader("Flag and review progress per skill")
    st.plotly_chart(progress_figure(progress), key="progress")
    st.dataframe(
        [{"skill": p.skill, "samples": p.samples, "flagged": p.flagged, "approved": p.approved, "fixed": p.fixed,
          "rejected": p.rejected, "reviewed %": round(100 * p.reviewed_share, 1)} for p in progress],
        hide_index=True, key="progress_table",
    )

    st.subheader("Ingest errors")
    errors = ov["errors"]
    if not errors:
        st.success("No ingest errors: every row of every shard was read.")
    else:
        kinds = ingest_error_kinds(errors)
        st.plotly_chart(counts_figure(kinds, "Ingest errors by reason", top=15, unit="errors"), key="errors_by_reason")
        st.dataframe(errors, hide_index=True, key="errors_table")


main()
