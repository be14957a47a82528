"""The in-memory demo row (one training sample in any of the four layouts) and its media."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curation.media.sample_media import TOKEN_PATCH, smart_resize
from curation.vst.vocabulary import IMAGE_PAD, VIDEO_PAD


@dataclass
class Media:
    """One embedded image: encoded bytes, the path it is filed under, and its true size."""

    data: bytes
    path: str
    width: int
    height: int


@dataclass
class DemoRow:
    """A sample before it is written. ``layout`` picks the on-disk form:

    ``sft`` (SFT Parquet, VST-P and CoT), ``video`` (LLaVA JSON), ``rl`` (RL Parquet), ``rl_json`` (RL JSON).
    For RL rows the question is ``turns[0][1]`` and the answer ``turns[1][1]``.
    ``hooks`` carries what a defect needs to corrupt this row in a meaningful way (a wrong answer
    computed from the geometry, the answer boxes, the option letters, ...).
    """

    skill: str
    layout: str
    id: str
    turns: list[list[str]]
    media: list[Media]
    data_source: str
    type: str = ""
    meta_info: str = ""
    video: str = ""
    thought: str = ""
    answer_gt: str = ""
    room_id: str = ""
    hooks: dict[str, Any] = field(default_factory=dict)
    file: str = ""  # relative path of the file it is written to, set once the rows are laid out
    defect: str | None = None
    locked: bool = False  # the original of a copied row: keeps it clean so the copy stays a true copy


def new_id(rng: np.random.Generator) -> str:
    """A uuid4-shaped id drawn from the seeded generator (so ids repeat exactly for a seed)."""
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def image_tokens(width: int, height: int) -> int:
    h, w = smart_resize(height, width)
    return (h * w) // (TOKEN_PATCH * TOKEN_PATCH)


def sft_meta_info(media: list[Media], video: bool = False) -> str:
    """The SFT ``meta_info`` JSON list: one {width, height, resized_width, resized_height} per image (-1 for video)."""
    if video:
        return json.dumps([{"height": -1, "resized_height": -1, "resized_width": -1, "width": -1}])
    items = []
    for m in media:
        rh, rw = smart_resize(m.height, m.width)
        items.append({"height": m.height, "resized_height": rh, "resized_width": rw, "width": m.width})
    return json.dumps(items, sort_keys=True)


def rl_meta_info(modes: list[str], question_type: str) -> str:
    return json.dumps({"mode": modes, "question_type": question_type}, sort_keys=True)


def placeholders(n_images: int, video: bool = False) -> str:
    """Media placeholders that open the first human turn (one per image, or one for the video)."""
    return VIDEO_PAD if video else IMAGE_PAD * n_images
