"""What the Mixtures page shows: recipe YAML <-> form values, a selection's counts and charts, past exports."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, get_args

import plotly.graph_objects as go
import yaml

from curation.mixtures.recipe import Recipe, load_yaml, parse_recipe
from curation.mixtures.selection import ERROR_REASON, ComponentReport, Selection
from curation.query.filters import FilterSpec
from exports import FORMATS
from exports.manifest import MANIFEST_NAME

FORM_DIMENSIONS = ("skills", "groups", "sources", "datasets")  # the filter keys the form edits
SIZE_MODES = ("weight", "count", "fraction")
REASONING_POLICIES: tuple[str, ...] = get_args(Recipe.model_fields["reasoning_failures"].annotation)
FORMAT_NAMES: tuple[str, ...] = tuple(FORMATS)  # the export formats the form offers
STARTER_RECIPE = {
    "name": "my-mixture",
    "seed": 0,
    "total": 100,
    "components": [{"name": "everything", "filter": {}, "weight": 1.0}],
    "exclude": {"flagged": True, "rejected": True},
    "formats": ["vst-sft"],
}
# Top-level keys in the order a person writes them; keys the form does not know keep their place after these.
_KEY_ORDER = ["name", "description", "seed", "total", "components", "exclude", "apply_fixes", "reasoning_failures",
              "reasoning_checks", "answer_checks", "formats", "placeholders", "include_error_rows", "shard_size",
              "shard_rows"]
_COMPONENT_ORDER = ["name", "filter", "weight", "count", "fraction", "upsample", "max_repeat"]
_SHORT, _MET = "#e45756", "#54a24b"


# --- recipe text ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class YamlProblem:
    """Why the recipe text is not a recipe mapping, with the line (1-based) when YAML knows it."""

    message: str
    line: int | None = None
    column: int | None = None
    text: str = ""  # the offending line

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "") if self.line else "the text"
        shown = f"\n\n    {self.text}" if self.text.strip() else ""
        return f"The YAML does not parse at {where}: {self.message}{shown}"


def parse_yaml(text: str) -> tuple[dict | None, YamlProblem | None]:
    """The recipe mapping in ``text``, or why there is none (syntax errors carry their line)."""
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = " ".join(p for p in (getattr(exc, "context", None), getattr(exc, "problem", None)) if p)
        if mark is None:
            return None, YamlProblem(problem or str(exc))
        lines = text.splitlines()
        shown = lines[mark.line] if 0 <= mark.line < len(lines) else ""
        return None, YamlProblem(problem or str(exc), mark.line + 1, mark.column + 1, shown)
    if data is None:
        return None, YamlProblem("the recipe is empty; start from an example or write name, total and components")
    if not isinstance(data, dict):
        return None, YamlProblem(f"a recipe is a mapping (name: ..., components: ...), not a {type(data).__name__}",
                                 1, None, text.splitlines()[0] if text.strip() else "")
    return data, None


def _ordered(data: Mapping, order: Sequence[str]) -> dict:
    return {**{k: data[k] for k in order if k in data}, **{k: v for k, v in data.items() if k not in order}}


def recipe_yaml(data: Mapping) -> str:
    """The recipe mapping as YAML in a stable, readable key order (short lists and filters inline)."""
    out = _ordered(data, _KEY_ORDER)
    if isinstance(out.get("components"), list):
        out["components"] = [_ordered(c, _COMPONENT_ORDER) if isinstance(c, Mapping) else c
                             for c in out["components"]]
    return yaml.safe_dump(out, sort_keys=False, default_flow_style=None, allow_unicode=True, width=110)


def validate(data: Mapping, source: str = "recipe") -> tuple[Recipe | None, str | None]:
    """The validated recipe, or the message saying which key is wrong (unknown skill, weights not summing to 1...)."""
    try:
        return parse_recipe(dict(data), source), None
    except ValueError as exc:  # "recipe: (recipe): component 'x': ..." -> "component 'x': ..."
        return None, str(exc).removeprefix(f"{source}: ").replace("(recipe): ", "")


def example_recipes(folder: Path) -> dict[str, Path]:
    """examples/recipes/*.yaml by file name."""
    return {p.name: p for p in sorted(Path(folder).glob("*.y*ml"))}


# --- recipe <-> form -----------------------------------------------------------------------------------------


@dataclass
class ComponentForm:
    """One component as the form edits it (the other filter keys and options are kept from the recipe)."""

    name: str = ""
    skills: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    size_mode: str = "count"  # weight | count | fraction
    size: float = 100


@dataclass
class RecipeForm:
    """The recipe fields the page's form shows."""

    name: str = ""
    total: int | None = None
    seed: int = 0
    components: list[ComponentForm] = field(default_factory=list)
    flagged: bool = False
    rejected: bool = False
    failed_checks: list[str] = field(default_factory=list)
    near_duplicates: bool = False
    exact_duplicates: bool = False
    apply_fixes: bool = False
    reasoning_failures: str = "keep"
    formats: list[str] = field(default_factory=list)


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | int | float):
        return [str(value)]
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


def _number(value: Any, default: float, low: float = 0.0, high: float = 1e12) -> float:
    """A number the form's inputs can show: wrong types and non-finite values fall back, the rest is clamped
    (the YAML keeps what was written, and validation says what is wrong with it)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return default
    return min(max(x, low), high) if math.isfinite(x) else default


def _int_or_none(value: Any, low: int = 0) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    x = _number(value, float("nan"), low)
    return None if math.isnan(x) else int(x)


def default_size(mode: str, n_components: int = 1) -> float:
    return {"weight": round(1 / max(n_components, 1), 4), "count": 100, "fraction": 1.0}[mode]


def form_from_data(data: Mapping) -> RecipeForm:
    """Form values from a parsed (not necessarily valid) recipe mapping; wrong types fall back to defaults."""
    comps = []
    raw = data.get("components") if isinstance(data.get("components"), list) else []
    for i, c in enumerate(raw):
        c = c if isinstance(c, Mapping) else {}
        flt = c.get("filter") if isinstance(c.get("filter"), Mapping) else {}
        mode = next((m for m in SIZE_MODES if c.get(m) is not None), "count")
        comps.append(ComponentForm(
            name=str(c.get("name") or f"component-{i + 1}"),
            **{d: _strings(flt.get(d)) for d in FORM_DIMENSIONS},
            size_mode=mode, size=_number(c.get(mode), default_size(mode, len(raw)), 0.0,
                                          1e12 if mode == "count" else 1.0),
        ))
    excl = data.get("exclude") if isinstance(data.get("exclude"), Mapping) else {}
    formats = _strings(data.get("format")) + _strings(data.get("formats"))
    policy = data.get("reasoning_failures")
    return RecipeForm(
        name=str(data.get("name") or ""), total=_int_or_none(data.get("total")),
        seed=_int_or_none(data.get("seed"), -(2**62)) or 0, components=comps,
        flagged=bool(excl.get("flagged")), rejected=bool(excl.get("rejected")),
        failed_checks=_strings(excl.get("failed_checks")), near_duplicates=bool(excl.get("near_duplicates")),
        exact_duplicates=bool(excl.get("exact_duplicates")), apply_fixes=bool(data.get("apply_fixes")),
        reasoning_failures=policy if policy in REASONING_POLICIES else "keep", formats=formats,
    )


def data_from_form(form: RecipeForm, base: Mapping) -> dict:
    """The recipe mapping the form describes. Keys the form does not show (description, upsample, other filter
    keys, shard_size...) are kept from ``base``; empty lists and false flags are left out to keep the YAML short."""
    data = {k: v for k, v in base.items() if k != "format"}
    data["name"] = form.name.strip()
    data["seed"] = int(form.seed)
    if form.total is None:
        data.pop("total", None)
    else:
        data["total"] = int(form.total)
    old = base.get("components") if isinstance(base.get("components"), list) else []
    comps = []
    for i, cf in enumerate(form.components):
        prev = old[i] if i < len(old) and isinstance(old[i], Mapping) else {}
        comp = {k: v for k, v in prev.items() if k not in SIZE_MODES}
        flt = dict(prev.get("filter")) if isinstance(prev.get("filter"), Mapping) else {}
        for d in FORM_DIMENSIONS:
            if getattr(cf, d):
                flt[d] = list(getattr(cf, d))
            else:
                flt.pop(d, None)
        comp["name"] = cf.name.strip()
        comp["filter"] = flt
        comp[cf.size_mode] = int(cf.size) if cf.size_mode == "count" else float(cf.size)
        comps.append(_ordered(comp, _COMPONENT_ORDER))
    data["components"] = comps
    excl = dict(base.get("exclude")) if isinstance(base.get("exclude"), Mapping) else {}
    for key in ("flagged", "rejected", "near_duplicates", "exact_duplicates"):
        if getattr(form, key):
            excl[key] = True
        else:
            excl.pop(key, None)
    if form.failed_checks:
        excl["failed_checks"] = list(form.failed_checks)
    else:
        excl.pop("failed_checks", None)
    if excl:
        data["exclude"] = excl
    else:
        data.pop("exclude", None)
    for key, value, default in (("apply_fixes", form.apply_fixes, False),
                                ("reasoning_failures", form.reasoning_failures, "keep")):
        if value != default:
            data[key] = value
        else:
            data.pop(key, None)
    data["formats"] = list(form.formats)
    return _ordered(data, _KEY_ORDER)


def add_component(data: Mapping, name: str | None = None) -> dict:
    """The recipe with one more component (over everything; a count, or the weight left over when weighted)."""
    comps = list(data.get("components") or []) if isinstance(data.get("components"), list) else []
    taken = {c.get("name") for c in comps if isinstance(c, Mapping)}
    name = name or next(f"component-{k}" for k in range(len(comps) + 1, len(comps) + 100)
                        if f"component-{k}" not in taken)
    weights = [c.get("weight") for c in comps if isinstance(c, Mapping) and c.get("weight") is not None]
    rest = round(1 - sum(_number(w, 0) for w in weights), 4)
    size = {"weight": rest} if weights and rest > 0 else {"count": 100}
    return {**data, "components": [*comps, {"name": name, "filter": {}, **size}]}


def remove_component(data: Mapping, index: int) -> dict:
    comps = list(data.get("components") or []) if isinstance(data.get("components"), list) else []
    return {**data, "components": [c for i, c in enumerate(comps) if i != index]}


def component_from_spec(data: Mapping, spec: FilterSpec, name: str = "from-browse") -> dict:
    """The recipe with a component over a Browse filter (its non-empty keys), count 100."""
    flt = json.loads(spec.model_dump_json(exclude_defaults=True))
    out = add_component(data, name if name not in {c.get("name") for c in data.get("components") or []
                                                  if isinstance(c, Mapping)} else None)
    out["components"][-1] = {**out["components"][-1], "filter": flt}
    return out


# --- catalog values for the form -----------------------------------------------------------------------------


def options_with(values: Sequence[str], selected: Sequence[str]) -> list[str]:
    """Widget options: the catalog's values, plus any the recipe names that the catalog lacks (kept visible)."""
    return [*values, *[v for v in selected if v not in values]]


# --- selection counts ----------------------------------------------------------------------------------------


def component_rows(selection: Selection) -> list[dict[str, Any]]:
    """One table row per component: asked, available, selected, and a plain status (shortfalls stand out)."""
    rows = []
    for c in selection.components:
        rows.append({
            "component": c.name,
            "asked": c.asked if c.asked is not None else f"{100 * (c.fraction or 0):g}% of pool",
            "matching": c.matching, "excluded": c.excluded, "taken earlier": c.taken_earlier,
            "available": c.available, "selected": c.selected, "status": component_status(c),
        })
    return rows


def component_status(c: ComponentReport) -> str:
    if c.shortfall > 0:
        return f"⚠ short by {c.shortfall:,}"
    if c.upsampled:
        return f"↻ met with {c.upsampled:,} up-sampled copies"
    return "✓ met"


def components_figure(selection: Selection) -> go.Figure:
    """Per component: rows asked, available after exclusions, and selected (red where the target is not met)."""
    comps = selection.components
    names = [c.name for c in comps]
    asked = [c.asked if c.asked is not None else c.selected for c in comps]
    fig = go.Figure()
    fig.add_trace(go.Bar(name="asked", x=names, y=asked, marker_color="#bab0ac",
                         text=[f"{a:,}" if c.asked is not None else "fraction" for a, c in zip(asked, comps)],
                         textposition="outside", cliponaxis=False))
    fig.add_trace(go.Bar(name="available", x=names, y=[c.available for c in comps], marker_color="#4c78a8",
                         text=[f"{c.available:,}" for c in comps], textposition="outside", cliponaxis=False))
    fig.add_trace(go.Bar(name="selected", x=names, y=[c.selected for c in comps],
                         marker_color=[_SHORT if c.shortfall else _MET for c in comps],
                         text=[f"{c.selected:,}" + (f"<br>short {c.shortfall:,}" if c.shortfall else "")
                               for c in comps], textposition="outside", cliponaxis=False))
    fig.update_layout(barmode="group", title="Rows per component: asked · available · selected (red: short)",
                      height=360, margin=dict(l=10, r=10, t=50, b=10), yaxis_title="rows",
                      legend=dict(orientation="h", y=-0.15))
    return fig


def skill_targets(recipe: Recipe, pool_skills: Sequence[Mapping[str, int]]) -> dict[str, float]:
    """Rows each skill is meant to get: a component's target spread over the skills its filter matches, in
    proportion to how many rows of each it matches (a fraction component: that share of each skill).

    ``pool_skills`` may be facet counts, which leave a filter's own skills aside (they list every skill the other
    conditions match): a component naming skills spreads over those skills only."""
    out: dict[str, float] = {}
    for comp, target, skills in zip(recipe.components, recipe.targets(), pool_skills):
        if comp.filter.skills:
            skills = {k: n for k, n in skills.items() if k in comp.filter.skills}
        pool = sum(skills.values())
        for skill, n in skills.items():
            want = (target * n / pool if pool else 0.0) if target is not None else (comp.fraction or 0) * n
            out[skill] = out.get(skill, 0.0) + want
    return out


def skill_share_rows(targets: Mapping[str, float], selected: Mapping[str, int]) -> list[dict[str, Any]]:
    """Per skill: target and selected rows and shares (%), largest target first."""
    t_total = sum(targets.values()) or 1.0
    s_total = sum(selected.values()) or 1
    skills = sorted((s for s in set(targets) | set(selected) if targets.get(s, 0) > 0 or selected.get(s, 0) > 0),
                    key=lambda s: (-targets.get(s, 0), -selected.get(s, 0), s))
    return [{"skill": s, "target rows": round(targets.get(s, 0.0)), "selected rows": selected.get(s, 0),
             "target %": round(100 * targets.get(s, 0.0) / t_total, 1),
             "selected %": round(100 * selected.get(s, 0) / s_total, 1)} for s in skills]


def skills_figure(rows: Sequence[Mapping[str, Any]], top: int = 20) -> go.Figure:
    """Per skill, the share of the mixture it is meant to have and the share it got (the first ``top`` skills;
    the rest summed as 'other')."""
    rows = list(rows)
    if len(rows) > top:
        rest = rows[top - 1:]
        rows = rows[: top - 1] + [{"skill": f"(other {len(rest)})",
                                   **{k: round(sum(r[k] for r in rest), 1) for k in ("target %", "selected %")}}]
    rows = rows[::-1]
    skills = [r["skill"] for r in rows]
    fig = go.Figure()
    for key, colour in (("target %", "#bab0ac"), ("selected %", "#4c78a8")):
        fig.add_trace(go.Bar(name=key.split()[0], y=skills, x=[r[key] for r in rows], orientation="h",
                             marker_color=colour, text=[f"{r[key]:g}%" for r in rows], textposition="outside",
                             cliponaxis=False))
    fig.update_layout(barmode="group", title="Share of the mixture per skill: target vs selected",
                      height=max(260, 100 + 34 * len(rows)), margin=dict(l=10, r=10, t=50, b=10),
                      xaxis_title="% of rows", yaxis=dict(automargin=True),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0))
    return fig


def error_exclusions(by_reason: Mapping[str, int]) -> dict[str, int]:
    """The exclusions of rows broken for training (an error failure), by check: check -> samples."""
    return {r.removeprefix(ERROR_REASON): n for r, n in by_reason.items() if r.startswith(ERROR_REASON)}


def exclusions_figure(by_reason: Mapping[str, int]) -> go.Figure:
    """Candidates left out, per reason (a sample may have several)."""
    items = sorted(by_reason.items(), key=lambda kv: (kv[1], kv[0]))
    fig = go.Figure(go.Bar(x=[v for _, v in items], y=[k for k, _ in items], orientation="h",
                           marker_color="#f58518", text=[f"{v:,}" for _, v in items], textposition="outside",
                           cliponaxis=False))
    fig.update_layout(title="Samples excluded, by reason", height=max(200, 80 + 30 * len(items)),
                      margin=dict(l=10, r=10, t=50, b=10), xaxis_title="samples", yaxis=dict(automargin=True))
    return fig


# --- past exports --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PastExport:
    """A finished export folder (it holds a manifest.json) and what its manifest says."""

    path: Path
    recipe: str
    format: str
    created_at: str
    rows: int
    unique_samples: int
    excluded: int
    files: list[dict[str, Any]]
    manifest: dict[str, Any]

    @property
    def bytes(self) -> int:
        return sum(int(f.get("bytes") or 0) for f in self.files)

    @property
    def when(self) -> str:
        try:
            return datetime.fromisoformat(self.created_at).strftime("%Y-%m-%d %H:%M UTC")
        except ValueError:
            return self.created_at or "?"


def past_exports(exports_dir: Path, max_depth: int = 3) -> tuple[list[PastExport], list[str]]:
    """Export folders under ``exports_dir`` (newest first), and a note for each manifest that cannot be read.
    Unfinished exports (``*.partial``) have no manifest at their top and are not listed."""
    root = Path(exports_dir)
    found, problems = [], []
    if not root.is_dir():
        return found, problems
    for depth in range(1, max_depth + 1):
        for path in sorted(root.glob("/".join(["*"] * depth) + "/" + MANIFEST_NAME)):
            folder = path.parent
            if any(p.endswith(".partial") for p in folder.relative_to(root).parts):
                continue
            try:
                m = json.loads(path.read_text(encoding="utf-8"))
                sel = m.get("selection") or {}
                found.append(PastExport(
                    path=folder, recipe=str((m.get("recipe") or {}).get("name") or folder.name),
                    format=str(m.get("format") or "?"), created_at=str(m.get("created_at") or ""),
                    rows=int((m.get("written") or {}).get("rows") or sel.get("rows") or 0),
                    unique_samples=int(sel.get("unique_samples") or 0),
                    excluded=int((sel.get("excluded") or {}).get("total") or 0),
                    files=list(m.get("files") or []), manifest=m))
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                problems.append(f"{path}: not a readable manifest ({exc})")
    found.sort(key=lambda e: (e.created_at, str(e.path)), reverse=True)
    return found, problems


def past_export_rows(exports: Sequence[PastExport], root: Path) -> list[dict[str, Any]]:
    out = []
    for e in exports:
        try:
            where = e.path.relative_to(root).as_posix()
        except ValueError:
            where = str(e.path)
        out.append({"folder": where, "recipe": e.recipe, "format": e.format, "created": e.when,
                    "by": e.manifest.get("exported_by"), "rows": e.rows, "excluded": e.excluded,
                    "files": len(e.files), "MB": round(e.bytes / 1e6, 2)})
    return out
