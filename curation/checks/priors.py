"""Editable check knowledge (priors.yaml): known `type` values and plausible object sizes per label."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
import yaml

PRIORS_PATH = Path(__file__).with_name("priors.yaml")


@dataclass(frozen=True)
class SizePrior:
    typical: tuple[float, float, float]  # width, height, depth in metres
    longest: tuple[float, float]  # plausible range of the longest side


@dataclass(frozen=True)
class Priors:
    known_types: tuple[str, ...]
    object_sizes: dict[str, SizePrior]

    def sizes_table(self) -> pa.Table:
        """label, typical longest side, plausible longest-side range: the relation geometry.size_plausible joins."""
        labels = list(self.object_sizes)
        return pa.table({
            "label": pa.array(labels, pa.string()),
            "typical": pa.array([max(self.object_sizes[k].typical) for k in labels], pa.float64()),
            "lo": pa.array([self.object_sizes[k].longest[0] for k in labels], pa.float64()),
            "hi": pa.array([self.object_sizes[k].longest[1] for k in labels], pa.float64()),
        })


def _numbers(value, n: int) -> bool:
    return isinstance(value, list) and len(value) == n and all(isinstance(v, (int, float)) and v > 0 for v in value)


@lru_cache(maxsize=4)
def load_priors(path: str | Path = PRIORS_PATH) -> Priors:
    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    sizes: dict[str, SizePrior] = {}
    for label, spec in (data.get("object_sizes") or {}).items():
        typical, longest = (spec or {}).get("typical"), (spec or {}).get("longest")
        if not _numbers(typical, 3) or not _numbers(longest, 2) or longest[0] >= longest[1]:
            raise ValueError(f"{path}: object_sizes.{label} needs typical: [w, h, d] and longest: [min, max] "
                             f"in metres (min < max), got {spec!r}")
        sizes[str(label).lower()] = SizePrior(tuple(map(float, typical)), (float(longest[0]), float(longest[1])))
    types = tuple(str(t).lower() for t in data.get("known_types") or [])
    return Priors(types, sizes)
