"""CatalogQuery: a FilterSpec compiled to parameterised DuckDB SQL over the catalog, joined per query with curation
state (flags/reviews) and check results; counts, facets (over a facet cube when it can), keyset pages."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from curation.ingest.text_index import search_text
from curation.query.filters import DIMENSIONS, FilterSpec
from curation.query.results import latest_results_sql
from curation.settings import Settings
from db.catalog import catalog_identity, catalog_version, open_catalog

# The facet cube: sample counts per combination of the dimensions and the two flags, built by one GROUP BY per
# catalog version. Count and facet queries whose filter uses only these fields read it (tens of rows for the
# real taxonomy) instead of scanning millions; any other filter (text, ids, state, checks) scans the catalog.
_CUBE_FIELDS = frozenset(DIMENSIONS) | {"has_reasoning", "has_problems"}
_CUBE_SQL = (f"SELECT {', '.join(DIMENSIONS.values())}, has_reasoning, len(problems) > 0 AS has_problems, "
             "count(*) AS n FROM samples GROUP BY ALL")
_CUBE_MAX_ROWS = 200_000  # past this, a cube would cost about what a scan does
# Columns a results table shows; the sample view fetches the whole row.
LIST_COLUMNS = ["sample_id", "dataset", "skill", "sample_group", "source", "answer_kind", "question", "answer",
                "n_images", "n_videos", "has_reasoning"]


@dataclass
class Page:
    rows: list[dict]
    next_after: str | None  # pass as ``after`` for the next page; None on the last page
    total: int | None = None


@dataclass
class CompiledFilter:
    where: str
    params: list[Any]
    tables: dict[str, pa.Table] = field(default_factory=dict)  # Arrow tables to register for the query
    warnings: list[str] = field(default_factory=list)
    text_total: int | None = None


class CatalogQuery:
    """Read-only queries over the catalog. One DuckDB connection per instance; a cursor per call (thread-safe)."""

    def __init__(self, settings: Settings, state_db=None):
        self.settings = settings
        self._con = open_catalog(settings.catalog_path, read_only=True)
        self._state_db = state_db
        self._lock = threading.Lock()
        self._results_view_ready = False
        self._cube: tuple[str, pa.Table | None] | None = None  # (catalog version, cube or None when too big)

    def close(self) -> None:
        self._con.close()

    # --- compilation ------------------------------------------------------------------------------
    def compile(self, spec: FilterSpec, skip: str | None = None, on_cube: bool = False) -> CompiledFilter:
        """WHERE clause over ``samples`` (alias s) with positional parameters; user text is only ever a parameter.
        ``on_cube``: over the facet cube (alias s) instead, which keeps has_problems as a column."""
        clauses: list[str] = []
        params: list[Any] = []
        tables: dict[str, pa.Table] = {}
        warnings: list[str] = []
        text_total = None
        for name, column in DIMENSIONS.items():
            values = getattr(spec, name)
            if values and name != skip:
                clauses.append(f"s.{column} IN (SELECT unnest(?::VARCHAR[]))")
                params.append(list(values))
        if spec.has_reasoning is not None:
            clauses.append("s.has_reasoning = ?")
            params.append(spec.has_reasoning)
        if spec.has_problems is not None:
            clauses.append("s.has_problems = ?" if on_cube else "(len(s.problems) > 0) = ?")
            params.append(spec.has_problems)
        if spec.sample_ids:
            clauses.append("s.sample_id IN (SELECT unnest(?::VARCHAR[]))")
            params.append(list(spec.sample_ids))
        if spec.text.strip():
            hits = search_text(self.settings.text_index_dir, spec.text)
            warnings.extend(hits.warnings)
            text_total = hits.total
            tables["text_hits"] = pa.table({"sample_id": pa.array(hits.sample_ids, pa.string())})
            clauses.append("s.sample_id IN (SELECT sample_id FROM text_hits)")
        state_clause = self._state_clause(spec, tables)
        if state_clause:
            clauses.append(state_clause)
        check_clause, check_params = self._check_clause(spec)
        if check_clause:
            clauses.append(check_clause)
            params.extend(check_params)
        return CompiledFilter(" AND ".join(clauses) or "TRUE", params, tables, warnings, text_total)

    def _state_clause(self, spec: FilterSpec, tables: dict[str, pa.Table]) -> str | None:
        wants = spec.flagged is not None or spec.flag_reasons or spec.review or spec.reviewers
        if not wants:
            return None
        from curation.review.state_tables import state_sample_ids  # late: catalog-only use stays light

        db = self.state_db()
        clauses = []
        if spec.flagged is not None or spec.flag_reasons:
            ids = state_sample_ids(db, flagged=True, reasons=spec.flag_reasons or None)
            tables["state_flagged"] = ids
            neg = "NOT " if spec.flagged is False else ""
            clauses.append(f"s.sample_id {neg}IN (SELECT sample_id FROM state_flagged)")
        if spec.review or spec.reviewers:
            review = spec.review
            if review in (None, "reviewed", "unreviewed"):
                ids = state_sample_ids(db, reviewed=True, reviewers=spec.reviewers or None)
            elif review == "fixed":
                ids = state_sample_ids(db, fixed=True, reviewers=spec.reviewers or None)
            else:
                verdict = {"approved": "approve", "rejected": "reject"}[review]
                ids = state_sample_ids(db, verdicts=[verdict], reviewers=spec.reviewers or None)
            tables["state_reviewed"] = ids
            neg = "NOT " if review == "unreviewed" else ""
            clauses.append(f"s.sample_id {neg}IN (SELECT sample_id FROM state_reviewed)")
        return " AND ".join(clauses)

    def state_db(self):
        if self._state_db is None:
            from db.engine import open_state

            self._state_db = open_state(self.settings.db_url)
        return self._state_db

    def _check_clause(self, spec: FilterSpec) -> tuple[str | None, list[Any]]:
        if not (spec.failed_checks or spec.passed_checks or spec.score_below):
            return None, []
        relation = latest_results_sql(self.settings.results_dir)
        clauses, params = [], []
        for name in spec.failed_checks:
            clauses.append(f"s.sample_id IN (SELECT sample_id FROM {relation} WHERE check_name = ? AND NOT passed)")
            params.append(name)
        for name in spec.passed_checks:
            clauses.append(f"s.sample_id IN (SELECT sample_id FROM {relation} WHERE check_name = ? AND passed)")
            params.append(name)
        for name, threshold in spec.score_below.items():
            clauses.append(f"s.sample_id IN (SELECT sample_id FROM {relation} WHERE check_name = ? AND score < ?)")
            params.extend([name, float(threshold)])
        return " AND ".join(clauses), params

    # --- execution --------------------------------------------------------------------------------
    def cursor(self, tables: dict[str, pa.Table] | None = None) -> duckdb.DuckDBPyConnection:
        """A fresh read-only cursor (one per call: thread-safe) with Arrow tables registered under their names.
        ``cursor.execute(sql, params)`` for rows; ``cursor.sql(...)`` streams relations without the extra copy an
        ``execute`` result makes (exports, selections)."""
        cur = self._con.cursor()
        for name, table in (tables or {}).items():
            cur.register(name, table)
        return cur

    def count(self, spec: FilterSpec) -> int:
        cube = self._cube_for(spec)
        c = self.compile(spec, on_cube=cube is not None)
        row = self.cursor(_tables(c, cube)).execute(
            f"SELECT {_counter(cube)} FROM {_relation(cube)} s WHERE {c.where}", c.params
        ).fetchone()
        return int(row[0] or 0)

    def _cube_for(self, spec: FilterSpec) -> pa.Table | None:
        """The facet cube when the filter only uses the cube's fields (and the cube is small enough), else None."""
        if not set(spec.model_dump(exclude_defaults=True)) <= _CUBE_FIELDS:
            return None
        version = self.version()
        with self._lock:
            if self._cube is None or self._cube[0] != version:
                cube = self.cursor().sql(_CUBE_SQL).to_arrow_table()
                self._cube = (version, cube if cube.num_rows <= _CUBE_MAX_ROWS else None)
            return self._cube[1]

    def facets(self, spec: FilterSpec, dims: list[str] | None = None, limit: int = 200) -> dict[str, dict[str, int]]:
        """Counts per value of each dimension under the current filter, ignoring the dimension's own selection
        (so the options a curator could add stay visible with their counts).

        Dimensions without a selection share one filter, so they are counted in one scan (GROUPING SETS); each
        selected dimension needs its own filter and scan. The scans read the facet cube when the filter allows."""
        names = dims or list(DIMENSIONS)
        out: dict[str, dict[str, int]] = {}
        cube = self._cube_for(spec)
        counter, relation = _counter(cube), _relation(cube)
        shared = [n for n in names if not getattr(spec, n)]
        if shared:
            c = self.compile(spec, on_cube=cube is not None)
            cols = [DIMENSIONS[n] for n in shared]
            rows = self.cursor(_tables(c, cube)).execute(
                f"SELECT {', '.join(f's.{col}' for col in cols)}, "
                f"{', '.join(f'GROUPING(s.{col})' for col in cols)}, {counter} FROM {relation} s WHERE {c.where} "
                f"GROUP BY GROUPING SETS ({', '.join(f'(s.{col})' for col in cols)})",
                c.params,
            ).fetchall()
            counts: dict[str, list[tuple[str, int]]] = {n: [] for n in shared}
            k = len(cols)
            for row in rows:
                i = row[k : 2 * k].index(0)  # the dimension this row groups by
                value = row[i]
                counts[shared[i]].append(("(none)" if value is None else str(value), int(row[-1])))
            for n, pairs in counts.items():
                out[n] = dict(sorted(pairs, key=lambda p: (-p[1], p[0]))[:limit])
        for name in names:
            if name in out:
                continue
            column = DIMENSIONS[name]
            c = self.compile(spec, skip=name, on_cube=cube is not None)
            rows = self.cursor(_tables(c, cube)).execute(
                f"SELECT coalesce(s.{column}, '(none)') AS v, {counter} AS n FROM {relation} s WHERE {c.where} "
                f"GROUP BY v ORDER BY n DESC, v LIMIT {int(limit)}",
                c.params,
            ).fetchall()
            out[name] = {str(v): int(n) for v, n in rows}
        return {n: out[n] for n in names}

    def page(self, spec: FilterSpec, after: str | None = None, limit: int = 50,
             columns: list[str] | None = None, with_total: bool = False) -> Page:
        """Keyset pagination in sample_id order: constant time at any depth (no OFFSET)."""
        c = self.compile(spec)
        cols = ", ".join(f"s.{col}" for col in (columns or LIST_COLUMNS))
        where, params = c.where, list(c.params)
        if after is not None:
            where += " AND s.sample_id > ?"
            params.append(after)
        cur = self.cursor(c.tables)
        res = cur.execute(
            f"SELECT {cols} FROM samples s WHERE {where} ORDER BY s.sample_id LIMIT {int(limit) + 1}", params
        )
        names = [d[0] for d in res.description]
        rows = [dict(zip(names, r)) for r in res.fetchall()]
        more = len(rows) > limit
        rows = rows[:limit]
        total = self.count(spec) if with_total else None
        return Page(rows, rows[-1]["sample_id"] if more and rows else None, total)

    def sample(self, sample_id: str) -> dict | None:
        res = self.cursor().execute("SELECT * FROM samples WHERE sample_id = ?", [sample_id])
        names = [d[0] for d in res.description]
        row = res.fetchone()
        return dict(zip(names, row)) if row else None

    def neighbours(self, spec: FilterSpec, sample_id: str) -> tuple[str | None, str | None]:
        """Previous and next sample ids under a filter (the review queue's steps)."""
        c = self.compile(spec)
        cur = self.cursor(c.tables)
        prev = cur.execute(
            f"SELECT max(s.sample_id) FROM samples s WHERE {c.where} AND s.sample_id < ?", [*c.params, sample_id]
        ).fetchone()[0]
        nxt = cur.execute(
            f"SELECT min(s.sample_id) FROM samples s WHERE {c.where} AND s.sample_id > ?", [*c.params, sample_id]
        ).fetchone()[0]
        return prev, nxt

    def iter_batches(self, spec: FilterSpec, columns: list[str] | None = None,
                     batch_rows: int = 10_000) -> Iterator[pa.RecordBatch]:
        """Every matching row in sample_id order, streamed as Arrow batches (exports, pushes)."""
        c = self.compile(spec)
        cols = ", ".join(f"s.{col}" for col in columns) if columns else "s.*"
        rel = self.cursor(c.tables).sql(f"SELECT {cols} FROM samples s WHERE {c.where} ORDER BY s.sample_id",
                                        params=c.params)
        yield from rel.to_arrow_reader(batch_rows)

    def ingest_errors(self, limit: int = 1000) -> list[dict]:
        res = self.cursor().execute(
            "SELECT file, row_index, field, reason, ingest_run FROM ingest_errors ORDER BY file, row_index LIMIT ?",
            [limit],
        )
        names = [d[0] for d in res.description]
        return [dict(zip(names, r)) for r in res.fetchall()]

    def version(self) -> str:
        return catalog_version(self.cursor())


def _tables(compiled: CompiledFilter, cube: pa.Table | None) -> dict[str, pa.Table]:
    """The Arrow tables a compiled filter's query reads, with the facet cube when it runs on the cube."""
    return compiled.tables if cube is None else {**compiled.tables, "facet_cube": cube}


def _relation(cube: pa.Table | None) -> str:
    return "samples" if cube is None else "facet_cube"


def _counter(cube: pa.Table | None) -> str:
    return "count(*)" if cube is None else "sum(s.n)"


def open_query(settings: Settings) -> CatalogQuery:
    if not Path(settings.catalog_path).exists():
        raise FileNotFoundError(f"no catalog at {settings.catalog_path}: run `make run` or `python -m curation ingest`")
    return CatalogQuery(settings)


def catalog_file_identity(settings: Settings) -> str:
    """Changes when ingest swaps in a new catalog file: the app keys its cached CatalogQuery on it."""
    return catalog_identity(settings.catalog_path)
