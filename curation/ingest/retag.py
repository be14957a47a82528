"""Retag: every sample's skill derived anew from taxonomy.yaml over the whole catalog, without re-ingesting."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from curation.settings import Settings
from curation.vst.taxonomy import Taxonomy, load_taxonomy
from db.catalog import open_for_writing

# catalog_meta keys: how many times the skills were re-derived (part of the catalog's version, so caches keyed on
# it, like the facet counts, see the new skills) and the rules that last derived them.
SKILLS_REVISION = "skills_revision"
SKILLS_TAXONOMY = "skills_taxonomy"


@dataclass
class RetagSummary:
    samples: int
    changes: list[tuple[str, int, int]] = field(default_factory=list)  # (skill, samples before, after), changed only
    taxonomy: str = ""  # digest of the rules applied
    in_place: bool = True  # False: written to a copy swapped in at the end (readers held the catalog)
    seconds: float = 0.0

    @property
    def moved(self) -> int:
        """Samples that left a skill (at least this many changed skill)."""
        return sum(before - after for _, before, after in self.changes if before > after)


def retag(settings: Settings, taxonomy: Taxonomy | None = None) -> RetagSummary:
    """Apply the taxonomy's rules to every sample in one UPDATE (the rules run once per row).

    Writes like ingest (db.catalog.open_for_writing): under the ingest lock, in place when no reader holds the
    catalog, else into a copy swapped in at the end, so a running app keeps its catalog until it reopens. One
    transaction: a retag that fails or is killed leaves every skill as it was.
    """
    started = time.perf_counter()
    tax = taxonomy or load_taxonomy()
    with open_for_writing(settings.catalog_path) as target:
        con = target.con
        con.execute("SET enable_progress_bar = false")
        con.execute("BEGIN TRANSACTION")
        try:
            before = _skill_counts(con)
            # Every row is written: telling the changed ones apart first (a join on the row id) costs more than the
            # rules themselves, while writing a column DuckDB holds compressed is cheap.
            _update_skills(con, tax.skill_sql())
            after = _skill_counts(con)
            revision = con.execute("SELECT TRY_CAST(value AS INTEGER) FROM catalog_meta WHERE key = ?",
                                   [SKILLS_REVISION]).fetchone()
            con.executemany("INSERT OR REPLACE INTO catalog_meta VALUES (?, ?)",
                            [[SKILLS_REVISION, str(((revision or [0])[0] or 0) + 1)], [SKILLS_TAXONOMY, tax.digest]])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("CHECKPOINT")
        in_place = target.in_place
    changes = sorted(((s, before.get(s, 0), after.get(s, 0)) for s in before.keys() | after.keys()
                      if before.get(s, 0) != after.get(s, 0)), key=lambda c: (-abs(c[2] - c[1]), c[0]))
    return RetagSummary(samples=sum(after.values()), changes=changes, taxonomy=tax.digest, in_place=in_place,
                        seconds=time.perf_counter() - started)


def _skill_counts(con) -> dict[str, int]:
    return {skill: int(n) for skill, n in con.execute("SELECT skill, count(*) FROM samples GROUP BY skill").fetchall()}


def _update_skills(con, skill_sql: str) -> None:
    con.execute(f"UPDATE samples SET skill = {skill_sql}")
