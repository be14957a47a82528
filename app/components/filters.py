"""The filter in the URL and the sidebar: widgets seeded from the link, every change written back to it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import get_args

import streamlit as st

from app.components.text import code, plain
from curation.query.difficulty import DIFFICULTIES
from curation.query.filters import DIMENSIONS, FilterParamError, FilterSpec, ReviewFilter
from curation.query.severity import SEVERITIES
from curation.review.flags import FLAG_REASONS

DIMENSION_LABELS = {
    "skills": "Skill",
    "groups": "Group",
    "datasets": "Dataset",
    "sources": "Source",
    "types": "Type",
    "answer_kinds": "Answer kind",
    "subsets": "Subset",
}
_TRISTATE = {"any": None, "yes": True, "no": False}
REVIEW_STATES = ["any", *get_args(ReviewFilter)]
_SYNCED = "flt__synced"  # the spec the widgets were last seeded from / wrote to the URL
_PREFIX = "flt_"
_OVERRIDE = "flt__override"
_COUNTED = (*DIMENSIONS, "difficulty")  # the multiselects whose option labels carry facet counts


def spec_from_url() -> FilterSpec:
    """The filter in the page's query string; a malformed one is reported and dropped, never a traceback."""
    try:
        return FilterSpec.from_query_params(st.query_params.to_dict())
    except FilterParamError as exc:
        st.warning(f"Showing everything: {plain(exc)}.")
        return FilterSpec()


def write_url(spec: FilterSpec, **extra: str) -> None:
    """Replace the query string with the filter plus page-specific keys (e.g. ``id``)."""
    params = url_params(spec, **extra)
    if params != st.query_params.to_dict():
        st.query_params.from_dict(params)


def url_params(spec: FilterSpec, **extra: str) -> dict[str, str]:
    """The filter's query parameters plus page-specific keys (empty ones left out), for links to a page."""
    return {**spec.to_query_params(), **{k: v for k, v in extra.items() if v}}


def _tristate(value: bool | None) -> str:
    return {None: "any", True: "yes", False: "no"}[value]


def _seed_widgets(spec: FilterSpec) -> None:
    ss = st.session_state
    for name in DIMENSIONS:
        ss[_PREFIX + name] = list(getattr(spec, name))
    ss[_PREFIX + "text"] = spec.text
    ss[_PREFIX + "has_reasoning"] = _tristate(spec.has_reasoning)
    ss[_PREFIX + "has_problems"] = _tristate(spec.has_problems)
    ss[_PREFIX + "flagged"] = _tristate(spec.flagged)
    ss[_PREFIX + "flag_reasons"] = list(spec.flag_reasons)
    ss[_PREFIX + "review"] = spec.review or "any"
    ss[_PREFIX + "reviewers"] = ", ".join(spec.reviewers)
    ss[_PREFIX + "failed_checks"] = list(spec.failed_checks)
    ss[_PREFIX + "passed_checks"] = list(spec.passed_checks)
    ss[_PREFIX + "failed_severities"] = list(spec.failed_severities)
    ss[_PREFIX + "difficulty"] = list(spec.difficulty)
    # One threshold has widgets; further ones (only a hand-made link has them) ride along untouched.
    first = next(iter(spec.score_below.items()), None)
    ss[_PREFIX + "score_check"] = first[0] if first else ""
    ss[_PREFIX + "score_max"] = float(first[1]) if first else 0.5
    ss[_SYNCED] = spec.model_dump_json()


def _csv(text: str | Sequence[str]) -> list[str]:
    parts = (text or "").split(",") if isinstance(text, str) else list(text or [])
    return [p.strip() for p in parts if p.strip()]


def _thresholds(keep: dict[str, float]) -> dict[str, float]:
    """The threshold widgets' check and value in place of the first threshold of ``keep``."""
    ss = st.session_state
    rest = dict(list(keep.items())[1:])
    check = (ss.get(_PREFIX + "score_check") or "").strip()
    return {check: float(ss.get(_PREFIX + "score_max") or 0.0), **rest} if check else rest


def _reset() -> None:
    _seed_widgets(FilterSpec())
    st.session_state[_OVERRIDE] = True  # the widgets now win over the (old) URL on the coming run


def _spec_from_widgets(keep: FilterSpec) -> FilterSpec:
    ss = st.session_state
    review = ss[_PREFIX + "review"]
    return FilterSpec(
        **{name: list(ss[_PREFIX + name]) for name in DIMENSIONS},
        text=(ss[_PREFIX + "text"] or "").strip(),
        has_reasoning=_TRISTATE[ss[_PREFIX + "has_reasoning"]],
        has_problems=_TRISTATE[ss[_PREFIX + "has_problems"]],
        flagged=_TRISTATE[ss[_PREFIX + "flagged"]],
        flag_reasons=list(ss[_PREFIX + "flag_reasons"]),
        review=None if review == "any" else review,
        reviewers=_csv(ss[_PREFIX + "reviewers"]),
        failed_checks=_csv(ss[_PREFIX + "failed_checks"]),
        passed_checks=_csv(ss[_PREFIX + "passed_checks"]),
        failed_severities=list(ss.get(_PREFIX + "failed_severities") or []),
        score_below=_thresholds(dict(keep.score_below)),
        difficulty=list(ss.get(_PREFIX + "difficulty") or []),
        pass_rate_above=keep.pass_rate_above, pass_rate_below=keep.pass_rate_below,  # a band rides along from links
    )


def current_spec() -> FilterSpec:
    """The filter for this run: the sidebar widgets' values, or the URL's when the URL changed under them (a
    pasted link, the back button, a first visit). The URL is updated to match."""
    ss = st.session_state
    url_spec = spec_from_url()
    seeded = all(_PREFIX + name in ss for name in DIMENSIONS)
    override = ss.pop(_OVERRIDE, False)
    if not override and (not seeded or ss.get(_SYNCED) != url_spec.model_dump_json()):
        _seed_widgets(url_spec)
        return url_spec
    spec = _spec_from_widgets(FilterSpec() if override else url_spec)
    # The browser sends a multiselect's choice back as the labels it showed, and our labels carry facet counts that
    # move with the filter: matched against this run's labels, "skill (15)" would become a value of its own. Written
    # back as values before the widgets are drawn, the choice is matched by value.
    for name in _COUNTED:
        ss[_PREFIX + name] = list(getattr(spec, name))
    ss[_SYNCED] = spec.model_dump_json()
    write_url(spec)
    return spec


def sidebar_filters(spec: FilterSpec, facet_counts: Mapping[str, Mapping[str, int]],
                    check_names: Sequence[str] = ()) -> None:
    """Sidebar widgets for every catalog dimension (options with their facet counts), text search and the state
    and check filters (``check_names``: the checks with results); their values become the filter on the next run
    (see current_spec)."""
    ss = st.session_state
    sb = st.sidebar
    sb.header("Filter")
    sb.text_input("Search question / answer / reasoning", key=_PREFIX + "text",
                  placeholder='words, "a phrase", chair AND table')
    for name, label in DIMENSION_LABELS.items():
        counts = facet_counts.get(name, {})
        selected = list(ss.get(_PREFIX + name) or [])
        options = list(counts) + [v for v in selected if v not in counts]
        sb.multiselect(label, options, key=_PREFIX + name,
                       format_func=lambda v, c=counts: f"{v} ({c.get(v, 0):,})")
    c1, c2 = sb.columns(2)
    c1.selectbox("Has reasoning", list(_TRISTATE), key=_PREFIX + "has_reasoning")
    c2.selectbox("Ingest problems", list(_TRISTATE), key=_PREFIX + "has_problems")
    sb.subheader("Curation state")
    c1, c2 = sb.columns(2)
    c1.selectbox("Flagged", list(_TRISTATE), key=_PREFIX + "flagged")
    c2.selectbox("Review", REVIEW_STATES, key=_PREFIX + "review")
    sb.multiselect("Flag reasons", list(FLAG_REASONS), key=_PREFIX + "flag_reasons")
    sb.text_input("Reviewers (comma separated)", key=_PREFIX + "reviewers")
    with sb.expander("Check results", expanded=bool(spec.failed_checks or spec.passed_checks or spec.score_below
                                                    or spec.failed_severities)):
        names = list(check_names)
        st.multiselect("Failed with severity", list(SEVERITIES), key=_PREFIX + "failed_severities",
                       help="Samples with a failure of these severities: of the failed checks named below, or of any "
                            "check or ingest problem when none is named. error breaks training, warning is a quality "
                            "doubt, info a known upstream quirk.")
        for key, label in (("failed_checks", "Failed checks"), ("passed_checks", "Passed checks")):
            chosen = list(ss.get(_PREFIX + key) or [])
            st.multiselect(label, names + [n for n in chosen if n not in names], key=_PREFIX + key,
                           accept_new_options=True, placeholder="a check name" if names else "no check results yet")
        score_check = ss.get(_PREFIX + "score_check") or ""
        options = [""] + names + ([score_check] if score_check and score_check not in names else [])
        st.selectbox("Score below a threshold", options, key=_PREFIX + "score_check",
                     format_func=lambda n: n or "no threshold", help="Samples whose score on this check is below")
        st.number_input("Threshold", key=_PREFIX + "score_max", step=0.05, format="%.3g", disabled=not score_check)
        if len(spec.score_below) > 1:
            thresholds = ", ".join(f"{k} < {v}" for k, v in list(spec.score_below.items())[1:])
            st.caption(f"Further score thresholds from the link: {plain(thresholds)}")
    difficulty = facet_counts.get("difficulty", {})  # pass rate over n model samples (model.reanswer samples=n)
    sb.multiselect("Difficulty (model pass rate)", list(DIFFICULTIES), key=_PREFIX + "difficulty",
                   format_func=lambda v, c=difficulty: f"{v} ({c.get(v, 0):,})")
    sb.button("Reset filters", on_click=_reset, key="flt_reset_btn")


def describe(spec: FilterSpec) -> str:
    """A short line of Markdown for the current filter (`skills=si_distance · flagged=1`): its values come from the
    link, so they are shown as written (app.components.text), never as Markdown."""
    parts = [f"{k}={v}" for k, v in spec.to_query_params().items()]
    return code(" · ".join(parts)) if parts else "everything"
