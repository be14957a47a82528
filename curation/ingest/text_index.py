"""Full-text index (tantivy) over question, answer and reasoning; DuckDB's FTS extension cannot load here."""

from __future__ import annotations

import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import tantivy

TEXT_FIELDS = ["question", "answer", "reasoning"]
# A text filter narrows the catalog to at most this many best-ranked hits; the true count is still reported.
DEFAULT_HIT_LIMIT = 20_000


def _schema() -> tantivy.Schema:
    b = tantivy.SchemaBuilder()
    b.add_text_field("sample_id", stored=True, tokenizer_name="raw")
    b.add_text_field("source_file", stored=False, tokenizer_name="raw")
    for name in TEXT_FIELDS:
        b.add_text_field(name, stored=False, tokenizer_name="en_stem")
    return b.build()


def _open(directory: Path, create: bool) -> tantivy.Index | None:
    directory = Path(directory)
    if not (directory / "meta.json").exists():
        if not create:
            return None
        directory.mkdir(parents=True, exist_ok=True)
    return tantivy.Index(_schema(), path=str(directory))


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
    return f"SELECT to_json(struct_pack(sample_id, source_file, {fields}))::VARCHAR AS doc FROM {relation}"


class TextIndexWriter:
    """Replaces shards' documents: delete by source file, add their rows; the caller commits.

    Documents are added on a thread of the writer's own, one group of files at a time, so the caller (ingest) can
    have DuckDB write the next group meanwhile; ``commit`` and ``rollback`` wait for it first.
    """

    def __init__(self, directory: Path, heap_bytes: int = 128 << 20):
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
    sample_ids: list[str]
    total: int  # all matching documents, even past the hit limit
    warnings: list[str]


def search_text(directory: Path, query: str, limit: int = DEFAULT_HIT_LIMIT) -> TextHits:
    """Best-ranked sample ids for a user query. Never raises on odd syntax: the lenient parser drops what it
    cannot read and the dropped parts come back as warnings."""
    index = _open(directory, create=False)
    if index is None or not query.strip():
        return TextHits([], 0, [] if index else ["the text index has not been built yet (run ingest)"])
    index.reload()
    parsed, errors = index.parse_query_lenient(query, TEXT_FIELDS, conjunction_by_default=True)
    searcher = index.searcher()
    result = searcher.search(parsed, limit=limit, count=True)
    ids = [searcher.doc(addr)["sample_id"][0] for _, addr in result.hits]
    return TextHits(ids, int(result.count or 0), [str(e) for e in errors])


def drop_text_index(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
