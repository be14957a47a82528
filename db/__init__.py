"""Storage: the DuckDB catalog and the SQLAlchemy curation-state database."""
