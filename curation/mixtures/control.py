"""The control set of a difficulty-filtered mixture: the same recipe without its pass-rate filters, each component
the size the filtered one got, so a team can train on both and tell whether the filtering helped."""

from __future__ import annotations

from pathlib import Path

from curation.mixtures.recipe import Recipe
from curation.mixtures.selection import Selection

CONTROL_SUFFIX = "-control"
_DIFFICULTY_FIELDS = {"difficulty": [], "pass_rate_above": None, "pass_rate_below": None}


def control_recipe(recipe: Recipe, selection: Selection) -> Recipe:
    """``recipe`` named ``<name>-control``, its components' filters without difficulty buckets or pass-rate band,
    each asking for exactly the rows its filtered component selected (same exclusions, seed and formats)."""
    selected = {c.name: c.selected for c in selection.components}
    components = [c.model_copy(update={"filter": c.filter.model_copy(update=_DIFFICULTY_FIELDS), "weight": None,
                                       "fraction": None, "count": selected.get(c.name, 0), "upsample": False})
                  for c in recipe.components]
    return recipe.model_copy(update={"name": recipe.name + CONTROL_SUFFIX, "components": components, "total": None,
                                     "control_set": False})


def control_out(out: str | Path | None) -> Path | None:
    """Where the control set goes: beside ``--out`` (``<out>-control``); by default under its own recipe name."""
    return None if out is None else Path(out).with_name(Path(out).name + CONTROL_SUFFIX)
