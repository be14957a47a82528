"""Team: who may do what (grant and revoke roles), review queues made from a Browse link with their progress, the
agreement between reviewers (per skill and per reviewer) and the conflicts an admin settles. Admins change things;
everyone else sees the same pages read-only."""

import streamlit as st

from app.components import data, filters, identity
from app.components.page_icon import PAGE_ICON
from app.components.text import code, plain
from app.components.text_table import text_table
from curation.presenters.overview import skill_label
from curation.presenters.team import (
    agreement_figure,
    agreement_rows,
    conflict_tag,
    queue_row,
    queue_samples,
    reviewer_rows,
    role_rows,
    verdict_rows,
)
from curation.query.filters import spec_from_link
from curation.review.actors import Actor
from curation.review.agreement import queue_agreement
from curation.review.assignment import adjudicate, conflicts, create_queue, queue_progress, queues
from curation.review.errors import StateError
from curation.review.roles import GRANT_HINT, allowed, grant_role, revoke_role, roles
from db.models import ROLES

QUEUE_PAGE = "pages/6_Review_Queue.py"
SAMPLE_PAGE = "pages/2_Sample.py"
BROWSE_PAGE = "pages/1_Browse.py"
MAX_CONFLICTS_SHOWN = 50
ROLE_MEANING = {"admin": "everything, and hands out roles, makes queues, settles conflicts",
                "curator": "reviews and acts on whole filters, runs checks, exports, Label Studio",
                "annotator": "flags, reviews and fixes one sample at a time, works queues",
                "viewer": "looks only (everyone signed in without a grant)"}


def _write(fn, *args, ok: str, **kwargs) -> bool:
    """Run a write; a refusal (a role that may not, the last admin) is the message the next run shows."""
    try:
        fn(*args, **kwargs)
    except StateError as exc:  # PermissionDenied included: the domain layer's word, not a traceback
        st.session_state["team_msg"] = ("error", str(exc))
        return False
    st.session_state["team_msg"] = ("success", ok)
    return True


def message() -> None:
    if msg := st.session_state.pop("team_msg", None):
        (st.success if msg[0] == "success" else st.error)(plain(msg[1]))


# --- roles -----------------------------------------------------------------------------------------------------


def roles_section(b: data.Backend, actor: Actor) -> None:
    st.subheader("Roles")
    st.caption(" · ".join(f"**{r}**: {m}" for r, m in ROLE_MEANING.items()))
    rows = role_rows(roles(b.state))
    if rows:
        st.dataframe(rows, hide_index=True, key="team_roles")
    else:
        st.caption("No roles granted yet: everyone signed in is a viewer.")
    if not allowed(actor, "grant_role"):
        return
    c = st.columns([3, 2, 1], vertical_alignment="bottom")
    who = c[0].text_input("Person (email, or the proxy's user name)", key="team_grant_who", max_chars=200)
    role = c[1].selectbox("Role", ROLES, key="team_grant_role")
    if c[2].button("Grant", key="team_grant", disabled=not who.strip()):
        if _write(grant_role, b.state, actor, who.strip(), role, ok=f"{who.strip()} is now {role}."):
            st.session_state.pop("team_grant_who", None)
        st.rerun()
    if rows:
        c = st.columns([3, 2, 1], vertical_alignment="bottom")
        gone = c[0].selectbox("Take a role away", [r["who"] for r in rows], key="team_revoke_who")
        c[1].caption("They keep signing in, as a viewer.")
        if c[2].button("Revoke", key="team_revoke"):
            _write(revoke_role, b.state, actor, gone, ok=f"{gone} is a viewer again.")
            st.rerun()


# --- queues ----------------------------------------------------------------------------------------------------


def create_section(b: data.Backend, actor: Actor) -> None:
    """A queue over the samples of a Browse link: the count before creating, then overlap, blind and reservations."""
    with st.expander("Create a review queue from a Browse link", expanded=not queues(b.state)):
        st.caption("Filter in Browse, copy the page's address and paste it here (or just its `?…` query string). "
                   "The queue holds the samples the filter matches now, in sample order.")
        st.page_link(BROWSE_PAGE, label="Filter in Browse", icon=":material/search:")
        if "link" in st.query_params and "team_queue_link" not in st.session_state:  # from Browse's queue link
            st.session_state["team_queue_link"] = st.query_params["link"]
        link = st.text_input("Browse link", key="team_queue_link",
                             placeholder="http://127.0.0.1:8501/Browse?skills=si_distance&flagged=1")
        if not link.strip():
            return
        try:
            spec = spec_from_link(link)
            n = data.count(b, spec)
        except ValueError as exc:  # FilterParamError included: names the parameter
            st.error(plain(exc))
            return
        except Exception as exc:  # e.g. a text search without a text index
            st.error(f"The filter cannot be applied: {plain(exc)}")
            return
        st.markdown(f"**{n:,}** samples match · {filters.describe(spec)}")
        c = st.columns([3, 1, 1, 1], vertical_alignment="bottom")
        name = c[0].text_input("Queue name", key="team_queue_name", max_chars=120)
        overlap = c[1].number_input("Overlap (people per sample)", min_value=1, max_value=20, value=2, step=1,
                                    key="team_queue_overlap")
        minutes = c[2].number_input("Reservation (minutes)", min_value=1, max_value=24 * 60, value=30, step=5,
                                    key="team_queue_minutes")
        blind = c[3].toggle("Blind", value=True, key="team_queue_blind",
                            help="A reviewer sees the others' verdicts only after submitting theirs")
        can = allowed(actor, "assign")
        if st.button(f"Create queue of {n:,} samples", key="team_queue_create", type="primary",
                     disabled=not (can and n and name.strip())):
            with st.spinner("Creating the queue…"):
                if _write(create_queue, b.state, actor, name.strip(), queue_samples(b.query, spec),
                          filter_link=link.strip(), overlap=int(overlap), blind=blind,
                          reservation_minutes=int(minutes), ok=f"Queue {name.strip()} created with {n:,} samples."):
                    st.session_state.pop("team_queue_link", None)
                    st.query_params.pop("link", None)
                    st.session_state.pop("team_queue_name", None)
            st.rerun()


def queues_section(b: data.Backend) -> None:
    listed = queues(b.state)
    if not listed:
        st.info("No review queues yet. An admin makes one from a Browse link above; reviewers then work it on the "
                "Review Queue page.")
        return
    for q in listed:
        p = queue_progress(b.state, q.id)
        row = queue_row(q, p)
        with st.container(border=True, key=f"team_queue_{q.id}"):
            c = st.columns([4, 1], vertical_alignment="center")
            c[0].markdown(f"**{plain(q.name)}** · made by {plain(q.created_by)}")
            c[1].page_link(QUEUE_PAGE, label="Work this queue", icon=":material/task_alt:",
                           query_params={"queue": str(q.id)})
            st.progress(row.share_done, text=plain(row.progress_text))
            if p.per_reviewer:
                st.dataframe(reviewer_rows(p), hide_index=True, key=f"team_queue_people_{q.id}")


def queues_tab(b: data.Backend, actor: Actor) -> None:
    if allowed(actor, "assign"):
        create_section(b, actor)
    queues_section(b)


# --- agreement -------------------------------------------------------------------------------------------------


def agreement_section(b: data.Backend) -> None:
    listed = queues(b.state)
    if not listed:
        st.info("Agreement is measured per queue: there is no queue yet.")
        return
    names = {q.id: q.name for q in listed}
    qid = st.selectbox("Queue", list(names), format_func=names.get, key="team_agreement_queue")
    a = queue_agreement(b.state, qid)
    overall = a.overall
    if not overall.n_items:
        st.info("No sample of this queue has two verdicts yet: agreement shows once two people have judged the "
                "same sample.")
        return
    c = st.columns(4)
    c[0].metric("Samples with ≥ 2 verdicts", f"{overall.n_items:,}")
    c[1].metric("Verdicts", f"{overall.n_verdicts:,}")
    c[2].metric("Percent agreement", _percent(overall.percent_agreement))
    c[3].metric("Krippendorff's alpha", _number(overall.alpha))
    st.plotly_chart(agreement_figure(a.by_skill), key="team_agreement_chart", config={"displaylogo": False})
    left, right = st.columns(2)
    left.markdown("**Per skill** (Krippendorff's alpha, nominal)")
    left.dataframe(agreement_rows(a.by_skill, "skill", label=skill_label), hide_index=True,
                   key="team_agreement_skills", column_config=_score_columns())
    right.markdown("**Per reviewer** (Cohen's kappa against the co-reviewers of shared samples)")
    right.dataframe(agreement_rows(a.by_reviewer, "reviewer"), hide_index=True, key="team_agreement_people",
                    column_config=_score_columns())
    st.caption("A score needs enough shared samples with some variety of verdicts; where there are too few it is "
               "left empty, with the counts shown.")


def _score_columns() -> dict:
    number = st.column_config.NumberColumn
    return {"agreement": number("agreement", format="percent"),
            "Krippendorff's alpha": number(format="%.3f"), "Cohen's kappa": number(format="%.3f")}


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _number(value: float | None) -> str:
    return "too few" if value is None else f"{value:.3f}"


# --- conflicts -------------------------------------------------------------------------------------------------


def conflicts_section(b: data.Backend, actor: Actor) -> None:
    found = conflicts(b.state)
    if not found:
        st.info("No conflicts: every sample whose verdicts are all in had them agree (or an admin settled it).")
        return
    names = {q.id: q.name for q in queues(b.state)}
    st.caption(f"{len(found):,} {'sample' if len(found) == 1 else 'samples'} where the reviewers disagree"
               + (f" (the first {MAX_CONFLICTS_SHOWN} shown)" if len(found) > MAX_CONFLICTS_SHOWN else "")
               + ". The verdict an admin picks becomes the sample's review.")
    can = allowed(actor, "adjudicate")
    for c in found[:MAX_CONFLICTS_SHOWN]:
        n = conflict_tag(c.queue_id, c.sample_id)
        with st.container(border=True, key=f"team_conflict_{n}"):
            top = st.columns([4, 1], vertical_alignment="center")
            queue_name = names.get(c.queue_id, c.queue_id)
            top[0].markdown(f"{code(c.sample_id)} · {plain(c.skill)} · queue {plain(queue_name)}")
            top[1].page_link(SAMPLE_PAGE, label="Open sample", icon=":material/open_in_new:",
                             query_params={"id": c.sample_id})
            text_table(verdict_rows(c.verdicts))
            if not can:
                continue
            # Pressed buttons act in this run, as the person signed in now (a callback would act with the role
            # they had when the page was drawn).
            with st.container(horizontal=True):  # the choices side by side, as many as there are
                choices = [("approve", None, st.button("Settle: approve", key=f"team_adj_approve_{n}")),
                           ("reject", None, st.button("Settle: reject", key=f"team_adj_reject_{n}"))]
                for k, v in enumerate(v for v in c.verdicts if v.verdict == "fix"):
                    choices.append(("fix", v, st.button(f"Settle: {plain(v.who)}'s fix", key=f"team_adj_fix_{n}_{k}")))
            for verdict, fix, pressed in choices:
                if pressed:
                    _write(adjudicate, b.state, actor, c.queue_id, c.sample_id, verdict, note=f"settled by {actor.who}",
                           fixed_answer=fix.fixed_answer if fix else None,
                           fixed_reasoning=fix.fixed_reasoning if fix else None,
                           ok=f"Sample {c.sample_id} settled as {verdict}.")
                    st.rerun()


def main() -> None:
    st.set_page_config(page_title="VST Curator · Team", page_icon=PAGE_ICON, layout="wide")
    actor = identity.signed_in()
    st.title("Team")
    try:
        b = data.backend()
    except data.AppDataError as exc:
        st.error(plain(exc))
        return
    if not allowed(actor, "grant_role"):
        st.info(f"You are {actor.role}: this page is read-only for you. Only admins grant roles, make queues and "
                f"settle conflicts; {plain(GRANT_HINT)}.")
    message()
    sections = {"Queues": queues_tab, "Agreement": lambda b, actor: agreement_section(b),
                "Conflicts": conflicts_section, "Roles": roles_section}
    try:
        # The tab is in the link (?tab=Agreement), and only the open one runs: agreement reads every verdict.
        for tab, draw in zip(st.tabs(list(sections), key="tab", bind="query-params"), sections.values(), strict=True):
            if tab.open is not False:
                with tab:
                    draw(b, actor)
    except Exception as exc:  # the state database went away: a message, not a traceback
        st.error(f"The team's state cannot be read from the state database: {plain(exc)}")


main()
