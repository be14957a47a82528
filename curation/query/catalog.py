"""CatalogQuery: a FilterSpec compiled to parameterised DuckDB SQL over the catalog, joined per query with curation
state (flags/reviews), check results and text-search hits; counts, facets (over a facet cube when it can), keyset
pages in the catalog's row order or by relevance. It follows the catalog file as ingest swaps in new ones."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pyarrow as pa

from curation.ingest.text_index import TextSearch
from curation.query.difficulty import DIFFICULTIES, UNMEASURED, bucket_sql, pass_rate_sql
from curation.query.filters import DIMENSIONS, FilterSpec
from curation.query.results import latest_results_sql
from curation.query.severity import problem_severity_sql
from curation.settings import Settings
from db.catalog import catalog_identity, catalog_version, open_catalog, reader_cursor

# The facet cube: sample counts per combination of the dimensions and the two flags, built by one GROUP BY per
# catalog version (and per text search: the cube of its hits). Count and facet queries whose filter uses only these
# fields and text read it (tens of rows for the real taxonomy) instead of scanning millions; any other filter (ids,
# state, checks) scans the catalog.
_CUBE_FIELDS = frozenset(DIMENSIONS) | {"has_reasoning", "has_problems"}
_CUBE_MAX_ROWS = 200_000  # past this, a cube would cost about what a scan does
_CUBES_KEPT = 16  # the catalog's cube and those of the last text searches
# Row keys of the sample ids the last pages and review steps showed: opening one of them reads its row by key (the
# rows lie in key order: DuckDB skips to its row group) instead of scanning every id (150 ms at 4.1M random ids).
_KEYS_KEPT = 100_000
# A text filter: the catalog rows whose keys the text index returned (registered as this table).
_TEXT_CLAUSE = "s.row_key IN (SELECT row_key FROM text_hits)"
_FIRST_HIT_WINDOW = 1024  # hits a page under text and other fields looks through first (then 4x more each time)
# Columns a results table shows; the sample view fetches the whole row.
LIST_COLUMNS = ["sample_id", "dataset", "skill", "sample_group", "source", "answer_kind", "question", "answer",
                "n_images", "n_videos", "has_reasoning"]
# Page orders: the catalog's row order (the order ingest added the rows), or best text match first.
Order = Literal["catalog", "relevance"]


class CatalogOutdated(RuntimeError):
    """The catalog file was written by an earlier version of the curator and needs one ingest to upgrade it."""


@dataclass
class Page:
    rows: list[dict]
    next_after: str | None  # pass as ``after`` for the next page (same filter and order); None on the last page
    total: int | None = None
    warnings: list[str] = field(default_factory=list)  # the text search's: parts it could not read, a missing index


@dataclass
class CompiledFilter:
    where: str
    params: list[Any]
    tables: dict[str, pa.Table] = field(default_factory=dict)  # Arrow tables to register for the query
    warnings: list[str] = field(default_factory=list)
    text_total: int | None = None


@dataclass(frozen=True)
class _Opened:
    identity: str  # of the catalog file (db.catalog.catalog_identity)
    con: duckdb.DuckDBPyConnection
    version: str


class CatalogQuery:
    """Read-only queries over the catalog; a cursor per call (thread-safe).

    Follows the catalog file: after ingest swaps in a new one, the next call opens it and lets the old connection go.
    Queries still running on the old file finish there; DuckDB closes it when the last of them is done."""

    def __init__(self, settings: Settings, state_db=None):
        self.settings = settings
        self._state_db = state_db
        self._lock = threading.Lock()
        self._text = TextSearch(settings.text_index_dir)
        self._opened: _Opened | None = None
        self._cubes: OrderedDict[tuple, pa.Table | None] = OrderedDict()  # (versions, text) -> cube, None: too big
        self._keys: OrderedDict[tuple[str, str], int] = OrderedDict()  # (catalog version, sample id) -> row key
        self._current()  # a missing, busy or outdated catalog is reported now

    def _current(self) -> _Opened:
        # The file's identity is read before it is opened: a swap in between costs a second open, never a stale one.
        identity = catalog_identity(self.settings.catalog_path)
        with self._lock:
            if self._opened is None or self._opened.identity != identity:
                con = open_catalog(self.settings.catalog_path, read_only=True)
                try:
                    version = _version_of(con, self.settings.catalog_path)
                except BaseException:
                    con.close()
                    raise
                # The previous connection is dropped, not closed: closing it would close the cursors other threads
                # are still reading from (exports, pushes); the old file goes with the last of them.
                self._opened = _Opened(identity, con, version)
            return self._opened

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, None
        if opened is not None:
            opened.con.close()

    # --- compilation ------------------------------------------------------------------------------
    def compile(self, spec: FilterSpec, skip: str | None = None, on_cube: bool = False) -> CompiledFilter:
        """WHERE clause over ``samples`` (alias s) with positional parameters; user text is only ever a parameter.
        ``skip``: a dimension (or ``"text"``) to leave out. ``on_cube``: over the facet cube (alias s) instead, which
        keeps has_problems as a column and holds only the text search's hits."""
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
        if spec.text.strip() and not on_cube and skip != "text":
            hits = self._text.hits(spec.text)  # every hit, kept per (query, index version)
            warnings.extend(hits.warnings)
            text_total = hits.total
            tables["text_hits"] = hits.table
            clauses.append(_TEXT_CLAUSE)
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
        if not (spec.failed_checks or spec.passed_checks or spec.score_below or spec.failed_severities
                or spec.difficulty or spec.pass_rate_above is not None or spec.pass_rate_below is not None):
            return None, []
        relation = latest_results_sql(self.settings.results_dir)
        clauses, params = [], []
        severity = " AND severity IN (SELECT unnest(?::VARCHAR[]))" if spec.failed_severities else ""
        for name in spec.failed_checks:
            clauses.append(f"s.sample_id IN (SELECT sample_id FROM {relation} WHERE check_name = ? AND NOT passed"
                           f"{severity})")
            params.extend([name, spec.failed_severities] if severity else [name])
        if spec.failed_severities and not spec.failed_checks:
            clauses.append(f"(s.sample_id IN (SELECT sample_id FROM {relation} WHERE NOT passed{severity}) OR "
                           "len(list_filter(s.problems, lambda p: list_contains(?::VARCHAR[], "
                           f"{problem_severity_sql('p.code', 's.kind')}))) > 0)")
            params.extend([spec.failed_severities, spec.failed_severities])
        for name in spec.passed_checks:
            clauses.append(f"s.sample_id IN (SELECT sample_id FROM {relation} WHERE check_name = ? AND passed)")
            params.append(name)
        for name, threshold in spec.score_below.items():
            clauses.append(f"s.sample_id IN (SELECT sample_id FROM {relation} WHERE check_name = ? AND score < ?)")
            params.extend([name, float(threshold)])
        difficulty, difficulty_params = self._difficulty_clause(spec)
        if difficulty:
            clauses.append(difficulty)
            params.extend(difficulty_params)
        return " AND ".join(clauses), params

    def _difficulty_clause(self, spec: FilterSpec) -> tuple[str | None, list[Any]]:
        """Pass-rate buckets and band (curation.query.difficulty); a sample without a pass rate is 'unmeasured'."""
        rates = pass_rate_sql(self.settings.results_dir)
        clauses, params = [], []
        if spec.difficulty:
            either = []
            measured = [b for b in spec.difficulty if b != UNMEASURED]
            if measured:
                either.append(f"s.sample_id IN (SELECT sample_id FROM {rates} d "
                              f"WHERE {bucket_sql('d.pass_rate')} IN (SELECT unnest(?::VARCHAR[])))")
                params.append(measured)
            if UNMEASURED in spec.difficulty:
                either.append(f"s.sample_id NOT IN (SELECT sample_id FROM {rates})")
            clauses.append(f"({' OR '.join(either)})")
        band = [(op, v) for op, v in ((">", spec.pass_rate_above), ("<", spec.pass_rate_below)) if v is not None]
        if band:
            clauses.append(f"s.sample_id IN (SELECT sample_id FROM {rates} WHERE "
                           f"{' AND '.join(f'pass_rate {op} ?' for op, _ in band)})")
            params.extend(float(v) for _, v in band)
        return (" AND ".join(clauses) or None), params

    def difficulty_facet(self, spec: FilterSpec) -> dict[str, int]:
        """Samples per difficulty bucket under the filter, ignoring its own difficulty selection."""
        c = self.compile(spec.model_copy(update={"difficulty": []}))
        rows = self.cursor(c.tables).execute(
            f"SELECT {bucket_sql('d.pass_rate')} AS b, count(*) FROM samples s "
            f"LEFT JOIN {pass_rate_sql(self.settings.results_dir)} d USING (sample_id) WHERE {c.where} GROUP BY b",
            c.params).fetchall()
        counts = dict(rows)
        return {b: int(counts.get(b, 0)) for b in DIFFICULTIES}

    # --- execution --------------------------------------------------------------------------------
    def cursor(self, tables: dict[str, pa.Table] | None = None) -> duckdb.DuckDBPyConnection:
        """A fresh read-only cursor (one per call: thread-safe) with Arrow tables registered under their names.
        ``cursor.execute(sql, params)`` for rows; ``cursor.sql(...)`` streams relations without the extra copy an
        ``execute`` result makes (exports, selections)."""
        cur = reader_cursor(self._current().con)
        for name, table in (tables or {}).items():
            cur.register(name, table)
        return cur

    def count(self, spec: FilterSpec) -> int:
        if _text_only(spec):  # tantivy counts its hits without collecting them
            return self._text.count(spec.text)[0]
        cube = self._cube_for(spec)
        c = self.compile(spec, on_cube=cube is not None)
        row = self.cursor(_tables(c, cube)).execute(
            f"SELECT {_counter(cube)} FROM {_relation(cube)} s WHERE {c.where}", c.params
        ).fetchone()
        return int(row[0] or 0)

    def _cube_for(self, spec: FilterSpec) -> pa.Table | None:
        """The facet cube (of the text search's hits, under a text filter) when the filter only uses the cube's
        fields and text, and the cube is small enough; else None."""
        if not set(spec.model_dump(exclude_defaults=True)) <= _CUBE_FIELDS | {"text"}:
            return None
        text = spec.text if spec.text.strip() else ""
        key = (self.version(), text, self._text.version() if text else "")
        with self._lock:
            if key in self._cubes:
                self._cubes.move_to_end(key)
                return self._cubes[key]
        tables = {"text_hits": self._text.hits(text).table} if text else {}
        cube = self.cursor(tables).sql(
            f"SELECT {', '.join(f's.{c}' for c in DIMENSIONS.values())}, s.has_reasoning, "
            f"len(s.problems) > 0 AS has_problems, count(*) AS n FROM samples s "
            f"WHERE {_TEXT_CLAUSE if text else 'TRUE'} GROUP BY ALL"
        ).to_arrow_table()
        kept = cube if cube.num_rows <= _CUBE_MAX_ROWS else None
        with self._lock:
            self._cubes[key] = kept
            while len(self._cubes) > _CUBES_KEPT:
                self._cubes.popitem(last=False)
        return kept

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

    def page(self, spec: FilterSpec, after: str | None = None, limit: int = 50, columns: list[str] | None = None,
             with_total: bool = False, order: Order = "catalog") -> Page:
        """Keyset pagination: the same few milliseconds at any depth (no OFFSET), whatever the sample ids look like.

        In the catalog's row order a page is found as row keys first (under a text filter alone, tantivy returns
        them; else DuckDB, reading the row key and the filter's columns of the row groups past ``after`` only), then
        its columns are read for those keys. ``order="relevance"`` (with text): best match first."""
        select = ", ".join(f"s.{col}" for col in (columns or LIST_COLUMNS))
        if order == "relevance" and spec.text.strip():
            rows, next_after, warnings = self._page_by_relevance(spec, after, limit, select)
        else:
            if _text_only(spec):
                keys, warnings = self._text.keys(spec.text, limit + 1, after=_row_key(after))
            elif spec.text.strip():
                hits = self._text.hits(spec.text)
                c = self.compile(spec, skip="text")
                keys, warnings = self._keys_among_hits(hits.table, c, after, limit + 1), [*hits.warnings, *c.warnings]
            else:
                c = self.compile(spec)
                since = " AND s.row_key > ?" if after is not None else ""
                keys = [k for (k,) in self.cursor(c.tables).execute(
                    f"SELECT s.row_key FROM samples s WHERE {c.where}{since} ORDER BY s.row_key LIMIT {int(limit) + 1}",
                    [*c.params, *([_row_key(after)] if after is not None else [])]).fetchall()]
                warnings = c.warnings
            rows = self._rows_by_key(keys[:limit], select)
            next_after = str(keys[limit - 1]) if len(keys) > limit else None
        total = self.count(spec) if with_total else None
        return Page(rows[:limit], next_after, total, list(warnings))

    def _rows_by_key(self, keys: list[int], select: str) -> list[dict]:
        """The rows of these row keys, in key order: DuckDB reads the row groups between the first and the last."""
        if not keys:
            return []
        rows = self._rows(f"SELECT {select}, s.row_key AS _key FROM samples s WHERE s.row_key BETWEEN ? AND ? "
                          "AND s.row_key IN (SELECT unnest(?::BIGINT[])) ORDER BY s.row_key",
                          [min(keys), max(keys), list(keys)])
        self._remember_keys([(row.get("sample_id"), row.pop("_key")) for row in rows])
        return rows

    def _remember_keys(self, pairs: list[tuple[str | None, int]]) -> None:
        version = self.version()
        with self._lock:
            for sample_id, key in pairs:
                if sample_id is not None:
                    self._keys[(version, sample_id)] = key
                    self._keys.move_to_end((version, sample_id))
            while len(self._keys) > _KEYS_KEPT:
                self._keys.popitem(last=False)

    def _keys_among_hits(self, hits: pa.Table, c: CompiledFilter, after: str | None, limit: int) -> list[int]:
        """The first ``limit`` row keys past ``after`` among the hits (row keys, ascending) that pass the rest of the
        filter ``c``. The nearest hits are tried first, in growing windows: DuckDB joins a window's hits with the
        rows in the window's key range only (zone maps skip the rest), where one join of every hit would read every
        row. Where a window has none, the next window starts at the next row that passes ``c`` (a skill's rows lie
        together: the hits of the skills before it are skipped, not looked through)."""
        keys = hits.column("row_key").to_numpy()
        position = -1 if after is None else _row_key(after)
        found: list[int] = []
        window = _FIRST_HIT_WINDOW
        while len(found) < limit:
            if not found:  # jump to the next row that passes the rest of the filter
                nxt = self.cursor(c.tables).execute(
                    f"SELECT s.row_key FROM samples s WHERE {c.where} AND s.row_key > ? ORDER BY s.row_key LIMIT 1",
                    [*c.params, position]).fetchone()
                if nxt is None:
                    break
                position = nxt[0] - 1
            start = int(np.searchsorted(keys, position, side="right"))
            if start >= len(keys):
                break
            stop = min(len(keys), start + window)
            found += [k for (k,) in self.cursor({**c.tables, "page_keys": hits.slice(start, stop - start)}).execute(
                f"SELECT s.row_key FROM samples s WHERE s.row_key BETWEEN ? AND ? AND s.row_key IN "
                f"(SELECT row_key FROM page_keys) AND {c.where} ORDER BY s.row_key LIMIT {int(limit) - len(found)}",
                [int(keys[start]), int(keys[stop - 1]), *c.params]).fetchall()]
            position, window = int(keys[stop - 1]), window * 4
        return found

    def _page_by_relevance(self, spec: FilterSpec, after: str | None, limit: int,
                           select: str) -> tuple[list[dict], str | None, list[str]]:
        ranked = self._text.ranked(spec.text)
        c = self.compile(spec, skip="text")  # joining the ranked hits is the text filter
        where, params = c.where, list(c.params)
        if after is not None:  # after (score, key): worse scores, or the same score and a later key
            score, _, key = after.partition(":")
            where += " AND (h.score < ? OR (h.score = ? AND s.row_key > ?))"
            params += [float(score), float(score), int(key)]
        rows = self._rows(
            f"SELECT {select}, s.row_key AS _key, h.score AS _score FROM samples s JOIN text_ranked h "
            f"ON h.row_key = s.row_key WHERE {where} ORDER BY h.score DESC, s.row_key LIMIT {int(limit) + 1}",
            params, {**c.tables, "text_ranked": ranked.table})
        last = rows[limit - 1] if len(rows) > limit else None
        cursor = f"{last['_score']!r}:{last['_key']}" if last else None
        self._remember_keys([(row.get("sample_id"), row.pop("_key")) for row in rows])
        for row in rows:
            del row["_score"]
        return rows, cursor, [*ranked.warnings, *c.warnings]

    def _rows(self, sql: str, params: list[Any], tables: dict[str, pa.Table] | None = None) -> list[dict]:
        res = self.cursor(tables).execute(sql, params)
        names = [d[0] for d in res.description]
        return [dict(zip(names, r)) for r in res.fetchall()]

    def sample(self, sample_id: str) -> dict | None:
        description, row = self._by_id(sample_id, "*")
        return dict(zip([d[0] for d in description], row)) if row else None

    def _by_id(self, sample_id: str, select: str) -> tuple[list, tuple | None]:
        """``select`` of a sample's row (the result's description, the row or None): read by its row key when a page
        or a review step showed the sample, else found by scanning the ids."""
        version = self.version()
        with self._lock:
            key = self._keys.get((version, sample_id))
        cur = self.cursor()
        if key is not None:
            res = cur.execute(f"SELECT {select} FROM samples WHERE row_key = ? AND sample_id = ?", [key, sample_id])
            row = res.fetchone()
            if row is not None:
                return res.description, row
        res = cur.execute(f"SELECT {select} FROM samples WHERE sample_id = ?", [sample_id])
        return res.description, res.fetchone()

    def neighbours(self, spec: FilterSpec, sample_id: str) -> tuple[str | None, str | None]:
        """Previous and next sample ids under a filter, in the catalog's row order (Browse's pages): the review
        queue's steps. (None, None) when the sample is not in the catalog."""
        found = self._by_id(sample_id, "row_key")[1]
        if found is None:
            return None, None
        key = found[0]
        if _text_only(spec):
            before = self._text.keys(spec.text, 1, before=key, descending=True)[0]
            later = self._text.keys(spec.text, 1, after=key)[0]
            steps = self.cursor().execute(
                "SELECT sample_id, row_key FROM samples WHERE row_key IN (SELECT unnest(?::BIGINT[]))",
                [before + later]).fetchall()
            ids = {k: i for i, k in steps}
            prev, nxt = (ids.get(before[0]) if before else None), (ids.get(later[0]) if later else None)
        else:
            c = self.compile(spec)
            cur = self.cursor(c.tables)
            steps = [cur.execute(f"SELECT s.sample_id, s.row_key FROM samples s WHERE {c.where} AND s.row_key {op} ? "
                                 f"ORDER BY s.row_key {order} LIMIT 1", [*c.params, key]).fetchone()
                     for op, order in (("<", "DESC"), (">", "ASC"))]
            prev, nxt = (step[0] if step else None for step in steps)
            steps = [step for step in steps if step]
        self._remember_keys(steps)  # the step the curator takes next opens that sample by its key
        return prev, nxt

    def iter_batches(self, spec: FilterSpec, columns: list[str] | None = None,
                     batch_rows: int = 10_000) -> Iterator[pa.RecordBatch]:
        """Every matching row in sample_id order (the same order whatever the ingest history), streamed as Arrow
        batches (exports, pushes)."""
        c = self.compile(spec)
        cols = ", ".join(f"s.{col}" for col in columns) if columns else "s.*"
        rel = self.cursor(c.tables).sql(f"SELECT {cols} FROM samples s WHERE {c.where} ORDER BY s.sample_id",
                                        params=c.params)
        yield from rel.to_arrow_reader(batch_rows)

    def text_warnings(self, spec: FilterSpec) -> list[str]:
        """What the text search has to say about the filter's text (parts it could not read, a missing index)."""
        return self._text.count(spec.text)[1] if spec.text.strip() else []

    def ingest_errors(self, limit: int = 1000) -> list[dict]:
        res = self.cursor().execute(
            "SELECT file, row_index, field, reason, ingest_run FROM ingest_errors ORDER BY file, row_index LIMIT ?",
            [limit],
        )
        names = [d[0] for d in res.description]
        return [dict(zip(names, r)) for r in res.fetchall()]

    def version(self) -> str:
        """Changes whenever the catalog's content does (read once per catalog file)."""
        return self._current().version

    def text_version(self) -> str:
        """Changes whenever ingest commits to the text index: text-search results are kept against it."""
        return self._text.version()


def _version_of(con: duckdb.DuckDBPyConnection, path: Path) -> str:
    """The catalog's version, once it is known to have what this query layer reads (the row key)."""
    has_key = con.execute("SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database() "
                          "AND table_name = 'samples' AND column_name = 'row_key'").fetchone()[0]
    if not has_key:
        raise CatalogOutdated(f"the catalog {path} was written by an earlier version of the curator: run "
                              "`python -m curation ingest PATH...` once to upgrade it (nothing is re-read)")
    return catalog_version(con)


def _text_only(spec: FilterSpec) -> bool:
    """A filter on text and nothing else: the text index alone answers its count and pages."""
    return bool(spec.text.strip()) and set(spec.model_dump(exclude_defaults=True)) == {"text"}


def _row_key(after: str | int | None) -> int | None:
    return None if after is None else int(after)


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
