"""What the Overview (Home) page shows: counts per facet (bars that open Browse), the share of samples without a
skill, rows with recorded problems, ingest errors by kind and review progress per skill."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from curation.query.filters import FilterSpec
from curation.query.stats import UNKNOWN_SKILL
from curation.vst.taxonomy import load_taxonomy

OTHER = "(other)"
# Bars no Browse filter can select: the rest summed, and the facets' name for a missing value (curation.query.catalog).
NOT_ONE_VALUE = {OTHER, "(none)"}
# The Overview's bar charts: the facet they count and the Browse filter field a click on a bar sets.
CHART_FIELDS = {"datasets": "datasets", "groups": "groups", "skills": "skills", "sources": "sources"}


def skill_label(skill: str) -> str:
    """A skill's display name from the taxonomy (the id itself for one it does not name)."""
    known = load_taxonomy().skills.get(skill)
    return known.name if known is not None else skill


def counts_figure(counts: Mapping[str, int], title: str, top: int = 40, unit: str = "samples",
                  label: Callable[[str], str] | None = None) -> go.Figure:
    """Horizontal bars, largest first (at most ``top`` values; the rest summed as 'other'), each labelled by
    ``label`` and carrying its value as customdata, so a click names what it counts (clicked_value)."""
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(items) > top:
        items = items[: top - 1] + [(OTHER, sum(v for _, v in items[top - 1:]))]
    keys = [k for k, _ in items][::-1]
    values = [v for _, v in items][::-1]
    names = [k if k == OTHER or label is None else label(k) for k in keys]
    fig = go.Figure(go.Bar(x=values, y=names, orientation="h", text=[f"{v:,}" for v in values],
                           textposition="outside", cliponaxis=False, marker_color="#4c78a8", customdata=keys,
                           hovertemplate=f"%{{y}}: %{{x:,}} {unit}<extra></extra>"))
    fig.update_layout(title=title, height=max(220, 60 + 22 * len(items)), margin=dict(l=10, r=10, t=40, b=10),
                      xaxis_title=unit, yaxis=dict(automargin=True), clickmode="event+select", dragmode=False)
    return fig


def clicked_value(selection: Any) -> str | None:
    """The value of the bar a click selected in a counts_figure, from st.plotly_chart's selection state; None for a
    bar that is not one value a filter can select ('(other)', '(none)')."""
    for point in (selection or {}).get("points") or []:
        value = point.get("customdata")
        if isinstance(value, list):  # Streamlit hands a one-value customdata over as a list
            value = value[0] if value else None
        if value is not None and value not in NOT_ONE_VALUE:
            return str(value)
    return None


def browse_spec_for_bar(field: str, value: str) -> FilterSpec:
    """The Browse filter for one bar of an Overview chart: the samples of that dataset, group, skill or source."""
    return FilterSpec(**{CHART_FIELDS[field]: [value]})


def unknown_share_rows(totals: Mapping[str, Mapping[str, int]],
                       unknown: Mapping[str, Mapping[str, int]]) -> list[dict[str, object]]:
    """One row per dataset, then per source, that holds samples of skill `unknown`: by, value, samples, unknown, share
    (largest share first within each). ``totals`` and ``unknown`` are facet counts ('datasets', 'sources') of the whole
    catalog and of its `unknown` samples. Empty when every sample has a skill."""
    rows: list[dict[str, object]] = []
    for by, dim in (("dataset", "datasets"), ("source", "sources")):
        part = [{"by": by, "value": k, "samples": int(totals.get(dim, {}).get(k, 0)), "unknown": int(n),
                 "share": round(n / totals[dim][k], 4) if totals.get(dim, {}).get(k) else 0.0}
                for k, n in unknown.get(dim, {}).items() if n]
        rows += sorted(part, key=lambda r: (-r["share"], -r["samples"], r["value"]))
    return rows


def unknown_share_text(total: int, totals: Mapping[str, Mapping[str, int]],
                       unknown: Mapping[str, Mapping[str, int]]) -> str:
    """One line for the page: how many samples no skill rule recognises, and in which datasets."""
    count = sum(int(n) for n in unknown.get("datasets", {}).values())
    if not count:
        return f"Every one of the {total:,} samples has a skill."
    parts = [f"{r['value']} {r['share']:.1%}" for r in unknown_share_rows(totals, unknown) if r["by"] == "dataset"]
    return (f"{count:,} of {total:,} samples ({count / total:.1%}) have skill `{UNKNOWN_SKILL}` "
            f"({', '.join(parts)}): no rule in taxonomy.yaml recognises their wording; edit the rules and run "
            "`python -m curation retag`.")


def problems_text(with_problems: int, total: int, codes: Mapping[str, int]) -> str:
    """One line on the rows ingest read but recorded a problem against (bad meta_info, undecodable image, missing
    media file), by problem, most frequent first."""
    if not with_problems:
        return "Ingest recorded no problem against any sample."
    what = ", ".join(f"{code.removeprefix('ingest.')} {n:,}" for code, n in
                     sorted(codes.items(), key=lambda kv: (-kv[1], kv[0])))
    return (f"{with_problems:,} of {total:,} samples were read with a problem recorded against them"
            f"{f' ({what})' if what else ''}: they are in the catalog, and Browse shows them with \"Ingest problems\" "
            "set to yes.")


def ingest_error_kinds(errors: Sequence[Mapping]) -> dict[str, int]:
    """Ingest errors counted by kind of reason: the file name and the details in parentheses left out."""
    kinds: dict[str, int] = {}
    for e in errors:
        reason = str(e.get("reason") or "")
        file = str(e.get("file") or "")
        if file and reason.startswith(file):
            reason = reason[len(file):].lstrip(": ")
        kind = re.split(r"\s\(|:\s", reason, maxsplit=1)[0].strip() or "(no reason)"
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


@dataclass(frozen=True)
class SkillProgress:
    skill: str
    samples: int
    flagged: int
    approved: int
    rejected: int
    fixed: int

    @property
    def reviewed(self) -> int:
        return self.approved + self.rejected + self.fixed

    @property
    def reviewed_share(self) -> float:
        return self.reviewed / self.samples if self.samples else 0.0


def skill_progress(totals: Mapping[str, int], flagged: Mapping[str, int], approved: Mapping[str, int],
                   rejected: Mapping[str, int], fixed: Mapping[str, int]) -> list[SkillProgress]:
    """One row per skill from per-skill counts (facet dicts), most samples first."""
    skills = sorted(totals, key=lambda s: (-totals[s], s))
    return [SkillProgress(s, totals[s], flagged.get(s, 0), approved.get(s, 0), rejected.get(s, 0), fixed.get(s, 0))
            for s in skills]


def has_progress(rows: Sequence[SkillProgress]) -> bool:
    """Whether any sample has been flagged or reviewed (else the progress chart would be empty bars)."""
    return any(r.flagged or r.reviewed for r in rows)


def progress_figure(rows: Sequence[SkillProgress], label: Callable[[str], str] = skill_label) -> go.Figure:
    """Per skill: share of samples approved / fixed / rejected, and flagged, as stacked horizontal bars."""
    rows = list(rows)[::-1]
    skills = [label(r.skill) for r in rows]
    fig = go.Figure()
    for name, colour, get in (("approved", "#54a24b", lambda r: r.approved), ("fixed", "#4c78a8", lambda r: r.fixed),
                              ("rejected", "#e45756", lambda r: r.rejected)):
        fig.add_trace(go.Bar(y=skills, x=[100 * get(r) / r.samples if r.samples else 0 for r in rows],
                             name=name, orientation="h", marker_color=colour,
                             customdata=[get(r) for r in rows], hovertemplate="%{customdata:,} (%{x:.1f}%)"))
    fig.add_trace(go.Scatter(y=skills, x=[100 * r.flagged / r.samples if r.samples else 0 for r in rows],
                             name="flagged", mode="markers", marker=dict(symbol="diamond", size=10, color="#f58518"),
                             customdata=[r.flagged for r in rows], hovertemplate="%{customdata:,} flagged (%{x:.1f}%)"))
    fig.update_layout(barmode="stack", title="Review progress per skill (% of its samples)",
                      height=max(240, 70 + 24 * len(rows)), margin=dict(l=10, r=10, t=40, b=10),
                      xaxis=dict(title="% of samples", range=[0, 100]), yaxis=dict(automargin=True))
    return fig
