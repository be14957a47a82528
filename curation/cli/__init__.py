"""The command line, `python -m curation ...`: one module per command group, each with register(subparsers)."""
