"""Catalog counts by dataset, group, skill and source for the `stats` command (Overview counts through facets)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from curation.settings import Settings
from db.catalog import catalog


@dataclass
class CatalogStats:
    samples: int
    errors: int
    by_dataset: dict[str, int]
    by_group: dict[str, int]
    by_skill: dict[str, int]
    by_source: dict[str, int]

    def to_dict(self) -> dict:
        return asdict(self)


def _counts(con, column: str) -> dict[str, int]:
    rows = con.execute(
        f"SELECT coalesce({column}, '(none)') AS k, count(*) FROM samples GROUP BY k ORDER BY count(*) DESC, k"
    ).fetchall()
    return {str(k): int(n) for k, n in rows}


def catalog_stats(settings: Settings) -> CatalogStats:
    with catalog(settings.catalog_path) as con:
        return CatalogStats(
            samples=int(con.execute("SELECT count(*) FROM samples").fetchone()[0]),
            errors=int(con.execute("SELECT count(*) FROM ingest_errors").fetchone()[0]),
            by_dataset=_counts(con, "dataset"),
            by_group=_counts(con, "sample_group"),
            by_skill=_counts(con, "skill"),
            by_source=_counts(con, "source"),
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
    return "\n".join(lines)
