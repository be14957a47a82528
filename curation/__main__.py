"""`python -m curation ...`: the command line (curation/cli/main.py)."""

from curation.cli.main import main

raise SystemExit(main())
