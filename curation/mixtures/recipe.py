"""A training mixture's recipe: components (a filter and a size), exclusions, fixes, seed and formats, from YAML."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from curation.query.filters import FilterSpec
from curation.vst.taxonomy import GROUPS, load_taxonomy
from exports import FORMATS

# Checks whose failure means "the reasoning trace is bad" / "the final answer is wrong" (recipe keys override).
DEFAULT_REASONING_CHECKS = ["format.think_tags", "consistency.reasoning_vs_answer"]
NEAR_DUPLICATE_CHECK = "duplicates.near"
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20,
          "gib": 2**30, "tib": 2**40}


def parse_size(value: int | str | None) -> int | None:
    """'500MB', '1GiB', 10_000 (bytes) -> bytes; None stays None."""
    if value is None or isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"size {value!r} is not understood; write e.g. 500MB, 1GB or 2GiB")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


class Component(BaseModel):
    """One part of a mixture: a filter and how much of it (exactly one of weight, count, fraction)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    filter: FilterSpec = Field(default_factory=FilterSpec)
    weight: float | None = Field(default=None, gt=0, description="share of the recipe total")
    count: int | None = Field(default=None, ge=0, description="exact number of rows")
    fraction: float | None = Field(default=None, gt=0, le=1, description="share of the pool, stable under appends")
    upsample: bool = False  # when the pool is short: repeat rows (rank order) to reach the target
    max_repeat: int = Field(default=3, ge=1)  # at most this many copies of one row when up-sampling

    @model_validator(mode="after")
    def _one_size(self) -> Component:
        given = [k for k in ("weight", "count", "fraction") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"component {self.name!r}: give exactly one of weight, count, fraction (got {given})")
        return self


class Exclusions(BaseModel):
    """Rows no component may take."""

    model_config = ConfigDict(extra="forbid")

    flagged: bool = False
    flag_reasons: list[str] = Field(default_factory=list)  # only flags with these reasons count (empty: any)
    rejected: bool = False
    failed_checks: list[str] = Field(default_factory=list)  # check names, or family patterns like "geometry.*"
    near_duplicates: bool = False  # keep one per near-duplicate cluster (check results of near_duplicate_check)
    near_duplicate_check: str = NEAR_DUPLICATE_CHECK
    exact_duplicates: bool = False  # keep one per identical content (turns + media digests)

    @field_validator("flag_reasons", "failed_checks", mode="before")
    @classmethod
    def _listify(cls, v):
        return [] if v is None else [v] if isinstance(v, str) else list(v)


class Recipe(BaseModel):
    """A training mixture. YAML keys are these field names (see examples/recipes/)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    seed: int = 0
    total: int | None = Field(default=None, ge=0)
    components: list[Component] = Field(min_length=1)
    exclude: Exclusions = Field(default_factory=Exclusions)
    apply_fixes: bool = False  # reviewed fixes replace the original answer / reasoning in the exported turns
    formats: list[str] = Field(default_factory=list)
    # Reasoning samples whose trace fails a reasoning check while their answer passes every answer check:
    # keep as they are, drop, or downgrade (trace removed, kept as a direct answer).
    reasoning_failures: Literal["keep", "drop", "downgrade"] = "keep"
    reasoning_checks: list[str] = Field(default_factory=lambda: list(DEFAULT_REASONING_CHECKS))
    answer_checks: list[str] = Field(default_factory=list)
    placeholders: Literal["convert", "repair"] = "convert"
    # Rows with an `error` failure (a check's, or a problem ingest recorded) break training and are left out; true
    # keeps them, repairing the placeholders of rows whose media placeholders do not match (missing media stays out).
    include_error_rows: bool = False
    # Also export an equal-size control set: the same components without their difficulty (pass-rate) filters
    # (curation.mixtures.control), to <out>-control.
    control_set: bool = False
    shard_size: int | str | None = "1GB"
    shard_rows: int | None = Field(default=None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        if isinstance(data, dict) and "format" in data:  # `format: llava` reads as `formats: [llava]`
            data = dict(data)
            value = data.pop("format")
            data["formats"] = [*([value] if isinstance(value, str) else list(value)), *data.get("formats", [])]
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v):
            raise ValueError(f"{v!r} must be letters, digits, '.', '_' or '-' (it names the export folder)")
        return v

    @field_validator("formats", "reasoning_checks", "answer_checks", mode="before")
    @classmethod
    def _listify(cls, v):
        return [] if v is None else [v] if isinstance(v, str) else list(v)

    @field_validator("formats")
    @classmethod
    def _formats(cls, v: list[str]) -> list[str]:
        unknown = [f for f in v if f not in FORMATS]
        if unknown:
            raise ValueError(f"unknown format(s) {unknown}; use {', '.join(FORMATS)}")
        return v

    @field_validator("shard_size")
    @classmethod
    def _shard_size(cls, v):
        parse_size(v)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        names = [c.name for c in self.components]
        if len(set(names)) != len(names):
            raise ValueError(f"component names must be unique: {names}")
        tax = load_taxonomy()
        for c in self.components:
            try:
                tax.check_skills(c.filter.skills)
            except ValueError as exc:
                raise ValueError(f"component {c.name!r}: {exc}") from None
            bad = [g for g in c.filter.groups if g not in GROUPS]
            if bad:
                raise ValueError(f"component {c.name!r}: unknown group(s) {bad}; use {', '.join(GROUPS)}")
        weighted = [c for c in self.components if c.weight is not None]
        counted = sum(c.count for c in self.components if c.count is not None)
        if weighted:
            if self.total is None:
                raise ValueError("components with a weight need a recipe total")
            share = sum(c.weight for c in weighted)
            if abs(share - 1.0) > 1e-6:
                raise ValueError(f"weights are shares of the total and must sum to 1 (they sum to {share:g})")
        if self.total is not None and counted > self.total:
            raise ValueError(f"component counts ({counted}) exceed the total ({self.total})")
        return self

    @property
    def shard_bytes(self) -> int | None:
        return parse_size(self.shard_size)

    def targets(self) -> list[int | None]:
        """Rows asked of each component (None for fraction components): counts as given; weights share
        total - counts by largest remainder, so the targets sum exactly to the total."""
        counted = sum(c.count for c in self.components if c.count is not None)
        rest = (self.total or 0) - counted
        raw = {i: c.weight * rest for i, c in enumerate(self.components) if c.weight is not None}
        out: list[int | None] = [c.count for c in self.components]
        if raw:
            floors = {i: int(v) for i, v in raw.items()}
            left = rest - sum(floors.values())
            order = sorted(raw, key=lambda i: (-(raw[i] - floors[i]), i))
            for i in order[:left]:
                floors[i] += 1
            for i, v in floors.items():
                out[i] = v
        return out


class NestedTooDeep(yaml.YAMLError):
    """YAML nested deeper than a recipe can be (PyYAML builds nested values by recursion)."""


def load_yaml(text: str) -> Any:
    """``yaml.safe_load``, with nesting too deep to build (a hostile or broken file) reported as a YAMLError."""
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise NestedTooDeep("it is nested too deep to read (hundreds of levels of [ or { inside each other); a recipe "
                            "is a mapping a few levels deep: see examples/recipes/") from None


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file; errors name the file and the key that is wrong."""
    path = Path(path)
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FileNotFoundError(f"recipe {path}: cannot be read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"recipe {path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"recipe {path}: not valid YAML ({exc})") from exc
    return parse_recipe(data, str(path))


def parse_recipe(data: Any, source: str = "recipe") -> Recipe:
    """Validate a recipe mapping; errors name ``source`` and every key that is wrong."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: a recipe is a mapping with name, seed, components, ...")  # noqa: TRY004
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(recipe)"
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {msg}")
        raise ValueError(f"{source}: " + "; ".join(problems)) from None
