"""The `export` command: python -m curation export RECIPE.yaml --format F [--out DIR] [--dry-run]."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from curation.settings import Settings
from exports import FORMATS

if TYPE_CHECKING:
    from curation.mixtures.selection import Selection


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="select a training mixture from a recipe and write it in training formats",
        description="Select the rows a recipe asks for (deterministic by seed) and write one export folder per "
                    "format, each with a manifest.json.")
    p.add_argument("recipe", help="recipe YAML (see examples/recipes/)")
    p.add_argument("--format", "-f", dest="formats", action="append", metavar="F",
                   help=f"{', '.join(FORMATS)} (repeat or comma-separate; default: the recipe's formats)")
    p.add_argument("--out", help="export folder (several formats: one subfolder each; "
                                 "default: <home>/exports/<recipe name>/<format>)")
    p.add_argument("--dry-run", action="store_true", help="print the counts only; write nothing")
    p.add_argument("--json", action="store_true", help="with --dry-run: print the selection as JSON")
    p.add_argument("--force", action="store_true", help="replace an existing export folder")
    p.add_argument("--seed", type=int, help="override the recipe's seed")
    p.add_argument("--shard-size", help="override the recipe's shard_size (e.g. 500MB, 2GiB)")
    p.add_argument("--shard-rows", type=int, help="override the recipe's shard_rows")
    p.add_argument("--no-media", action="store_true",
                   help="path-based formats: reference media files without writing them")
    p.add_argument("--absolute-media-paths", action="store_true",
                   help="path-based formats: absolute media paths instead of paths relative to the export folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_export)


def _formats(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [f.strip() for v in values for f in v.split(",") if f.strip()]


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    # Imported when the command runs: the mixture modules load DuckDB and the catalog query layer (~0.5 s).
    from curation.mixtures.export import export_mixture
    from curation.mixtures.recipe import load_recipe, parse_size
    from curation.mixtures.selection import select_mixture
    from curation.query.catalog import open_query
    from curation.review.actors import local_actor

    recipe = load_recipe(args.recipe)
    update: dict = {}
    if args.seed is not None:
        update["seed"] = args.seed
    if args.shard_size is not None:
        parse_size(args.shard_size)
        update["shard_size"] = args.shard_size
    if args.shard_rows is not None:
        update["shard_rows"] = args.shard_rows
    if update:
        recipe = recipe.model_copy(update=update)
    formats = _formats(args.formats) or recipe.formats
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown format(s) {unknown}; use {', '.join(FORMATS)}")
    if args.dry_run:
        query = open_query(settings)
        try:
            sel = select_mixture(recipe, query)
        finally:
            query.close()
        print(json.dumps(sel.summary(), indent=2) if args.json else format_selection(sel))
        return 0
    if not formats:
        raise ValueError(f"recipe {recipe.name!r} names no format: pass --format ({', '.join(FORMATS)})")
    open_query(settings).close()  # a clear message when there is no catalog yet
    try:
        outcomes = export_mixture(recipe, settings, formats, args.out, by=local_actor(), force=args.force,
                                  write_media=not args.no_media, absolute_media_paths=args.absolute_media_paths,
                                  progress=not args.quiet, recipe_file=args.recipe)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sel = outcomes[0].manifest["selection"] if outcomes else {}
    for line in sel.get("shortfalls", []) + sel.get("warnings", []):
        print(f"warning: {line}", file=sys.stderr)
    for o in outcomes:
        media = o.manifest["media"]
        extra = f", {media['files']:,} media files" if media.get("files") else ""
        lost = f", {o.left_out:,} left out at export (see manifest)" if o.left_out else ""
        print(f"{o.format}: {o.rows:,} rows{extra}{lost} -> {o.out_dir}")
    return 0


def format_selection(sel: Selection) -> str:
    """The dry run's report: per component asked / available / selected, exclusions, counts."""
    r = sel.recipe
    lines = [f"recipe {r.name} (seed {r.seed}) on catalog {sel.catalog_version}: {sel.rows:,} rows"]
    head = ("component", "asked", "matching", "excluded", "earlier", "available", "selected", "short", "copies")
    rows = [head] + [
        (c.name, "all" if c.fraction == 1 else (f"{c.fraction:g} of pool" if c.fraction else f"{c.asked:,}"),
         f"{c.matching:,}", f"{c.excluded:,}", f"{c.taken_earlier:,}", f"{c.available:,}", f"{c.selected:,}",
         f"{c.shortfall:,}", f"{c.upsampled:,}")
        for c in sel.components
    ]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    for row in rows:
        lines.append("  " + "  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w)
                                      for i, (v, w) in enumerate(zip(row, widths))))
    if sel.excluded_total:
        why = ", ".join(f"{k} {v:,}" for k, v in sel.excluded.items())
        lines.append(f"excluded {sel.excluded_total:,} candidate samples: {why}")
    if sel.fixes_applied:
        lines.append(f"reviewed fixes applied: {len(sel.fixes_applied):,}")
    if sel.downgraded:
        lines.append(f"reasoning traces removed (downgraded to direct answers): {len(sel.downgraded):,}")
    for name in ("by_skill", "by_source", "by_group"):
        counts = sel.counts.get(name, {})
        if counts:
            lines.append(f"{name.removeprefix('by_')}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    lines += [f"warning: {w}" for w in sel.shortfalls() + sel.warnings]
    return "\n".join(lines)

