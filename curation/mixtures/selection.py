"""A recipe's deterministic selection: which catalog rows each component takes, and why the others were left out.

How rows are picked. Every sample gets a rank, the first 64 bits of ``md5(f"{seed}:{sample_id}")`` (the same in
Python, :func:`sample_rank`, and in DuckDB SQL), i.e. a uniform pseudo-random number that depends on nothing but the
seed and the id. A component keeps, from its pool (rows matching its filter, minus exclusions, minus rows an
earlier component took), either

- the ``n`` rows of smallest rank (``count``, or ``weight`` x ``total``: bottom-n sampling), or
- every row whose rank / 2^64 is below ``fraction`` (threshold sampling).

What that guarantees:

1. Same recipe + same catalog -> the same rows (and, with the writers' fixed settings, the same bytes).
2. Threshold components are stable under appends: adding rows never removes an earlier pick nor adds an old row;
   each new row joins with probability ``fraction``.
3. Bottom-n components change minimally under appends: if k of the new rows rank below the old n-th pick, exactly
   those k come in and the k highest-ranked old picks go out; every other old pick stays and no old row that was
   left out comes in. Expected churn is n x (added / new pool size).
4. Removing a row from a pool (a new flag, a failed check) replaces it by the next row in rank order; the other
   picks stay. A larger ``n`` gives a superset of a smaller one.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.mixtures.recipe import Component, Recipe
from curation.query.catalog import CatalogQuery
from curation.query.results import latest_results_sql
from curation.query.severity import ERROR, problem_severity_sql
from curation.review.reviews import review_for
from curation.review.state_tables import state_table
from curation.vst.vocabulary import ASSISTANT_ROLES, THINK_CLOSE, THINK_OPEN, sql_list
from exports.base import unexportable_media_sql
from exports.pipeline import FIXES_SCHEMA, SELECTION_SCHEMA

ERROR_REASON = "error:"  # + the check (ingest.<problem> for a problem ingest recorded): rows broken for training
LEFT_OUT_LISTED = 10_000  # the manifest lists at most this many left-out samples (and says how many there were)
MAX_PASSES = 2  # a mixture writes at most this many times the catalog's samples (up-sampling; bench.mixture_scale)


def sample_rank(seed: int, sample_id: str) -> int:
    """The rank of a sample under a seed: first 64 bits of md5("seed:sample_id") as an unsigned integer."""
    return int(hashlib.md5(f"{seed}:{sample_id}".encode()).hexdigest()[:16], 16)


def rank_sql(seed: int, column: str = "s.sample_id") -> str:
    """The same rank in DuckDB SQL (md5 is stable across DuckDB versions, unlike its hash())."""
    return f"('0x' || substr(md5('{int(seed)}:' || {column}), 1, 16))::UBIGINT"


@dataclass
class ComponentReport:
    """What one component asked for, what its pool held and what it got (the dry run's and manifest's table)."""

    name: str
    asked: int | None  # None for fraction components
    fraction: float | None
    matching: int  # rows matching the filter
    excluded: int  # of those, removed by an exclusion
    taken_earlier: int  # of those, already picked by an earlier component
    available: int  # what was left to pick from
    selected: int  # rows written for it (copies included)
    unique: int  # distinct samples among them
    shortfall: int  # asked - selected (0 when met)
    upsampled: int  # extra copies added


@dataclass
class Selection:
    """The rows a recipe picks, and why the others were not (the manifest's "selection" part)."""

    recipe: Recipe
    table: pa.Table  # exports.pipeline.SELECTION_SCHEMA, in output order
    fixes: pa.Table  # exports.pipeline.FIXES_SCHEMA
    components: list[ComponentReport]
    excluded: dict[str, int]  # reason -> candidates excluded by it (a row may have several reasons)
    excluded_total: int
    left_out: list[dict[str, str]]  # samples left out and why (missing media)
    fixes_applied: list[dict[str, Any]]
    downgraded: list[str]
    counts: dict[str, dict[str, int]]  # by_component / by_skill / by_source / by_group / by_dataset (rows)
    warnings: list[str]
    catalog_version: str

    @property
    def rows(self) -> int:
        """Rows written, copies included (one table row each; the same without the table)."""
        return sum(c.selected for c in self.components)

    def without_rows(self) -> Selection:
        """This selection's counts and reports without its row tables (what a page keeps between reruns: the
        table of a 4.1M-row selection is ~300 MB, held once per browser session otherwise)."""
        return replace(self, table=self.table.schema.empty_table(), fixes=self.fixes.schema.empty_table())

    def shortfalls(self) -> list[str]:
        return [f"component {c.name!r}: asked {c.asked}, only {c.available} available, selected {c.selected}"
                + (f" ({c.upsampled} up-sampled copies)" if c.upsampled else "")
                for c in self.components if c.shortfall > 0 or c.upsampled]

    def summary(self) -> dict[str, Any]:
        """JSON-ready description of the selection (the manifest stores it)."""
        return {
            "rows": self.rows,
            "unique_samples": sum(c.unique for c in self.components),  # components never share a sample
            "components": [asdict(c) for c in self.components],
            "counts": self.counts,
            "excluded": {"total": self.excluded_total, "by_reason": self.excluded},
            "left_out": self.left_out[:LEFT_OUT_LISTED],
            "left_out_total": len(self.left_out),
            "fixes": {"applied": len(self.fixes_applied), "samples": self.fixes_applied},
            "downgraded": {"count": len(self.downgraded), "sample_ids": self.downgraded},
            "shortfalls": self.shortfalls(),
            "warnings": self.warnings,
        }


class _Session:
    """The Arrow tables the selection's queries read, registered on a fresh catalog cursor for each query."""

    def __init__(self, query: CatalogQuery):
        self.query = query
        self.tables: dict[str, pa.Table] = {}

    def register(self, name: str, table: pa.Table) -> None:
        self.tables[name] = table

    def run(self, sql: str, params: list | None = None, extra: dict[str, pa.Table] | None = None):
        return self.query.cursor({**self.tables, **(extra or {})}).execute(sql, params or [])

    def arrow(self, sql: str, params: list | None = None, extra: dict[str, pa.Table] | None = None) -> pa.Table:
        cur = self.query.cursor({**self.tables, **(extra or {})})
        return cur.sql(sql, params=params or []).to_arrow_table()


def _check_match_sql(patterns: list[str], column: str = "check_name") -> tuple[str, list]:
    """SQL matching check names: exact names, or 'family.*' / 'family*' patterns."""
    clauses, params = [], []
    for p in patterns:
        if p.endswith("*"):
            clauses.append(f"starts_with({column}, ?)")
            params.append(p.rstrip("*"))
        else:
            clauses.append(f"{column} = ?")
            params.append(p)
    return ("(" + " OR ".join(clauses) + ")") if clauses else "FALSE", params


def select_mixture(recipe: Recipe, query: CatalogQuery, state_db=None) -> Selection:
    """Pick the recipe's rows from the catalog (no files written: this is also the dry run)."""
    warnings: list[str] = []
    ses = _Session(query)
    needs_state = recipe.exclude.flagged or recipe.exclude.rejected or recipe.apply_fixes
    if needs_state and state_db is None:
        state_db = query.state_db()
    trace_policy = recipe.reasoning_failures != "keep" and bool(recipe.reasoning_checks)

    # 1. each component's pool: one scan of the rows matching its filter, with what selection needs. The rank
    # (an md5 per row) is computed only where an order or a threshold needs it, the media problems only for the
    # rows that have problems: a component taking its whole pool costs a scan of ids and positions.
    # Media ingest recorded as missing, undecodable or outside the media roots: the same test the export applies.
    media_problem = unexportable_media_sql("s.media")
    rank = rank_sql(recipe.seed, "sample_id")
    columns = "s.sample_id, s.rowid AS pos"
    if trace_policy:
        columns += """, coalesce(s.has_reasoning, false) AS has_reasoning,
        nullif(trim(coalesce(s.answer, '')), '') IS NOT NULL AND NOT contains(coalesce(s.answer, ''), 'think>')
          AS answer_ok"""
    if recipe.exclude.exact_duplicates:
        columns += ", s.content_hash"
    scans: list[pa.Table] = []
    problems: list[pa.Table] = []  # (sample_id, media_problem) of the pool rows whose media cannot be had
    for comp in recipe.components:
        compiled = query.compile(comp.filter)
        warnings.extend(f"component {comp.name!r}: {w}" for w in compiled.warnings)
        cur = query.cursor(compiled.tables)
        scans.append(cur.sql(f"SELECT {columns} FROM samples s WHERE {compiled.where}",
                             params=compiled.params).to_arrow_table())
        cur = query.cursor(compiled.tables)
        problems.append(cur.sql(f"SELECT * FROM (SELECT s.sample_id, {media_problem} AS media_problem FROM samples s "
                                f"WHERE ({compiled.where}) AND len(s.problems) > 0) WHERE media_problem IS NOT NULL",
                                params=compiled.params).to_arrow_table())

    # 2. candidates: rows in any pool (a sample in two pools is there twice: queries that care say DISTINCT)
    ses.register("cand", scans[0] if len(scans) == 1 else pa.concat_tables(scans))
    ses.register("probs", problems[0] if len(problems) == 1 else pa.concat_tables(problems))
    unique_cand = "(SELECT DISTINCT ON (sample_id) * FROM cand)" if len(scans) > 1 else "cand"
    # Catalog rows in more than one pool: only they can have been taken by an earlier component (a sample_id
    # names one catalog row: ingest makes it unique, DESIGN.md "Stable sample identity").
    shared = np.array([], np.int64)
    if len(scans) > 1:
        shared = np.flatnonzero(np.bincount(np.concatenate([sc.column("pos").to_numpy() for sc in scans])) > 1)

    # 3. exclusions, each (sample_id, reason)
    excl_parts: list[pa.Table] = []
    results_rel = latest_results_sql(query.settings.results_dir)

    def add(sql: str, params: list | None = None) -> None:
        part = ses.arrow(sql, params)
        if part.num_rows:
            excl_parts.append(part.select(["sample_id", "reason"]).cast(
                pa.schema([("sample_id", pa.string()), ("reason", pa.string())])))

    def failing(patterns: list[str]) -> tuple[str, list]:
        match, params = _check_match_sql(patterns)
        return (f"SELECT DISTINCT r.sample_id, r.check_name FROM {results_rel} r JOIN cand USING (sample_id) "
                f"WHERE NOT r.passed AND {match}"), params

    named_checks = [*recipe.exclude.failed_checks]
    if trace_policy:
        named_checks += recipe.reasoning_checks + recipe.answer_checks
    if recipe.exclude.near_duplicates:
        named_checks.append(recipe.exclude.near_duplicate_check)
    if named_checks:
        match, params = _check_match_sql(named_checks)
        present = {r[0] for r in ses.run(f"SELECT DISTINCT check_name FROM {results_rel} WHERE {match}",
                                         params).fetchall()}
        for name in dict.fromkeys(named_checks):
            if not any(p == name or (name.endswith("*") and p.startswith(name.rstrip("*"))) for p in present):
                warnings.append(f"no results for check {name!r}: run it first (nothing was excluded by it)")

    if recipe.exclude.flagged or recipe.exclude.rejected:
        ses.register("st", state_table(state_db))
        if recipe.exclude.flagged:
            reasons = recipe.exclude.flag_reasons
            cond = "AND list_has_any(flag_reasons, ?::VARCHAR[])" if reasons else ""
            add(f"SELECT sample_id, 'flagged' AS reason FROM st JOIN cand USING (sample_id) WHERE flagged {cond}",
                [reasons] if reasons else [])
        if recipe.exclude.rejected:
            add("SELECT sample_id, 'rejected' AS reason FROM st JOIN cand USING (sample_id) WHERE verdict = 'reject'")
    if recipe.exclude.failed_checks:
        sql, params = failing(recipe.exclude.failed_checks)
        add(f"SELECT sample_id, 'failed_check:' || check_name AS reason FROM ({sql})", params)
    add("SELECT DISTINCT sample_id, 'missing_media' AS reason FROM probs")
    if not recipe.include_error_rows:
        # Failures of error severity break training (the trainers' loaders reject the row, some the whole dataset):
        # left out unless the recipe opts in. Media problems are 'missing_media' above, with or without opting in.
        add(f"SELECT DISTINCT r.sample_id, '{ERROR_REASON}' || r.check_name AS reason FROM {results_rel} r "
            f"JOIN cand USING (sample_id) WHERE NOT r.passed AND r.severity = '{ERROR}'")
        # The few rows with problems first, then joined with the candidates (millions): the small side is hashed.
        add(f"""SELECT DISTINCT e.sample_id, '{ERROR_REASON}ingest.' || e.code AS reason FROM (
                 SELECT sample_id, code FROM (
                   SELECT s.sample_id, s.kind, unnest(s.problems).code AS code FROM samples s WHERE len(s.problems) > 0)
                 WHERE NOT starts_with(code, 'media_') AND {problem_severity_sql('code', 'kind')} = '{ERROR}') e
               JOIN cand USING (sample_id)""")

    downgrade_ids: list[str] = []
    if trace_policy:
        rsql, rparams = failing(recipe.reasoning_checks)
        asql, aparams = failing(recipe.answer_checks) if recipe.answer_checks else ("SELECT NULL, NULL WHERE FALSE", [])
        trace = ses.arrow(f"""
            SELECT c.sample_id, c.answer_ok, c.sample_id IN (SELECT sample_id FROM ({asql}) a) AS answer_failed
            FROM {unique_cand} c WHERE c.has_reasoning AND c.sample_id IN (SELECT sample_id FROM ({rsql}) r)""",
                          aparams + rparams)
        ses.register("trace", trace)
        if recipe.reasoning_failures == "drop":
            add("SELECT sample_id, 'reasoning_failed' AS reason FROM trace")
        else:
            add("SELECT sample_id, CASE WHEN answer_failed THEN 'reasoning_failed_answer_wrong' "
                "ELSE 'reasoning_unrecoverable' END AS reason FROM trace WHERE answer_failed OR NOT answer_ok")
            downgrade_ids = [r[0] for r in ses.run(
                "SELECT DISTINCT sample_id FROM trace WHERE NOT answer_failed AND answer_ok ORDER BY sample_id"
            ).fetchall()]

    def excluded_so_far() -> pa.Table:
        return pa.concat_tables(excl_parts) if excl_parts else pa.table(
            {"sample_id": pa.array([], pa.string()), "reason": pa.array([], pa.string())})

    if recipe.exclude.exact_duplicates:
        ses.register("excl", excluded_so_far())
        # Only hashes held by more than one candidate can exclude anything: the others need no rank.
        add(f"""WITH c AS (
                 SELECT sample_id, content_hash FROM {unique_cand}
                 WHERE content_hash IS NOT NULL AND sample_id NOT IN (SELECT sample_id FROM excl))
               SELECT sample_id, 'exact_duplicate' AS reason FROM (
                 SELECT sample_id, row_number() OVER (PARTITION BY content_hash ORDER BY {rank}, sample_id) AS k
                 FROM c WHERE content_hash IN (SELECT content_hash FROM c GROUP BY content_hash HAVING count(*) > 1))
               WHERE k > 1""")
    if recipe.exclude.near_duplicates:
        clusters = _near_duplicate_clusters(ses, results_rel, recipe.exclude.near_duplicate_check)
        ses.register("clusters", clusters)
        ses.register("excl", excluded_so_far())
        add(f"""SELECT sample_id, 'near_duplicate' AS reason FROM (
                 SELECT k.sample_id, k.lone,
                        row_number() OVER (PARTITION BY k.cluster ORDER BY {rank_sql(recipe.seed, "c.sample_id")},
                                           c.sample_id) AS n
                 FROM clusters k JOIN {unique_cand} c USING (sample_id)
                 WHERE k.sample_id NOT IN (SELECT sample_id FROM excl))
               WHERE n > 1 OR lone""")
    excl = excluded_so_far()
    ses.register("excl", excl)
    by_reason: dict[str, int] = {}
    excluded_total = 0
    left_out: list[dict[str, str]] = []
    if excl.num_rows:
        by_reason = {r: int(n) for r, n in ses.run(
            "SELECT reason, count(DISTINCT sample_id) FROM excl GROUP BY reason ORDER BY reason").fetchall()}
        excluded_total = int(ses.run("SELECT count(DISTINCT sample_id) FROM excl").fetchone()[0])
        left_out = [{"sample_id": sid, "reason": f"media not exportable: {why}"} for sid, why in ses.run(
            "SELECT DISTINCT sample_id, media_problem FROM probs ORDER BY sample_id").fetchall()]

    # 4. components in order, each from what is left of its pool
    reports: list[ComponentReport] = []
    picks: list[pa.Table] = []
    taken = pa.table({"sample_id": pa.array([], pa.string())})
    for comp, target, scan in zip(recipe.components, recipe.targets(), scans):
        ses.register("taken", taken)
        ses.register("pool", scan)
        excluded = 0
        if excl.num_rows:
            excluded = ses.run("SELECT count(*) FROM pool WHERE sample_id IN (SELECT sample_id FROM excl)"
                               ).fetchone()[0]
        conds = [c for c, n in (("sample_id NOT IN (SELECT sample_id FROM excl)", excl.num_rows),
                                ("sample_id NOT IN (SELECT sample_id FROM taken)", taken.num_rows)) if n]
        where = " AND ".join(conds) or "TRUE"
        avail = (ses.arrow(f"SELECT sample_id, pos FROM pool WHERE {where}") if conds
                 else scan.select(["sample_id", "pos"]))
        available = avail.num_rows
        want = int(target or 0)
        if comp.fraction is not None:
            # A threshold needs no order: every row under it is taken (all of them at 1, no rank needed).
            picked = avail if comp.fraction >= 1 else ses.arrow(
                f"SELECT sample_id, pos FROM pool WHERE {where} AND {rank} < {int(comp.fraction * 2**64)}::UBIGINT")
        elif available > want or (comp.upsample and 0 < available < want):
            # Bottom-n by rank (up-sampling repeats the best-ranked rows first: it needs the order too).
            picked = ses.arrow(f"SELECT sample_id, pos FROM pool WHERE {where} ORDER BY {rank}, sample_id "
                               f"LIMIT {want}") if want else avail.slice(0, 0)
        else:
            picked = avail  # the whole pool is asked for: no order needed
        earlier = scan.num_rows - excluded - available
        copies = _copies(picked.num_rows, target, comp) if comp.fraction is None else None
        selected = int(copies.sum()) if copies is not None else picked.num_rows
        shortfall = max((target or 0) - selected, 0) if comp.fraction is None else 0
        reports.append(ComponentReport(comp.name, target, comp.fraction, scan.num_rows, int(excluded), int(earlier),
                                       int(available), selected, picked.num_rows, shortfall,
                                       selected - picked.num_rows))
        name = pa.DictionaryArray.from_arrays(pa.array(np.zeros(picked.num_rows, np.int32)),
                                              pa.array([comp.name], pa.string()))
        picks.append(picked.append_column("component", name).append_column(
            "copies", pa.array(copies if copies is not None else np.ones(picked.num_rows, np.int32))))
        if len(shared):
            taken = pa.concat_tables([taken, picked.filter(pc.is_in(picked.column("pos"), value_set=pa.array(shared)))
                                      .select(["sample_id"])])
    ses.tables.pop("pool", None)
    del scans
    _check_size(recipe, reports, int(ses.run("SELECT count(*) FROM samples").fetchone()[0]))

    # 5. the output table: one row per copy; first copies in catalog row order (ingest order: shard by shard,
    # row by row, which is also the order media are read in), then the up-sampled copies.
    picked_all = pa.concat_tables(picks).unify_dictionaries().combine_chunks()
    table = _output_table(picked_all, downgrade_ids)
    ses.register("sel", table)
    tally: dict[str, dict[str, int]] = {n: defaultdict(int) for n in
                                        ("by_component", "by_skill", "by_source", "by_group", "by_dataset")}
    for *keys, n in _tally_rows(ses, picked_all):
        for name, key in zip(tally, keys):
            tally[name][str(key)] += int(n)
    counts = {name: dict(sorted(c.items())) for name, c in tally.items()}
    downgraded = sorted(set(table.filter(table.column("downgrade")).column("sample_id").to_pylist()))

    # 6. reviewed fixes of the selected rows
    fixes, applied = (_fixes(ses, state_db) if recipe.apply_fixes
                      else (FIXES_SCHEMA.empty_table(), []))
    return Selection(recipe, table, fixes, reports, dict(sorted(by_reason.items())), excluded_total, left_out,
                     applied, downgraded, counts, warnings, query.version())


def _check_size(recipe: Recipe, reports: list[ComponentReport], catalog_rows: int) -> None:
    """A mixture writes at most MAX_PASSES times the catalog's samples: only up-sampling writes a sample more than
    once, and a recipe asking for millions of copies would otherwise fill the memory before anything is written."""
    rows, limit = sum(c.selected for c in reports), MAX_PASSES * catalog_rows
    if rows <= limit:
        return
    copied = ", ".join(f"{c.name!r} {c.selected:,} rows from {c.unique:,} samples" for c in reports if c.upsampled)
    raise ValueError(
        f"recipe {recipe.name!r} would write {rows:,} rows ({copied}): more than {MAX_PASSES} times the "
        f"{catalog_rows:,} samples the catalog holds, the most a mixture may repeat it. Lower `total` (or the "
        f"up-sampled components' count or max_repeat) so that it asks for at most {limit:,} rows.")


def _tally_rows(ses: _Session, picks: pa.Table) -> list[tuple]:
    """(component, skill, source, group, dataset, rows) of the picks (one row per sample, with its copies).

    Read with a positional join against a mask over the catalog (no hash join) when the catalog's rowids are in
    scan order, as they are in a table that is only appended to and deleted from; else joined by rowid.
    """
    keys = "s.skill, coalesce(s.source, '(none)'), s.sample_group, s.dataset"
    rowids = ses.arrow("SELECT rowid FROM samples").column(0).to_numpy()
    pos = picks.column("pos").to_numpy()
    dense = len(rowids) and rowids[0] == 0 and rowids[-1] == len(rowids) - 1  # no rows deleted: rowid = position
    at = pos if dense else np.searchsorted(rowids, pos)
    if not (len(rowids) and np.all(np.diff(rowids) > 0) and np.all(at < len(rowids))
            and np.array_equal(rowids[np.minimum(at, len(rowids) - 1)], pos)):
        return ses.run(f"SELECT p.component, {keys}, sum(p.copies) FROM p JOIN samples s ON s.rowid = p.pos "
                       "GROUP BY ALL", extra={"p": picks.select(["pos", "component", "copies"])}).fetchall()
    component = picks.column("component").combine_chunks()
    code = np.full(len(rowids), -1, np.int32)
    code[at] = component.indices.to_numpy(zero_copy_only=False)
    copies = np.zeros(len(rowids), np.int64)
    copies[at] = picks.column("copies").to_numpy()
    mask = pa.table({"c": pa.array(code, mask=code < 0), "n": copies})
    names = component.dictionary.to_pylist()
    rows = ses.run(f"SELECT m.c, {keys}, sum(m.n) FROM samples s POSITIONAL JOIN m WHERE m.c IS NOT NULL "
                   "GROUP BY ALL", extra={"m": mask}).fetchall()
    return [(names[c], *rest) for c, *rest in rows]


def _output_table(picks: pa.Table, downgrade_ids: list[str]) -> pa.Table:
    """exports.pipeline.SELECTION_SCHEMA rows: first copies by catalog position, then later copies by (position,
    copy); ``ord`` numbers them in that order."""
    pos = picks.column("pos").to_numpy()
    copies = picks.column("copies").to_numpy()
    order = np.argsort(pos, kind="stable")
    in_order = bool(np.all(order[1:] > order[:-1]))  # one component's picks come in catalog order already
    rows = [(picks if in_order else picks.take(pa.array(order))).append_column(
        "copy", pa.array(np.ones(len(order), np.int32)))]
    later_copies = bool(len(copies) and copies.max() > 1)
    if later_copies:
        extra = np.flatnonzero(copies > 1)
        counts = copies[extra] - 1
        rep = np.repeat(extra, counts)  # row j repeated copies-1 times ...
        starts = np.repeat(np.cumsum(counts) - counts, counts)  # ... as copies 2..c (no Python loop over rows)
        nth = (np.arange(len(rep)) - starts + 2).astype(np.int32)
        del starts
        later = np.lexsort((nth, pos[rep]))
        rows.append(picks.take(pa.array(rep[later])).append_column("copy", pa.array(nth[later], pa.int32())))
    table = pa.concat_tables(rows)
    sid, copy = table.column("sample_id"), table.column("copy")
    out_id = sid if not later_copies else pc.if_else(
        pc.equal(copy, 1), sid, pc.binary_join_element_wise(sid, pc.cast(copy, pa.string()), "~"))
    downgrade = (pc.is_in(sid, value_set=pa.array(downgrade_ids, pa.string())) if downgrade_ids
                 else pa.array(np.zeros(table.num_rows, bool)))
    return pa.table({
        "ord": pa.array(np.arange(table.num_rows, dtype=np.int64)),
        "sample_id": sid, "out_id": out_id, "copy": copy, "component": table.column("component"),
        "downgrade": downgrade, "pos": table.column("pos"),
    }).cast(SELECTION_SCHEMA)


def _copies(n_picked: int, target: int | None, comp: Component) -> np.ndarray | None:
    """Copies per picked row (rank order), None when every row is taken once; when up-sampling a short pool: full
    passes over the pool plus one more copy for the best-ranked rows, never more than max_repeat copies of a row."""
    if not comp.upsample or not n_picked or target is None or target <= n_picked:
        return None
    full, extra = divmod(target, n_picked)
    copies = np.full(n_picked, full, dtype=np.int32)
    copies[:extra] += 1
    return np.minimum(copies, comp.max_repeat)


_CLUSTER_RE = re.compile(r"cluster[\s:=#]+([\w.:-]+)", re.IGNORECASE)
# "near duplicate of sample <id>: ..." (duplicates.near), "exact duplicate of sample <id> (...)" (duplicates.exact)
_OF_RE = re.compile(r"(?:duplicate|copy|similar) (?:of|to) (?:sample )?[`'\"]?(\S+?)[`'\"]?(?=:\s|[\s,;)]|$)",
                    re.IGNORECASE)


def _near_duplicate_clusters(ses: _Session, results_rel: str, check: str) -> pa.Table:
    """(sample_id, cluster) for every sample the near-duplicate check failed, plus the samples they duplicate.

    The reason may name a cluster ("cluster=17") or the sample it duplicates ("near duplicate of <id>"); pairs
    are joined into clusters, of which the best-ranked candidate is kept. A failing row naming neither is
    dropped: such a check is taken to fail only the copies and let one representative pass.
    """
    rows = ses.run(f"SELECT sample_id, reason FROM {results_rel} WHERE check_name = ? AND NOT passed "
                   "ORDER BY sample_id", [check]).fetchall()
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    lone: list[str] = []
    for sid, reason in rows:
        m = _CLUSTER_RE.search(reason or "")
        if m:
            union(sid, f"\x00cluster:{m.group(1)}")
            continue
        m = _OF_RE.search(reason or "")
        if m and m.group(1) != sid:
            union(sid, m.group(1))
        else:
            lone.append(sid)
    members = {x: find(x) for x in parent if not x.startswith("\x00")}
    # A failing row with no cluster information is dropped (the check kept its cluster's representative passing).
    lone_ids = [sid for sid in dict.fromkeys(lone) if sid not in members]
    ids = list(members) + lone_ids
    return pa.table({"sample_id": pa.array(ids, pa.string()),
                     "cluster": pa.array(list(members.values()) + [f"\x00lone:{s}" for s in lone_ids], pa.string()),
                     "lone": pa.array([False] * len(members) + [True] * len(lone_ids), pa.bool_())})


def apply_fix(gpt_text: str | None, fixed_answer: str | None, fixed_reasoning: str | None) -> str:
    """The assistant turn with a reviewed fix: the answer after </think> and/or the text inside <think> replaced."""
    text = gpt_text or ""
    m = re.match(rf"(?s)^(\s*{re.escape(THINK_OPEN)})(.*?)({re.escape(THINK_CLOSE)})(\s*)(.*)$", text)
    if m:
        reasoning = fixed_reasoning if fixed_reasoning is not None else m.group(2)
        answer = fixed_answer if fixed_answer is not None else m.group(5)
        return f"{m.group(1)}{reasoning}{m.group(3)}{m.group(4) or ' '}{answer}"
    answer = fixed_answer if fixed_answer is not None else text
    return f"{THINK_OPEN}{fixed_reasoning}{THINK_CLOSE} {answer}" if fixed_reasoning is not None else answer


def _fixes(ses: _Session, state_db) -> tuple[pa.Table, list[dict[str, Any]]]:
    """The selected samples' reviewed fixes as FIXES_SCHEMA rows, and which fields each one changed (manifest)."""
    ses.register("st", state_table(state_db))
    rows = ses.run(f"""
        SELECT s.sample_id, list_filter(s.turns, lambda t: lower(t.role) IN {sql_list(ASSISTANT_ROLES)})[1].text,
               s.answer
        FROM st JOIN (SELECT DISTINCT sample_id FROM sel) USING (sample_id) JOIN samples s USING (sample_id)
        WHERE st.fixed ORDER BY s.sample_id""").fetchall()
    out: dict[str, list] = {"sample_id": [], "gpt_text": [], "answer": []}
    applied: list[dict[str, Any]] = []
    for sid, gpt_text, answer in rows:
        review = review_for(state_db, sid)
        if review is None or not review.fixed:
            continue
        out["sample_id"].append(sid)
        out["gpt_text"].append(apply_fix(gpt_text, review.fixed_answer, review.fixed_reasoning))
        out["answer"].append(review.fixed_answer if review.fixed_answer is not None else answer)
        fields = [f for f, v in (("answer", review.fixed_answer), ("reasoning", review.fixed_reasoning))
                  if v is not None]
        applied.append({"sample_id": sid, "fields": fields, "reviewer": review.reviewer})
    return pa.table(out, schema=FIXES_SCHEMA), applied
