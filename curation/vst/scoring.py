"""VST accuracy metrics and the RL reward: the reference scorers every check and report agrees with."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
from rapidfuzz.distance import Levenshtein

from curation.vst.answers import extract_choice, parse_number, parse_options, to_meters
from curation.vst.geometry import box_iou_3d
from curation.vst.reasoning import format_reward, last_boxed, split_reasoning
from curation.vst.spatial_text import parse_boxes_3d

VALID_RL_MODES = ("vqa_score", "relaxed_score", "anls_score", "math_score", "multi_choices_score", "bbox3d")
BBOX3D_IOU_THRESHOLD = 0.25
ANLS_THRESHOLD = 0.5
MRA_THRESHOLDS = tuple(round(0.50 + 0.05 * i, 2) for i in range(10))  # 0.50, 0.55, ..., 0.95


def multi_choice_score(prediction: str, truth: str) -> float:
    """1.0 when the prediction picks the same option letter as the truth (an exact match counts first)."""
    pred, gold = (prediction or "").strip(), (truth or "").strip()
    if gold and pred.lower() == gold.lower():
        return 1.0
    pred_letter, gold_letter = extract_choice(pred), extract_choice(gold)
    return float(pred_letter is not None and pred_letter == gold_letter)


multi_choices_score = multi_choice_score  # the name VST's RL mode uses


def relaxed_score(prediction: str, truth: str) -> float:
    """1.0 when a number is within 5% of the truth; a year-like truth (4 digits starting 20) must match exactly.

    Lengths given in different units (152 cm vs 1.52 m) are compared in metres; text answers need an
    exact case-insensitive match.
    """
    pred, gold = (prediction or "").strip(), (truth or "").strip()
    if _YEAR.fullmatch(gold):
        return float(pred.lower() == gold.lower())
    p, g = _plain_number(pred), _plain_number(gold)
    if p is None or g is None:
        return float(bool(gold) and pred.lower() == gold.lower())
    (pv, pu), (gv, gu) = p, g
    if pu and gu and pu != gu:
        pv, gv = to_meters(pv, pu) or pv, to_meters(gv, gu) or gv
    if gv == 0:
        return float(pv == 0)
    return float(abs(pv - gv) / abs(gv) <= 0.05)


# Upstream tests len == 4 and startswith("20"), which also catches "20.5"; a year is four digits.
_YEAR = re.compile(r"20\d\d")
_PLAIN_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?\s*%?\s*[a-zA-Z]*\.?")


def _plain_number(text: str) -> tuple[float, str | None] | None:
    """A number (with a length unit or %) that is the whole answer; "3 chairs and 2 tables" is not one."""
    if not text or not _PLAIN_NUMBER.fullmatch(text.strip()):
        return None
    parsed = parse_number(text)
    if parsed is None:
        return None
    tail = text.rstrip(". ").lstrip()
    if re.search(r"[a-zA-Z]+$", tail) and parsed.unit is None and not re.search(r"[eE][-+]?\d+$", tail):
        return None  # a trailing word that is not a unit ("3 chairs")
    return parsed.value, parsed.unit


def anls_score(prediction: str, truth: str) -> float:
    """Standard ANLS: 1 - normalised Levenshtein distance, 0 when the distance is 0.5 or more.

    (Upstream's version returns the distance itself, higher = worse; this is the published metric.)
    """
    pred = " ".join((prediction or "").strip().lower().split())
    gold = " ".join((truth or "").strip().lower().split())
    if not pred and not gold:
        return 1.0
    distance = Levenshtein.normalized_distance(pred, gold)
    return 1.0 - distance if distance < ANLS_THRESHOLD else 0.0


# --- math ---------------------------------------------------------------------------------------------------------

_LATEX_REPLACEMENTS = [
    (re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}"), r"((\1)/(\2))"),
    (re.compile(r"\\sqrt\s*\{([^{}]*)\}"), r"sqrt(\1)"),
    (re.compile(r"\\text\s*\{[^{}]*\}|\\mathrm\s*\{[^{}]*\}"), ""),
    (re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\circ|\\degree"), ""),
    (re.compile(r"\\left|\\right|\\!|\\,|\\;|\\quad|\$"), ""),
    (re.compile(r"\\cdot|\\times"), "*"),
    (re.compile(r"\\pi"), "pi"),
    (re.compile(r"\\%|%"), "/100"),
]
_VARIABLE_PREFIX = re.compile(r"^\s*[a-zA-Z]\s*=\s*")
# Only arithmetic reaches sympy: digits, operators, brackets and a few names (sympy's parser evaluates code).
_SAFE_MATH = re.compile(r"[0-9a-z+\-*/^().\s]*")
_SAFE_NAMES = {"sqrt", "pi", "e", "x", "y", "z", "a", "b", "c", "n", "k", "t"}


def math_score(prediction: str, truth: str) -> float:
    """1.0 when the prediction equals the truth mathematically: numbers, fractions, ``\\boxed{}``, simple LaTeX."""
    pred, gold = _strip_boxed(prediction or ""), _strip_boxed(truth or "")
    if not gold:
        return 0.0
    a, b = _normalise_math(pred), _normalise_math(gold)
    if a == b:
        return 1.0
    pred_items, gold_items = _split_items(a), _split_items(b)
    if len(pred_items) != len(gold_items):
        return 0.0
    if len(gold_items) > 1:
        # Answers listing several values ("1, 3") match in any order.
        unmatched = list(pred_items)
        for g in gold_items:
            hit = next((p for p in unmatched if _math_equal(p, g)), None)
            if hit is None:
                return 0.0
            unmatched.remove(hit)
        return 1.0
    return float(_math_equal(a, b))


def _strip_boxed(text: str) -> str:
    boxed = last_boxed(text)
    return boxed if boxed is not None else text.strip()


def _normalise_math(text: str) -> str:
    s = text.strip().rstrip(".").strip()
    for _ in range(6):  # innermost commands first, until nested ones (\frac{1}{\sqrt{2}}) are all rewritten
        before = s
        for pattern, repl in _LATEX_REPLACEMENTS:
            s = pattern.sub(repl, s)
        if s == before:
            break
    s = _VARIABLE_PREFIX.sub("", s)
    s = s.replace("{", "(").replace("}", ")").replace("\\", "")
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)  # thousands separators
    return " ".join(s.split()).lower()


def _split_items(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()] or [text]


def _math_equal(a: str, b: str) -> bool:
    if a == b:
        return True
    x, y = _exact_number(a), _exact_number(b)
    if x is not None and y is not None:
        return math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9)
    return _sympy_equal(a, b)


def _exact_number(text: str) -> float | None:
    try:
        return float(Fraction(text.replace(" ", "")))
    except (ValueError, ZeroDivisionError):
        return None


def _sympy_equal(a: str, b: str) -> bool:
    """Symbolic equality for short arithmetic expressions; False when sympy is absent or cannot tell."""
    if not all(_is_safe_math(t) for t in (a, b)):
        return False
    try:
        import sympy
        from sympy.parsing.sympy_parser import (
            convert_xor,
            implicit_multiplication_application,
            parse_expr,
            standard_transformations,
        )
    except ImportError:
        return False
    transformations = (*standard_transformations, implicit_multiplication_application, convert_xor)
    names = {n: sympy.Symbol(n) for n in _SAFE_NAMES} | {"sqrt": sympy.sqrt, "pi": sympy.pi, "e": sympy.E}
    try:
        ea = parse_expr(a, local_dict=dict(names), transformations=transformations, evaluate=False)
        eb = parse_expr(b, local_dict=dict(names), transformations=transformations, evaluate=False)
        diff = ea - eb
        symbols = sorted(diff.free_symbols, key=str)
        # Equal expressions agree everywhere: test a few points rather than risk a slow simplify().
        tolerance = 1e-9 if symbols else 1e-6  # constants may be written rounded, like plain numbers
        for point in (0.37, 1.73, 2.91):
            subs = {s: point + 0.11 * i for i, s in enumerate(symbols)}
            value, scale = abs(complex(diff.evalf(subs=subs))), abs(complex(ea.evalf(subs=subs)))
            if not (math.isfinite(value) and math.isfinite(scale) and value <= tolerance * max(1.0, scale)):
                return False
        return True
    except Exception:  # noqa: BLE001 - sympy raises many types on junk; junk is simply not equal
        return False


def _is_safe_math(text: str) -> bool:
    if not text or len(text) > 120 or not _SAFE_MATH.fullmatch(text):
        return False
    if "**" in text or re.search(r"\^.*\^", text):
        return False  # towers of powers can take sympy minutes
    if "^" in text and any(len(n) > 4 for n in re.findall(r"\d+", text)):
        return False  # so can one huge power (10^99999999999)
    return all(word in _SAFE_NAMES for word in re.findall(r"[a-z]+", text))


# --- VQA ----------------------------------------------------------------------------------------------------------

_VQA_NUMBERS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
_VQA_ARTICLES = {"a", "an", "the"}
_VQA_PUNCT = re.compile(r"[;/\[\]\"{}()=+\\_\-><@`,?!*:]")
_VQA_PERIOD = re.compile(r"(?<!\d)\.(?!\d)")


def _vqa_normalise(text: str) -> str:
    s = (text or "").lower().replace("\n", " ").replace("\t", " ").strip()
    s = re.sub(r"(?<=\d),(?=\d)", "", s)
    s = _VQA_PERIOD.sub("", _VQA_PUNCT.sub(" ", s))
    words = [_VQA_NUMBERS.get(w, w) for w in s.split()]
    return " ".join(w for w in words if w not in _VQA_ARTICLES)


def vqa_score(prediction: str, truth: str) -> float:
    """VQA-style normalised exact match (case, punctuation, articles, number words ignored)."""
    pred, gold = _vqa_normalise(prediction), _vqa_normalise(truth)
    return float(bool(gold) and pred == gold)


# --- 3D boxes -----------------------------------------------------------------------------------------------------


def _label_key(label: str) -> str:
    return " ".join(label.lower().replace("_", " ").split())


def bbox3d_score(prediction: str, truth: str | list) -> float:
    """0.5 * (sum of matched IoUs / #truth boxes) + 0.5 * F1 at IoU 0.25.

    Boxes pair one-to-one by Hungarian assignment on IoU, only within the same label. No truth
    boxes and no predicted boxes scores 1.0; a truth that parses to no boxes otherwise scores 0.0.
    """
    if not isinstance(truth, str):
        truth = json.dumps(truth)
    gold = [b.box for b in parse_boxes_3d(truth) if b.box is not None]
    pred = [b.box for b in parse_boxes_3d(prediction or "") if b.box is not None]
    if not gold:
        return 1.0 if not pred and _says_empty(truth) and _says_empty(prediction) else 0.0
    if not pred:
        return 0.0
    from scipy.optimize import linear_sum_assignment  # here: scipy.optimize costs 0.3 s to import per check worker

    ious = np.zeros((len(pred), len(gold)))
    for i, p in enumerate(pred):
        for j, g in enumerate(gold):
            if _label_key(p.label) == _label_key(g.label):
                ious[i, j] = min(1.0, box_iou_3d(p, g))
    rows, cols = linear_sum_assignment(-ious)
    matched = ious[rows, cols]
    tp = int((matched >= BBOX3D_IOU_THRESHOLD).sum())
    precision, recall = tp / len(pred), tp / len(gold)
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    # box_iou_3d samples rotated boxes, so identical boxes can come out a hair above 1: keep the score in [0, 1].
    return float(min(1.0, 0.5 * matched.sum() / len(gold) + 0.5 * f1))


def _says_empty(text: str | None) -> bool:
    """An answer that lists no boxes on purpose: "[]" alone or in a json fence."""
    body = re.sub(r"```(?:json)?|```", "", text or "").strip()
    return body == "[]"


# --- VSI-Bench ----------------------------------------------------------------------------------------------------


def mra_score(pred: float | str | None, truth: float | str | None) -> float:
    """VSI-Bench Mean Relative Accuracy: the share of θ in {0.50, ..., 0.95} with |ŷ - y| / |y| <= 1 - θ.

    Strings are parsed as numbers; an unparsable or non-finite prediction scores 0.
    """
    p, t = _as_float(pred), _as_float(truth)
    if p is None or t is None:
        return 0.0
    if t == 0:
        return float(p == 0)
    rel = abs(p - t) / abs(t)
    # The small tolerance keeps 10% off at θ=0.90 a hit despite binary floating point.
    return sum(rel <= 1 - theta + 1e-9 for theta in MRA_THRESHOLDS) / len(MRA_THRESHOLDS)


def _as_float(value: float | str | None) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        parsed = parse_number(value)
        value = parsed.value if parsed else None
        if value is None:
            return None
    value = float(value)
    return value if math.isfinite(value) else None


# --- dispatch and the RL reward -----------------------------------------------------------------------------------

_SCORERS = {
    "vqa_score": vqa_score,
    "relaxed_score": relaxed_score,
    "anls_score": anls_score,
    "math_score": math_score,
    "multi_choices_score": multi_choice_score,
    "bbox3d": bbox3d_score,
}


def score_by_mode(mode: str, prediction: str, truth: str) -> float:
    """Accuracy of a final answer under one VST RL mode; raises ValueError for a mode VST does not define.

    As upstream: an exact case-insensitive match scores 1 in every text mode, and when the truth uses
    ``\\boxed{}`` both sides are compared by their boxed content.
    """
    if mode not in _SCORERS:
        raise ValueError(f"unknown RL mode {mode!r}; valid modes: {', '.join(VALID_RL_MODES)}")
    prediction, truth = prediction or "", truth or ""
    if mode == "bbox3d":
        return bbox3d_score(prediction, truth)
    if truth and prediction.strip().lower() == truth.strip().lower():
        return 1.0
    if "\\boxed" in truth:
        truth = last_boxed(truth) or truth
        prediction = last_boxed(prediction) or prediction
    return _SCORERS[mode](prediction, truth)


def score_by_modes(modes: str | Sequence[str], prediction: str, truth: str) -> float:
    """The best accuracy over a sample's modes (an RL row's meta_info lists one or more)."""
    if isinstance(modes, str):
        modes = [modes]
    if not modes:
        raise ValueError(f"no RL mode given; valid modes: {', '.join(VALID_RL_MODES)}")
    return max(score_by_mode(m, prediction, truth) for m in modes)


def rl_reward(response: str, truth: str, mode: str | Sequence[str]) -> float:
    """VST's RL reward: 0.5 * accuracy of the answer after </think> + 0.5 * format reward."""
    final = split_reasoning(response or "").final
    return 0.5 * score_by_modes(mode, final, truth) + 0.5 * format_reward(response or "")


# --- the metric that fits a sample, and its reward ----------------------------------------------------------------

# Questions whose numeric answer is a count, distance or size: VSI-Bench scores those by MRA.
MRA_QUESTION = re.compile(
    r"how many|distance|how far|how (?:tall|long|wide|high|big|deep)|\b(?:height|length|width|depth|size)\b", re.I
)
ASKED_UNIT = re.compile(
    r"\bin (meters|metres|m|centimeters|centimetres|cm|millimeters|millimetres|mm|feet|ft|inches)\b", re.I
)
UNIT_OF = {"meters": "m", "metres": "m", "m": "m", "centimeters": "cm", "centimetres": "cm", "cm": "cm",
           "millimeters": "mm", "millimetres": "mm", "mm": "mm", "feet": "ft", "ft": "ft", "inches": "in"}


def normalise(text: str) -> str:
    """An object or answer as compared: lower case, no leading article, no trailing full stop (no regex: hot path)."""
    t = (text or "").strip().lower()
    for article in ("the ", "a ", "an "):
        if t.startswith(article):
            t = t[len(article):].lstrip()
            break
    return t.rstrip(" .\t\n")


def metric_for(question: str, answer_kind: str | None, rl_modes: Sequence[str] | None) -> str:
    """Which metric scores a sample: its RL modes ("rl"), else by its answer kind and question wording: "choice",
    "bbox3d", "mra" (a count, distance or size), "relaxed" (another number) or "anls" (text)."""
    if any(m in VALID_RL_MODES for m in rl_modes or []):
        return "rl"
    if answer_kind == "choice" or parse_options(question or ""):
        return "choice"
    if answer_kind == "bbox3d":
        return "bbox3d"
    if answer_kind == "number":
        return "mra" if MRA_QUESTION.search(question or "") else "relaxed"
    return "anls"


def as_letter(text: str, options: dict[str, str]) -> str:
    """An answer as an option letter when it names an option's text ("the chair" -> "A")."""
    if extract_choice(text or "") is not None or not options:
        return text
    wanted = normalise(text)
    for letter, option in options.items():
        if normalise(option) == wanted:
            return letter
    return text


def meters(text: str, default_unit: str | None = None) -> float | None:
    """A stated length in meters (the number as stated when neither it nor ``default_unit`` names a unit)."""
    parsed = parse_number(text or "")
    if parsed is None:
        return None
    unit = parsed.unit or default_unit
    return parsed.value if unit is None else to_meters(parsed.value, unit)


def score_metric(metric: str, prediction: str, truth: str, question: str = "",
                 rl_modes: Sequence[str] | None = None) -> float:
    """The accuracy of a final answer under one of metric_for's metrics."""
    if metric == "rl":
        return score_by_modes([m for m in rl_modes or [] if m in VALID_RL_MODES], prediction, truth)
    if metric == "choice":
        options = parse_options(question or "")
        return multi_choice_score(as_letter(prediction, options), as_letter(truth, options))
    if metric == "bbox3d":
        return bbox3d_score(prediction, truth)
    if metric == "mra":
        asked = ASKED_UNIT.search(question or "")
        unit = UNIT_OF[asked.group(1).lower()] if asked else None
        p, t = meters(prediction, unit), meters(truth, unit)
        return 0.0 if p is None or t is None else mra_score(p, t)
    if metric == "relaxed":
        return relaxed_score(prediction, truth)
    return anls_score(prediction, truth)


def accuracy(prediction: str, truth: str, *, question: str = "", answer_kind: str | None = None,
             rl_modes: Sequence[str] | None = None) -> tuple[float, str]:
    """(accuracy, metric) of a final answer by the metric that fits the sample (metric_for)."""
    metric = metric_for(question, answer_kind, rl_modes)
    return float(score_metric(metric, prediction, truth, question, rl_modes)), metric


def sample_reward(response: str, truth: str, *, question: str = "", answer_kind: str | None = None,
                  rl_modes: Sequence[str] | None = None) -> float:
    """VST's RL reward for any sample: 0.5 * accuracy of the answer after </think> by the metric that fits the
    sample (its RL modes when it has them, MRA for counts/distances/sizes, ...) + 0.5 * format reward."""
    final = split_reasoning(response or "").final
    score, _ = accuracy(final, truth or "", question=question, answer_kind=answer_kind, rl_modes=rl_modes)
    return 0.5 * score + 0.5 * format_reward(response or "")
