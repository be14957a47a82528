"""Load a verl export with verl's own RLHFDataset, build each prompt's model inputs with the calls verl's prompt
filter and agent loop make (RLHFDataset's own message and vision code, then the processor), and score each ground
truth with the reward function the export ships, loaded as verl's ``custom_reward_function.path``.

    python load_verl.py EXPORT PROCESSOR REPORT
"""

from __future__ import annotations

import glob
import json
import os

from prelude import IMAGE_PAD_ID, VIDEO_PAD_ID, VISION_START_ID, loader_arguments, report


def main() -> None:
    ap = loader_arguments()
    args = ap.parse_args()

    import pyarrow.parquet as pq
    from omegaconf import OmegaConf
    from transformers import AutoProcessor
    from verl.trainer.ppo.reward import get_custom_reward_fn
    from verl.utils.dataset.rl_dataset import RLHFDataset
    from verl.utils.tokenizer import build_multimodal_processor_inputs

    files = sorted(glob.glob(os.path.join(args.export, "data", "*.parquet")))
    records = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    manifest = json.load(open(os.path.join(args.export, "manifest.json")))
    processor = AutoProcessor.from_pretrained(args.processor)
    # verl's over-long-prompt filter makes the calls below and silently drops a prompt that raises: they are made
    # here once, so that such a prompt is named instead.
    config = OmegaConf.create({"max_prompt_length": 1_000_000, "filter_overlong_prompts": False,
                               "cache_dir": os.path.join(os.getcwd(), "cache"), "return_raw_chat": True})
    ds = RLHFDataset(data_files=files, tokenizer=processor.tokenizer, config=config, processor=processor)
    reward_path = (manifest.get("trainer") or {}).get("custom_reward_function", {}).get("path")
    reward = None
    if reward_path:
        reward = get_custom_reward_fn(OmegaConf.create({"reward": {"custom_reward_function": {
            "path": os.path.join(args.export, reward_path), "name": "compute_score"}}}))
    merge = processor.image_processor.merge_size ** 2
    problems, ids, scores, below = [], [], [], []
    for i in range(len(ds)):
        try:
            row = ds[i]
            ids.append(row["extra_info"].get("sample_id"))
            messages = row["raw_prompt"]
            images, videos, _ = RLHFDataset._process_multi_modal_info(messages, ds.image_patch_size, config)
            prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            inputs = build_multimodal_processor_inputs(processor, text=[prompt], images=images, videos=videos)
        except Exception as exc:  # verl's filter would drop this prompt
            problems.append({"index": i, "error": f"{type(exc).__name__}: {exc}"[:400]})
            continue
        tokens = inputs["input_ids"][0].tolist()
        want = sum(isinstance(c, dict) and c.get("type") in ("image", "video")
                   for m in messages if isinstance(m["content"], list) for c in m["content"])
        expect_image = int(inputs["image_grid_thw"].prod(-1).sum()) // merge if "image_grid_thw" in inputs else 0
        expect_video = int(inputs["video_grid_thw"].prod(-1).sum()) // merge if "video_grid_thw" in inputs else 0
        got = (tokens.count(IMAGE_PAD_ID), tokens.count(VIDEO_PAD_ID), tokens.count(VISION_START_ID))
        if got != (expect_image, expect_video, want):
            problems.append({"index": i, "id": ids[-1], "tokens": got, "expected": [expect_image, expect_video, want]})
        truth = row["reward_model"]["ground_truth"]
        if reward is not None:
            # A response that states the ground truth in VST's format earns the full reward.
            score = reward(data_source=row["data_source"], solution_str=f"<think>Looking.</think> {truth}",
                           ground_truth=truth, extra_info=row["extra_info"])
            scores.append(score)
            if not truth:
                problems.append({"index": i, "id": ids[-1], "ground_truth": truth})
            elif score < 1.0 - 1e-6:  # e.g. a 3D box of zero size: its IoU with itself is 0
                below.append({"id": ids[-1], "modes": list(row["extra_info"]["reward_modes"]), "score": score})
    report(args.report, records=records, accepted=len(ds) - len({p["index"] for p in problems}), loaded=len(ds),
           problems=problems, ids=ids, reward=reward_path, scored=len(scores), below_full_reward=below)


if __name__ == "__main__":
    main()
