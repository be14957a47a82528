"""Load an export with ms-swift's own dataset loading and encode every record with its qwen2_5_vl template.

    python load_swift.py EXPORT PROCESSOR REPORT

ms-swift 4.6 needs a newer ``datasets`` than LLaMA-Factory allows: the test puts it first on PYTHONPATH.
"""

from __future__ import annotations

import glob
import json
import os

from prelude import IMAGE_PAD_ID, VIDEO_PAD_ID, VISION_START_ID, loader_arguments, report


def main() -> None:
    ap = loader_arguments()
    args = ap.parse_args()

    from swift.dataset import load_dataset
    from swift.model import get_processor
    from swift.template import get_template

    files = sorted(glob.glob(os.path.join(args.export, "data", "*.jsonl")))
    records = [json.loads(line) for f in files for line in open(f) if line.strip()]
    processor = get_processor(args.processor, model_type="qwen2_5_vl", download_model=False)
    template = get_template(processor, template_type="qwen2_5_vl", max_pixels=64 * 28 * 28)
    template.set_mode("train")
    # Extra columns kept, as ms-swift keeps them for GRPO reward functions (id, solution).
    train, _ = load_dataset(files, num_proc=1, load_from_cache_file=False, remove_unused_columns=False)
    merge = processor.image_processor.merge_size ** 2
    problems, ids = [], []
    for i, row in enumerate(train):
        want = len(row.get("images") or []) + len(row.get("videos") or [])
        ids.append((row.get("id") or "") if isinstance(row.get("id"), str) else None)
        try:
            enc = template.encode(row)
        except Exception as exc:  # a record the trainer cannot use
            problems.append({"index": i, "id": row.get("id"), "error": f"{type(exc).__name__}: {exc}"[:500]})
            continue
        tokens = enc["input_ids"]
        expect_image = int(enc["image_grid_thw"].prod(-1).sum()) // merge if "image_grid_thw" in enc else 0
        expect_video = int(enc["video_grid_thw"].prod(-1).sum()) // merge if "video_grid_thw" in enc else 0
        got = (tokens.count(IMAGE_PAD_ID), tokens.count(VIDEO_PAD_ID), tokens.count(VISION_START_ID))
        if got != (expect_image, expect_video, want):
            problems.append({"index": i, "id": row.get("id"), "tokens": got,
                             "expected": [expect_image, expect_video, want]})
    report(args.report, records=len(records), accepted=len(train) - len(problems), loaded=len(train),
           problems=problems, ids=ids, columns=list(train.column_names))


if __name__ == "__main__":
    main()
