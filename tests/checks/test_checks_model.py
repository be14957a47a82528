"""The model check runs a real (tiny, random) Qwen2.5-VL from a local folder: load, prompt, generate, judge; a batch's
rows stream into the engine as one run of prompts made ahead by worker processes; n samples give a pass rate."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from curation.checks.model import ReAnswer, scored
from curation.checks.model_engines import Sampling, TransformersEngine
from curation.checks.model_inputs import PreparePrompt, PromptStream, load_processor
from curation.ingest.run import ingest
from curation.jobs.run import run_checks
from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from curation.query.results import sample_results
from tests.support.actors import CURATOR
from tests.support.shards import small_vst_tree
from tests.support.tiny_model import tiny_model_dir


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return tiny_model_dir(tmp_path_factory)


def test_processor_builds_without_torchvision(tiny_model):
    processor = load_processor(str(tiny_model))
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text",
                                                                                           "text": "Hi"}]}],
                                         add_generation_prompt=True, tokenize=False)
    assert "<|image_pad|>" in text and text.endswith("<|im_start|>assistant\n")


def _rows(home, tmp_path, spec=FilterSpec()):
    ingest([small_vst_tree(tmp_path / "src")], home, progress=False)
    q = CatalogQuery(home)
    try:
        return q.page(spec, limit=50, columns=list(ReAnswer.columns)).rows
    finally:
        q.close()


@pytest.mark.slow
def test_the_model_re_answers_from_the_images_and_disagreement_fails(tiny_model, home, tmp_path):
    rows = _rows(home, tmp_path, FilterSpec(groups=["single"]))
    check = ReAnswer({"model_path": str(tiny_model), "max_new_tokens": 4, "model_batch_size": 2, "decode_workers": 0})
    outcomes = check.check_batch(rows)
    check.close()
    assert len(outcomes) == len(rows) >= 4
    for row, outcome in zip(rows, outcomes):
        assert outcome is not None and outcome.reason.startswith("model answered ")
        if not outcome.passed:  # a random model disagrees: both answers are in the reason
            assert repr(row["answer"][:60]) in outcome.reason


class CountingEngine:
    """The real engine, counting how often the check calls it and which prompts it was given."""

    def __init__(self, inner):
        self.inner, self.calls, self.keys = inner, 0, []
        self.name, self.wants_features, self.busy_s = inner.name, inner.wants_features, 0.0

    def generate(self, prompts, sampling):
        self.calls += 1

        def seen():
            for p in prompts:
                self.keys.append(p.key)
                yield p

        yield from self.inner.generate(seen(), sampling)

    def close(self):
        self.inner.close()


@pytest.mark.slow
def test_a_batch_streams_to_the_engine_in_one_call_with_broken_media_left_out(tiny_model, home, tmp_path):
    # Given every row of the small tree (a video whose file is missing, one whose bytes are not a video), when the
    # check runs with images made by a spawned worker process, the engine is called once for the whole batch,
    # in micro-batches of its own size, and only the rows whose media could be had reach it.
    rows = _rows(home, tmp_path)
    engine = CountingEngine(TransformersEngine(str(tiny_model), batch_size=3))
    check = ReAnswer({"model_path": str(tiny_model), "max_new_tokens": 3, "decode_workers": 1, "prefetch": 2},
                     engine=engine)
    try:
        outcomes = check.check_batch(rows)
    finally:
        check.close()
    videos = {r["sample_id"] for r in rows if any(m.get("kind") == "video" for m in r["media"] or [])}
    assert engine.calls == 1 and len(rows) - len(videos) >= 6
    assert engine.keys == [r["sample_id"] for r in rows if r["sample_id"] not in videos]
    assert [o is None for o in outcomes] == [r["sample_id"] in videos for r in rows]


def test_prompts_are_made_at_most_a_window_ahead_of_the_engine(tiny_model, home, tmp_path):
    rows = _rows(home, tmp_path, FilterSpec(groups=["single"]))
    pulled = []

    def source():
        for r in rows:
            pulled.append(r["sample_id"])
            yield r

    stream = PromptStream(PreparePrompt(str(tiny_model)), workers=1, window=2)
    try:
        made = stream(source())
        first = next(made)
        assert first.key == rows[0]["sample_id"] and first.features["input_ids"].shape[0] == 1
        assert len(pulled) <= 3  # the one taken and a window of two
        assert [p.key for p in made] == [r["sample_id"] for r in rows[1:]]
    finally:
        stream.close()


@pytest.mark.slow
def test_n_samples_give_each_prompt_a_pass_rate_stored_beside_the_verdict(tiny_model, home, tmp_path):
    # A curator runs the model check with 4 samples per prompt through the job runner: each sample's results row
    # holds the greedy answer and the 4 samples, each scored by VST's scorer, the pass rate and the mean score.
    _rows(home, tmp_path)
    summary = run_checks(home, "model.reanswer", model_path=str(tiny_model),
                         check_params={"samples": 4, "temperature": 1.5, "max_new_tokens": 4, "decode_workers": 0,
                                       "model_batch_size": 4}, by=CURATOR)
    assert summary.state == "completed"
    stored = duckdb.connect().sql(
        f"SELECT * FROM read_parquet('{home.results_dir}/{summary.run_id}/model.reanswer/*.parquet')"
    ).to_arrow_table().to_pylist()
    q = CatalogQuery(home)
    catalog = {r["sample_id"]: r for r in q.page(FilterSpec(), limit=50, columns=list(ReAnswer.columns)).rows}
    q.close()
    assert len(stored) >= 6
    differs = 0
    for r in stored:
        row = catalog[r["sample_id"]]
        assert len(r["answers"]) == len(r["answer_scores"]) == 5
        results = [scored(row, a) for a in r["answers"]]
        assert r["answer_scores"] == pytest.approx([s for s, *_ in results])
        assert r["greedy_agrees"] == r["passed"] == results[0][2] and r["score"] == pytest.approx(results[0][0])
        assert r["pass_rate"] == pytest.approx(sum(a for _, _, a, _ in results[1:]) / 4)
        assert r["mean_score"] == pytest.approx(sum(s for s, *_ in results[1:]) / 4)
        assert r["reason"].endswith(f"/4 samples agree (mean {r['mean_score']:.2f})")
        differs += any(a != r["answers"][0] for a in r["answers"][1:])
    assert differs > 0  # sampled at a temperature, not four more greedy answers
    # The app's readers see the verdict as for any check (the measurements ride along in the same files).
    seen = sample_results(home.results_dir, [stored[0]["sample_id"]])
    assert [s["check_name"] for s in seen] == ["model.reanswer"] and "answers" not in seen[0]


def test_sampling_reads_the_checks_params():
    check = ReAnswer({"samples": "8", "temperature": 0.7, "max_new_tokens": 16, "seed": 3})
    assert check.sampling() == Sampling(n=8, temperature=0.7, max_new_tokens=16, seed=3)


def test_judging_uses_the_samples_metric():
    row = {"question": "Which is closer?\nA: chair\nB: table", "answer": "B", "answer_kind": "choice"}
    assert ReAnswer.judge(row, "<think>The table is nearer.</think> B").passed
    bad = ReAnswer.judge(row, "A")
    assert not bad.passed and bad.reason == "model answered 'A', the stored answer is 'B' (choice 0.00)"
