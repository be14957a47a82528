"""Known defects injected into demo rows (one per affected row), so checks can be scored against ground truth."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from curation.demo import phrasing as ph
from curation.demo.render import encode_image
from curation.demo.rows import DemoRow, Media, sft_meta_info
from curation.demo.video_questions import BenchItem, training_text
from curation.demo.world import World
from curation.vst.vocabulary import IMAGE_PAD, VIDEO_PAD

DEFECT_TYPES = [
    "placeholder_mismatch",
    "duplicate_id",
    "unknown_type",
    "unit_mixing",
    "missing_video",
    "extreme_aspect",
    "tiny_image",
    "token_budget",
    "invalid_rl_mode",
    "unextractable_choice",
    "cot_conclusion_mismatch",
    "think_tags",
    "bbox_nonpositive_size",
    "bbox_angle_range",
    "bbox_behind_camera",
    "bbox_outside_fov",
    "implausible_size",
    "exact_duplicate",
    "near_duplicate",
    "benchmark_overlap",
    "wrong_answer",
    "invalid_meta_json",
    "corrupt_image",
]
_COPYABLE = ("sft", "video", "rl")
_BOX_DEFECTS = (
    "bbox_nonpositive_size",
    "bbox_angle_range",
    "bbox_behind_camera",
    "bbox_outside_fov",
    "implausible_size",
)


@dataclass(frozen=True)
class DefectRecord:
    """Ground truth for one injected defect: where the row is and what is wrong with it."""

    file: str  # relative to the demo folder
    row: int  # 0-based index of the row within that file
    source_id: str  # the row's id as written
    defect_type: str


def _has_images(r: DemoRow) -> bool:
    return r.layout in ("sft", "rl") and bool(r.media)


ELIGIBLE: dict[str, Callable[[DemoRow], bool]] = {
    "placeholder_mismatch": lambda r: r.layout in ("sft", "video"),
    "duplicate_id": lambda r: r.layout in _COPYABLE,
    "unknown_type": lambda r: r.layout in ("sft", "video"),
    "unit_mixing": lambda r: "unit_mixing" in r.hooks,
    "missing_video": lambda r: r.layout == "video",
    "extreme_aspect": _has_images,
    "tiny_image": _has_images,
    "corrupt_image": _has_images,
    "token_budget": lambda r: r.layout == "rl" and bool(r.media),
    "invalid_rl_mode": lambda r: r.layout == "rl",
    "unextractable_choice": lambda r: "unextractable" in r.hooks,
    "cot_conclusion_mismatch": lambda r: "cot" in r.hooks,
    "think_tags": lambda r: "cot" in r.hooks,
    **{name: (lambda r: "boxes" in r.hooks) for name in _BOX_DEFECTS},
    "exact_duplicate": lambda r: r.layout in _COPYABLE,
    "near_duplicate": lambda r: r.layout in _COPYABLE,
    "benchmark_overlap": lambda r: r.layout == "video",
    "wrong_answer": lambda r: "wrong_answer" in r.hooks,
    "invalid_meta_json": lambda r: r.layout in ("sft", "rl"),
}


class DefectInjector:
    """Applies ``n`` defects round-robin over the types (shuffled per seed) to rows that can carry them."""

    def __init__(self, rows: list[DemoRow], world: World, bench: list[BenchItem], rng: np.random.Generator):
        self.rows, self.world, self.rng = rows, world, rng
        self.bench = list(bench)

    def candidates(self, defect: str) -> list[DemoRow]:
        ok = ELIGIBLE[defect]
        rows = [
            r
            for r in self.rows
            if r.defect is None and not r.locked and not r.file.endswith("part-00001.parquet") and ok(r)
        ]
        if defect == "benchmark_overlap" and not self.bench:
            return []
        if defect in ("exact_duplicate", "near_duplicate"):
            partners = {}
            for r in self.rows:
                if r.defect is None and r.layout in _COPYABLE:
                    partners[r.file] = partners.get(r.file, 0) + 1
            rows = [r for r in rows if partners.get(r.file, 0) >= 2]
        return rows

    def inject(self, n: int) -> int:
        order = [DEFECT_TYPES[int(i)] for i in self.rng.permutation(len(DEFECT_TYPES))]
        done, k, exhausted = 0, 0, set()
        while done < n and len(exhausted) < len(order):
            defect = order[k % len(order)]
            k += 1
            if defect in exhausted:
                continue
            cands = self.candidates(defect)
            if not cands:
                exhausted.add(defect)
                continue
            row = cands[int(self.rng.integers(len(cands)))]
            apply = getattr(self, "_" + defect, None)
            if apply is not None:
                apply(row)
            else:
                self._box(row, defect)
            row.defect = defect
            done += 1
        return done

    # -------------------------------------------------------------- text and metadata

    def _answer_turn(self, row: DemoRow) -> int:
        return int(row.hooks.get("answer_turn", 1))

    def _placeholder_mismatch(self, row: DemoRow) -> None:
        pad = VIDEO_PAD if row.layout == "video" else IMAGE_PAD
        text = row.turns[0][1]
        if self.rng.random() < 0.5 and text.startswith(pad):
            row.turns[0][1] = text[len(pad) :].lstrip("\n") if text.count(pad) == 1 else text[len(pad) :]
        else:
            row.turns[0][1] = pad + text

    def _duplicate_id(self, row: DemoRow) -> None:
        # Half the time the collision crosses subsets, as regenerated uuids from different converters do.
        cross = self.rng.random() < 0.5
        others = [
            r
            for r in self.rows
            if r is not row and r.layout in _COPYABLE and r.defect is None and (r.file != row.file) == cross
        ] or [r for r in self.rows if r is not row and r.defect is None]
        other = others[int(self.rng.integers(len(others)))]
        other.locked = True
        row.id = other.id

    def _unknown_type(self, row: DemoRow) -> None:
        row.type = (
            "unknow" if self.rng.random() < 0.6 else str(self.rng.choice(["misc_v2", "tmp", "spatial_new", "qa2"]))
        )

    def _unit_mixing(self, row: DemoRow) -> None:
        row.turns[self._answer_turn(row)][1] = row.hooks["unit_mixing"]

    def _wrong_answer(self, row: DemoRow) -> None:
        row.turns[self._answer_turn(row)][1] = row.hooks["wrong_answer"]

    def _unextractable_choice(self, row: DemoRow) -> None:
        row.turns[self._answer_turn(row)][1] = row.hooks["unextractable"]

    def _missing_video(self, row: DemoRow) -> None:
        row.video = f"videos/{row.room_id}_path{int(self.rng.integers(5, 9))}.mp4"  # never written

    def _invalid_rl_mode(self, row: DemoRow) -> None:
        meta = json.loads(row.meta_info)
        meta["mode"] = [str(self.rng.choice(["accuracy_score", "multi_choice_score", "exact_match", "bleu_score"]))]
        row.meta_info = json.dumps(meta, sort_keys=True)

    def _invalid_meta_json(self, row: DemoRow) -> None:
        row.meta_info = row.meta_info[:-2] if self.rng.random() < 0.5 else row.meta_info.replace('"', "'")

    def _cot_conclusion_mismatch(self, row: DemoRow) -> None:
        cot = row.hooks["cot"]
        other = [x for x in cot["letters"] if x != cot["letter"]]
        said = other[int(self.rng.integers(len(other)))]
        row.turns[1][1] = f"<think>{cot['think']} So the answer is {said}.</think> {cot['letter']}"

    def _think_tags(self, row: DemoRow) -> None:
        cot = row.hooks["cot"]
        trace, letter = f"{cot['think']} So the answer is {cot['letter']}.", cot["letter"]
        variant = int(self.rng.integers(3))
        row.turns[1][1] = [
            f"{trace} {letter}",
            f"<think>{trace} {letter}",
            f"<think>{trace}</think><think>Let me double-check: yes.</think> {letter}",
        ][variant]

    def _benchmark_overlap(self, row: DemoRow) -> None:
        item = self.bench.pop(int(self.rng.integers(len(self.bench))))
        row.turns = [["human", training_text(item.qa, bench_wording=True)], ["gpt", item.qa.answer]]
        row.video = self.world.use_video(item.tour)
        row.room_id = item.tour.room.room_id
        row.data_source = item.tour.room.source
        row.hooks = {}

    # -------------------------------------------------------------- copies

    def _copy_from_partner(self, row: DemoRow) -> None:
        partners = [r for r in self.rows if r is not row and r.file == row.file and r.defect is None]
        src = partners[int(self.rng.integers(len(partners)))]
        src.locked = True
        row.turns = [list(t) for t in src.turns]
        row.media = list(src.media)
        row.data_source, row.type, row.meta_info, row.video = src.data_source, src.type, src.meta_info, src.video
        row.room_id, row.hooks = src.room_id, dict(src.hooks)

    def _exact_duplicate(self, row: DemoRow) -> None:
        self._copy_from_partner(row)

    def _near_duplicate(self, row: DemoRow) -> None:
        self._copy_from_partner(row)
        text = row.turns[0][1]
        pads = re.match(r"^((?:<\|image_pad\|>|<\|video_pad\|>)*\n?)", text).group(1)  # type: ignore[union-attr]
        row.turns[0][1] = pads + ph.reword(text[len(pads) :])

    # -------------------------------------------------------------- images

    def _pick_image(self, row: DemoRow) -> int:
        return int(self.rng.integers(len(row.media)))

    def _replace_image(self, row: DemoRow, index: int, img: Image.Image) -> None:
        old = row.media[index]
        row.media = list(row.media)
        row.media[index] = Media(encode_image(img), old.path, img.width, img.height)
        if row.layout == "sft":
            row.meta_info = sft_meta_info(row.media)

    def _extreme_aspect(self, row: DemoRow) -> None:
        i = self._pick_image(row)
        size = (1000, 8) if self.rng.random() < 0.5 else (8, 1000)
        self._replace_image(row, i, Image.open(io.BytesIO(row.media[i].data)).convert("RGB").resize(size))

    def _tiny_image(self, row: DemoRow) -> None:
        i = self._pick_image(row)
        size = [(20, 15), (24, 18), (16, 16)][int(self.rng.integers(3))]
        self._replace_image(row, i, Image.open(io.BytesIO(row.media[i].data)).convert("RGB").resize(size))

    def _corrupt_image(self, row: DemoRow) -> None:
        i = self._pick_image(row)
        old = row.media[i]
        # Either a truncated JPEG (the header parses, decoding fails) or bytes that are no image at all.
        data = (
            old.data[: len(old.data) // 3] if self.rng.random() < 0.5 else b"\x00not an image\x00" + self.rng.bytes(64)
        )
        row.media = list(row.media)
        row.media[i] = Media(data, old.path, old.width, old.height)

    def _token_budget(self, row: DemoRow) -> None:
        # Three images near the per-image cap: about 4,000 tokens each, 12,000 in all (limit 8,192).
        base = Image.open(io.BytesIO(row.media[0].data)).convert("RGB").resize((2100, 1575), Image.Resampling.NEAREST)
        data = encode_image(base)
        row.media = [Media(data, row.media[min(k, len(row.media) - 1)].path, 2100, 1575) for k in range(3)]

    # -------------------------------------------------------------- 3D boxes

    def _box(self, row: DemoRow, defect: str) -> None:
        spec = row.hooks["boxes"]
        items = [(label, list(v)) for label, v in spec["items"]]
        j = int(self.rng.integers(len(items)))
        v = items[j][1]
        cam = spec["camera"]
        if defect == "bbox_nonpositive_size":
            axis = 3 + int(self.rng.integers(3))
            v[axis] = 0.0 if self.rng.random() < 0.4 else ph.r2(-abs(v[axis]))
        elif defect == "bbox_angle_range":
            v[6 + int(self.rng.integers(3))] = ph.r2(float(self.rng.choice([-1.0, 1.0])) * self.rng.uniform(1.1, 1.7))
        elif defect == "bbox_behind_camera":
            v[2] = ph.r2(-abs(v[2]))
        elif defect == "bbox_outside_fov":
            u = cam.width * (1.4 if self.rng.random() < 0.5 else -0.4)
            v[0] = ph.r2((u - cam.cx) * v[2] / cam.fx)
        else:  # implausible_size: scale the box so its longest side is 4-6 m ("a 4 m chair")
            factor = float(self.rng.uniform(4.0, 6.0)) / max(v[3:6])
            v[3:6] = [ph.r2(x * factor) for x in v[3:6]]
        text = ph.boxes_block(items) if spec["fenced"] else ph.boxes_json(items)
        row.turns[spec["turn"]][1] = text
