"""Load a llamafactory export with LLaMA-Factory's own get_dataset (qwen2_vl template, SFT stage), through the
dataset_info.json it ships, and count what came out.

    python load_llamafactory.py EXPORT PROCESSOR REPORT
"""

from __future__ import annotations

import glob
import json
import os
import tempfile

from prelude import IMAGE_PAD_ID, VIDEO_PAD_ID, VISION_START_ID, loader_arguments, report


def _records(export: str) -> list[dict]:
    return [json.loads(line) for f in sorted(glob.glob(os.path.join(export, "data", "*.jsonl")))
            for line in open(f) if line.strip()]


def _media_count(value) -> int:
    return 0 if not value else len(value) if isinstance(value, list) else 1


def main() -> None:
    ap = loader_arguments()
    args = ap.parse_args()

    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments, ModelArguments
    from llamafactory.model import load_tokenizer
    from transformers import Seq2SeqTrainingArguments

    work = tempfile.mkdtemp(prefix="lf-")
    dataset = next(iter(json.load(open(os.path.join(args.export, "dataset_info.json")))))
    model_args = ModelArguments(model_name_or_path=args.processor, image_max_pixels=64 * 28 * 28,
                                video_max_pixels=16 * 28 * 28, video_maxlen=4)
    data_args = DataArguments(template="qwen2_vl", dataset=dataset, dataset_dir=args.export,
                              media_dir=args.export, cutoff_len=1_000_000, overwrite_cache=True)
    training_args = Seq2SeqTrainingArguments(output_dir=os.path.join(work, "out"), report_to=[])
    module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(module["tokenizer"], data_args)
    records = _records(args.export)
    try:
        ds = get_dataset(template, model_args, data_args, training_args, stage="sft", **module)["train_dataset"]
    except Exception as exc:  # the whole mixture fails: that is the finding
        report(args.report, records=len(records), accepted=0, error=f"{type(exc).__name__}: {exc}", problems=[])
        return
    plugin, processor = template.mm_plugin, module["processor"]
    merge = processor.image_processor.merge_size ** 2
    problems = []
    for i, row in enumerate(ds):
        ids = row["input_ids"]
        images, videos = row.get("images") or [], row.get("videos") or []
        record = records[i] if i < len(records) else {}
        want = _media_count(record.get("images")) + _media_count(record.get("videos"))
        mm = plugin._get_mm_inputs(images, videos, [], processor)
        expect_image = int(mm["image_grid_thw"].prod(-1).sum()) // merge if images else 0
        expect_video = int(mm["video_grid_thw"].prod(-1).sum()) // merge if videos else 0
        got = (ids.count(IMAGE_PAD_ID), ids.count(VIDEO_PAD_ID), ids.count(VISION_START_ID))
        if got != (expect_image, expect_video, want) or len(images) + len(videos) != want:
            problems.append({"index": i, "id": record.get("id"), "media": want, "images": len(images),
                             "videos": len(videos), "tokens": got, "expected": [expect_image, expect_video, want]})
    report(args.report, records=len(records), accepted=len(ds), problems=problems,
           ids=[r.get("id") for r in records])


if __name__ == "__main__":
    main()
