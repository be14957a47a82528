"""Sample identity at ingest: the source id when present and unique in the dataset, else the content hash (numbered
when exact copies share one) — DESIGN.md "Stable sample identity".

Whether an id is already taken depends on the whole catalog. Asking the catalog for every file costs a scan of
millions of ids per file (at 4.1M rows in 47 files that was 30 s, a quarter of the ingest). ``TakenIds`` keeps
64-bit fingerprints of the catalog's ids instead: a file's ids are probed in memory, and only the ids whose
fingerprint is present (a real collision, or a row of a file being re-ingested) are looked up in the catalog, so
the rule stays exact.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .canonical import content_hash_sql

# Per row of a file: its content hash, how often its source id occurs in the file, the hash id it would get, and
# fingerprints (DuckDB's 64-bit hash, stable within a process) of the ids the catalog is probed with. Computed on a
# narrow relation: the window functions would otherwise drag every list column through them.
_PROPOSED_SQL = f"""
WITH hashed AS (
    SELECT row_index, source_id, {content_hash_sql()} AS content_hash FROM raw_stage
), counted AS (
    SELECT *,
        count(*) OVER (PARTITION BY source_id) AS id_uses,
        row_number() OVER (PARTITION BY content_hash ORDER BY row_index) AS copy_no
    FROM hashed
), proposed AS (
    SELECT row_index, source_id, content_hash, id_uses,
        'h' || substr(content_hash, 1, 20) || CASE WHEN copy_no > 1 THEN '-' || copy_no ELSE '' END AS hash_id,
        nullif(trim(source_id), '') IS NOT NULL AS has_id
    FROM counted
)
SELECT *, hash(source_id) AS fp_id, hash($dataset, source_id) AS fp_dataset_id, hash(hash_id) AS fp_hash_id
FROM proposed ORDER BY row_index"""

# The exact lookups, for candidates only: a sample already named by this id (any dataset), or this source id
# already used in the dataset (even where that row got a hash id).
_TAKEN_SQL = """
SELECT id FROM candidates WHERE id IN (SELECT sample_id FROM samples WHERE sample_id IN (SELECT id FROM candidates))
UNION SELECT id FROM candidates
WHERE id IN (SELECT source_id FROM samples WHERE dataset = $dataset AND source_id IN (SELECT id FROM candidates))"""
_HASH_TAKEN_SQL = "SELECT sample_id AS id FROM samples WHERE sample_id IN (SELECT id FROM candidates)"

_FINAL_SQL = """
SELECT *, hash(sample_id) AS fp_sample_id FROM (
    SELECT CASE WHEN kept_id IS NOT NULL AND NOT kept_taken THEN kept_id
                WHEN has_id AND id_uses = 1 AND NOT id_taken THEN source_id
                ELSE hash_id || CASE WHEN hash_taken THEN '-' || substr(md5($source_file), 1, 6) ELSE '' END
           END AS sample_id,
           content_hash, fp_dataset_id, has_id, row_index
    FROM proposed
) ORDER BY row_index"""


class _Fingerprints:
    """A multiset of uint64 fingerprints as a few sorted runs, merged as they grow (a tiny log-structured merge),
    so adding a file's ids and probing them cost about the file's size, not the catalog's."""

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def add(self, values: np.ndarray) -> None:
        if len(values):
            self._runs.append(np.sort(values.astype(np.uint64, copy=False)))
        while len(self._runs) > 1 and len(self._runs[-1]) * 2 >= len(self._runs[-2]):
            last = self._runs.pop()
            # Two sorted runs: the stable sort (timsort) merges them in linear time.
            self._runs[-1] = np.sort(np.concatenate([self._runs[-1], last]), kind="stable")

    def contains(self, values: np.ndarray) -> np.ndarray:
        found = np.zeros(len(values), dtype=bool)
        for run in self._runs:
            at = np.minimum(np.searchsorted(run, values), len(run) - 1)
            found |= run[at] == values
        return found


class TakenIds:
    """The ids an ingest must not hand out again: fingerprints of the catalog's sample ids and of its
    (dataset, source id) pairs, loaded once and kept up to date as files land."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.sample_ids = _Fingerprints()
        self.dataset_ids = _Fingerprints()
        fps = con.sql(
            "SELECT hash(sample_id) AS s, CASE WHEN source_id IS NOT NULL THEN hash(dataset, source_id) END AS d "
            "FROM samples"
        ).fetchnumpy()
        self.sample_ids.add(np.asarray(fps["s"], dtype=np.uint64))
        self.dataset_ids.add(_present(fps["d"]))

    def assign(
        self,
        con: duckdb.DuckDBPyConnection,
        raw: pa.Table,
        dataset: str,
        source_file: str,
        previous: pa.Table | None = None,
    ) -> pa.Table:
        """``sample_id`` and ``content_hash`` for each row of ``raw`` (in row order), and record them as taken.

        ``previous`` holds the file's rows as the catalog had them before this re-ingest (``previous_ids``; None
        for a new file), and those rows must be gone from the catalog already. A row that is unchanged (same place,
        source id and content) keeps its id: the rule alone would hand it a hash id once a later file reused its
        source id, and the flags and reviews kept under the old id would be lost."""
        proposed = _query(con, _PROPOSED_SQL, {"raw_stage": raw}, {"dataset": dataset})
        kept = _kept_ids(proposed, previous)
        proposed = proposed.append_column("kept_id", kept)
        has_id = proposed["has_id"].to_numpy(zero_copy_only=False)
        named = self.sample_ids.contains(_u64(proposed["fp_id"]))
        maybe = has_id & (named | self.dataset_ids.contains(_u64(proposed["fp_dataset_id"])))
        id_taken = _exactly_taken(con, proposed["source_id"], maybe, _TAKEN_SQL, dataset)
        hash_taken = _exactly_taken(
            con, proposed["hash_id"], self.sample_ids.contains(_u64(proposed["fp_hash_id"])), _HASH_TAKEN_SQL, dataset
        )
        kept_taken = _exactly_taken(
            con, kept, pc.is_valid(kept).to_numpy(zero_copy_only=False), _HASH_TAKEN_SQL, dataset
        )
        for name, flags in (("id_taken", id_taken), ("hash_taken", hash_taken), ("kept_taken", kept_taken)):
            proposed = proposed.append_column(name, pa.array(flags))
        ids = _query(con, _FINAL_SQL, {"proposed": proposed}, {"source_file": source_file})
        if len(kept) - kept.null_count and pc.count_distinct(ids["sample_id"]).as_py() < ids.num_rows:
            # A kept id met a new one (rows moved within the file): the rule alone, which cannot collide.
            no_kept = proposed.set_column(proposed.schema.get_field_index("kept_id"), "kept_id", pa.nulls(len(kept)))
            ids = _query(con, _FINAL_SQL, {"proposed": no_kept}, {"source_file": source_file})
        self.sample_ids.add(_u64(ids["fp_sample_id"]))
        self.dataset_ids.add(_u64(ids["fp_dataset_id"])[ids["has_id"].to_numpy(zero_copy_only=False)])
        return ids.select(["sample_id", "content_hash"])


PREVIOUS_IDS_SQL = "SELECT row_index, source_id, content_hash, sample_id FROM samples WHERE source_file = ?"


def previous_ids(con: duckdb.DuckDBPyConnection, source_file: str) -> pa.Table:
    """A file's ids as the catalog holds them, read before a re-ingest deletes its rows (see ``assign``)."""
    return con.sql(PREVIOUS_IDS_SQL, params=[source_file]).to_arrow_table()


def _kept_ids(proposed: pa.Table, previous: pa.Table | None) -> pa.ChunkedArray:
    """Per proposed row, the id its unchanged previous self had, else NULL."""
    if previous is None or previous.num_rows == 0:
        return pa.chunked_array([pa.nulls(proposed.num_rows, pa.string())])
    keys = ["row_index", "source_id", "content_hash"]

    def keyed(table: pa.Table) -> pa.Table:  # a join matches no NULL key: rows without a source id match on ""
        return table.set_column(1, "source_id", pc.fill_null(table["source_id"], ""))

    joined = (
        keyed(proposed.select(keys))
        .append_column("at", pa.array(range(proposed.num_rows), pa.int64()))
        .join(keyed(previous.select([*keys, "sample_id"])), keys=keys, join_type="left outer")
        .sort_by("at")
    )
    return joined["sample_id"]


def _exactly_taken(con, ids: pa.ChunkedArray, maybe: np.ndarray, sql: str, dataset: str) -> np.ndarray:
    """Of the candidate rows (``maybe``), those whose id the catalog really holds; one lookup, and none at all
    when no fingerprint matched (the usual case)."""
    taken = np.zeros(len(maybe), dtype=bool)
    rows = np.flatnonzero(maybe)
    if len(rows) == 0:
        return taken
    candidates = pa.table({"id": ids.take(pa.array(rows))})
    params = {"dataset": dataset} if "$dataset" in sql else {}
    found = _query(con, sql, {"candidates": candidates}, params)["id"]
    taken[rows] = pc.is_in(candidates["id"], value_set=found.combine_chunks()).to_numpy(zero_copy_only=False)
    return taken


def _query(con: duckdb.DuckDBPyConnection, sql: str, tables: dict[str, pa.Table], params: dict) -> pa.Table:
    for name, table in tables.items():
        con.register(name, table)
    try:
        return con.sql(sql, params=params or None).to_arrow_table()
    finally:
        for name in tables:
            con.unregister(name)


def _u64(column: pa.ChunkedArray) -> np.ndarray:
    return column.to_numpy().astype(np.uint64, copy=False)


def _present(values) -> np.ndarray:
    """Fingerprints from fetchnumpy, NULLs (rows without a source id) left out."""
    if np.ma.isMaskedArray(values):
        values = values.compressed()
    return np.asarray(values, dtype=np.uint64)
