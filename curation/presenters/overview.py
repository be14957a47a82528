"""What the Overview (Home) page shows: counts per facet, the share of samples without a skill, ingest errors by
kind and review progress per skill."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import plotly.graph_objects as go

from curation.query.stats import CatalogStats


def counts_figure(counts: Mapping[str, int], title: str, top: int = 40, unit: str = "samples") -> go.Figure:
    """Horizontal bars, largest first (at most ``top`` values; the rest summed as 'other')."""
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(items) > top:
        items = items[: top - 1] + [("(other)", sum(v for _, v in items[top - 1:]))]
    labels = [k for k, _ in items][::-1]
    values = [v for _, v in items][::-1]
    fig = go.Figure(go.Bar(x=values, y=labels, orientation="h", text=[f"{v:,}" for v in values],
                           textposition="outside", cliponaxis=False, marker_color="#4c78a8"))
    fig.update_layout(title=title, height=max(220, 60 + 22 * len(items)), margin=dict(l=10, r=10, t=40, b=10),
                      xaxis_title=unit, yaxis=dict(automargin=True))
    return fig


def unknown_share_rows(stats: CatalogStats) -> list[dict[str, object]]:
    """One row per dataset, then per source, that holds samples of skill `unknown`: what, samples, unknown, share
    (largest share first). Empty when every sample has a skill."""
    rows = []
    for by, shares in (("dataset", stats.unknown_by_dataset), ("source", stats.unknown_by_source)):
        rows += [{"by": by, "value": k, "samples": int(s["samples"]), "unknown": int(s["unknown"]),
                  "share": float(s["share"])} for k, s in shares.items() if s["unknown"]]
    return rows


def unknown_share_text(stats: CatalogStats) -> str:
    """One line for the page: how many samples no skill rule recognises, and in which datasets."""
    unknown = sum(int(s["unknown"]) for s in stats.unknown_by_dataset.values())
    if not unknown:
        return f"Every one of the {stats.samples:,} samples has a skill."
    parts = [f"{k} {s['share']:.1%}" for k, s in stats.unknown_by_dataset.items() if s["unknown"]]
    return (f"{unknown:,} of {stats.samples:,} samples ({unknown / stats.samples:.1%}) have skill `unknown` "
            f"({', '.join(parts)}): no rule in taxonomy.yaml recognises their wording; edit the rules and run "
            "`python -m curation retag`.")


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


def progress_figure(rows: Sequence[SkillProgress]) -> go.Figure:
    """Per skill: share of samples approved / fixed / rejected, and flagged, as stacked horizontal bars."""
    rows = list(rows)[::-1]
    skills = [r.skill for r in rows]
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
