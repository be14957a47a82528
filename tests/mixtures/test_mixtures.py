"""Mixture stories: a curator writes a recipe, and the selection is deterministic, honest about shortfalls,
stable when new data arrives, and leaves out what the curation says to leave out."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from curation.ingest.run import ingest
from curation.mixtures.recipe import Recipe, load_recipe, parse_recipe
from curation.mixtures.selection import MAX_PASSES, rank_sql, sample_rank, select_mixture
from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from curation.settings import Settings, load_settings
from tests.support.actors import person
from tests.support.exports_fixtures import DIST_Q, _pair, make_home, recipe, write_results
from tests.support.shards import sft_row, write_sft

ISSUE_RECIPE = """\
name: spatial-sft-v1
seed: 17
total: 100000
components:
  - name: depth
    filter: {skills: [si_depth_comparison]}
    weight: 0.3
  - name: distance
    filter: {skills: [si_distance, video_measurement], sources: [scannet]}
    weight: 0.7
exclude: {flagged: true, rejected: true, failed_checks: [format.placeholders], near_duplicates: true}
apply_fixes: true
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Settings:
    return make_home(tmp_path_factory.mktemp("mix"))


@pytest.fixture
def home(built: Settings, tmp_path: Path) -> Settings:
    """A private copy of the built home (catalog, index): tests may add flags and check results to it."""
    shutil.copytree(built.home, tmp_path / "home")
    return load_settings(tmp_path / "home")


def _select(settings: Settings, data: dict, state_db=None):
    q = CatalogQuery(settings, state_db)
    try:
        return select_mixture(parse_recipe(data), q, state_db)
    finally:
        q.close()


def _ids(sel) -> list[str]:
    return sel.table.column("out_id").to_pylist()


# --- the recipe ---------------------------------------------------------------------------------------------


def test_the_issue_recipe_loads_and_weights_become_exact_counts(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(ISSUE_RECIPE)
    r = load_recipe(path)
    assert r.targets() == [30000, 70000]
    assert r.exclude.flagged and r.exclude.rejected and r.exclude.near_duplicates and r.apply_fixes
    assert r.exclude.failed_checks == ["format.placeholders"]


def test_weights_share_the_total_by_largest_remainder():
    r = parse_recipe(recipe(total=10, components=[
        {"name": "a", "filter": {}, "weight": 1 / 3}, {"name": "b", "filter": {}, "weight": 1 / 3},
        {"name": "c", "filter": {}, "weight": 1 / 3}, {"name": "d", "filter": {}, "count": 1}]))
    assert r.targets() == [3, 3, 3, 1]


@pytest.mark.parametrize("change, message", [
    ({"components": [{"name": "x", "filter": {"skills": ["si_depht"]}, "count": 3}]}, "unknown skill"),
    ({"components": [{"name": "x", "filter": {}, "weight": 0.5}]}, "need a recipe total"),
    ({"total": 5, "components": [{"name": "x", "filter": {}, "weight": 0.5}]}, "must sum to 1"),
    ({"components": [{"name": "x", "filter": {}, "count": 3, "weight": 1.0}]}, "exactly one of"),
    ({"components": [{"name": "x", "filter": {"skils": ["si_distance"]}, "count": 3}]}, "skils"),
    ({"format": "parquet"}, "unknown format"),
    ({"shard_size": "lots"}, "not understood"),
])
def test_a_wrong_recipe_says_what_is_wrong_and_where(tmp_path, change, message):
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe(**change)))
    with pytest.raises(ValueError, match=message) as err:
        load_recipe(path)
    assert str(path) in str(err.value)


def test_format_key_reads_as_a_list_of_formats():
    assert parse_recipe(recipe(format="llava")).formats == ["llava"]
    assert parse_recipe(recipe(formats=["vst-sft", "verl"])).formats == ["vst-sft", "verl"]


def test_the_rank_is_the_same_in_python_and_in_duckdb(built):
    q = CatalogQuery(built)
    try:
        rows = q.cursor().execute(f"SELECT s.sample_id, {rank_sql(17)} FROM samples s ORDER BY 1").fetchall()
    finally:
        q.close()
    assert rows and all(sample_rank(17, sid) == rank for sid, rank in rows)
    assert sample_rank(17, "a") != sample_rank(18, "a")


# --- selection --------------------------------------------------------------------------------------------


def test_same_recipe_gives_the_same_rows_and_another_seed_other_rows(built):
    data = recipe(total=6, components=[{"name": "dist", "filter": {"skills": ["si_distance"]}, "count": 6}])
    first, again = _select(built, data), _select(built, data)
    assert _ids(first) == _ids(again) and len(_ids(first)) == 6
    other = _select(built, {**data, "seed": 18})
    assert set(_ids(other)) != set(_ids(first))
    # bottom-n by rank: exactly the 6 best-ranked distance samples
    q = CatalogQuery(built)
    pool = [r[0] for r in q.cursor().execute("SELECT sample_id FROM samples WHERE skill = 'si_distance'").fetchall()]
    q.close()
    assert set(_ids(first)) == set(sorted(pool, key=lambda s: (sample_rank(17, s), s))[:6])


def test_a_component_asking_more_than_exists_says_so_and_can_upsample_with_a_cap(built):
    short = _select(built, recipe(components=[{"name": "video", "filter": {"groups": ["video"]}, "count": 10}]))
    (c,) = short.components
    assert (c.asked, c.matching, c.available, c.selected, c.shortfall) == (10, 3, 2, 2, 8)
    assert "only 2 available" in short.shortfalls()[0]
    up = _select(built, recipe(components=[
        {"name": "video", "filter": {"groups": ["video"]}, "count": 10, "upsample": True, "max_repeat": 3}]))
    (c,) = up.components
    assert (c.selected, c.unique, c.upsampled, c.shortfall) == (6, 2, 4, 4)
    assert sorted(_ids(up)) == ["vid-1", "vid-1~2", "vid-1~3", "vid-3", "vid-3~2", "vid-3~3"]


def test_components_never_take_the_same_sample_twice(built):
    sel = _select(built, recipe(total=40, components=[
        {"name": "depth", "filter": {"skills": ["si_depth_comparison"]}, "count": 4},
        {"name": "rest", "filter": {}, "fraction": 1.0}]))
    ids = sel.table.column("sample_id").to_pylist()
    assert len(ids) == len(set(ids))
    depth, rest = sel.components
    assert depth.selected == 4 and rest.taken_earlier == 4
    assert sel.counts["by_component"] == {"depth": 4, "rest": rest.selected}


def test_rows_missing_their_media_are_left_out_and_listed(built):
    sel = _select(built, recipe())
    assert "vid-2" not in _ids(sel)
    assert sel.excluded == {"missing_media": 1}
    assert sel.left_out[0]["sample_id"] == "vid-2" and "missing_file" in sel.left_out[0]["reason"]


def test_new_data_does_not_reshuffle_earlier_picks(built, tmp_path):
    data = recipe(total=30, components=[
        {"name": "dist", "filter": {"skills": ["si_distance"]}, "count": 5},
        {"name": "half", "filter": {"skills": ["si_depth_comparison"]}, "fraction": 0.5}])
    shutil.copytree(built.home, tmp_path / "home")
    settings = load_settings(tmp_path / "home")
    before = _select(settings, data)
    # a new shard of distance and depth samples arrives
    extra = [sft_row(300 + i, DIST_Q.format(**_pair(i)), "2.5", id=f"new-{i:03d}") for i in range(20)]
    write_sft(tmp_path / "more/vst_p/si_distance/part-00001.parquet", extra)
    deeper = [sft_row(400 + i, DIST_Q.format(**_pair(i)).replace("distance", "depth gap"), "B", n_images=2,
                      id=f"newdepth-{i:03d}") for i in range(20)]
    write_sft(tmp_path / "more/vst_p/si_depth_comparison/part-00001.parquet", deeper)
    ingest([tmp_path / "more/vst_p"], settings, progress=False)
    after = _select(settings, data)

    def picks(sel, comp):
        return {r["sample_id"] for r in sel.table.to_pylist() if r["component"] == comp}

    old, new = picks(before, "dist"), picks(after, "dist")
    came_in = new - old
    assert came_in and all(s.startswith("new-") for s in came_in)  # no old row that was left out comes in
    # exactly as many old picks leave as new rows came in, and they are the worst-ranked old picks
    went = old - new
    assert len(went) == len(came_in)
    assert sorted(old, key=lambda s: sample_rank(17, s))[: 5 - len(went)] == sorted(old & new,
                                                                                   key=lambda s: sample_rank(17, s))
    half_before, half_after = picks(before, "half"), picks(after, "half")
    assert half_before and half_before <= half_after  # threshold sampling: every old pick stays ...
    assert all(s.startswith("newdepth-") for s in half_after - half_before)  # ... and only new rows join
    assert half_after - half_before


def test_exclusions_are_refilled_from_the_next_ranks_and_counted_by_reason(home):
    from curation.review.flags import add_flag
    from curation.review.reviews import add_review
    from db.engine import open_state

    db = open_state(home.db_url)
    data = recipe(total=6, components=[{"name": "dist", "filter": {"skills": ["si_distance"]}, "count": 6}],
                  exclude={"flagged": True, "rejected": True, "failed_checks": ["format.*"],
                           "exact_duplicates": True})
    before = _select(home, data, db)
    first = sorted(before.table.column("sample_id").to_pylist(), key=lambda s: sample_rank(17, s))
    add_flag(db, first[0], "wrong_answer", None, person("alice"))
    add_review(db, first[1], "reject", person("bob"))
    write_results(home, "format.placeholders", {first[2]: (False, "2 placeholders, 1 image"),
                                                first[3]: (True, None)})
    after = _select(home, data, db)
    assert len(_ids(after)) == 6
    assert not {first[0], first[1], first[2]} & set(_ids(after))
    assert set(first[3:]) <= set(_ids(after))  # the others stay picked
    assert after.excluded["flagged"] == 1 and after.excluded["rejected"] == 1
    assert after.excluded["failed_check:format.placeholders"] == 1
    assert after.excluded["exact_duplicate"] == 1  # dist-000 and dist-copy share their content
    assert not {"dist-000", "dist-copy"} <= set(_ids(after))
    db.close()


def test_a_flag_reason_filter_only_excludes_those_reasons(home):
    from curation.review.flags import add_flag
    from db.engine import open_state

    db = open_state(home.db_url)
    add_flag(db, "dist-001", "wrong_answer", None, person("alice"))
    add_flag(db, "dist-002", "ambiguous", None, person("alice"))
    sel = _select(home, recipe(exclude={"flagged": True, "flag_reasons": ["wrong_answer"]}), db)
    assert "dist-001" not in _ids(sel) and "dist-002" in _ids(sel)
    db.close()


def test_near_duplicates_keep_one_per_cluster(home):
    write_results(home, "duplicates.near", {
        "dist-003": (False, "near duplicate of sample dist-004: a reworded question on the same media with the "
                            "same answer (cosine 0.970): 'what is the distance'"),
        "dist-005": (False, "cluster=7 (cosine 0.95)"), "dist-006": (False, "cluster=7 (cosine 0.95)"),
        "dist-007": (False, "cluster=7 (cosine 0.96)"), "dist-008": (True, None)})
    sel = _select(home, recipe(exclude={"near_duplicates": True}))
    ids = set(_ids(sel))
    assert len(ids & {"dist-003", "dist-004"}) == 1
    assert len(ids & {"dist-005", "dist-006", "dist-007"}) == 1
    best = min(["dist-005", "dist-006", "dist-007"], key=lambda s: sample_rank(17, s))
    assert best in ids and "dist-008" in ids
    assert sel.excluded["near_duplicate"] == 3


def test_missing_check_results_are_a_warning_not_a_silent_pass(built):
    sel = _select(built, recipe(exclude={"failed_checks": ["geometry.bbox3d_valid"], "near_duplicates": True}))
    assert any("geometry.bbox3d_valid" in w and "run it first" in w for w in sel.warnings)
    assert any("duplicates.near" in w for w in sel.warnings)


@pytest.mark.parametrize("policy", ["drop", "downgrade"])
def test_bad_traces_with_right_answers_are_dropped_or_downgraded(home, policy):
    write_results(home, "consistency.reasoning_vs_answer", {
        "cot-000": (False, "trace concludes B, answer is A"), "cot-001": (False, "trace concludes B, answer is A"),
        "cot-002": (True, None)})
    write_results(home, "consistency.answer_vs_geometry", {"cot-001": (False, "answer contradicts the boxes"),
                                                       "cot-000": (True, None)})
    sel = _select(home, recipe(components=[{"name": "cot", "filter": {"skills": ["cot_sr_si"]}, "fraction": 1.0}],
                               reasoning_failures=policy, answer_checks=["consistency.answer_vs_geometry"]))
    ids = set(_ids(sel))
    assert "cot-001" not in ids and "cot-002" in ids  # a wrong answer cannot be kept either way
    if policy == "drop":
        assert "cot-000" not in ids and sel.excluded["reasoning_failed"] == 2
    else:
        assert "cot-000" in ids and sel.downgraded == ["cot-000"]
        assert sel.excluded["reasoning_failed_answer_wrong"] == 1


def test_recipe_model_is_importable_for_the_app():
    assert "components" in Recipe.model_json_schema()["properties"]


# --- hostile recipes ---------------------------------------------------------------------------------------------


def test_a_mixture_larger_than_the_catalog_is_refused_with_the_numbers_before_memory_runs_out(built, tmp_path):
    """`total: 200000000` with unbounded up-sampling once grew to 5.9 GB and died of MemoryError: the selection now
    stops at the catalog's size with a message, even in a process allowed 2 GiB of address space."""
    import resource
    import subprocess
    import sys

    import yaml

    q = CatalogQuery(built)
    rows = q.count(FilterSpec())
    q.close()
    path = tmp_path / "huge.yaml"
    path.write_text(yaml.safe_dump(recipe(total=200_000_000, components=[
        {"name": "all", "filter": {}, "weight": 1.0, "upsample": True, "max_repeat": 1_000_000_000}])))

    def two_gib() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    proc = subprocess.run([sys.executable, "-m", "curation", "--home", str(built.home), "export", str(path),
                           "--dry-run"], capture_output=True, text=True, preexec_fn=two_gib, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: recipe 'test-mix' would write 200,000,000 rows")
    assert f"at most {MAX_PASSES * rows:,} rows" in proc.stderr

    # Within that bound, up-sampling still fills a short component; without up-sampling a huge total is a
    # shortfall, as before (every row once).
    ok = _select(built, recipe(total=rows, components=[
        {"name": "video", "filter": {"groups": ["video"]}, "count": 10, "upsample": True, "max_repeat": 5},
        {"name": "rest", "filter": {}, "weight": 1.0}]))
    assert ok.rows <= rows and ok.components[0].upsampled == 8
    short = _select(built, recipe(total=200_000_000, components=[{"name": "all", "filter": {}, "weight": 1.0}]))
    assert short.components[0].shortfall == 200_000_000 - short.rows


def test_a_recipe_nested_a_hundred_thousand_deep_is_an_error_naming_the_file_not_a_traceback(tmp_path):
    from curation.presenters.mixtures import parse_yaml

    path = tmp_path / "deep.yaml"
    text = "name: deep\ncomponents: " + "[" * 100_000 + "]" * 100_000 + "\n"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"recipe {path}: not valid YAML \(it is nested too deep to read"):
        load_recipe(path)
    data, problem = parse_yaml(text)  # the Mixtures page's YAML tab
    assert data is None and "nested too deep to read" in str(problem)
