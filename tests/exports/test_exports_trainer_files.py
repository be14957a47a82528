"""What RL exports hand their trainer: ground truths in the form VST's scorer reads (never empty, never a sentence
where a letter or a number belongs), the reward function verl loads by path, and VST's own data config."""

from __future__ import annotations

import ast
import importlib.util
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from curation.ingest.run import ingest
from curation.mixtures.export import export_mixture
from curation.mixtures.recipe import parse_recipe
from curation.settings import Settings, load_settings
from curation.vst.scoring import rl_reward
from tests.support.actors import CURATOR
from tests.support.exports_fixtures import make_home, recipe
from tests.support.shards import png, write_rl

OPTIONS = "Where is the second camera relative to the first?\nA: to the left\nB: to the right and in front\nC: behind"
RL_ROWS = {  # id -> (question, answer as the source wrote it, meta_info modes)
    "rl-option-text": (OPTIONS, "to the right and in front", ["multi_choices_score"]),
    "rl-letter-sentence": (OPTIONS, "Matching the objects, the camera moved right. So the answer is B. B",
                           ["multi_choices_score"]),
    "rl-number-words": ("How far is the lamp from the sofa, in meters?", "About 1.8 meters.", ["relaxed_score"]),
    "rl-empty": ("How many chairs are there?", "", ["relaxed_score"]),
    "rl-sentence": (OPTIONS, "The camera turned a lot and then moved somewhere that is hard to say from the views",
                    ["multi_choices_score"]),
}
EXPECTED_TRUTH = {"rl-option-text": "B", "rl-letter-sentence": "B", "rl-number-words": "1.8 meters"}


@pytest.fixture(scope="module")
def rl_home(tmp_path_factory) -> Settings:
    base = tmp_path_factory.mktemp("rl-truth")
    rows = [{"id": sid, "images": [{"bytes": png(64 + i, 48), "path": f"{sid}.png"}], "question": q, "answer": a,
             "meta_info": json.dumps({"mode": modes})} for i, (sid, (q, a, modes)) in enumerate(RL_ROWS.items())]
    write_rl(base / "src/vst_r/rl/rl_sr_camera_camera/part-00000.parquet", rows)
    settings = load_settings(base / "home").ensure_dirs()
    ingest([base / "src/vst_r"], settings, progress=False)
    return settings


@pytest.fixture(scope="module")
def rl_exports(rl_home: Settings, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("rl-exports") / "rl"
    return {o.format: o.out_dir for o in export_mixture(parse_recipe(recipe()), rl_home, ["verl", "vst-rl", "swift"],
                                                        out, by=CURATOR)}


def _left_out(folder: Path) -> dict[str, str]:
    manifest = json.loads((folder / "manifest.json").read_text())
    return {r["sample_id"]: r["reason"] for r in manifest["written"]["left_out"]}


def test_verl_ground_truth_is_the_answer_the_scorer_expects_and_unscorable_rows_are_left_out(rl_exports):
    rows = pq.read_table(sorted((rl_exports["verl"] / "data").glob("*.parquet"))).to_pylist()
    truths = {r["extra_info"]["sample_id"]: r["reward_model"]["ground_truth"] for r in rows}
    assert truths == EXPECTED_TRUTH
    left = _left_out(rl_exports["verl"])
    assert set(left) == {"rl-empty", "rl-sentence"}
    assert left["rl-empty"] == 'RL ground truth cannot be parsed: text answer ""'
    assert left["rl-sentence"].startswith('RL ground truth cannot be parsed: choice answer "The camera turned')
    written = json.loads((rl_exports["verl"] / "manifest.json").read_text())["written"]
    assert written["left_out_by_reason"] == {"RL ground truth cannot be parsed": 2}
    for r in rows:  # a response stating the ground truth earns the full reward under the row's own modes
        truth = r["reward_model"]["ground_truth"]
        assert rl_reward(f"<think>ok</think> {truth}", truth, r["extra_info"]["reward_modes"]) == 1.0


def test_vst_rl_answers_and_swift_solutions_are_the_same_ground_truths(rl_exports):
    rows = pq.read_table(sorted(rl_exports["vst-rl"].rglob("*.parquet"))).to_pylist()
    assert {r["id"]: r["answer"] for r in rows} == EXPECTED_TRUTH
    assert set(_left_out(rl_exports["vst-rl"])) == {"rl-empty", "rl-sentence"}
    swift = [json.loads(x) for f in sorted((rl_exports["swift"] / "data").glob("*.jsonl"))
             for x in f.read_text().splitlines()]
    assert {r["id"]: r["solution"] for r in swift} == {**EXPECTED_TRUTH, "rl-empty": None, "rl-sentence": None}


def test_verl_ships_vst_scorer_as_a_reward_function_that_runs_on_its_own(rl_exports, tmp_path):
    folder = rl_exports["verl"]
    trainer = json.loads((folder / "manifest.json").read_text())["trainer"]
    assert trainer["custom_reward_function"] == {"path": "reward/vst_reward.py", "name": "compute_score"}
    assert f"custom_reward_function.path={folder / 'reward/vst_reward.py'}" in trainer["verl_args"]
    copy = tmp_path / "elsewhere" / "reward"
    shutil.copytree(folder / "reward", copy)  # the folder travels with the data
    for path in copy.rglob("*.py"):  # nothing of the VST Curator is imported: it runs where that is not installed
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                assert node.module.split(".")[0] not in ("curation", "db", "exports", "app"), path
            if isinstance(node, ast.Import):
                assert all(a.name.split(".")[0] not in ("curation", "db", "exports", "app") for a in node.names)
    spec = importlib.util.spec_from_file_location("custom_module_test", copy / "vst_reward.py")  # as verl loads it
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    extra = {"reward_modes": ["multi_choices_score"]}
    assert module.compute_score("vst", "<think>It moved right.</think> B", "B", extra) == 1.0
    assert module.compute_score("vst", "<think>It moved right.</think> A", "B", extra) == 0.5  # format only
    assert module.compute_score("vst", "B", "B", extra) == 0.5  # no reasoning block: accuracy only
    assert module.compute_score("vst", "<think>x</think> 1.85 m", "1.8 meters", {"reward_modes": ["relaxed_score"]}) \
        == 1.0  # relaxed 5%, units compared
    assert module.compute_score("vst", "<think>x</think> B", "B", {"reward_modes": ["not_a_mode"]}) == 1.0


def test_vst_sft_writes_vst_data_config_listing_every_subset_folder(tmp_path):
    built = make_home(tmp_path / "own")
    outcome, = export_mixture(parse_recipe(recipe()), built, ["vst-sft"], tmp_path / "out", by=CURATOR)
    config = yaml.safe_load((outcome.out_dir / "vst_data.yaml").read_text())
    folders = sorted({p.parent.name for p in outcome.out_dir.rglob("*.parquet")})
    assert config == [{"ann_path": f, "data_dir": str(outcome.out_dir)} for f in folders]
    for entry in config:  # VST's trainer globs data_dir/ann_path/*.parquet
        assert list((Path(entry["data_dir"]) / entry["ann_path"]).glob("*.parquet"))
    assert outcome.manifest["trainer"] == {"vst_data_config": "vst_data.yaml", "subsets": len(folders)}
    assert "vst_data.yaml" in {f["path"] for f in outcome.manifest["files"]}


def test_verl_reward_scores_counts_and_distances_by_mra_with_the_consistency_checks_scorer(tmp_path, monkeypatch):
    from curation.checks.consistency import agreement

    settings = make_home(tmp_path / "own")
    outcome, = export_mixture(parse_recipe(recipe()), settings, ["verl"], tmp_path / "verl", by=CURATOR)
    monkeypatch.chdir(tmp_path)  # verl runs from its own working directory: the reward finds its scorer anyway
    spec = importlib.util.spec_from_file_location("custom_module_mra", outcome.out_dir / "reward" / "vst_reward.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = {r["extra_info"]["sample_id"]: r for r in
            pq.read_table(sorted((outcome.out_dir / "data").rglob("*.parquet"))).to_pylist()}

    def reward(row: dict, said: str) -> float:
        return module.compute_score(row["data_source"], f"<think>Looking.</think> {said}",
                                    row["reward_model"]["ground_truth"], row["extra_info"])

    # VSI-Bench's Mean Relative Accuracy for a distance or a count: 20% off hits 7 of the 10 thresholds, 25% off 6.
    assert rows["dist-004"]["reward_model"]["ground_truth"] == "1.4"
    assert reward(rows["dist-004"], "1.12") == pytest.approx(0.5 * 0.7 + 0.5)
    assert rows["vid-3"]["reward_model"]["ground_truth"] == "4"
    assert reward(rows["vid-3"], "3") == pytest.approx(0.5 * 0.6 + 0.5)
    assert reward(rows["vid-3"], "12") == pytest.approx(0.5)  # format reward only
    # Every row scores as the consistency check scores the same answer (one scorer): the truth in full, a number
    # 20% off by the metric its question calls for.
    for row in rows.values():
        truth, info = row["reward_model"]["ground_truth"], row["extra_info"]
        answers = [truth] + ([f"{float(truth) * 0.8:g}"] if info["answer_kind"] == "number" else [])
        for said in answers:
            score, metric, _ = agreement(said, truth, question=info["question"], answer_kind=info["answer_kind"],
                                         rl_modes=info["rl_modes"])
            assert reward(row, said) == pytest.approx(0.5 * score + 0.5), (row["extra_info"]["sample_id"], metric)
