"""Full-text index (tantivy) over question, answer and reasoning, keyed by the catalog's row key; DuckDB's FTS
extension cannot load here."""

from __future__ import annotations

import logging
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import tantivy

log = logging.getLogger(__name__)

TEXT_FIELDS = ["question", "answer", "reasoning"]
# The catalog's row key (db.catalog) of each document, as a fast field: hits come back as numbers read from its
# column, never as stored documents fetched one by one.
KEY_FIELD = "row_key"
# Consecutive row keys grouped in blocks of 2**BLOCK_SHIFT, each block indexed as a term: a page in key order searches
# the blocks from where it starts, a few at a time, and costs the hits near it. tantivy's top-k by a fast field visits
# every match (70 ms for a word in 72% of 4.1M documents), and a range on the fast field scans its whole column.
BLOCK_FIELD = "row_block"
BLOCK_SHIFT = 10
# The sample id is stored (to read a document back by hand) but not indexed: a term per sample was half of the
# index's build time, and nothing searches by it (the catalog finds ids).
_STORED_ONLY = "stored_only"
NOT_BUILT = "the text index has not been built yet: run `python -m curation ingest PATH...`"
OUTDATED = ("the text index was built by an earlier version of the curator: run `python -m curation ingest PATH...` "
            "once to rebuild it from the catalog")


def _schema() -> tantivy.Schema:
    b = tantivy.SchemaBuilder()
    b.add_unsigned_field(KEY_FIELD, fast=True)
    b.add_unsigned_field(BLOCK_FIELD, indexed=True)
    b.add_text_field("sample_id", stored=True, tokenizer_name=_STORED_ONLY, index_option="basic")
    b.add_text_field("source_file", stored=False, tokenizer_name="raw")  # ingest replaces a file's documents by it
    for name in TEXT_FIELDS:
        b.add_text_field(name, stored=False, tokenizer_name="en_stem")
    return b.build()


def _open(directory: Path, create: bool) -> tantivy.Index | None:
    """The index in ``directory`` (None when there is none and ``create`` is false). ValueError when it was built
    with another schema (see _outdated)."""
    directory = Path(directory)
    if not (directory / "meta.json").exists():
        if not create:
            return None
        directory.mkdir(parents=True, exist_ok=True)
    index = tantivy.Index(_schema(), path=str(directory))
    # Every token of the stored-only field is dropped (no field value is shorter than one character).
    index.register_tokenizer(_STORED_ONLY, tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.raw())
                             .filter(tantivy.Filter.remove_long(1)).build())
    return index


def _outdated(exc: ValueError) -> bool:
    return "schema does not match" in str(exc)


# What a curator searches in each field. A 3D-box answer is indexed as its labels: the JSON's numbers tokenise
# into digit fragments ("0.25" -> "0", "25") that match nearly every detection sample and are a fifth of all
# tokens at VST's skill shares; the boxes themselves are columns (answer kind, boxes_3d) to filter on.
_INDEXED_TEXT = {
    "question": "coalesce(question, '')",
    "answer": "CASE WHEN answer_kind = 'bbox3d' THEN coalesce(array_to_string(list_transform(boxes_3d, "
    "lambda b: b.label), ' '), '') ELSE coalesce(answer, '') END",
    "reasoning": "coalesce(reasoning, '')",
}


def document_json_sql(relation: str) -> str:
    """A SELECT of one JSON text column, a tantivy document per row of ``relation`` (a catalog-shaped table)."""
    fields = ", ".join(f"{name} := {_INDEXED_TEXT[name]}" for name in TEXT_FIELDS)
    return (f"SELECT to_json(struct_pack({KEY_FIELD}, {BLOCK_FIELD} := {KEY_FIELD} >> {BLOCK_SHIFT}, sample_id, "
            f"source_file, {fields}))::VARCHAR AS doc FROM {relation}")


class TextIndexWriter:
    """Replaces shards' documents: delete by source file, add their rows; the caller commits.

    Documents are added on a thread of the writer's own, one group of files at a time, so the caller (ingest) can
    have DuckDB write the next group meanwhile; ``commit`` and ``rollback`` wait for it first.
    """

    def __init__(self, directory: Path, heap_bytes: int = 128 << 20):
        try:
            self.index = _open(directory, create=True)
        except ValueError as exc:
            if not _outdated(exc):
                raise
            # Documents of this schema cannot go into it: start a new index. Ingest re-indexes every file the index
            # does not hold from the catalog's rows (curation.ingest.index_sync).
            log.warning("text index %s has an earlier schema: starting a new one", directory)
            drop_text_index(directory)
            self.index = _open(directory, create=True)
        self.writer = self.index.writer(heap_bytes, 2)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="text-index")
        self._adding: Future | None = None

    def replace_files(self, source_files: list[str], documents: list[pa.RecordBatch]) -> None:
        """Drop ``source_files``' documents and add ``documents``: batches of one column of JSON objects holding
        the schema's fields (``document_json_sql`` builds them in DuckDB). ``add_json`` costs a third less than
        building a ``tantivy.Document`` per row in Python, and the tokenising itself runs in tantivy's threads.
        Returns once the previous call's documents are in, so at most one group's documents wait in memory."""
        self._wait()
        self._adding = self._thread.submit(self._replace, list(source_files), documents)

    def _replace(self, source_files: list[str], documents: list[pa.RecordBatch]) -> None:
        for source_file in source_files:
            self.writer.delete_documents_by_term("source_file", source_file)
        add = self.writer.add_json
        for batch in documents:
            for doc in batch.column(0).to_pylist():
                add(doc)

    def _wait(self) -> None:
        adding, self._adding = self._adding, None
        if adding is not None:
            adding.result()  # raises here what adding raised

    def commit(self) -> None:
        self._wait()
        self.writer.commit()

    def rollback(self) -> None:
        """Drop what was added or deleted since the last commit."""
        try:
            self._wait()
        finally:
            self.writer.rollback()

    def close(self) -> None:
        """Let the segment merges that commits started finish; the writer cannot be used after this."""
        self._thread.shutdown(wait=True)
        self.writer.wait_merging_threads()


@dataclass(frozen=True)
class TextHits:
    """Every document a query matches: ``table`` has their catalog row keys (``row_key``, ascending) or, ranked,
    the keys with their scores (``row_key``, ``score``, best first)."""

    table: pa.Table
    warnings: list[str]

    @property
    def total(self) -> int:
        return self.table.num_rows

    @property
    def row_keys(self) -> np.ndarray:
        return self.table.column(KEY_FIELD).to_numpy()


@dataclass(frozen=True)
class _Parsed:
    version: str
    index: tantivy.Index | None
    searcher: tantivy.Searcher | None
    query: tantivy.Query | None  # None: nothing to search (no index, or blank text)
    warnings: list[str]


class TextSearch:
    """Searches the text index in one folder: counts, row keys in key order from any point, every hit's row key.
    Never raises on odd syntax: the lenient parser drops what it cannot read and says so in the warnings.

    The index is reopened whenever ingest commits to it (``version``), and the last hit sets are kept per (query,
    version): a broad query's hits are collected once, then counted, faceted and paged by the catalog."""

    def __init__(self, directory: Path, cached_keys: int = 16_000_000, cached_results: int = 64):
        self.directory = Path(directory)
        self._cached_keys = cached_keys  # hit sets kept: at most this many row keys in all (8 bytes each)
        self._cached_results = cached_results
        self._lock = threading.Lock()
        self._opened: tuple[str, tantivy.Index | None, list[str]] | None = None  # version, index, why none
        self._cache: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()

    def version(self) -> str:
        """Changes with every commit to the index (tantivy rewrites meta.json), and when it appears or goes."""
        try:
            st = (self.directory / "meta.json").stat()
        except OSError:
            return "absent"
        return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"

    def _index(self) -> tuple[str, tantivy.Index | None, list[str]]:
        version = self.version()
        with self._lock:
            if self._opened is None or self._opened[0] != version:
                self._opened = (version, *_open_for_search(self.directory))
            return self._opened

    def _parse(self, text: str) -> _Parsed:
        version, index, warnings = self._index()
        if index is None or not text.strip():
            return _Parsed(version, index, None, None, list(warnings))
        query, errors = index.parse_query_lenient(text, TEXT_FIELDS, conjunction_by_default=True)
        return _Parsed(version, index, index.searcher(), query, [*warnings, *map(str, errors)])

    def _kept(self, key: tuple) -> Any | None:
        with self._lock:
            if key not in self._cache:
                return None
            self._cache.move_to_end(key)
            return self._cache[key][0]

    def _remember(self, key: tuple, compute: Callable[[], Any], size: Callable[[Any], int]) -> Any:
        kept = self._kept(key)
        if kept is not None:
            return kept
        value = compute()
        with self._lock:
            self._cache[key] = (value, size(value))
            while len(self._cache) > 1 and (len(self._cache) > self._cached_results
                                            or sum(n for _, n in self._cache.values()) > self._cached_keys):
                self._cache.popitem(last=False)
        return value

    def count(self, text: str) -> tuple[int, list[str]]:
        """How many documents match, counted by tantivy (no hit is collected)."""
        p = self._parse(text)
        return (self._count(p, text) if p.query is not None else 0), p.warnings

    def _count(self, p: _Parsed, text: str) -> int:
        return self._count_and_first(p, text)[0]

    def _count_and_first(self, p: _Parsed, text: str) -> tuple[int, int | None]:
        """The number of matches and the smallest matching key (None: no match), by one search in key order: it
        visits every match without scoring it, which costs less than counting by relevance, and the first key lets
        a later first page start where the hits do."""

        def search() -> tuple[int, int | None]:
            found = p.searcher.search(p.query, 1, True, order_by_field=KEY_FIELD, order=tantivy.Order.Asc)
            return int(found.count or 0), (int(found.hits[0][0]) if found.hits else None)

        return self._remember(("count", text, p.version), search, lambda _: 0)

    def hits(self, text: str) -> TextHits:
        """Every matching document's row key, ascending."""
        p = self._parse(text)
        if p.query is None:
            return TextHits(_keys([]), p.warnings)

        def collect() -> pa.Table:
            n = self._count(p, text)
            if not n:
                return _keys([])
            found = p.searcher.search(p.query, limit=n, count=False, order_by_field=KEY_FIELD,
                                      order=tantivy.Order.Asc).hits
            return _keys(np.fromiter((k for k, _ in found), dtype=np.int64, count=len(found)))

        return TextHits(self._remember(("hits", text, p.version), collect, len), p.warnings)

    def ranked(self, text: str) -> TextHits:
        """Every matching document's row key and score, best first (ties by row key)."""
        p = self._parse(text)
        if p.query is None:
            return TextHits(_keys([]).append_column("score", pa.array([], pa.float64())), p.warnings)

        def collect() -> pa.Table:
            n = self._count(p, text)
            found = p.searcher.search(p.query, limit=n, count=False).hits if n else []
            keys = p.searcher.fast_field_values(KEY_FIELD, [addr for _, addr in found]) if found else []
            table = _keys(np.asarray(keys, dtype=np.int64)).append_column(
                "score", pa.array(np.fromiter((s for s, _ in found), dtype=np.float64, count=len(found))))
            return table.sort_by([("score", "descending"), (KEY_FIELD, "ascending")])

        return TextHits(self._remember(("ranked", text, p.version), collect, len), p.warnings)

    def keys(self, text: str, limit: int, after: int | None = None, before: int | None = None,
             descending: bool = False) -> tuple[list[int], list[str]]:
        """Up to ``limit`` matching row keys strictly between ``after`` and ``before``, in key order (the first
        ones, or with ``descending`` the last ones): a page without collecting every hit (or from the hits, when
        they are kept already)."""
        p = self._parse(text)
        if p.query is None:
            return [], p.warnings
        kept = self._kept(("hits", text, p.version))
        if kept is not None:
            keys = kept.column(KEY_FIELD).to_numpy()
            lo = 0 if after is None else int(np.searchsorted(keys, after, side="right"))
            hi = len(keys) if before is None else int(np.searchsorted(keys, before, side="left"))
            window = keys[max(lo, hi - limit): hi][::-1] if descending else keys[lo: min(hi, lo + limit)]
            return window.tolist(), p.warnings
        lo, hi = (0 if after is None else after + 1), (None if before is None else before - 1)  # keys in [lo, hi]
        none_below = lo == 0  # no match has a key below lo
        counted = self._kept(("count", text, p.version))
        if counted is not None:  # a count found the first match: none lies before it
            if counted[1] is None or (hi is not None and hi < counted[1]):
                return [], p.warnings
            none_below, lo = lo <= counted[1], max(lo, counted[1])
        return _keys_near(p, max(int(limit), 0), lo, hi, descending, none_below), p.warnings


# Blocks a page searches first, then 4x more each time up to the last window; past it (few hits near the page) one
# search of all the keys left. A window of a few blocks costs about a millisecond at 4.1M documents; its cost grows
# with its documents (about 50 ns each: tantivy joins a posting list per block), to what searching everything costs.
_FIRST_WINDOW_BLOCKS, _LAST_WINDOW_BLOCKS = 1, 16


def _keys_near(p: _Parsed, limit: int, lo: int, hi: int | None, descending: bool, none_below: bool) -> list[int]:
    """The first (or with ``descending`` the last) ``limit`` matching keys in [lo, hi] (hi None: no end), searched
    block by block outward from the page's edge. ``none_below``: no match has a key below lo."""
    if limit == 0:
        return []
    if descending and hi is None:  # the last keys: where the keys end is not known
        return _keys_ordered(p, limit, lo, hi, descending)
    found: list[int] = []
    first_block, last_block = lo >> BLOCK_SHIFT, (None if hi is None else hi >> BLOCK_SHIFT)
    edge, span = (last_block if descending else first_block), _FIRST_WINDOW_BLOCKS
    while len(found) < limit and span <= _LAST_WINDOW_BLOCKS:
        if descending:
            start, stop = max(edge - span + 1, first_block), edge
        else:
            start, stop = edge, (edge + span - 1 if last_block is None else min(edge + span - 1, last_block))
        if start > stop:
            return found  # every block in [lo, hi] was searched
        # The window's end blocks may hold keys outside [lo, hi]: ask for as many more, and drop them.
        outside = max(lo - (start << BLOCK_SHIFT), 0)
        if hi is not None:
            outside += max(((stop + 1) << BLOCK_SHIFT) - 1 - hi, 0)
        window = tantivy.Query.range_query(p.index.schema, BLOCK_FIELD, tantivy.FieldType.Unsigned,
                                           lower_bound=start, upper_bound=stop)
        query = tantivy.Query.boolean_query([(tantivy.Occur.Must, p.query), (tantivy.Occur.Must, window)])
        hits = p.searcher.search(query, limit=limit - len(found) + outside, count=False, order_by_field=KEY_FIELD,
                                 order=tantivy.Order.Desc if descending else tantivy.Order.Asc).hits
        near = [k for k, _ in hits if k >= lo and (hi is None or k <= hi)][: limit - len(found)]
        found += near
        edge, span = (start - 1 if descending else stop + 1), span * 4
        if not near and ((stop - start + 1) << BLOCK_SHIFT) - outside >= 1 << BLOCK_SHIFT:
            break  # not one match in a block's worth of keys: hits are too sparse here for windows to pay
    if len(found) < limit:  # few hits near the page: the rest in one search of every key past the windows
        if none_below and hi is None and not descending:
            return _keys_ordered(p, limit, 0, None, False)  # unbounded: a bound on the key costs a scan of its column
        rest = (lo, ((edge + 1) << BLOCK_SHIFT) - 1) if descending else (edge << BLOCK_SHIFT, hi)
        if rest[1] is None or rest[0] <= rest[1]:
            found += _keys_ordered(p, limit - len(found), *rest, descending)
    return found


def _keys_ordered(p: _Parsed, limit: int, lo: int, hi: int | None, descending: bool) -> list[int]:
    """The first (last) ``limit`` matching keys in [lo, hi] by one search: tantivy visits every match there."""
    query = p.query
    if lo > 0 or hi is not None:
        bound = tantivy.Query.range_query(p.index.schema, KEY_FIELD, tantivy.FieldType.Unsigned, lower_bound=lo,
                                          upper_bound=hi, include_lower=True, include_upper=True)
        query = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, bound)])
    order = tantivy.Order.Desc if descending else tantivy.Order.Asc
    found = p.searcher.search(query, limit=limit, count=False, order_by_field=KEY_FIELD, order=order).hits
    return [int(k) for k, _ in found]


def _open_for_search(directory: Path) -> tuple[tantivy.Index | None, list[str]]:
    try:
        index = _open(directory, create=False)
    except ValueError as exc:
        if not _outdated(exc):
            raise
        return None, [OUTDATED]
    return index, [] if index is not None else [NOT_BUILT]


def _keys(keys) -> pa.Table:
    return pa.table({KEY_FIELD: pa.array(keys, pa.int64())})


def search_text(directory: Path, query: str) -> TextHits:
    """Every document ``query`` matches in the index in ``directory`` (a one-off search: nothing is kept)."""
    return TextSearch(directory).hits(query)


def drop_text_index(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
