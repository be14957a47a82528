"""The command line: python -m curation demo|ingest|stats|... (the app calls the same functions)."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from pathlib import Path

from curation.settings import load_settings


def _cmd_demo(args, settings) -> int:
    from curation.demo import generate_demo

    out = Path(args.out) if args.out else settings.home / "demo"
    summary = generate_demo(out, samples=args.samples, seed=args.seed, defect_rate=args.defect_rate)
    print(f"demo data set: {summary.samples} samples ({summary.defects} with injected defects) in {out} "
          f"[{summary.seconds:.1f} s]")
    return 0


def _cmd_ingest(args, settings) -> int:
    from curation.ingest.run import ingest

    s = ingest([Path(p) for p in args.paths], settings, dataset=args.dataset, force=args.force,
               progress=not args.quiet)
    print(
        f"ingest run {s.ingest_run}: {s.files_ingested} file(s) ingested, {s.files_unchanged} unchanged, "
        f"{s.files_failed} unreadable; {s.rows_ok:,} rows in, {s.rows_failed:,} rows skipped, "
        f"{s.rows_with_problems:,} rows with problems recorded; catalog holds {s.samples_total:,} samples "
        f"[{s.seconds:.1f} s]"
    )
    for err in s.errors[:20]:
        where = f"{err.file}" + (f" row {err.row_index}" if err.row_index is not None else "")
        print(f"  skipped: {where}" + (f" field {err.field}" if err.field else "") + f": {err.reason}")
    if len(s.errors) > 20:
        print(f"  ... and {len(s.errors) - 20} more (see the ingest_errors table / the Overview page)")
    return 0


def _cmd_stats(args, settings) -> int:
    from curation.query.stats import catalog_stats, format_stats

    stats = catalog_stats(settings)
    print(json.dumps(stats.to_dict()) if args.json else format_stats(stats))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m curation", description="VST Curator command line")
    p.add_argument("--home", help="data home (default: $CURATOR_HOME or ./data)")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="generate a synthetic VST-shaped data set with known defects")
    d.add_argument("--out", help="output folder (default: <home>/demo)")
    d.add_argument("--samples", type=int, default=2000)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--defect-rate", type=float, default=0.08)
    d.set_defaults(func=_cmd_demo)

    i = sub.add_parser("ingest", help="build/refresh the catalog and text index from shards")
    i.add_argument("paths", nargs="+")
    i.add_argument("--dataset", help="dataset name (default: vst-p / vst-r from the path, else the folder name)")
    i.add_argument("--force", action="store_true", help="re-read files even if unchanged")
    i.add_argument("--quiet", action="store_true", help="no progress bar")
    i.set_defaults(func=_cmd_ingest)

    s = sub.add_parser("stats", help="counts by dataset, group, skill and source")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_stats)

    # Commands owned by their feature modules: the app, checks/worker/failures, export, Label Studio.
    for module in ("curation.cli.app", "curation.cli.checks", "curation.cli.export", "curation.cli.labelstudio"):
        importlib.import_module(module).register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    settings = load_settings(args.home)
    try:
        return int(args.func(args, settings) or 0)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
