"""The text index follows the catalog: it commits only what the catalog has made visible, records which version of
each file it holds, and rebuilds from the catalog's rows any file it lacks (a kill between the two commits)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pyarrow as pa

from curation.ingest.text_index import TextIndexWriter, document_json_sql
from db.catalog import ingested_file_versions

# Kept in the index's own folder: deleting the index deletes the record of what it holds, and the next ingest
# rebuilds it from the catalog.
HELD_FILES = "catalog_files.json"
# Documents handed to the writer at a time while rebuilding (one ingest group's worth).
REBUILD_ROWS = 100_000


def held_files(directory: Path) -> dict[str, str]:
    """The catalog files (and their versions) whose documents the index's last commit holds."""
    try:
        return json.loads((Path(directory) / HELD_FILES).read_text())
    except (OSError, ValueError):
        return {}  # no record (a new or older index): nothing is known to be held, so all is rebuilt


def _save_held_files(directory: Path, files: dict[str, str]) -> None:
    """Written after the index's commit and swapped in whole: a kill leaves the previous record, which claims
    less than the index holds, never more (a file claimed but not held would never be repaired)."""
    path = Path(directory) / HELD_FILES
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(files, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class TextIndexFollower:
    """Ingest's text-index writer. ``replace_files`` as ``TextIndexWriter``; ``caught_up`` after a catalog commit
    notes what the index will hold once it commits; ``commit`` only where the catalog's commit is visible."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.writer = TextIndexWriter(self.directory)
        self._files: dict[str, str] | None = None  # the catalog's files at its last commit

    def repair(self, con: duckdb.DuckDBPyConnection) -> int:
        """Re-index from the catalog's rows every file the catalog holds in a version the index does not, drop the
        documents of files it no longer holds, and commit; returns the files re-indexed. The shards are not read:
        the catalog has every indexed field."""
        catalog = ingested_file_versions(con)
        held = held_files(self.directory)
        stale = sorted(f for f, version in catalog.items() if held.get(f) != version)
        gone = sorted(set(held) - set(catalog))
        if not stale and not gone:
            return 0
        self.writer.replace_files(stale + gone, [])
        docs = con.sql(
            f"{document_json_sql('samples')} WHERE source_file IN (SELECT unnest($files))", params={"files": stale}
        ).to_arrow_reader(20_000)
        batches: list[pa.RecordBatch] = []
        for batch in docs:
            batches.append(batch)
            if sum(b.num_rows for b in batches) >= REBUILD_ROWS:
                self.writer.replace_files([], batches)
                batches = []
        self.writer.replace_files([], batches)
        self._files = catalog
        self.commit()
        return len(stale)

    def replace_files(self, source_files: list[str], documents: list[pa.RecordBatch]) -> None:
        self.writer.replace_files(source_files, documents)

    def caught_up(self, con: duckdb.DuckDBPyConnection) -> None:
        """Call right after a catalog commit: every file replaced so far is in it, in the version it now holds."""
        self._files = ingested_file_versions(con)

    def commit(self) -> None:
        self.writer.commit()
        if self._files is not None:
            _save_held_files(self.directory, self._files)

    def rollback(self) -> None:
        self.writer.rollback()

    def close(self) -> None:
        self.writer.close()
