"""The model check on a cluster, the way Ray Data's LLM processor runs it: rows become greedy and sampled requests,
media is prepared in the processor's preprocess, an engine stage answers, and the driver scores and stores the answers
with the local check's code. vLLM cannot run here: the engine stage is the project's transformers engine (a tiny
random Qwen2.5-VL) behind the processor's row contract; the vLLM processor itself is built, not run."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from curation.checks.model import ReAnswer, scored
from curation.ingest.run import ingest
from curation.jobs.engines.ray_llm import KEY, Preprocess, postprocess, requests_of, vllm_processor
from curation.jobs.run import run_checks
from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from tests.support.actors import CURATOR
from tests.support.shards import small_vst_tree
from tests.support.tiny_model import tiny_model_dir


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return tiny_model_dir(tmp_path_factory)


pytest.importorskip("ray")
PARAMS = {"samples": 2, "temperature": 1.5, "max_new_tokens": 3, "seed": 7}


def _catalog_rows(home) -> dict[str, dict]:
    q = CatalogQuery(home)
    try:
        return {r["sample_id"]: r for r in q.page(FilterSpec(), limit=50, columns=list(ReAnswer.columns)).rows}
    finally:
        q.close()


def test_rows_become_greedy_and_sampled_requests_with_their_images(home, tmp_path, tiny_model):
    ingest([small_vst_tree(tmp_path / "src")], home, progress=False)
    rows = [r for r in _catalog_rows(home).values() if r["sample_id"].startswith("id-")]
    import pyarrow as pa

    table = pa.Table.from_pylist(rows)
    requests = requests_of(table.append_column("__unit", pa.array(["s"] * len(rows))), 2)
    assert requests.num_rows == 3 * len(rows) and requests.column(KEY).to_pylist()[:3] == [0, 1, 2]
    prepare = Preprocess({"model_path": str(tiny_model), **PARAMS}, ("sample_id", KEY, "__unit"))
    first, second = (prepare(r) for r in requests.slice(0, 2).to_pylist())
    assert first["sampling_params"] == {"temperature": 0.0, "max_tokens": 3}
    assert second["sampling_params"] == {"temperature": 1.5, "top_p": 1.0, "seed": 8, "max_tokens": 3}
    content = first["messages"][0]["content"]
    assert [c["type"] for c in content] == ["image", "text"] and content[1]["text"] == rows[0]["question"]
    assert content[0]["image"].width % 28 == 0 and first["error"] == ""
    assert postprocess({**first, "generated_text": "1.8"}) == {"sample_id": rows[0]["sample_id"], KEY: 0,
                                                              "__unit": "s", "generated_text": "1.8", "error": ""}
    # ray.data.llm's vLLM processor takes the same functions (built here; running it needs vLLM and a GPU)
    assert vllm_processor({"model_path": str(tiny_model), **PARAMS}, ("sample_id", KEY, "__unit")) is not None


@pytest.mark.slow
def test_the_model_check_on_ray_stores_what_the_local_check_stores(home, tmp_path, tiny_model):
    ingest([small_vst_tree(tmp_path / "src")], home, progress=False)
    params = {**PARAMS, "decode_workers": 0}
    local = run_checks(home, "model.reanswer", model_path=str(tiny_model), check_params=params, by=CURATOR)
    on_ray = run_checks(home, "model.reanswer", engine="ray", model_path=str(tiny_model), check_params=params,
                        by=CURATOR)
    assert local.state == on_ray.state == "completed" and on_ray.units_done == local.units_done

    def stored(run_id):
        glob = f"{home.results_dir}/{run_id}/model.reanswer/*.parquet"
        return {r["sample_id"]: r for r in duckdb.connect().sql(f"SELECT * FROM read_parquet('{glob}')")
                .to_arrow_table().to_pylist()}

    mine, theirs = stored(local.run_id), stored(on_ray.run_id)
    assert set(mine) == set(theirs) and len(theirs) >= 6  # the same rows judged; the broken videos left out
    catalog = _catalog_rows(home)
    for sid, r in theirs.items():
        results = [scored(catalog[sid], a) for a in r["answers"]]
        assert len(r["answers"]) == 3 and r["answer_scores"] == pytest.approx([s for s, *_ in results])
        assert r["passed"] == r["greedy_agrees"] == results[0][2]
        assert r["pass_rate"] == pytest.approx(sum(a for _, _, a, _ in results[1:]) / 2)
        assert r["check_version"] == mine[sid]["check_version"] and r["run_id"] == on_ray.run_id
