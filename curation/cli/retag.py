"""The `retag` command: re-derive every sample's skill from taxonomy.yaml without re-ingesting."""

from __future__ import annotations

import argparse

from curation.settings import Settings

CHANGES_SHOWN = 20  # skills whose count changed, the biggest changes first


def cmd_retag(args: argparse.Namespace, settings: Settings) -> int:
    from curation.ingest.retag import retag  # loads DuckDB and the taxonomy only when the command runs

    s = retag(settings)
    where = "in place" if s.in_place else "into a copy swapped in (readers held the catalog)"
    print(f"retag: skills of {s.samples:,} samples derived anew from rules {s.taxonomy}, written {where}; "
          f"{len(s.changes)} skill(s) changed count, {s.moved:,} samples moved [{s.seconds:.1f} s]")
    for skill, before, after in s.changes[:CHANGES_SHOWN]:
        print(f"  {skill}: {before:,} -> {after:,} ({after - before:+,})")
    if len(s.changes) > CHANGES_SHOWN:
        print(f"  ... and {len(s.changes) - CHANGES_SHOWN} more")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    r = subparsers.add_parser("retag", help="re-derive every sample's skill from taxonomy.yaml (no re-ingest)")
    r.set_defaults(func=cmd_retag)
