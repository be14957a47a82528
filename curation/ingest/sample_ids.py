"""Sample identity at ingest: the source id when present and unique in the dataset, else the content hash (numbered
when exact copies share one) — DESIGN.md "Stable sample identity".

Whether an id is already taken depends on the whole catalog and on the files before this one. Asking the catalog
for every file costs a scan of millions of ids per file (at 4.1M rows in 47 files that was 30 s, a quarter of the
ingest). ``TakenIds`` keeps 64-bit fingerprints of the ids handed out instead: a file's ids are probed in memory,
and only the ids whose fingerprint is present (a real collision, or a row of a file being re-ingested) are looked
up exactly, so the rule stays exact. What a file's rows propose (content hash, source-id uses, copy numbers,
fingerprints) depends on that file alone: ``propose_ids`` computes it as the file is read, beside the catalog's
writes; ``TakenIds.assign`` then settles a group's files one after another, each seeing the ids of those before it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.ingest.canonical import content_hash_sql

# Per row of a file: its content hash, how often its source id occurs in the file, the hash id it would get, and
# fingerprints (DuckDB's 64-bit hash, stable within a process) of the ids it is probed with. Computed on a narrow
# relation: the window functions would otherwise drag every list column through them. ``raw_stage`` has the raw
# columns plus ``dataset`` and ``file_no``; rows come back in (file_no, row_index) order.
_PROPOSED_SQL = f"""
WITH hashed AS (
    SELECT file_no, row_index, dataset, source_id, {content_hash_sql()} AS content_hash FROM raw_stage
), counted AS (
    SELECT *,
        count(*) OVER (PARTITION BY file_no, source_id) AS id_uses,
        row_number() OVER (PARTITION BY file_no, content_hash ORDER BY row_index) AS copy_no
    FROM hashed
), proposed AS (
    SELECT file_no, row_index, dataset, source_id, content_hash, id_uses,
        'h' || substr(content_hash, 1, 20) || CASE WHEN copy_no > 1 THEN '-' || copy_no ELSE '' END AS hash_id,
        nullif(trim(source_id), '') IS NOT NULL AS has_id
    FROM counted
)
SELECT *, hash(source_id) AS fp_id, hash(dataset, source_id) AS fp_dataset_id, hash(hash_id) AS fp_hash_id
FROM proposed ORDER BY file_no, row_index"""

# The exact lookups in the catalog, for candidates only: a sample already named by this id (any dataset), or this
# source id already used in the dataset (even where that row got a hash id).
_NAMED_SQL = "SELECT sample_id AS id FROM samples WHERE sample_id IN (SELECT id FROM candidates)"
_USED_IN_DATASET_SQL = (
    "SELECT source_id AS id FROM samples WHERE dataset = $dataset AND source_id IN (SELECT id FROM candidates)"
)

PREVIOUS_IDS_SQL = (
    "SELECT row_index, source_id, content_hash, sample_id, hash(sample_id) AS fp FROM samples WHERE source_file = ?"
)


@dataclass(frozen=True)
class GroupFile:
    """One file of a group handed to ``TakenIds.assign``."""

    source_file: str
    dataset: str
    previous: pa.Table | None = None  # its rows as the catalog had them before this re-ingest (``previous_ids``)


def propose_ids(con: duckdb.DuckDBPyConnection, staged: pa.Table) -> pa.Table:
    """What one file's rows propose (see _PROPOSED_SQL), in row order; ``con`` may be any DuckDB connection (an
    in-memory one on the thread that reads the files)."""
    con.register("raw_stage", staged)
    try:
        return con.sql(_PROPOSED_SQL).to_arrow_table()
    finally:
        con.unregister("raw_stage")


def previous_ids(con: duckdb.DuckDBPyConnection, source_file: str) -> pa.Table:
    """A file's ids as the catalog holds them, read before a re-ingest deletes its rows (see ``TakenIds.assign``)."""
    return con.sql(PREVIOUS_IDS_SQL, params=[source_file]).to_arrow_table()


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
    (dataset, source id) pairs, loaded once and kept up to date as files are assigned ids."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.sample_ids = _Fingerprints()
        self.dataset_ids = _Fingerprints()
        fps = con.sql(
            "SELECT hash(sample_id) AS s, CASE WHEN source_id IS NOT NULL THEN hash(dataset, source_id) END AS d "
            "FROM samples"
        ).fetchnumpy()
        self.sample_ids.add(np.asarray(fps["s"], dtype=np.uint64))
        d = fps["d"]
        self.dataset_ids.add(np.asarray(d.compressed() if np.ma.isMaskedArray(d) else d, dtype=np.uint64))
        # Ids handed out to files whose rows are not in the catalog yet (the rest of the caller's group).
        self._pending_ids: list[pa.Array] = []
        self._pending_used: list[pa.Table] = []  # (dataset, source id)

    def assign(self, con: duckdb.DuckDBPyConnection, proposals: list[pa.Table], files: list[GroupFile]) -> pa.Table:
        """``sample_id`` and ``content_hash`` for each row of a group of files, in the files' order and each file's
        row order; ``proposals`` are the files' ``propose_ids``, in ``files`` order.

        Re-ingested files' old rows must be gone from the catalog already. A row that is unchanged (same place,
        source id and content) keeps its id: the rule alone would hand it a hash id once a later file reused its
        source id, and the flags and reviews kept under the old id would be lost."""
        out = [self._settle(con, proposed, f) for proposed, f in zip(proposals, files)]
        self._pending_ids.clear()
        self._pending_used.clear()
        return pa.concat_tables(out) if out else pa.table({"sample_id": [], "content_hash": []})

    def _settle(self, con: duckdb.DuckDBPyConnection, p: pa.Table, f: GroupFile) -> pa.Table:
        """The rule for one file's proposed rows, given every id handed out before it."""
        has_id = p["has_id"].to_numpy(zero_copy_only=False)
        maybe = has_id & (
            self.sample_ids.contains(_u64(p["fp_id"])) | self.dataset_ids.contains(_u64(p["fp_dataset_id"]))
        )
        id_taken = self._exactly(con, p["source_id"], maybe, f.dataset, in_dataset=True)
        hash_taken = self._exactly(con, p["hash_id"], self.sample_ids.contains(_u64(p["fp_hash_id"])), f.dataset)
        own = has_id & (p["id_uses"].to_numpy() == 1) & ~id_taken  # the row takes its source id
        by_rule = pc.if_else(pa.array(own), p["source_id"], p["hash_id"])
        fp = np.where(own, _u64(p["fp_id"]), _u64(p["fp_hash_id"]))
        suffixed = hash_taken & ~own
        if suffixed.any():  # an exact copy of a sample in another file: told apart by its file
            suffix = "-" + hashlib.md5(f.source_file.encode()).hexdigest()[:6]
            by_rule = pc.if_else(pa.array(suffixed), pc.binary_join_element_wise(by_rule, suffix, ""), by_rule)
        kept, kept_fp = _kept_ids(p, f.previous)
        valid = pc.is_valid(kept).to_numpy(zero_copy_only=False)
        keep = valid & ~self._exactly(con, kept, valid, f.dataset)
        ids = pc.if_else(pa.array(keep), kept, by_rule)
        if keep.any() and pc.count_distinct(ids).as_py() < len(ids):
            # A kept id met a new one (rows moved within the file): the rule alone, which cannot collide.
            ids, keep = by_rule, np.zeros(len(ids), dtype=bool)
        fp = np.where(keep, kept_fp, fp)
        if suffixed.any():
            fp[suffixed & ~keep] = _hashes(con, ids.filter(pa.array(suffixed & ~keep)))
        self.sample_ids.add(fp)
        self.dataset_ids.add(_u64(p["fp_dataset_id"])[has_id])
        self._pending_ids.append(ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids)
        self._pending_used.append(
            pa.table({"dataset": p["dataset"], "id": p["source_id"]}).filter(pa.array(has_id))
        )
        return pa.table({"sample_id": ids, "content_hash": p["content_hash"]})

    def _exactly(
        self, con: duckdb.DuckDBPyConnection, ids, maybe: np.ndarray, dataset: str, in_dataset: bool = False
    ) -> np.ndarray:
        """Of the candidate rows (``maybe``), those whose id is really taken: a sample's id in the catalog or
        earlier in the group, or (``in_dataset``) a source id used in the dataset. One lookup, and none at all
        when no fingerprint matched (the usual case)."""
        taken = np.zeros(len(maybe), dtype=bool)
        rows = np.flatnonzero(maybe)
        if len(rows) == 0:
            return taken
        candidates = pa.table({"id": ids.take(pa.array(rows))})
        found = [*self._pending_ids]
        con.register("candidates", candidates)
        try:
            found.append(con.sql(_NAMED_SQL).to_arrow_table()["id"].combine_chunks())
            if in_dataset:
                found.append(con.sql(_USED_IN_DATASET_SQL, params={"dataset": dataset}).to_arrow_table()["id"]
                             .combine_chunks())
                found.extend(t.filter(pc.equal(t["dataset"], dataset))["id"].combine_chunks()
                             for t in self._pending_used)
        finally:
            con.unregister("candidates")
        value_set = pa.concat_arrays([a.cast(pa.string()) for a in found]) if found else pa.array([], pa.string())
        taken[rows] = pc.is_in(candidates["id"], value_set=value_set).to_numpy(zero_copy_only=False)
        return taken


def _kept_ids(proposed: pa.Table, previous: pa.Table | None) -> tuple[pa.Array, np.ndarray]:
    """Per proposed row, the id (and its fingerprint) its unchanged previous self had, else NULL."""
    n = proposed.num_rows
    if previous is None or previous.num_rows == 0:
        return pa.nulls(n, pa.string()), np.zeros(n, dtype=np.uint64)
    keys = ["row_index", "source_id", "content_hash"]

    def keyed(table: pa.Table) -> pa.Table:  # a join matches no NULL key: rows without a source id match on ""
        return table.set_column(1, "source_id", pc.fill_null(table["source_id"], ""))

    joined = (
        keyed(proposed.select(keys))
        .append_column("at", pa.array(np.arange(n), pa.int64()))
        .join(keyed(previous.select([*keys, "sample_id", "fp"])), keys=keys, join_type="left outer")
        .sort_by("at")
    )
    fp = joined["fp"].fill_null(0).to_numpy().astype(np.uint64)
    return joined["sample_id"].combine_chunks(), fp


def _hashes(con: duckdb.DuckDBPyConnection, ids: pa.Array) -> np.ndarray:
    con.register("new_ids", pa.table({"id": ids}))
    try:
        return _u64(con.sql("SELECT hash(id) AS fp FROM new_ids").to_arrow_table()["fp"])
    finally:
        con.unregister("new_ids")


def _u64(column) -> np.ndarray:
    return column.to_numpy().astype(np.uint64, copy=False)
