"""The catalog commands: `ingest` (build or refresh the catalog and text index from shards) and `stats`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from curation.query.stats import catalog_stats, format_stats
from curation.settings import Settings

ERRORS_SHOWN = 20  # ingest errors printed; the rest are in the ingest_errors table


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    # Imported when the command runs: the readers and the text index load pyarrow and tantivy (~0.3 s).
    from curation.ingest.run import ingest

    s = ingest([Path(p) for p in args.paths], settings, dataset=args.dataset, force=args.force,
               progress=not args.quiet)
    print(
        f"ingest run {s.ingest_run}: {s.files_ingested} file(s) ingested, {s.files_unchanged} unchanged, "
        f"{s.files_failed} unreadable; {s.rows_ok:,} rows in, {s.rows_failed:,} rows skipped, "
        f"{s.rows_with_problems:,} rows with problems recorded; catalog holds {s.samples_total:,} samples "
        f"[{s.seconds:.1f} s]"
    )
    if s.files_reindexed:
        print(f"  {s.files_reindexed} file(s) the text index lacked (an earlier ingest stopped between its commits) "
              "were indexed again from the catalog")
    for err in s.errors[:ERRORS_SHOWN]:
        where = f"{err.file}" + (f" row {err.row_index}" if err.row_index is not None else "")
        print(f"  skipped: {where}" + (f" field {err.field}" if err.field else "") + f": {err.reason}")
    if len(s.errors) > ERRORS_SHOWN:
        print(f"  ... and {len(s.errors) - ERRORS_SHOWN} more (see the ingest_errors table / the Overview page)")
    return 0


def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    stats = catalog_stats(settings)
    print(json.dumps(stats.to_dict()) if args.json else format_stats(stats))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    i = subparsers.add_parser("ingest", help="build/refresh the catalog and text index from shards")
    i.add_argument("paths", nargs="+")
    i.add_argument("--dataset", help="dataset name (default: vst-p / vst-r from the path, else the folder name)")
    i.add_argument("--force", action="store_true", help="re-read files even if unchanged")
    i.add_argument("--quiet", action="store_true", help="no progress bar")
    i.set_defaults(func=cmd_ingest)

    s = subparsers.add_parser("stats", help="counts by dataset, group, skill and source")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_stats)
