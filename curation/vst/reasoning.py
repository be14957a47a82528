"""Reasoning traces: the <think> block, the answer after it, the format reward and the trace's own conclusion."""

from __future__ import annotations

import re
from dataclasses import dataclass

from curation.vst.vocabulary import THINK_CLOSE, THINK_OPEN

# Upstream's format rule counts non-overlapping lazy matches of this pattern.
_THINK_BLOCK = re.compile(f"{re.escape(THINK_OPEN)}.*?{re.escape(THINK_CLOSE)}", re.DOTALL)
_THINK_INNER = re.compile(f"{re.escape(THINK_OPEN)}(.*?){re.escape(THINK_CLOSE)}", re.DOTALL)

# Conclusions a trace states, strongest wording first; the last one in the trace wins.
_SENTENCE_END = r"(?=\.(?!\d)|[\n!?;]|$)"
_CONCLUSION_PATTERNS = [
    re.compile(
        r"answer(?<![a-z]answer)\s*(?:is|should\s+be|would\s+be|=|:)\s*:?\s*(.+?)" + _SENTENCE_END,
        re.IGNORECASE,
    ),
    # "option is" alone is too common in analysis ("each option is plausible"): ask for a qualifier.
    re.compile(
        r"\b(?:final|correct|right|best)\s+(?:option|choice)\s*(?:is|should\s+be|would\s+be|=|:)\s*:?\s*(.+?)"
        + _SENTENCE_END,
        re.IGNORECASE,
    ),
    re.compile(r"\bI\s+(?:choose|pick|select)\s+(?:option\s+)?(.+?)" + _SENTENCE_END, re.IGNORECASE),
    re.compile(r"\b(?:option|choice)\s+\(?((?-i:[A-F]))\)?\s+is\s+(?:correct|right|the\s+answer)", re.IGNORECASE),
]
# "Therefore, B." / "So, 1.8 meters." : only short conclusions, a letter or a number, count.
_SHORT_CONCLUSION = re.compile(
    r"\b(?:therefore|thus|hence|so)\b\s*,?\s*(\(?(?-i:[A-F])\)?|[-+]?\d[\d,]*(?:\.\d+)?\s*[a-zA-Z%]{0,11})\s*(?:\.(?!\d)|$)",
    re.IGNORECASE,
)
_CUES = list(
    zip(
        (*_CONCLUSION_PATTERNS, _SHORT_CONCLUSION),
        (("answer",), ("option", "choice"), ("choose", "pick", "select"), ("option", "choice"),
         ("therefore", "thus", "hence", "so")),
    )
)  # fmt: skip
_TAIL_CHARS = 400
_BOXED_TRIES = 8
_BOXED_MAX_CHARS = 4000
_LONE_LETTER = re.compile(r"\(?([A-Fa-f])\)?")


@dataclass(frozen=True)
class ReasoningParts:
    """A response split into its reasoning trace and its final answer, with the tag counts a check needs."""

    reasoning: str | None  # text inside the think block(s); None when there is no think tag at all
    final: str  # text after the last </think>, stripped (the whole text when there is no </think>)
    think_open: int
    think_close: int
    well_formed: bool  # exactly one <think>...</think>, nothing before it, non-empty text after it


def split_reasoning(text: str) -> ReasoningParts:
    """Split a CoT target or RL response into reasoning and final answer.

    Several blocks are joined in order; a close tag without an open one takes all text before it,
    an open tag without a close one takes all text after it.
    """
    text = text or ""
    n_open, n_close = text.count(THINK_OPEN), text.count(THINK_CLOSE)
    final = text.split(THINK_CLOSE)[-1].strip()
    blocks = _THINK_INNER.findall(text)
    if blocks:
        reasoning: str | None = "\n".join(b.replace(THINK_OPEN, "").strip() for b in blocks)
    elif n_close:
        reasoning = text.rsplit(THINK_CLOSE, 1)[0].replace(THINK_CLOSE, "").strip()
    elif n_open:
        reasoning = text.split(THINK_OPEN, 1)[1].replace(THINK_OPEN, "").strip()
    else:
        reasoning = None
    well_formed = (
        n_open == 1
        and n_close == 1
        and text.lstrip().startswith(THINK_OPEN)
        and text.index(THINK_OPEN) < text.index(THINK_CLOSE)
        and bool(final)
    )
    return ReasoningParts(reasoning, final, n_open, n_close, well_formed)


def format_reward(text: str) -> float:
    """Upstream format reward: 1.0 for exactly one think block followed by a non-empty answer, else 0.0."""
    text = text or ""
    if len(_THINK_BLOCK.findall(text)) != 1:
        return 0.0
    return 1.0 if text.split(THINK_CLOSE)[-1].strip() else 0.0


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (braces balanced), or None.

    Looks at the last few ``\\boxed`` only, and at most a few thousand characters of each, so a
    degenerate response costs linear time.
    """
    start = text.rfind("\\boxed")
    tries = 0
    while start != -1 and tries < _BOXED_TRIES:
        tries += 1
        i = text.find("{", start)
        if i != -1 and text[start + len("\\boxed") : i].strip() == "":
            depth = 0
            for j in range(i, min(len(text), i + _BOXED_MAX_CHARS)):
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        return text[i + 1 : j].strip()
        start = text.rfind("\\boxed", 0, start)
    return None


def reasoning_conclusion(reasoning: str | None) -> str | None:
    """The answer a trace itself concludes ("So the answer is B" -> "B"), or None when it states none.

    A conclusion is a ``\\boxed{}`` value, an "answer is X" / "Answer: X" statement, or a short
    "Therefore, B." sentence; the last one stated wins (traces revise themselves).
    """
    if not reasoning:
        return None
    # Conclusions sit at the end: scan the last few sentences first, the whole trace only if they state none.
    cut = reasoning.find(" ", max(0, len(reasoning) - _TAIL_CHARS))
    if cut > 0:
        found = _last_conclusion(reasoning[cut:])
        if found is not None:
            return found
    return _last_conclusion(reasoning)


def _last_conclusion(text: str) -> str | None:
    candidates: list[tuple[int, str]] = []
    boxed = last_boxed(text)
    if boxed is not None:
        candidates.append((text.rfind("\\boxed"), boxed))
    lowered = text.lower()
    for pattern, cue in _CUES:
        if not any(c in lowered for c in cue):
            continue  # a substring test is far cheaper than a case-insensitive regex scan
        for m in pattern.finditer(text):
            candidates.append((m.start(), m.group(1)))
    for _, raw in sorted(candidates, key=lambda c: c[0], reverse=True):
        cleaned = _clean_conclusion(raw)
        if cleaned:
            return cleaned
    return None


def _clean_conclusion(raw: str) -> str:
    text = raw.strip().strip("*`'\"“”").strip()
    text = text.rstrip(",;:!.").strip().strip("*`'\"“”").strip()
    if "\\boxed" in text:
        text = last_boxed(text) or text
    lone = _LONE_LETTER.fullmatch(text)
    return lone.group(1).upper() if lone else text
