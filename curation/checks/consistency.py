"""Consistency checks: the trace's conclusion vs the answer, the answer vs the sample's own 3D boxes, and units."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from curation.answers import extract_choice, parse_number, parse_options, to_meters
from curation.reasoning import reasoning_conclusion
from curation.scoring import (
    VALID_RL_MODES,
    anls_score,
    bbox3d_score,
    mra_score,
    multi_choice_score,
    relaxed_score,
    score_by_modes,
)
from curation.spatial_text import parse_boxes_3d

from .base import Outcome, RowCheck
from .priors import load_priors
from .registry import register

# The score at or above which two answers agree, per metric (binary metrics score 0 or 1).
PASS_AT = {"choice": 1.0, "relaxed": 1.0, "mra": 0.5, "anls": 0.5, "bbox3d": 0.5, "rl": 1.0}
# Questions whose numeric answer is a count, distance or size: VSI-Bench scores those by MRA.
_MRA_QUESTION = re.compile(
    r"how many|distance|how far|how (?:tall|long|wide|high|big|deep)|\b(?:height|length|width|depth|size)\b", re.I
)
_LENGTH_QUESTION = re.compile(
    r"distance|how far|how (?:tall|long|wide|high|deep)|\b(?:height|length|width|depth|dimension)\b", re.I
)
_ASKED_UNIT = re.compile(
    r"\bin (meters|metres|m|centimeters|centimetres|cm|millimeters|millimetres|mm|feet|ft|inches)\b", re.I
)
_UNIT_OF = {"meters": "m", "metres": "m", "m": "m", "centimeters": "cm", "centimetres": "cm", "cm": "cm",
            "millimeters": "mm", "millimetres": "mm", "mm": "mm", "feet": "ft", "ft": "ft", "inches": "in"}
_CLOSER = re.compile(r"which\b[^?]*?\bis (closer|nearer|farther|further) (?:to|from) the camera", re.I)
_EITHER = re.compile(r"\bthe ([\w -]+?) or the ([\w -]+?)\s*\?", re.I)
_DISTANCE = re.compile(r"distance between the ([\w -]+?) and the ([\w -]+?)(?:\s+in\s+\w+)?\s*\?", re.I)
_TALL = re.compile(r"how tall is the ([\w -]+?)\s*(?:\(|\?|in\b)|height of the ([\w -]+?)\s*(?:\(|\?|in\b)", re.I)
# Longest plausible indoor distance (metres) when no label prior bounds a length.
MAX_DISTANCE_M = 30.0
MAX_SIZE_M = 6.0


def _norm(text: str) -> str:
    """An object or answer as compared: lower case, no leading article, no trailing full stop (no regex: hot path)."""
    t = (text or "").strip().lower()
    for article in ("the ", "a ", "an "):
        if t.startswith(article):
            t = t[len(article):].lstrip()
            break
    return t.rstrip(" .\t\n")


def metric_for(question: str, answer: str, answer_kind: str | None, rl_modes: Sequence[str] | None) -> str:
    """Which agreement metric fits a sample: its RL modes, else its answer kind and question wording."""
    modes = [m for m in (rl_modes or []) if m in VALID_RL_MODES]
    if modes:
        return "rl"
    if answer_kind == "choice" or parse_options(question or ""):
        return "choice"
    if answer_kind == "bbox3d":
        return "bbox3d"
    if answer_kind == "number":
        return "mra" if _MRA_QUESTION.search(question or "") else "relaxed"
    return "anls"


def _as_letter(text: str, options: dict[str, str]) -> str:
    """An answer as an option letter when it names an option's text ("the chair" -> "A")."""
    if extract_choice(text or "") is not None or not options:
        return text
    wanted = _norm(text)
    for letter, option in options.items():
        if _norm(option) == wanted:
            return letter
    return text


def _meters(text: str, default_unit: str | None = None) -> float | None:
    parsed = parse_number(text or "")
    if parsed is None:
        return None
    unit = parsed.unit or default_unit
    return parsed.value if unit is None else to_meters(parsed.value, unit)


def agreement(prediction: str, truth: str, *, question: str = "", answer_kind: str | None = None,
              rl_modes: Sequence[str] | None = None) -> tuple[float, str, bool]:
    """How far a prediction agrees with a stated answer by the metric that fits the sample: (score, metric, agrees).

    When the question offers lettered options, a choice reading is tried as well, so "the door, option A" agrees
    with "door" when A is the door.
    """
    metric = metric_for(question, truth, answer_kind, rl_modes)
    options = parse_options(question or "")
    score = _score(metric, prediction, truth, question, options, rl_modes)
    if score < PASS_AT[metric] - 1e-9 and metric != "choice" and options:
        alt = _score("choice", prediction, truth, question, options, rl_modes)
        if alt >= PASS_AT["choice"]:
            return alt, "choice", True
    if score < PASS_AT[metric] - 1e-9 and metric in ("anls", "rl") and _says(prediction, truth):
        return 1.0, "contains", True
    return float(score), metric, score >= PASS_AT[metric] - 1e-9


def _says(prediction: str, truth: str) -> bool:
    """A short text truth stated word for word inside a longer prediction ("the door, option A" says "door")."""
    t = _norm(truth)
    if len(t) < 3 or not re.search(r"[a-z]", t) or len(t.split()) > 6:
        return False
    return re.search(rf"(?<![\w]){re.escape(t)}(?![\w])", (prediction or "").lower()) is not None


def _score(metric: str, prediction: str, truth: str, question: str, options: dict[str, str],
           rl_modes: Sequence[str] | None) -> float:
    if metric == "rl":
        return score_by_modes([m for m in rl_modes or [] if m in VALID_RL_MODES], prediction, truth)
    if metric == "choice":
        return multi_choice_score(_as_letter(prediction, options), _as_letter(truth, options))
    if metric == "bbox3d":
        return bbox3d_score(prediction, truth)
    if metric == "mra":
        asked = _ASKED_UNIT.search(question or "")
        unit = _UNIT_OF[asked.group(1).lower()] if asked else None
        p, t = _meters(prediction, unit), _meters(truth, unit)
        return 0.0 if p is None or t is None else mra_score(p, t)
    if metric == "relaxed":
        return relaxed_score(prediction, truth)
    return anls_score(prediction, truth)


@register
class ReasoningVsAnswer(RowCheck):
    name = "consistency.reasoning_vs_answer"
    description = ("The conclusion the reasoning trace states agrees with the final answer (choice letter, relaxed 5%, "
                   "MRA for counts/distances/sizes, ANLS for text, bbox3d score, or the row's RL modes).")
    applies_to = "samples with a reasoning trace"
    columns = ("sample_id", "question", "answer", "reasoning", "answer_kind", "rl_modes")
    where = "s.reasoning IS NOT NULL AND length(trim(s.reasoning)) > 0"
    # The common CoT ending "... So the answer is B." before the answer "B" is decided in SQL.
    fast_pass = (r"regexp_extract(s.reasoning, '(?i)\bthe answer is \(?([A-F])\)?\.?\s*$', 1) <> '' AND "
                 r"upper(regexp_extract(s.reasoning, '(?i)\bthe answer is \(?([A-F])\)?\.?\s*$', 1)) = "
                 r"upper(regexp_extract(s.answer, '^\s*\(?([A-Fa-f])\)?\.?\s*$', 1))")
    fast_score = "1.0"
    score_meaning = "agreement of the trace's conclusion with the answer (metric in the reason)"

    def check(self, row: dict[str, Any]) -> Outcome | None:
        conclusion = reasoning_conclusion(row["reasoning"])
        if conclusion is None:
            return Outcome(True, None, "reasoning: states no conclusion to compare")
        answer = row.get("answer") or ""
        score, metric, ok = agreement(conclusion, answer, question=row.get("question") or "",
                                      answer_kind=row.get("answer_kind"), rl_modes=row.get("rl_modes"))
        if ok:
            return Outcome(True, score)
        return Outcome(False, score, f"reasoning: concludes {conclusion[:60]!r} but the answer is {answer[:60]!r} "
                                     f"({metric} {score:.2f})")


def _question_kind(row: dict[str, Any], question: str) -> tuple[str, tuple[str, str] | None, str]:
    """(closer|farther word, distance pair, tall object) from the SQL columns when the batch has them, else here."""
    if "closer_word" in row:
        pair = row.get("distance_pair") or {}
        tall = row.get("tall_pair") or {}
        return (row["closer_word"] or "", (pair["a"], pair["b"]) if pair.get("a") and pair.get("b") else None,
                tall.get("a") or tall.get("b") or "")
    m = _CLOSER.search(question)
    d = _DISTANCE.search(question)
    t = _TALL.search(question)
    return (m.group(1).lower() if m else "", (d.group(1), d.group(2)) if d else None,
            (t.group(1) or t.group(2)) if t else "")


class _Box(NamedTuple):
    label: str
    center: tuple[float, float, float]
    size: tuple[float, float, float]
    angles: tuple[float, float, float]


# The usual way prompts state boxes ("The chair is at bbox_3d [...] and the table at bbox_3d [...]"), read in SQL
# for a whole batch at once; prompts that state boxes otherwise go through the reference parser.
_STATED_BOX = r"(?i)\bthe ([a-z][a-z -]*?) (?:is )?(?:at|located at) bbox_3d \[([^\]]*)\]"


def _boxes_by_label(question: str, labels: list[str] | None = None, values: list[str] | None = None,
                    mentions: int | None = None) -> dict[str, _Box]:
    """Labelled 9-number boxes stated in a prompt; labels stated twice are dropped (ambiguous)."""
    found: dict[str, list[_Box]] = {}
    fast = labels is not None and values is not None and len(labels) == mentions and mentions > 0
    if fast:
        for label, text in zip(labels, values):
            try:
                v = [float(x) for x in text.split(",")]
            except ValueError:
                fast = False
                break
            if len(v) == 9:
                found.setdefault(_norm(label), []).append(_Box(label, tuple(v[:3]), tuple(v[3:6]), tuple(v[6:])))
    if not fast:
        found = {}
        for b in parse_boxes_3d(question):
            if b.box is not None and b.label:
                box = _Box(b.box.label, b.box.center, b.box.size, b.box.angles)
                found.setdefault(_norm(b.label), []).append(box)
    return {k: v[0] for k, v in found.items() if len(v) == 1}


@register
class AnswerVsGeometry(RowCheck):
    name = "consistency.answer_vs_geometry"
    description = ("Answers recomputed from the 3D boxes the prompt states (which object is closer/farther, the "
                   "distance between two objects, an object's height) agree with the stated answer.")
    applies_to = "samples whose prompt states the 3D boxes of the objects it asks about"
    columns = ("sample_id", "question", "answer")
    where = ("contains(s.question, 'bbox_3d') AND s.answer IS NOT NULL AND regexp_matches(s.question, "
             "'(closer|nearer|farther|further) (to|from) the camera|distance between|how tall|height of', 'i')")
    score_meaning = "1/0 for closer/farther; MRA of the stated number against the recomputed one"

    def rows(self, batch, ctx) -> list[dict[str, Any]]:
        con = ctx.duckdb()
        con.register("batch", batch)
        try:
            # The question's kind and the objects it names are read here too (RE2, linear time, whole batch).
            return con.sql(f"""
                SELECT s.sample_id, s.question, s.answer,
                  regexp_extract_all(s.question, '{_STATED_BOX}', 1) AS box_labels,
                  regexp_extract_all(s.question, '{_STATED_BOX}', 2) AS box_values,
                  len(regexp_extract_all(s.question, 'bbox_3d')) AS box_mentions,
                  lower(regexp_extract(s.question, '{_CLOSER.pattern}', 1, 'i')) AS closer_word,
                  regexp_extract(s.question, '{_DISTANCE.pattern}', ['a', 'b'], 'i') AS distance_pair,
                  regexp_extract(s.question, '{_TALL.pattern}', ['a', 'b'], 'i') AS tall_pair
                FROM batch s WHERE {self.where}""").to_arrow_table().to_pylist()
        finally:
            con.unregister("batch")

    def check(self, row: dict[str, Any]) -> Outcome | None:
        question, answer = row["question"] or "", (row["answer"] or "").strip()
        boxes = _boxes_by_label(question, row.get("box_labels"), row.get("box_values"), row.get("box_mentions"))
        if len(boxes) == 0:
            return None
        closer, pair, tall = _question_kind(row, question)
        if closer:
            return self._closer(question, answer, boxes, closer in ("closer", "nearer"))
        if pair:
            a, b = boxes.get(_norm(pair[0])), boxes.get(_norm(pair[1]))
            if a is None or b is None:
                return None
            truth = math.dist(a.center, b.center)
            return self._number(question, answer, truth, f"the distance between the {_norm(pair[0])} and "
                                                         f"the {_norm(pair[1])}")
        if tall:
            box = boxes.get(_norm(tall))
            if box is None or any(abs(a) > 1e-6 for a in (box.angles[0], box.angles[2])):
                return None  # pitch or roll: the box's y size is no longer its height
            return self._number(question, answer, float(box.size[1]), f"the height of the {box.label}")
        return None

    def _closer(self, question: str, answer: str, boxes: dict[str, Any], closer: bool) -> Outcome | None:
        options = parse_options(question)
        if options:
            candidates = [_norm(o) for o in options.values()]
            letter = extract_choice(answer)
            picked = _norm(options.get(letter, "")) if letter else _norm(answer)
        else:
            m = _EITHER.search(question[question.lower().rfind("which"):])
            if not m:
                return None
            candidates, picked = [_norm(m.group(1)), _norm(m.group(2))], _norm(answer)
        if len(candidates) < 2 or any(c not in boxes for c in candidates) or picked not in candidates:
            return None
        ranges = {c: math.dist(boxes[c].center, (0.0, 0.0, 0.0)) for c in candidates}
        order = sorted(candidates, key=ranges.get)
        if abs(ranges[order[0]] - ranges[order[1]]) < 0.05 * ranges[order[1]]:
            return None  # too close to call from the boxes
        expected = order[0] if closer else order[-1]
        if picked == expected:
            return Outcome(True, 1.0)
        word = "closer" if closer else "farther"
        return Outcome(False, 0.0, f"answer: says the {picked} is {word}, but the stated boxes put the {expected} "
                                   f"{word} ({ranges[expected]:.2f} m vs {ranges[picked]:.2f} m from the camera)")

    def _number(self, question: str, answer: str, truth: float, what: str) -> Outcome | None:
        asked = _ASKED_UNIT.search(question)
        stated = _meters(answer, _UNIT_OF[asked.group(1).lower()] if asked else "m")
        if stated is None:
            return None
        score = mra_score(stated, truth)
        if score >= PASS_AT["mra"]:
            return Outcome(True, score)
        hint = " (it reads like centimetres)" if truth > 0 and 80 <= stated / truth <= 120 else ""
        return Outcome(False, score, f"answer: {answer!r} is {stated:.2f} m but {what} from the stated boxes is "
                                     f"{truth:.2f} m (MRA {score:.2f}){hint}")


@register
class UnitsConsistent(RowCheck):
    name = "consistency.units"
    description = ("A length answer uses the unit the question asks for, and its size is plausible in that unit "
                   "(a 184 m distance or a 52 m wide chair reads like centimetres).")
    applies_to = "numeric answers to distance/size questions"
    columns = ("sample_id", "question", "answer", "answer_kind")
    where = ("(s.answer_kind = 'number' OR regexp_matches(coalesce(s.answer, ''), '^\\s*[0-9]')) AND "
             "regexp_matches(coalesce(s.question, ''), "
             "'distance|how far|how (tall|long|wide|high|deep)|height|length|width|depth|dimension', 'i') "
             "AND NOT regexp_matches(coalesce(s.question, ''), 'how many', 'i')")
    score_meaning = "the answer in metres"

    def check(self, row: dict[str, Any]) -> Outcome | None:
        question, answer = row["question"] or "", (row["answer"] or "").strip()
        if not _LENGTH_QUESTION.search(question):
            return None
        parsed = parse_number(answer)
        if parsed is None:
            return None
        asked = _ASKED_UNIT.search(question)
        want = _UNIT_OF[asked.group(1).lower()] if asked else None
        if want and parsed.unit and parsed.unit != want:
            value = to_meters(parsed.value, parsed.unit)
            return Outcome(False, value, f"answer: the question asks for {asked.group(1)}, the answer "
                                         f"{answer!r} is in {parsed.unit}")
        unit = parsed.unit or want or "m"
        value = to_meters(parsed.value, unit)
        if value is None or not math.isfinite(value):
            return None
        limit, what = self._limit(question)
        if value > limit or value <= 0:
            hint = " (it reads like centimetres)" if unit == "m" and 0 < value / 100 <= limit else ""
            return Outcome(False, value, f"answer: {answer!r} gives {value:g} m, implausible for {what} "
                                         f"(at most {limit:g} m){hint}")
        return Outcome(True, value)

    @staticmethod
    def _limit(question: str) -> tuple[float, str]:
        if _DISTANCE_WORDS.search(question):
            return MAX_DISTANCE_M, "a distance indoors"
        priors = load_priors().object_sizes
        named = _labels_named(question, tuple(priors))
        if named:
            label = max(named, key=len)
            return priors[label].longest[1] * 1.5, f"a {label}"
        return MAX_SIZE_M, "an object's size"


_DISTANCE_WORDS = re.compile(r"distance|how far", re.I)


_WORD = re.compile(r"[a-z]+")


def _labels_named(question: str, labels: tuple[str, ...]) -> list[str]:
    """Labels (one or two words, plurals too) a question names: a set lookup per word, not a regex per label."""
    words = _WORD.findall(question.lower())
    grams = set(words) | {f"{a} {b}" for a, b in zip(words, words[1:])}
    grams |= {g[:-1] for g in grams if g.endswith("s")}
    return [k for k in labels if k in grams]
