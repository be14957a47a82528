"""The skill taxonomy (taxonomy.yaml) and the SQL expressions ingest and retag use to apply it to millions of rows."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb
import yaml

TAXONOMY_PATH = Path(__file__).with_name("taxonomy.yaml")
GROUPS = ("single", "multi", "video", "text")
# The catalog columns a skill is derived from. skill_sql reads them under these names unless told otherwise.
SKILL_INPUTS = ("subset", "sample_group", "question", "type", "dataset", "kind", "has_reasoning", "rl_modes")
# VST-R skill ids are a format prefix and a category: rl_ for RL rows, cot_ for the others.
RL_PREFIX, COT_PREFIX = "rl_", "cot_"


@dataclass(frozen=True)
class Skill:
    id: str
    name: str
    dataset: str
    group: str


@dataclass(frozen=True)
class Rule:
    """Rows whose media group is one of ``groups``, that name one of ``modes`` (RL reward modes) and whose first
    question matches ``pattern`` get ``target``; a condition left empty always holds."""

    target: str
    pattern: str | None = None
    groups: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()

    def holds(self, group: str | None, question: str | None, modes: Sequence[str] | None) -> bool:
        return (
            (not self.groups or group in self.groups)
            and (not self.modes or bool(set(self.modes) & set(modes or ())))
            and (self.pattern is None or re.search(self.pattern, question or "", re.IGNORECASE) is not None)
        )

    def sql(self, col: Mapping[str, str]) -> str:
        """The same condition as DuckDB SQL over the columns ``col`` names (RE2 matches as Python's ``re``)."""
        parts = []
        if self.groups:
            parts.append(f"{col['sample_group']} IN ({', '.join(map(_lit, self.groups))})")
        if self.modes:
            parts.append(f"list_has_any(coalesce({col['rl_modes']}, []), [{', '.join(map(_lit, self.modes))}])")
        if self.pattern is not None:
            parts.append(f"regexp_matches(coalesce({col['question']}, ''), {_lit(self.pattern)}, 'i')")
        return " AND ".join(parts) or "TRUE"


@dataclass(frozen=True)
class Taxonomy:
    skills: dict[str, Skill]
    subset_aliases: dict[str, str]
    wording_rules: dict[str, list[Rule]]  # VST-P, per group
    type_rules: dict[str, dict[str, str]]
    reasoning_dataset: str  # the dataset whose every sample is a VST-R sample
    reasoning_rules: list[Rule]  # VST-R categories (targets without the cot_/rl_ prefix); the last holds always
    sources: list[tuple[str, str]]
    scene_patterns: list[str]
    digest: str  # of the rules' file: which rules derived the catalog's skills

    def skill_ids(self) -> list[str]:
        return list(self.skills)

    def check_skills(self, names) -> None:
        """Raise ValueError naming any skill that is not in the taxonomy (recipes, filters)."""
        unknown = [n for n in names if n not in self.skills]
        if unknown:
            raise ValueError(f"unknown skill id(s) {unknown}; valid ids: {', '.join(self.skills)}")

    def _folder_skills(self, dataset: str) -> dict[str, str]:
        """Subset folder -> skill for the samples of one dataset family (vst-r or vst-p). A sample that does not look
        like reasoning still takes a VST-R folder's skill: an RL row exported as plain SFT (vst-sft, one folder per
        skill) keeps its skill when it is ingested back."""
        own = {s: s for s, spec in self.skills.items() if spec.dataset == dataset}
        if dataset == "vst-p":
            return {s: s for s, spec in self.skills.items() if spec.dataset != dataset} | own | self.subset_aliases
        return own

    # --- the rules in Python, for single rows and tests -----------------------------------------
    def is_reasoning(self, row: Mapping[str, Any]) -> bool:
        """A VST-R sample: in the reasoning dataset, an RL row, or an answer that reasons."""
        return (
            row.get("dataset") == self.reasoning_dataset
            or row.get("kind") == "rl"
            or bool(row.get("has_reasoning"))
            or "thought" in (row.get("type") or "").lower()
        )

    def classify(self, row: Mapping[str, Any]) -> str:
        """The skill of one catalog-shaped row (the keys of SKILL_INPUTS; missing ones count as empty)."""
        subset, group, question = row.get("subset"), row.get("sample_group"), row.get("question")
        if self.is_reasoning(row):
            folder = self._folder_skills("vst-r").get(subset)
            if folder:
                return folder
            prefix = RL_PREFIX if row.get("kind") == "rl" else COT_PREFIX
            rule = next(r for r in self.reasoning_rules if r.holds(group, question, row.get("rl_modes")))
            return prefix + rule.target
        folder = self._folder_skills("vst-p").get(subset)
        if folder:
            return folder
        for rule in self.wording_rules.get(group, []):
            if rule.holds(group, question, None):
                return rule.target
        return self.type_rules.get(group, {}).get((row.get("type") or "").lower(), "unknown")

    # --- the same rules as SQL, for ingest and retag at scale -----------------------------------
    def skill_sql(self, columns: Mapping[str, str] | None = None) -> str:
        """A CASE expression giving the skill id, over the SKILL_INPUTS columns (``columns`` renames any of them to
        another SQL expression)."""
        col = {name: name for name in SKILL_INPUTS} | dict(columns or {})
        is_r = (
            f"({col['dataset']} = {_lit(self.reasoning_dataset)} OR {col['kind']} = 'rl' "
            f"OR coalesce({col['has_reasoning']}, false) OR contains(lower(coalesce({col['type']}, '')), 'thought'))"
        )
        *conditional, last = self.reasoning_rules
        category = _case([f"WHEN {r.sql(col)} THEN {_lit(r.target)}" for r in conditional], _lit(last.target))
        prefix = f"(CASE WHEN {col['kind']} = 'rl' THEN {_lit(RL_PREFIX)} ELSE {_lit(COT_PREFIX)} END)"
        reasoning = _case(_folders(col["subset"], self._folder_skills("vst-r")), f"{prefix} || {category}")
        perception = _folders(col["subset"], self._folder_skills("vst-p"))
        for rules in self.wording_rules.values():
            perception += [f"WHEN {r.sql(col)} THEN {_lit(r.target)}" for r in rules]
        for grp, mapping in self.type_rules.items():
            for tname, skill in mapping.items():
                perception.append(
                    f"WHEN {col['sample_group']} = {_lit(grp)} AND lower({col['type']}) = {_lit(tname)} "
                    f"THEN {_lit(skill)}"
                )
        return f"CASE WHEN {is_r} THEN {reasoning} ELSE {_case(perception, _lit('unknown'))} END"

    def source_sql(self, data_source: str) -> str:
        whens = " ".join(f"WHEN regexp_matches({data_source}, {_lit(p)}, 'i') THEN {_lit(s)}" for p, s in self.sources)
        return f"CASE {whens} ELSE nullif(lower(trim({data_source})), '') END"

    def scene_sql(self, paths: str) -> str:
        """First scene id found in a VARCHAR expression holding the media paths."""
        exprs = [f"nullif(regexp_extract({paths}, {_lit(p)}), '')" for p in self.scene_patterns]
        return f"coalesce({', '.join(exprs)})" if exprs else "NULL"


def _folders(subset: str, folders: Mapping[str, str]) -> list[str]:
    """WHEN clauses giving a subset folder's skill (the folders that are skill ids in one IN list)."""
    same = [f for f, s in folders.items() if f == s]
    whens = [f"WHEN {subset} IN ({', '.join(map(_lit, same))}) THEN {subset}"] if same else []
    return whens + [f"WHEN {subset} = {_lit(f)} THEN {_lit(s)}" for f, s in folders.items() if f != s]


def _case(whens: list[str], otherwise: str) -> str:
    return f"(CASE {' '.join(whens)} ELSE {otherwise} END)" if whens else f"({otherwise})"


def _lit(text: str) -> str:
    """A SQL string literal. Only taxonomy.yaml (trusted config) reaches here; user input is always a parameter."""
    return "'" + str(text).replace("'", "''") + "'"


def _rule(spec: Mapping[str, Any], target_key: str, where: str) -> Rule:
    pattern = spec.get("pattern")
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{where}: pattern {pattern!r} is not a regular expression ({exc})") from None
    groups = tuple(spec.get("groups") or ())
    bad = [g for g in groups if g not in GROUPS]
    if bad:
        raise ValueError(f"{where}: groups {bad} are not media groups ({', '.join(GROUPS)})")
    return Rule(spec[target_key], pattern, groups, tuple(spec.get("modes") or ()))


def _check_re2(patterns: Mapping[str, str | None]) -> None:
    """Every pattern compiles in DuckDB's RE2 as in Python's ``re`` (one query; the culprit found only on failure):
    a lookaround would otherwise pass here and fail half-way through an ingest."""
    given = {where: p for where, p in patterns.items() if p is not None}
    with duckdb.connect() as con:
        try:
            con.execute("SELECT " + ", ".join(f"regexp_matches('', {_lit(p)}, 'i')" for p in given.values()))
            return
        except duckdb.Error:
            pass
        for where, pattern in given.items():
            try:
                con.execute(f"SELECT regexp_matches('', {_lit(pattern)}, 'i')")
            except duckdb.Error as exc:
                raise ValueError(f"{where}: pattern {pattern!r} is not a regular expression both Python and RE2 "
                                 f"take ({exc}); lookarounds and backreferences are Python-only") from None


@lru_cache(maxsize=4)
def load_taxonomy(path: str | Path = TAXONOMY_PATH) -> Taxonomy:
    """The taxonomy in ``path``; ValueError names the file and the rule that is wrong."""
    text = Path(path).read_text()
    raw = yaml.safe_load(text)
    skills = {
        sid: Skill(sid, spec.get("name", sid), spec.get("dataset", "any"), spec.get("group", "any"))
        for sid, spec in raw["skills"].items()
    }
    wording = {
        g: [_rule({**r, "groups": [g]}, "skill", f"{path}: wording_rules.{g}[{i}]") for i, r in enumerate(lst)]
        for g, lst in (raw.get("wording_rules") or {}).items()
    }
    reasoning = raw.get("reasoning") or {}
    categories = [_rule(r, "category", f"{path}: reasoning.categories[{i}]")
                  for i, r in enumerate(reasoning.get("categories") or [])]
    _check_re2({f"{path}: wording_rules.{g}[{i}]": r.pattern for g, rs in wording.items() for i, r in enumerate(rs)}
               | {f"{path}: reasoning.categories[{i}]": r.pattern for i, r in enumerate(categories)})
    if not categories or categories[-1] != Rule(categories[-1].target):
        raise ValueError(f"{path}: reasoning.categories must end with a rule without condition (a category only), "
                         "so that every VST-R sample gets one")
    tax = Taxonomy(
        skills=skills,
        subset_aliases=dict(raw.get("subset_aliases") or {}),
        wording_rules=wording,
        type_rules={g: dict(m) for g, m in (raw.get("type_rules") or {}).items()},
        reasoning_dataset=str(reasoning.get("dataset", "vst-r")),
        reasoning_rules=categories,
        sources=[(s["pattern"], s["source"]) for s in raw.get("sources") or []],
        scene_patterns=list(raw.get("scene_patterns") or []),
        digest=hashlib.sha256(text.encode()).hexdigest()[:16],
    )
    referenced = list(tax.subset_aliases.values()) + [r.target for rules in wording.values() for r in rules]
    referenced += [s for m in tax.type_rules.values() for s in m.values()]
    referenced += [prefix + r.target for r in categories for prefix in (COT_PREFIX, RL_PREFIX)]
    try:
        tax.check_skills(referenced)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return tax
