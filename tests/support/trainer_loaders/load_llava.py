"""Load a LLaVA export by LLaVA's loading rule (its training code is not packaged): a JSON list; ``image`` is one path
or a list of paths, ``video`` a path, both relative to the image folder (the export); each <image>/<video> tag in the
conversation takes the next item. Media decoded (PIL, decord), then the Qwen2.5-VL processor run on the chat.

    python load_llava.py EXPORT PROCESSOR REPORT
"""

from __future__ import annotations

import glob
import json
import os
import re

from prelude import loader_arguments, report, token_problem, video_frames

TAGS = re.compile(r"<image>|<video>")
ROLES = {"human": "user", "gpt": "assistant"}


def main() -> None:
    ap = loader_arguments()
    args = ap.parse_args()

    from PIL import Image
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(args.processor)
    records = [r for f in sorted(glob.glob(os.path.join(args.export, "data", "*.json"))) for r in json.load(open(f))]
    problems = []
    for i, rec in enumerate(records):
        try:
            image = rec.get("image")
            paths = {"<image>": image if isinstance(image, list) else [image] if image else [],
                     "<video>": [rec["video"]] if rec.get("video") else []}
            n_media = sum(map(len, paths.values()))
            taken = {"<image>": 0, "<video>": 0}
            images, videos, messages = [], [], []
            for turn in rec["conversations"]:
                content, parts = [], TAGS.split(turn["value"])
                for k, tag in enumerate(TAGS.findall(turn["value"]) + [None]):
                    if parts[k].strip():
                        content.append({"type": "text", "text": parts[k].strip()})
                    if tag is None:
                        continue
                    if taken[tag] >= len(paths[tag]):
                        raise ValueError(f"{tag} tag {taken[tag] + 1} has no {tag[1:-1]} in the record")
                    path = os.path.join(args.export, paths[tag][taken[tag]])
                    taken[tag] += 1
                    if tag == "<image>":
                        images.append(Image.open(path).convert("RGB"))
                        content.append({"type": "image"})
                    else:
                        videos.append(video_frames(path))
                        content.append({"type": "video"})
                messages.append({"role": ROLES.get(turn["from"], turn["from"]), "content": content})
            if sum(taken.values()) != n_media:
                raise ValueError(f"{n_media} media items for {sum(taken.values())} tags")
            problem = token_problem(processor, messages, images, videos, n_media)
            if problem:
                raise ValueError(problem)
        except Exception as exc:  # the record LLaVA's loader would fail on
            problems.append({"index": i, "id": rec.get("id"), "error": f"{type(exc).__name__}: {exc}"[:400]})
    report(args.report, records=len(records), accepted=len(records) - len(problems), problems=problems,
           ids=[r.get("id") for r in records])


if __name__ == "__main__":
    main()
