"""Difficulty from the model check's pass rates: Browse's facet and filter (buckets, a band, in the link), a mixture
component that keeps a pass-rate band, and an export with its equal-size unfiltered control set.

The pass rates are the check's own output (ReAnswer.run, written to the results layout as the runner writes it), from
a stand-in engine behind the engine interface whose answers are scripted, so each prompt's pass rate is known."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curation.checks.base import CheckContext, rows_to_table, with_check_columns
from curation.checks.model import ReAnswer
from curation.checks.model_engines import Answers
from curation.checks.runner import write_part
from curation.ingest.run import ingest
from curation.mixtures.export import export_mixture
from curation.mixtures.recipe import parse_recipe
from curation.mixtures.selection import select_mixture
from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterParamError, FilterSpec
from tests.support.actors import CURATOR
from tests.support.shards import small_vst_tree
from tests.support.tiny_model import tiny_model_dir


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return tiny_model_dir(tmp_path_factory)


N = 4


class ScriptedEngine:
    """Answers each prompt with its row's stored answer in ``right[key]`` of N samples (greedily when more than half
    are), and a wrong answer otherwise."""

    name, wants_features, busy_s = "scripted", False, 0.0

    def __init__(self, right: dict[str, tuple[str, int]]):
        self.right = right

    def generate(self, prompts, sampling):
        for p in prompts:
            answer, k = self.right[p.key]
            samples = ([answer] * k + ["zzz"] * N)[:sampling.n]
            yield Answers(p.key, answer if 2 * k > N else "zzz", samples)

    def close(self):
        pass


def publish(home, rows, right, run_id: str, n: int = N) -> None:
    """The model check's results for ``rows`` as the runner writes them: <results>/<run>/model.reanswer/part."""
    check = ReAnswer({"model_path": str(right.pop("__model")), "samples": n, "decode_workers": 0},
                     engine=ScriptedEngine(right))
    out = check.run(rows_to_table(rows), CheckContext())
    check.close()
    write_part(home.results_dir / run_id / check.name / "part-0.parquet",
               with_check_columns(out, check.name, check.version, run_id))


@pytest.fixture
def measured(home, tmp_path, tiny_model):
    """The small tree ingested, and pass rates: 0, 1/4, 2/4, 4/4 for the four distance rows, 3/4 for the two RL
    rows; the two video rows (media missing or broken) unmeasured."""
    ingest([small_vst_tree(tmp_path / "src")], home, progress=False)
    q = CatalogQuery(home)
    rows = q.page(FilterSpec(), limit=50, columns=list(ReAnswer.columns) + ["skill"]).rows
    q.close()
    by_skill: dict[str, list[dict]] = {}
    for r in rows:
        by_skill.setdefault(r["skill"], []).append(r)
    dist = sorted(by_skill["si_distance"], key=lambda r: r["sample_id"])
    rl = [r for r in rows if r["skill"].startswith("rl_")]
    plan = dict(zip([r["sample_id"] for r in dist], [0, 1, 2, 4]))
    plan.update({r["sample_id"]: 3 for r in rl})
    right = {r["sample_id"]: (r["answer"], plan.get(r["sample_id"], 0)) for r in rows}
    publish(home, rows, {**right, "__model": tiny_model}, "20260101T000000-j000001")
    videos = sorted(r["sample_id"] for r in rows if r["skill"].startswith("video"))
    return {"home": home, "dist": [r["sample_id"] for r in dist], "rl": sorted(r["sample_id"] for r in rl),
            "videos": videos, "rows": rows, "right": right}


def ids(home, spec: FilterSpec) -> list[str]:
    q = CatalogQuery(home)
    try:
        return sorted(r["sample_id"] for r in q.page(spec, limit=100, columns=["sample_id"]).rows)
    finally:
        q.close()


def test_browse_counts_and_filters_samples_by_difficulty(measured):
    home, dist, rl = measured["home"], measured["dist"], measured["rl"]
    assert len(measured["videos"]) == 2 and len(rl) == 2
    q = CatalogQuery(home)
    try:
        assert q.difficulty_facet(FilterSpec()) == {"unsolved": 1, "hard": 1, "medium": 1, "easy": 2, "solved": 1,
                                                    "unmeasured": 2}
        # the facet ignores its own selection and follows the others
        assert q.difficulty_facet(FilterSpec(difficulty=["hard"], skills=["si_distance"])) == {
            "unsolved": 1, "hard": 1, "medium": 1, "easy": 0, "solved": 1, "unmeasured": 0}
        assert q.count(FilterSpec(difficulty=["hard", "medium"])) == 2
    finally:
        q.close()
    assert ids(home, FilterSpec(difficulty=["hard", "medium"])) == sorted(dist[1:3])
    assert ids(home, FilterSpec(difficulty=["unmeasured"])) == measured["videos"]
    assert ids(home, FilterSpec(difficulty=["solved", "unmeasured"])) == sorted([dist[3], *measured["videos"]])
    # DAPO: drop what the model never or always solves; open-r1: keep 0.1 < p < 0.6
    assert ids(home, FilterSpec(pass_rate_above=0, pass_rate_below=1)) == sorted([*dist[1:3], *rl])
    assert ids(home, FilterSpec(pass_rate_above=0.1, pass_rate_below=0.6)) == sorted(dist[1:3])


def test_a_later_greedy_only_run_keeps_the_measured_pass_rates(measured, tiny_model):
    home, rows = measured["home"], measured["rows"]
    publish(home, rows, {**measured["right"], "__model": tiny_model}, "20260102T000000-j000002", n=0)
    stored = pq.read_table(home.results_dir / "20260102T000000-j000002/model.reanswer/part-0.parquet")
    assert set(stored.column("pass_rate").to_pylist()) == {None}
    assert ids(home, FilterSpec(difficulty=["hard", "medium"])) == sorted(measured["dist"][1:3])


def test_difficulty_travels_in_the_link_and_a_wrong_bucket_is_named():
    spec = FilterSpec(difficulty=["hard", "medium"], pass_rate_above=0.1, pass_rate_below=0.6)
    params = spec.to_query_params()
    assert params == {"difficulty": "hard,medium", "pass_rate_above": "0.1", "pass_rate_below": "0.6"}
    assert FilterSpec.from_query_params(params) == spec
    with pytest.raises(FilterParamError, match="difficulty"):
        FilterSpec.from_query_params({"difficulty": "tricky"})


def _recipe(**kw) -> dict:
    band = {"pass_rate_above": 0, "pass_rate_below": 1}
    return {"name": "rl-band", "seed": 5, "components": [{"name": "learnable", "filter": band, "fraction": 1.0}],
            **kw}


def test_a_mixture_component_keeps_a_pass_rate_band(measured):
    home = measured["home"]
    q = CatalogQuery(home)
    try:
        sel = select_mixture(parse_recipe(_recipe()), q)
    finally:
        q.close()
    assert sorted(sel.table.column("sample_id").to_pylist()) == sorted([*measured["dist"][1:3], *measured["rl"]])


def test_an_export_adds_an_equal_size_control_set_drawn_without_the_difficulty_filter(measured, tmp_path):
    home = measured["home"]
    main, control = export_mixture(parse_recipe(_recipe(control_set=True)), home, ["llava"], tmp_path / "out",
                                   write_media=False, by=CURATOR)
    assert main.out_dir == (tmp_path / "out").resolve() and control.out_dir == (tmp_path / "out-control").resolve()
    picked = {r["id"] for r in json.loads(next((main.out_dir / "data").glob("*.json")).read_text())}
    drawn = {r["id"] for r in json.loads(next((control.out_dir / "data").glob("*.json")).read_text())}
    assert len(picked) == len(drawn) == main.rows == control.rows == 4
    manifest = json.loads((control.out_dir / "manifest.json").read_text())
    assert manifest["recipe"]["name"] == "rl-band-control"
    component = manifest["recipe"]["components"][0]
    assert component["count"] == 4 and component["filter"].get("pass_rate_above") is None
