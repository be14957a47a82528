"""Every format's default export of the demo is accepted, record by record, by its trainer's own data code run from
another working directory: LLaMA-Factory's get_dataset (qwen2_vl template), ms-swift's dataset loading and template
encode, verl's RLHFDataset, VST's own data config read as its trainer reads it. Each record must come out with one
vision block per media item and as many pad tokens as its pixels make."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trainers.conftest import manifest, run_loader

pytestmark = pytest.mark.slow


def _accepted_all(report: dict, folder: Path) -> None:
    written = manifest(folder)["written"]["rows"]
    assert report.get("error") is None, report["error"]
    assert report["problems"] == [], report["problems"][:5]
    assert report["records"] == written and report["accepted"] == written, report


def test_llamafactory_get_dataset_accepts_every_record(trainers_python, tiny_processor, demo_exports, elsewhere):
    folder = demo_exports / "llamafactory"
    report = run_loader(trainers_python, "load_llamafactory.py", folder, tiny_processor,
                        cwd=elsewhere)
    _accepted_all(report, folder)


def test_llava_records_carry_media_under_the_keys_llava_reads(trainers_python, tiny_processor, demo_exports,
                                                              elsewhere):
    # LLaVA's loader reads `image` (a path or a list) and `video`: every multi-image record's images are found.
    folder = demo_exports / "llava"
    report = run_loader(trainers_python, "load_llava.py", folder, tiny_processor,
                        cwd=elsewhere)
    _accepted_all(report, folder)


def test_swift_loads_and_encodes_every_record_from_another_directory(trainers_python, tiny_processor, demo_exports,
                                                                      elsewhere):
    folder = demo_exports / "swift"
    report = run_loader(trainers_python, "load_swift.py", folder, tiny_processor,
                        cwd=elsewhere, swift=True)
    _accepted_all(report, folder)
    assert report["loaded"] == report["records"]
    assert all(report["ids"]) and len(set(report["ids"])) == len(report["ids"])  # each record keeps its sample id


def test_verl_dataset_keeps_every_prompt_and_the_shipped_reward_scores_its_ground_truth(
        trainers_python, tiny_processor, demo_exports, elsewhere):
    folder = demo_exports / "verl"
    report = run_loader(trainers_python, "load_verl.py", folder, tiny_processor, cwd=elsewhere)
    _accepted_all(report, folder)
    assert report["reward"] == "reward/vst_reward.py" and report["scored"] == report["records"]
    # A ground truth stated as the answer earns the full reward, but for 3D boxes the demo made degenerate.
    assert all("bbox3d" in r["modes"] and r["score"] > 0.5 for r in report["below_full_reward"]), report


def test_vst_sft_loads_through_the_data_config_it_ships(trainers_python, tiny_processor, demo_exports, elsewhere):
    folder = demo_exports / "vst-sft"
    report = run_loader(trainers_python, "load_vst.py", folder, tiny_processor, cwd=elsewhere)
    _accepted_all(report, folder)
    assert report["files"] == len([f for f in manifest(folder)["files"] if f["path"].endswith(".parquet")])


def test_vst_rl_answers_are_ground_truths_the_scorer_accepts(trainers_python, tiny_processor, demo_exports, elsewhere):
    folder = demo_exports / "vst-rl"
    report = run_loader(trainers_python, "load_vst.py", folder, tiny_processor, "--rl",
                        "--reward", demo_exports / "verl" / "reward" / "vst_reward.py", cwd=elsewhere)
    _accepted_all(report, folder)
