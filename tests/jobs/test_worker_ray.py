"""The same checks on Ray Data give the same results as the local engine (a local Ray with 2 CPUs)."""

from __future__ import annotations

import duckdb
import pytest

from curation.ingest.run import ingest
from curation.jobs.run import run_checks
from tests.support.actors import CURATOR
from tests.support.shards import small_vst_tree

pytest.importorskip("ray")


def outcomes(settings, run_id: str) -> set[tuple]:
    glob = f"{settings.results_dir}/{run_id}/*/*.parquet"
    sql = f"SELECT sample_id, check_name, passed, score, reason FROM read_parquet('{glob}')"
    return set(duckdb.connect().sql(sql).fetchall())


@pytest.mark.slow
def test_ray_engine_matches_the_local_engine(home, tmp_path):
    ingest([small_vst_tree(tmp_path / "src")], home, progress=False)
    checks = "format.placeholders,format.answer_extractable,media.min_side,media.video,consistency,duplicates.exact"
    local = run_checks(home, checks, engine="local", embedder="hashing", by=CURATOR)
    on_ray = run_checks(home, checks, engine="ray", embedder="hashing", by=CURATOR)
    assert on_ray.state == local.state == "completed" and on_ray.units_done == local.units_done == 4
    mine, theirs = outcomes(home, local.run_id), outcomes(home, on_ray.run_id)
    assert mine == theirs and len(mine) > 10
