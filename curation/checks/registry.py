"""The check registry: family modules register their checks by decorator; runs pick them by name or pattern."""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Iterable

from curation.checks.base import FAMILIES, Check

_CHECKS: dict[str, type[Check]] = {}


def register(cls: type[Check]) -> type[Check]:
    """Class decorator: add a check to the registry (its name must be family.name with a known family)."""
    name = getattr(cls, "name", "")
    family, _, rest = name.partition(".")
    if family not in FAMILIES or not rest:
        raise ValueError(f"check {cls.__qualname__}: name {name!r} must be family.name, family one of {FAMILIES}")
    if name in _CHECKS and _CHECKS[name] is not cls:
        raise ValueError(f"check name {name!r} is registered twice ({_CHECKS[name].__qualname__}, {cls.__qualname__})")
    _CHECKS[name] = cls
    return cls


def load_all() -> dict[str, type[Check]]:
    """Import every family module (each registers its checks) and return the registry."""
    for family in FAMILIES:
        importlib.import_module(f"curation.checks.{family}")
    return dict(_CHECKS)


def all_checks() -> dict[str, type[Check]]:
    return load_all()


def get_check(name: str) -> type[Check]:
    checks = load_all()
    if name not in checks:
        raise ValueError(f"unknown check {name!r}; known checks: {', '.join(sorted(checks))}")
    return checks[name]


def select_checks(names: str | Iterable[str] | None = None) -> list[type[Check]]:
    """Checks by name, family (``format``) or pattern (``geometry.*``); None gives every default check.

    Raises ValueError naming what matched nothing, so a typo on the command line is not a silent no-op.
    """
    checks = load_all()
    if names is None or names == "" or names == []:
        return [c for n, c in sorted(checks.items()) if c.default]
    if isinstance(names, str):
        names = [p.strip() for p in names.split(",") if p.strip()]
    picked: dict[str, type[Check]] = {}
    for pattern in names:
        pat = f"{pattern}.*" if pattern in FAMILIES else pattern
        hits = [n for n in sorted(checks) if fnmatch.fnmatchcase(n, pat)]
        if not hits:
            raise ValueError(f"no check matches {pattern!r}; known checks: {', '.join(sorted(checks))}")
        for n in hits:
            picked[n] = checks[n]
    return list(picked.values())


def describe_checks() -> list[dict[str, str]]:
    """One dict per check (name, version, family, cost, scope, applies_to, description, score, severity: its
    failures' unless an outcome names another) for the UI/CLI."""
    return [
        {
            "name": c.name,
            "version": c.version,
            "family": c.family(),
            "cost": c.cost,
            "scope": c.scope,
            "default": "yes" if c.default else "no",
            "applies_to": c.applies_to,
            "description": c.description,
            "score": c.score_meaning,
            "severity": c.severity,
        }
        for _, c in sorted(load_all().items())
    ]
