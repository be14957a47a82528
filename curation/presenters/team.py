"""What the Team and Review Queue pages show, without Streamlit: roles, a queue's samples from a Browse link, queues
with their progress, reservations, verdicts side by side, agreement tables and the alpha-per-skill chart."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import plotly.graph_objects as go

from curation.presenters.overview import skill_label
from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from curation.review.agreement import GroupAgreement, ReviewerAgreement
from curation.review.assignment import QueueProgress, QueueRecord, QueueVerdict
from curation.review.roles import RoleRecord

VERDICT_WORDS = {"approve": "approved", "reject": "rejected", "fix": "fixed"}


def queue_samples(query: CatalogQuery, spec: FilterSpec, batch_rows: int = 50_000) -> Iterator[tuple[str, str]]:
    """Every (sample_id, skill) the filter matches, streamed from the catalog in Arrow batches (a queue's items)."""
    for batch in query.iter_batches(spec, columns=["sample_id", "skill"], batch_rows=batch_rows):
        yield from zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True)


def role_rows(records: Sequence[RoleRecord]) -> list[dict[str, Any]]:
    """The roles table: who, their role, who granted it and when."""
    return [{"who": r.who, "role": r.role, "granted by": r.granted_by, "granted at": _utc(r.granted_at)}
            for r in records]


@dataclass(frozen=True)
class QueueRow:
    """One queue as the Team page lists it."""

    queue_id: int
    name: str
    overlap: int
    blind: bool
    samples: int
    done: int
    waiting: int
    conflicts: int
    adjudicated: int
    created_by: str

    @property
    def share_done(self) -> float:
        """Settled items (agreed or adjudicated) per item, for the progress bar."""
        return (self.done / self.samples) if self.samples else 0.0

    @property
    def progress_text(self) -> str:
        conflicts = f" · {self.conflicts:,} in conflict" if self.conflicts else ""
        return (f"{self.done:,} of {self.samples:,} samples settled · {self.waiting:,} waiting for verdicts"
                f"{conflicts} · overlap {self.overlap}{' · blind' if self.blind else ''}")


def queue_row(q: QueueRecord, p: QueueProgress) -> QueueRow:
    return QueueRow(q.id, q.name, q.overlap, q.blind, p.n_samples, p.n_done, p.n_waiting, p.n_conflicts,
                    p.n_adjudicated, q.created_by)


def reviewer_rows(p: QueueProgress) -> list[dict[str, Any]]:
    """Verdicts submitted per person, most first."""
    return [{"reviewer": who, "verdicts": n} for who, n in sorted(p.per_reviewer.items(), key=lambda kv: (-kv[1],
                                                                                                          kv[0]))]


def conflict_tag(queue_id: int, sample_id: str) -> str:
    """A short, stable name for one conflict's widgets: a button stays its sample's when the list changes between
    runs (another admin settled one), whatever characters the sample id holds."""
    return hashlib.sha1(f"{queue_id}\0{sample_id}".encode()).hexdigest()[:12]


def reservation_text(expires_at: datetime, now: datetime | None = None) -> str:
    """When a reservation runs out, in UTC and in minutes from now."""
    now = now or datetime.now(UTC)
    expires_at = _aware(expires_at)
    left = (expires_at - now).total_seconds()
    if left <= 0:
        return (f"Your reservation ran out at {expires_at:%H:%M} UTC: submit while the sample still has room, or "
                "take the next one.")
    minutes = int(left // 60)
    return f"Reserved for you until {expires_at:%H:%M} UTC ({minutes} min left)" if minutes else \
        f"Reserved for you until {expires_at:%H:%M:%S} UTC (under a minute left)"


def verdict_rows(verdicts: Sequence[QueueVerdict]) -> list[dict[str, Any]]:
    """Queue verdicts side by side: who, what, their note, when; the fixed text where someone fixed the sample."""
    fixed = any(v.fixed_answer or v.fixed_reasoning for v in verdicts)
    return [{"reviewer": v.who, "verdict": v.verdict, "note": v.note or "",
             **({"fixed answer": v.fixed_answer or "", "fixed reasoning": v.fixed_reasoning or ""} if fixed else {}),
             "submitted": _utc(v.submitted_at)} for v in verdicts]


def agreement_rows(rows: Sequence[GroupAgreement | ReviewerAgreement], group: str,
                   label: Callable[[str], str] = str) -> list[dict[str, Any]]:
    """An agreement table (per skill: alpha; per reviewer: kappa) with ``group`` as its first column's name (each
    group shown by ``label``, e.g. skill_label as the chart does); a score too few items support stays empty (None),
    beside its counts."""
    return [{group: label(r.group), "items": r.n_items, "verdicts": r.n_verdicts, "agreement": r.percent_agreement,
             **({"Krippendorff's alpha": r.alpha} if isinstance(r, GroupAgreement) else {"Cohen's kappa": r.kappa})}
            for r in rows]


def agreement_figure(rows: Sequence[GroupAgreement], label: Callable[[str], str] = skill_label) -> go.Figure:
    """Krippendorff's alpha per skill as horizontal bars (-1..1); a skill with too few shared items has no bar and
    says so."""
    rows = sorted(rows, key=lambda r: r.group, reverse=True)
    names = [label(r.group) for r in rows]
    values = [r.alpha if r.alpha is not None else 0.0 for r in rows]
    text = [f"{r.alpha:.2f} · {r.n_items:,} items" if r.alpha is not None else f"too few items ({r.n_items:,})"
            for r in rows]
    colours = ["#4c78a8" if r.alpha is not None else "#bbbbbb" for r in rows]
    fig = go.Figure(go.Bar(x=values, y=names, orientation="h", text=text, textposition="outside", cliponaxis=False,
                           marker_color=colours, customdata=[r.group for r in rows],
                           hovertemplate="%{y}: %{text}<extra></extra>"))
    fig.update_layout(title="Krippendorff's alpha per skill (1 = full agreement, 0 = chance)",
                      height=max(220, 80 + 26 * len(rows)), margin=dict(l=10, r=10, t=40, b=10),
                      xaxis=dict(range=[-1, 1.25], title="alpha"), yaxis=dict(automargin=True), dragmode=False)
    fig.add_vline(x=0, line_width=1, line_color="#888888")  # chance: a bar left of it is worse than guessing
    return fig


def _aware(at: datetime) -> datetime:
    """The state database hands back naive UTC on SQLite."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _utc(at: datetime) -> str:
    return f"{_aware(at):%Y-%m-%d %H:%M} UTC"
