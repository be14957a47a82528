"""Exact wording shared by the demo questions: camera statements, box formats, options, numbers, rewording."""

from __future__ import annotations

import json
import re

import numpy as np

from curation.vst.geometry import Box3D, Camera

SINGLE_WORD = "Please answer the question using a single word or phrase."
PICK_LETTER = "Answer with the option's letter from the given choices directly."
LETTERS = "ABCDEF"


def r2(x: float) -> float:
    """Round to 2 decimals without ever printing -0.0."""
    v = round(float(x), 2)
    return 0.0 if v == 0 else v


def r1(x: float) -> float:
    v = round(float(x), 1)
    return 0.0 if v == 0 else v


def camera_statement(camera: Camera, form: int) -> str:
    """The two camera wordings VST prompts use; parsers rely on this exact text."""
    if form % 2 == 0:
        return (f"The camera's horizontal field of view (hfov) is {camera.hfov_deg:.1f} degrees and vertical field "
                f"of view (vfov) is {camera.vfov_deg:.1f} degrees; the image is {camera.width}x{camera.height} pixels.")
    return (f"The camera intrinsics are f_x = {camera.fx:.1f}, f_y = {camera.fy:.1f}, "
            f"c_x = {camera.cx:.1f}, c_y = {camera.cy:.1f}.")


def box_values(box: Box3D) -> list[float]:
    """A VST box as 9 numbers rounded to 2 decimals (what every answer states)."""
    return [r2(v) for v in box.to_vst()]


def rounded_box(box: Box3D) -> Box3D:
    return Box3D.from_vst(box.label, box_values(box))


def boxes_block(items: list[tuple[str, list[float]]]) -> str:
    """The fenced JSON answer of 3D detection and grounding."""
    return "```json\n" + boxes_json(items) + "\n```"


def boxes_json(items: list[tuple[str, list[float]]]) -> str:
    return json.dumps([{"bbox_3d": list(v), "label": label} for label, v in items])


def bbox2d_text(rect: tuple[int, int, int, int]) -> str:
    return f"[{rect[0]}, {rect[1]}, {rect[2]}, {rect[3]}]"


def box_list_text(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


def options_block(options: list[str]) -> str:
    """Options as lines ``A: front`` ... followed by the pick-a-letter instruction."""
    return "\n".join(f"{LETTERS[i]}: {o}" for i, o in enumerate(options)) + "\n" + PICK_LETTER


def shuffle_options(rng: np.random.Generator, correct: str, wrong: list[str]) -> tuple[list[str], str]:
    """Options in a random order and the letter of the correct one."""
    options = [correct, *wrong]
    order = rng.permutation(len(options))
    shuffled = [options[i] for i in order]
    return shuffled, LETTERS[shuffled.index(correct)]


def fmt_number(x: float, decimals: int = 1) -> str:
    return f"{round(float(x), decimals):.{decimals}f}"


def plural(label: str, n: int) -> str:
    if n == 1:
        return label
    if label.endswith("shelf"):
        return label[:-1] + "ves"
    if label.endswith(("sh", "ch")):
        return label + "es"
    return label + "s"


_NUMBER_WORDS = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def count_phrase(label: str, n: int) -> str:
    word = _NUMBER_WORDS[n] if n < len(_NUMBER_WORDS) else str(n)
    if n == 1:
        return ("an " if label[0] in "aeiou" else "a ") + label
    return f"{word} {plural(label, n)}"


def join_and(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


# Small rewordings a near-duplicate makes: same question, slightly different words. Each keeps the
# words a taxonomy rule keys on (how many, distance, describe, ...), so the copy stays in its skill.
_REWORDINGS = [
    (r"These are frames of a video\.", "These are frames from a video."),
    (r"\bWhat is\b", "What's"),
    (r"\bWhich is\b", "Which one is"),
    (r"\bWhere is\b", "Where's"),
    (r"\bin meters\b", "in metres"),
    (r"\bin the image\b", "in this image"),
    (r"\bHow did\b", "In what way did"),
    (r"\bDescribe\b", "Please describe"),
    (r"\bDetect\b", "Please detect"),
    (r"\bOutput\b", "Please output"),
]


def reword(text: str) -> str:
    """A slightly reworded question (first rule that applies); falls back to a polite prefix."""
    for pattern, repl in _REWORDINGS:
        new, n = re.subn(pattern, repl, text, count=1)
        if n:
            return new
    return "Please answer: " + text
