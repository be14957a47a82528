"""Ingest: readers per source format -> canonical rows (one DuckDB SELECT) -> the catalog and the text index."""
