"""Checks: start a check run (queued for the worker, or run here now), follow runs (how long they take) and cancel
them, see failures by severity and per check x skill (a cell opens its failing samples in Browse), and move score
thresholds without a re-run."""


import streamlit as st

from app.components import data, filters, identity
from app.components.page_icon import PAGE_ICON
from app.components.text import plain
from curation.checks.report import check_summary, score_histogram
from curation.jobs.queue import cancel_job
from curation.jobs.run import queue_checks
from curation.presenters.checks import (
    INGEST_PREFIX,
    SEVERITY_MEANING,
    JobView,
    browse_spec_for,
    check_jobs,
    checks_by_family,
    clicked_cell,
    format_seconds,
    has_results,
    heatmap_figure,
    histogram_figure,
    ingest_problems,
    is_scored,
    result_check_names,
    run_in_process,
    score_range,
    severity_totals,
    summary_matrix,
    worker_seems_absent,
)
from curation.presenters.overview import skill_label
from curation.query.filters import FilterSpec
from curation.review.actors import Actor
from curation.review.roles import PermissionDenied, allowed

BROWSE_PAGE = "pages/1_Browse.py"
REFRESH_S = 2.0
EMBEDDERS = {"minilm": "MiniLM (accurate)", "hashing": "hashing (fast, rough)"}
ALL_SKILLS = "(all skills)"


# --------------------------------------------------------------------------------------------- start a run


def picked_checks(families: dict[str, list[dict]]) -> list[str]:
    return [name for f in families for name in st.session_state.get(f"chk_pick_{f}", [])]


def run_form(b: data.Backend, actor: Actor) -> None:
    """Choose checks by family; queue the run for the worker, or run it in this process now (curators and admins)."""
    if not allowed(actor, "run_checks"):
        st.caption(f"Your role ({actor.role}) may look at check runs and their results here, not start or cancel "
                   "one: that needs a curator or an admin.")
        return
    families = checks_by_family()
    with st.expander("Start a check run", expanded=not has_results(b.settings)):
        cols = st.columns(2)
        for i, (family, checks) in enumerate(families.items()):
            names = [c["name"] for c in checks]
            cols[i % 2].multiselect(
                f"{family} ({len(names)})", names, default=[c["name"] for c in checks if c["default"] == "yes"],
                key=f"chk_pick_{family}", format_func=lambda n, f=family: n.removeprefix(f + "."),
                help="\n".join(f"- **{c['name']}**: {c['description']}" for c in checks),
            )
        c1, c2 = st.columns(2)
        c1.selectbox("Text embedder (duplicates.near, contamination.question)", list(EMBEDDERS),
                     format_func=EMBEDDERS.get, key="chk_embedder")
        c2.text_input("Local model folder (model.* checks only)", key="chk_model")
        chosen = picked_checks(families)
        st.caption(f"{len(chosen)} check(s) chosen · engine: local. Queued runs are worked off by the background "
                   "worker (`python -m curation worker`, which `make run` starts); without one, run it here.")
        b1, b2, _ = st.columns([1, 1, 3])
        queue = b1.button("Queue run", type="primary", key="chk_queue", disabled=not chosen)
        here = b2.button("Run here now", key="chk_here", disabled=not chosen,
                         help="Runs in this app's process with a progress bar; the page waits for it.")
        if not (queue or here):
            return
        defaults = [c["name"] for cs in families.values() for c in cs if c["default"] == "yes"]
        if sorted(chosen) == sorted(defaults):
            chosen = None  # the job then says "every default check", and picks up checks added later
        params = {"embedder": st.session_state.get("chk_embedder") or None,
                  "model_path": (st.session_state.get("chk_model") or "").strip() or None}
        try:
            if queue:
                job = queue_checks(b.settings, chosen, engine="local", db=b.state, by=actor, **params)
                st.toast(f"Queued check run #{job.id}", icon=":material/schedule:")
                return
            bar = st.progress(0.0, text="Starting…")
            summary = run_in_process(b.settings, chosen, lambda j: bar.progress(j.fraction, text=j.progress_text()),
                                     db=b.state, engine="local", by=actor, **params)
        except PermissionDenied as exc:
            st.error(plain(exc))
            return
        except Exception as exc:  # a bad model folder, a locked catalog: a message, not a traceback
            st.error(f"The check run did not start or failed: {plain(exc)}")
            return
        bar.progress(1.0, text=f"Run {summary.run_id} {summary.state}: {summary.rows:,} rows in "
                               f"{summary.seconds:.1f} s")
        st.session_state["chk_last_run"] = summary.run_id


# --------------------------------------------------------------------------------------------- runs


def job_line(b: data.Backend, job: JobView, actor: Actor) -> None:
    with st.container(border=True):
        c = st.columns([5, 1])
        took = job.seconds()
        c[0].markdown(f"**Run #{job.id}** · `{job.state}` · {plain(job.checks)}  \n"
                      f":gray[{plain(job.run_id)} · queued {job.created_at:%Y-%m-%d %H:%M:%S}"
                      f"{' by ' + plain(job.queued_by) if job.queued_by else ''}"
                      f"{' · running for ' + format_seconds(took) if took is not None else ''}"
                      f"{' · ' + plain(job.worker_id) if job.worker_id else ''}]")
        if job.active and allowed(actor, "run_checks") and c[1].button("Cancel", key=f"chk_cancel_{job.id}"):
            try:
                cancel_job(b.state, job.id, by=actor)
            except PermissionDenied as exc:
                st.error(plain(exc))
                return
            st.rerun()
        if job.state == "queued":
            st.progress(0.0, text="waiting for a worker")
        else:
            st.progress(job.fraction, text=job.progress_text())
        if job.error:
            st.error(plain(job.error.splitlines()[0]))


def runs_panel(b: data.Backend, was_active: bool, actor: Actor) -> None:
    jobs = check_jobs(b.state)
    if not jobs:
        st.caption("No check run yet.")
        return
    active = [j for j in jobs if j.active]
    if was_active and not active:
        st.rerun()  # a run just finished: redraw the whole page with its results (and stop refreshing)
    if worker_seems_absent(jobs):
        st.warning("No worker is running the queued runs (or a run's worker stopped): start one with "
                   "`python -m curation worker` (it resumes a stopped run), or cancel them and use **Run here now**.")
    for job in active:
        job_line(b, job, actor)
    done = [j for j in jobs if not j.active]
    if done:
        with st.expander(f"Finished runs ({len(done)})", expanded=not active):
            st.dataframe(
                [{"run": j.id, "state": j.state, "checks": j.checks, "queued by": j.queued_by,
                  "cancelled by": j.cancelled_by, "took": format_seconds(j.seconds()),
                  "row passes": j.done, "run id": j.run_id, "queued": j.created_at,
                  "error": (j.error or "").split("\n")[0]} for j in done],
                hide_index=True, key="chk_finished_runs",
            )


def runs(b: data.Backend, actor: Actor) -> None:
    st.subheader("Runs")
    active = any(j.active for j in check_jobs(b.state))
    # Refresh on a timer only while something runs, so an idle page costs nothing.
    st.fragment(runs_panel, run_every=REFRESH_S if active else None)(b, active, actor)


# --------------------------------------------------------------------------------------------- results


def failures(b: data.Backend) -> None:
    st.subheader("Failures per check × skill")
    summary = check_summary(b.settings)
    if not summary.num_rows:
        st.info("No check results yet. Start a run above (or `python -m curation check --wait` in a terminal); "
                "this page fills in when it completes.")
        return
    if not has_results(b.settings):
        st.info("No check has run yet: only the problems ingest recorded are shown. Start a run above.")
    by_severity(severity_totals(summary))
    event = st.plotly_chart(heatmap_figure(summary), key="chk_heatmap", config={"displaylogo": False},
                            on_select="rerun", selection_mode="points")
    checks, skills, cells = summary_matrix(summary)
    st.caption("Click a cell to open its failing samples in Browse (or pick a check and skill below).")
    picked = clicked_cell(event.selection if event else None)
    if picked and picked in cells and cells[picked]["failed"]:
        st.switch_page(BROWSE_PAGE, query_params=filters.url_params(browse_spec_for(*picked)))
    c = st.columns([2, 2, 2])
    check = c[0].selectbox("Check", checks, key="chk_open_check")
    options = [ALL_SKILLS] + [s for s in skills if (check, s) in cells]
    if st.session_state.get("chk_open_skill") not in options:  # a skill the newly picked check did not see
        st.session_state["chk_open_skill"] = ALL_SKILLS
    skill = c[1].selectbox("Skill", options, key="chk_open_skill", format_func=lambda s: s if s == ALL_SKILLS
                           else f"{skill_label(s)} ({cells[(check, s)]['failed']:,} failed)")
    skill = None if skill == ALL_SKILLS else skill
    hits = [cells[(check, s)] for s in ([skill] if skill else skills) if (check, s) in cells]
    n_failed, n_checked = sum(h["failed"] for h in hits), sum(h["checked"] for h in hits)
    spec = browse_spec_for(check, skill)
    c[2].markdown(f"**{n_failed:,}** failed of {n_checked:,} checked")
    c[2].page_link(BROWSE_PAGE, label="Open in Browse", icon=":material/search:",
                   query_params=filters.url_params(spec), disabled=not n_failed)
    if check.startswith(INGEST_PREFIX):
        st.caption("Ingest problems are not check results: Browse shows every sample with an ingest problem.")


def by_severity(totals: dict[str, int]) -> None:
    """Failures per severity (check results and ingest problems), each opening its samples in Browse."""
    cols = st.columns(len(totals))
    for col, (severity, n) in zip(cols, totals.items(), strict=True):
        col.metric(f"{severity} failures", f"{n:,}", help=SEVERITY_MEANING.get(severity))
        col.page_link(BROWSE_PAGE, label=f"Open the {severity} samples in Browse", icon=":material/search:",
                      query_params=filters.url_params(FilterSpec(failed_severities=[severity])), disabled=not n)


def scores(b: data.Backend) -> None:
    st.subheader("Scores and thresholds")
    described = {c["name"]: c for f in checks_by_family().values() for c in f}
    scored = [n for n in result_check_names(b.settings) if n in described and is_scored(described[n])]
    if not scored:
        st.caption("No scored check has results yet.")
        return
    c1, c2 = st.columns([2, 3])
    check = c1.selectbox("Check", scored, key="chk_score_check")
    c1.caption(f"Score: {described[check]['score']}")
    rng = score_range(b.settings, check)
    if rng is None:
        st.caption(f"{check} stored no scores in its latest run.")
        return
    lo, hi = rng
    if hi <= lo:
        st.caption(f"Every sample scored {lo:g} on {check}.")
        threshold = hi
    else:
        key = f"chk_threshold_{check}"
        threshold = c1.slider("Score below", lo, hi, value=st.session_state.get(key, lo + (hi - lo) / 2),
                              step=(hi - lo) / 100, key=key, format="%.3g")
    spec = FilterSpec(score_below={check: float(threshold)})
    below = data.count(b, spec)
    c1.markdown(f"**{below:,}** sample{'' if below == 1 else 's'} score{'s' if below == 1 else ''} below "
                f"{threshold:.3g}")
    c1.page_link(BROWSE_PAGE, label="Open these in Browse", icon=":material/search:",
                 query_params=filters.url_params(spec), disabled=not below)
    c1.caption("Thresholds apply when querying: moving the slider never re-runs the check.")
    c2.plotly_chart(histogram_figure(score_histogram(b.settings, check, bins=30), check, threshold),
                    key="chk_histogram", config={"displaylogo": False})


def ingest_section(b: data.Backend) -> None:
    st.subheader("Ingest problems")
    counts, rows = ingest_problems(b.settings)
    if not counts:
        st.success("Ingest recorded no problem against any sample.")
        return
    st.dataframe([{"problem": k, "samples": v} for k, v in counts.items()], hide_index=True,
                 key="chk_ingest_counts")
    st.dataframe(rows, hide_index=True, key="chk_ingest_rows",
                 column_config={"reason": st.column_config.TextColumn(width="large")})
    st.caption(f"First {len(rows):,} rows; the full list: `python -m curation failures --check ingest --format csv`.")


def main() -> None:
    st.set_page_config(page_title="VST Curator · Checks", page_icon=PAGE_ICON, layout="wide")
    actor = identity.signed_in()  # the page stops here until someone is signed in (when sign-in is configured)
    st.title("Checks")
    try:
        b = data.backend()
    except data.AppDataError as exc:
        st.error(plain(exc))
        return
    run_form(b, actor)
    runs(b, actor)
    try:
        failures(b)
        scores(b)
        ingest_section(b)
    except Exception as exc:  # unreadable result files: a message, not a traceback
        st.error(f"The check results cannot be read: {plain(exc)}")


main()
