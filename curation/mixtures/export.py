"""A mixture's export: its selection written as one folder (data files, media, manifest.json) per format."""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from curation.checks.format import Placeholders
from curation.mixtures.control import control_out, control_recipe
from curation.mixtures.recipe import Recipe
from curation.mixtures.selection import Selection, select_mixture
from curation.mixtures.trainer_files import write_trainer_files
from curation.query.catalog import CatalogQuery
from curation.review.actors import Actor
from curation.review.roles import require
from curation.settings import Settings
from exports import FORMATS, get_format
from exports.manifest import MANIFEST_NAME, build_manifest, file_entries, write_manifest
from exports.pipeline import ExportPlan, write_export


@dataclass
class ExportOutcome:
    """One format's finished export: where it is, rows written, rows left out at export, its manifest."""

    format: str
    out_dir: Path
    rows: int
    left_out: int
    manifest: dict[str, Any]


def export_dirs(recipe: Recipe, formats: list[str], settings: Settings, out: str | Path | None) -> dict[str, Path]:
    """Where each format goes: --out itself for one format, <out>/<format> for several; default
    <exports_dir>/<recipe name>/<format>."""
    if out is None:
        return {f: Path(settings.exports_dir) / recipe.name / f for f in formats}
    out = Path(out)
    return {formats[0]: out} if len(formats) == 1 else {f: out / f for f in formats}


def _clear_target(path: Path, force: bool) -> None:
    if not path.exists():
        return
    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()
        return
    if not force:
        raise FileExistsError(f"{path} already exists: choose another --out or pass --force to replace it")
    if not (path / MANIFEST_NAME).is_file():
        raise FileExistsError(f"{path} exists and is not an export (no {MANIFEST_NAME}); refusing to replace it")
    shutil.rmtree(path)


def placeholder_failures(query: CatalogQuery, selection: pa.Table) -> list[tuple[str, str]]:
    """(sample_id, reason) of the selected rows whose media placeholders do not match their media, by the
    format.placeholders check itself, run now over the catalog rows (its stored results may be stale or missing):
    a trainer rejects such a record, and LLaMA-Factory then the whole dataset."""
    check = Placeholders()
    sql = (f"WITH batch AS (SELECT {', '.join(check.columns)} FROM samples "
           "WHERE sample_id IN (SELECT sample_id FROM sel)) "
           f"SELECT sample_id, reason FROM ({check.sql()}) WHERE NOT passed ORDER BY sample_id")
    return query.cursor({"sel": selection.select(["sample_id"])}).execute(sql).fetchall()


def _placeholder_plan(recipe: Recipe, query: CatalogQuery, sel: Selection) -> tuple[list[dict[str, str]], list[str]]:
    """What the export does with rows failing the placeholder check: (left out with why, repaired). Nothing to do
    under ``placeholders: repair`` (every row is re-written); repaired when the recipe keeps error rows."""
    if recipe.placeholders == "repair" or not sel.table.num_rows:
        return [], []
    failing = placeholder_failures(query, sel.table)
    if recipe.include_error_rows:
        return [], [sid for sid, _ in failing]
    return [{"sample_id": sid, "reason": f"{Placeholders.name} ({Placeholders.severity}): {why}; fix the row, or "
             "export with `include_error_rows: true` (repairs them) or `placeholders: repair`"}
            for sid, why in failing], []


def export_mixture(
    recipe: Recipe,
    settings: Settings,
    formats: list[str] | None = None,
    out: str | Path | None = None,
    *,
    by: Actor,
    force: bool = False,
    write_media: bool = True,
    absolute_media_paths: bool = False,
    progress: bool = False,
    state_db=None,
    recipe_file: str | Path | None = None,
    selection: Selection | None = None,
    query: CatalogQuery | None = None,
) -> list[ExportOutcome]:
    """Select the recipe's rows and write one export folder (data files + media + manifest.json) per format, as
    ``by`` (a curator or admin; the manifest's exported_by).

    Each export is written into ``<out>.partial`` and renamed when complete, so a folder with a manifest is
    always a finished export. ``query``: an open catalog to use (left open), else one is opened and closed here.
    """
    require(by, "export")  # before any folder is touched
    formats = list(formats or recipe.formats)
    if not formats:
        raise ValueError(f"recipe {recipe.name!r} names no format: pass --format ({', '.join(FORMATS)})")
    for f in formats:
        get_format(f)
    targets = export_dirs(recipe, formats, settings, out)
    for target in targets.values():
        _clear_target(target, force)
    own = query is None
    query = CatalogQuery(settings, state_db) if own else query
    try:
        sel = selection or select_mixture(recipe, query, state_db)
        if sel.catalog_version != query.version():  # rows are addressed by catalog position: it must not move
            raise ValueError(f"the catalog changed since the selection was made ({sel.catalog_version} -> "
                             f"{query.version()}): select again")
        placeholders = _placeholder_plan(recipe, query, sel)  # once for every format
        outcomes = []
        for f, target in targets.items():
            outcomes.append(_export_one(recipe, sel, query, f, target, write_media, absolute_media_paths, progress,
                                        recipe_file, placeholders, by))
        if recipe.control_set:  # equal size, no difficulty filter: did the filtering help?
            outcomes += export_mixture(control_recipe(recipe, sel), settings, formats, control_out(out), by=by,
                                       force=force, write_media=write_media, absolute_media_paths=absolute_media_paths,
                                       progress=progress, state_db=state_db, query=query)
        return outcomes
    finally:
        if own:
            query.close()


def _export_one(recipe: Recipe, sel: Selection, query: CatalogQuery, fmt_name: str, target: Path, write_media: bool,
                absolute_media_paths: bool, progress: bool, recipe_file: str | Path | None,
                placeholders: tuple[list[dict[str, str]], list[str]], by: Actor) -> ExportOutcome:
    fmt = get_format(fmt_name)
    target = target.resolve()
    partial = target.with_name(target.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    keep: list = []  # cursors stay alive while their relations are read

    def relation(sql: str, params: list, tables: dict[str, pa.Table]):
        cur = query.cursor(tables)
        keep.append(cur)
        return cur.sql(sql, params=params)

    absolute = absolute_media_paths or fmt.absolute_media  # some trainers resolve paths against their cwd
    leave_out, repair_ids = placeholders
    plan = ExportPlan(
        fmt=fmt, out_dir=partial, selection=sel.table, fixes=sel.fixes, placeholders=recipe.placeholders,
        leave_out=leave_out, repair_ids=repair_ids,
        shard_bytes=recipe.shard_bytes, shard_rows=recipe.shard_rows, write_media=write_media,
        media_prefix=f"{target.as_posix()}/" if absolute else "", dataset_name=recipe.name,
        progress=progress, counts=sel.counts, media_roots=query.settings.media_roots,
    )
    result = write_export(plan, relation)
    written_left_out = result.left_out
    trainer = write_trainer_files(fmt_name, partial, target, result.data_files)
    manifest = build_manifest(
        fmt=fmt_name,
        recipe={**recipe.model_dump(mode="json"), **({"file": str(recipe_file)} if recipe_file else {})},
        catalog={"path": str(query.settings.catalog_path), "version": sel.catalog_version},
        selection=sel.summary(),
        written={
            "rows": result.rows,
            "counts": result.counts,
            "left_out": written_left_out,
            "left_out_by_reason": dict(sorted(Counter(r["reason"].split(":")[0] for r in written_left_out).items())),
            "placeholders": recipe.placeholders,
            "placeholders_repaired": len(set(repair_ids) - {r["sample_id"] for r in written_left_out}),
            "error_rows": "kept" if recipe.include_error_rows else "left out",
            "media_paths": "absolute" if absolute else "relative to this folder",
        },
        files=file_entries(partial, result.data_files + result.extra_files + trainer.paths, result.sha256),
        media={**result.media, "written": write_media and (fmt.media == "files" or bool(fmt.file_kinds)),
               "embedded": fmt.media == "embedded"},
        trainer=trainer.manifest,
        exported_by=by.who,
    )
    write_manifest(partial, manifest)
    partial.rename(target)
    keep.clear()
    return ExportOutcome(fmt_name, target, result.rows, len(written_left_out), manifest)
