"""The `python -m curation` parser: global options, one command group per module; bad input exits with 2, a disk
that is full or cannot be written with 1 (curation.cli.errors), each as one line on stderr."""

from __future__ import annotations

import argparse
import logging
import sys

from curation.cli import app, catalog, checks, demo, export, labelstudio, retag, roles
from curation.cli.errors import environment_problem
from curation.settings import load_settings

COMMAND_GROUPS = (demo, catalog, retag, app, roles, checks, export, labelstudio)  # the order `--help` lists them in


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m curation", description="VST Curator command line")
    p.add_argument("--home", help="data home (default: $CURATOR_HOME or ./data)")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    settings = load_settings(args.home)
    try:
        return int(args.func(args, settings) or 0)
    except Exception as exc:
        problem = environment_problem(exc, settings)  # a full or read-only disk: where, and what to do
        if problem is None and not isinstance(exc, (FileNotFoundError, ValueError)):
            raise  # a bug: its traceback is what a report needs
        logging.getLogger(__name__).info("the command failed", exc_info=exc)  # -v shows the traceback
        print(f"error: {problem or exc}", file=sys.stderr)
        return 2 if problem is None else 1
