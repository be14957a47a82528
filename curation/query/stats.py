"""Catalog counts by dataset, group, skill and source, and the share of samples no skill rule recognises, for the
`stats` command (Overview counts through facets)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from curation.settings import Settings
from db.catalog import catalog

UNKNOWN_SKILL = "unknown"


@dataclass
class CatalogStats:
    samples: int
    errors: int
    by_dataset: dict[str, int]
    by_group: dict[str, int]
    by_skill: dict[str, int]
    by_source: dict[str, int]
    # per dataset / source: {"samples": n, "unknown": samples whose skill is unknown, "share": unknown / n}
    unknown_by_dataset: dict[str, dict[str, float]]
    unknown_by_source: dict[str, dict[str, float]]

    def to_dict(self) -> dict:
        return asdict(self)


def _counts(con, column: str) -> dict[str, int]:
    rows = con.execute(
        f"SELECT coalesce({column}, '(none)') AS k, count(*) FROM samples GROUP BY k ORDER BY count(*) DESC, k"
    ).fetchall()
    return {str(k): int(n) for k, n in rows}


def _unknown(con, column: str) -> dict[str, dict[str, float]]:
    """Samples and unknown-skill samples per value of ``column``, the largest unknown share first."""
    rows = con.execute(
        f"SELECT coalesce({column}, '(none)') AS k, count(*) AS n, count(*) FILTER (skill = ?) AS u FROM samples "
        "GROUP BY k ORDER BY u / n DESC, n DESC, k", [UNKNOWN_SKILL]
    ).fetchall()
    return {str(k): {"samples": int(n), "unknown": int(u), "share": round(u / n, 4)} for k, n, u in rows}


def catalog_stats(settings: Settings) -> CatalogStats:
    with catalog(settings.catalog_path) as con:
        return CatalogStats(
            samples=int(con.execute("SELECT count(*) FROM samples").fetchone()[0]),
            errors=int(con.execute("SELECT count(*) FROM ingest_errors").fetchone()[0]),
            by_dataset=_counts(con, "dataset"),
            by_group=_counts(con, "sample_group"),
            by_skill=_counts(con, "skill"),
            by_source=_counts(con, "source"),
            unknown_by_dataset=_unknown(con, "dataset"),
            unknown_by_source=_unknown(con, "source"),
        )


def format_stats(stats: CatalogStats) -> str:
    lines = [f"samples: {stats.samples:,}   ingest errors: {stats.errors:,}"]
    for title, counts in (
        ("dataset", stats.by_dataset),
        ("group", stats.by_group),
        ("skill", stats.by_skill),
        ("source", stats.by_source),
    ):
        lines.append(f"\nby {title}:")
        width = max((len(k) for k in counts), default=0)
        lines.extend(f"  {k.ljust(width)}  {v:>10,}" for k, v in counts.items())
    for title, shares in (("dataset", stats.unknown_by_dataset), ("source", stats.unknown_by_source)):
        lines.append(f"\nskill unknown, by {title} (no rule in taxonomy.yaml recognises them):")
        width = max((len(k) for k in shares), default=0)
        lines.extend(f"  {k.ljust(width)}  {int(s['unknown']):>10,} of {int(s['samples']):>10,}  {s['share']:>7.2%}"
                     for k, s in shares.items())
    return "\n".join(lines)
