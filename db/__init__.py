"""Storage only: the DuckDB catalog, the curation-state database (models, engine, migrations), media bytes."""
