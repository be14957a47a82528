"""Load a vst-sft or vst-rl export the way VST's trainer does (its code is not packaged): the data config's
folders globbed for Parquet files, read with HF datasets, each row's media decoded (images with PIL, a video's MP4
bytes with decord) and paired with its placeholders in order, then the Qwen2.5-VL processor run on the prompt.

    python load_vst.py EXPORT PROCESSOR REPORT [--rl --reward PATH]

With --rl: every answer is a ground truth the shipped reward function scores 1.0 against itself.
"""

from __future__ import annotations

import glob
import importlib.util
import io
import json
import os
import re

from prelude import loader_arguments, report, token_problem, video_frames

FLAGS = re.compile(r"<\|image_pad\|>|<\|video_pad\|>")
ROLES = {"human": "user", "gpt": "assistant"}


def _data_files(export: str, rl: bool) -> list[str]:
    if rl:
        return sorted(glob.glob(os.path.join(export, "*", "*.parquet")))
    import yaml

    entries = yaml.safe_load(open(os.path.join(export, "vst_data.yaml")))
    files = []
    for e in entries:
        found = glob.glob(os.path.join(e["data_dir"], e["ann_path"], "*.parquet"))
        assert found, f"no parquet files in {e['data_dir']}/{e['ann_path']}"
        files += found
    return sorted(files)


def main() -> None:
    ap = loader_arguments()
    ap.add_argument("--rl", action="store_true")
    ap.add_argument("--reward")
    args = ap.parse_args()

    from datasets import load_dataset
    from PIL import Image
    from transformers import AutoProcessor

    files = _data_files(args.export, args.rl)
    ds = load_dataset("parquet", data_files=files, split="train")
    processor = AutoProcessor.from_pretrained(args.processor)
    score = None
    if args.reward:
        spec = importlib.util.spec_from_file_location("shipped_reward", args.reward)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        score = module.compute_score
    problems, ids = [], []
    for i, row in enumerate(ds):
        ids.append(row["id"])
        try:
            media = row["images"] or []
            if args.rl:
                turns = [("user", row["question"] or "")]
                kinds = ["image"] * len(media)
            else:
                turns = [(ROLES.get(t["from"], t["from"]), t["value"] or "") for t in row["conversations"]]
                kinds = ["video" if "video" in (row["type"] or "") else "image"] * len(media)
            first = turns[0][1]
            if media and not FLAGS.search(first):  # VST puts one flag per item before a question that has none
                first = "<|image_pad|>" * len(media) + first
                turns[0] = (turns[0][0], first)
            images, videos, messages = [], [], []
            for role, text in turns:
                content, parts = [], FLAGS.split(text)
                for k, flag in enumerate(FLAGS.findall(text) + [None]):
                    if parts[k].strip():
                        content.append({"type": "text", "text": parts[k].strip()})
                    if flag is None:
                        continue
                    n = len(images) + len(videos)
                    if n >= len(media):
                        raise ValueError(f"placeholder {n + 1} has no media item (row has {len(media)})")
                    if kinds[n] == "video":
                        videos.append(video_frames(media[n]["bytes"]))
                        content.append({"type": "video"})
                    else:
                        images.append(Image.open(io.BytesIO(media[n]["bytes"])).convert("RGB"))
                        content.append({"type": "image"})
                messages.append({"role": role, "content": content})
            if len(images) + len(videos) != len(media):
                raise ValueError(f"{len(media)} media items for {len(images) + len(videos)} placeholders")
            problem = token_problem(processor, messages, images, videos, len(media))
            if problem:
                raise ValueError(problem)
            if args.rl:
                truth = row["answer"]
                modes = json.loads(row["meta_info"]).get("mode")
                value = score("vst", f"<think>Looking.</think> {truth}", truth, {"reward_modes": modes}) if score \
                    else None
                if not truth or (value is not None and value < 1.0 - 1e-6 and "bbox3d" not in modes):
                    raise ValueError(f"ground truth {truth!r} scores {value} against itself")
        except Exception as exc:  # the row a trainer would fail on
            problems.append({"index": i, "id": row["id"], "error": f"{type(exc).__name__}: {exc}"[:400]})
    report(args.report, records=len(ds), accepted=len(ds) - len(problems), problems=problems, ids=ids,
           files=len(files))


if __name__ == "__main__":
    main()
