"""The skill taxonomy (taxonomy.yaml) and the SQL expressions ingest uses to apply it to millions of rows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

TAXONOMY_PATH = Path(__file__).with_name("taxonomy.yaml")
GROUPS = ("single", "multi", "video", "text")


@dataclass(frozen=True)
class Skill:
    id: str
    name: str
    dataset: str
    group: str


@dataclass(frozen=True)
class Taxonomy:
    skills: dict[str, Skill]
    subset_aliases: dict[str, str]
    wording_rules: dict[str, list[tuple[str, str]]]
    type_rules: dict[str, dict[str, str]]
    sources: list[tuple[str, str]]
    scene_patterns: list[str]

    def skill_ids(self) -> list[str]:
        return list(self.skills)

    def check_skills(self, names) -> None:
        """Raise ValueError naming any skill that is not in the taxonomy (recipes, filters)."""
        unknown = [n for n in names if n not in self.skills]
        if unknown:
            raise ValueError(f"unknown skill id(s) {unknown}; valid ids: {', '.join(self.skills)}")

    # --- the same rules as SQL, for ingest at scale ---------------------------------------------
    def skill_sql(self, subset: str, group: str, question: str, type_: str) -> str:
        """A CASE expression giving the skill id from the named SQL columns/expressions."""
        parts = ["CASE"]
        direct = {s: s for s in self.skills if s != "unknown"} | self.subset_aliases
        for folder, skill in direct.items():
            parts.append(f"WHEN {subset} = {_lit(folder)} THEN {_lit(skill)}")
        for grp, rules in self.wording_rules.items():
            for pattern, skill in rules:
                parts.append(
                    f"WHEN {group} = {_lit(grp)} AND regexp_matches({question}, {_lit(pattern)}, 'i') "
                    f"THEN {_lit(skill)}"
                )
        for grp, mapping in self.type_rules.items():
            for tname, skill in mapping.items():
                parts.append(f"WHEN {group} = {_lit(grp)} AND lower({type_}) = {_lit(tname)} THEN {_lit(skill)}")
        parts.append("ELSE 'unknown' END")
        return " ".join(parts)

    def source_sql(self, data_source: str) -> str:
        whens = " ".join(f"WHEN regexp_matches({data_source}, {_lit(p)}, 'i') THEN {_lit(s)}" for p, s in self.sources)
        return f"CASE {whens} ELSE nullif(lower(trim({data_source})), '') END"

    def scene_sql(self, paths: str) -> str:
        """First scene id found in a VARCHAR expression holding the media paths."""
        exprs = [f"nullif(regexp_extract({paths}, {_lit(p)}), '')" for p in self.scene_patterns]
        return f"coalesce({', '.join(exprs)})" if exprs else "NULL"

    # --- the same rules in Python, for single rows and tests ------------------------------------
    def classify(self, subset: str | None, group: str, question: str, type_: str | None) -> str:
        if subset in self.skills and subset != "unknown":
            return subset
        if subset in self.subset_aliases:
            return self.subset_aliases[subset]
        for pattern, skill in self.wording_rules.get(group, []):
            if re.search(pattern, question or "", re.IGNORECASE):
                return skill
        skill = self.type_rules.get(group, {}).get((type_ or "").lower())
        return skill or "unknown"


def _lit(text: str) -> str:
    """A SQL string literal. Only taxonomy.yaml (trusted config) reaches here; user input is always a parameter."""
    return "'" + str(text).replace("'", "''") + "'"


@lru_cache(maxsize=4)
def load_taxonomy(path: str | Path = TAXONOMY_PATH) -> Taxonomy:
    raw = yaml.safe_load(Path(path).read_text())
    skills = {
        sid: Skill(sid, spec.get("name", sid), spec.get("dataset", "any"), spec.get("group", "any"))
        for sid, spec in raw["skills"].items()
    }
    rules = {g: [(r["pattern"], r["skill"]) for r in lst] for g, lst in (raw.get("wording_rules") or {}).items()}
    tax = Taxonomy(
        skills=skills,
        subset_aliases=dict(raw.get("subset_aliases") or {}),
        wording_rules=rules,
        type_rules={g: dict(m) for g, m in (raw.get("type_rules") or {}).items()},
        sources=[(s["pattern"], s["source"]) for s in raw.get("sources") or []],
        scene_patterns=list(raw.get("scene_patterns") or []),
    )
    referenced = list(tax.subset_aliases.values()) + [s for r in rules.values() for _, s in r]
    referenced += [s for m in tax.type_rules.values() for s in m.values()]
    tax.check_skills(referenced)
    return tax
