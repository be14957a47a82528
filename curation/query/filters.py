"""FilterSpec, what a curator is looking at, and its URL codec: the one way a filter is read from a link."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from curation.query.difficulty import check_difficulties
from curation.query.severity import check_severities

# Catalog dimensions a filter can pick values of: FilterSpec field -> column.
DIMENSIONS: dict[str, str] = {
    "datasets": "dataset",
    "groups": "sample_group",
    "skills": "skill",
    "sources": "source",
    "types": "type",
    "answer_kinds": "answer_kind",
    "subsets": "subset",
}
# Which samples a filter keeps by their reviews ("reviewed": any review; "fixed": a fix was applied).
ReviewFilter = Literal["unreviewed", "reviewed", "approved", "rejected", "fixed"]
# Keys a Browse link carries besides the filter (the open sample).
_LINK_KEYS = frozenset({"id"})


class FilterParamError(ValueError):
    """A filter parameter in a link or query string that does not parse; the message names the parameter."""

    def __init__(self, param: str, problem: str):
        self.param = param
        super().__init__(f"the link's filter has a bad value in `{param}`: {problem}")


class FilterSpec(BaseModel):
    """What a curator is looking at. The same model in Browse, the URL, recipes, the CLI and the tests."""

    model_config = ConfigDict(extra="forbid")

    datasets: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    skills: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    types: list[str] = Field(default_factory=list)
    answer_kinds: list[str] = Field(default_factory=list)
    subsets: list[str] = Field(default_factory=list)
    has_reasoning: bool | None = None
    has_problems: bool | None = None
    text: str = ""
    sample_ids: list[str] = Field(default_factory=list)
    # curation state (joined from the state database)
    flagged: bool | None = None
    flag_reasons: list[str] = Field(default_factory=list)
    review: ReviewFilter | None = None
    reviewers: list[str] = Field(default_factory=list)
    # check results (latest run of each check; thresholds move without a re-run)
    failed_checks: list[str] = Field(default_factory=list)
    passed_checks: list[str] = Field(default_factory=list)
    score_below: dict[str, float] = Field(default_factory=dict)
    # failures of these severities (error, warning, info): of the failed_checks when some are named, else of any
    # check or ingest problem
    failed_severities: list[str] = Field(default_factory=list)
    # difficulty: the model check's pass rate over n samples (curation.query.difficulty), as buckets or a band
    # (strict bounds: pass_rate_above=0, pass_rate_below=1 drops the prompts a model never or always solves)
    difficulty: list[str] = Field(default_factory=list)
    pass_rate_above: float | None = None
    pass_rate_below: float | None = None

    @field_validator(*DIMENSIONS, "sample_ids", "flag_reasons", "reviewers", "failed_checks", "passed_checks",
                     "failed_severities", "difficulty", mode="before")
    @classmethod
    def _listify(cls, v):
        if v is None:
            return []
        return [v] if isinstance(v, str) else list(v)

    @field_validator("failed_severities")
    @classmethod
    def _severities(cls, v: list[str]) -> list[str]:
        return check_severities(v)

    @field_validator("difficulty")
    @classmethod
    def _difficulties(cls, v: list[str]) -> list[str]:
        return check_difficulties(v)

    def is_empty(self) -> bool:
        return self == FilterSpec()

    # --- URL query string (shareable views) -----------------------------------------------------
    def to_query_params(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value in (None, "", [], {}):
                continue
            if isinstance(value, list):
                out[name] = ",".join(value)
            elif isinstance(value, dict):
                out[name] = ",".join(f"{k}:{v}" for k, v in value.items())
            elif isinstance(value, bool):
                out[name] = "1" if value else "0"
            else:
                out[name] = str(value)
        return out

    @classmethod
    def from_query_params(cls, params: dict[str, str | list[str]]) -> FilterSpec:
        """Parse a URL query dict (a key's last value counts); unknown keys are ignored so old links keep working.
        FilterParamError names the first parameter that does not parse."""
        data: dict[str, Any] = {}
        raws: dict[str, str] = {}
        for name, f in cls.model_fields.items():
            if name not in params:
                continue
            raw = params[name]
            raw = raws[name] = raw[-1] if isinstance(raw, list) else raw
            ann = str(f.annotation)
            if "list" in ann:
                data[name] = [p for p in raw.split(",") if p]
            elif "dict" in ann:
                data[name] = _thresholds(name, raw)
            elif "bool" in ann:
                data[name] = raw in ("1", "true", "True", "yes")
            else:
                data[name] = raw or None if name == "review" else raw
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = str((first.get("loc") or ("query string",))[0])
            value = f"{raws[name]!r} " if name in raws else ""
            raise FilterParamError(name, f"{value}({first.get('msg')})") from exc


def _thresholds(name: str, raw: str) -> dict[str, float]:
    """``check:0.5,other:2`` -> {check: 0.5, other: 2.0}; items without a colon are ignored."""
    out: dict[str, float] = {}
    for key, _, value in (p.rpartition(":") for p in raw.split(",") if ":" in p):
        try:
            out[key] = float(value)
        except ValueError:
            raise FilterParamError(name, f"{value!r} after {key!r} is not a number") from None
    return out


def spec_from_link(text: str) -> FilterSpec:
    """The filter in a Browse link (``http://.../Browse?skills=a,b&flagged=1``), a ``?query`` or a bare query
    string. ValueError when it holds no filter; FilterParamError names a parameter that does not parse."""
    text = (text or "").strip()
    query = urlsplit(text).query if "?" in text or "://" in text else text.lstrip("?")
    params = parse_qs(query, keep_blank_values=False)
    if not set(params) & (set(FilterSpec.model_fields) | _LINK_KEYS):
        raise ValueError(f"no filter in {text[:200]!r}: copy the address of the Browse page after filtering")
    return FilterSpec.from_query_params(params)
