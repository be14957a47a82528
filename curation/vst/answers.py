"""Answers as VST writes them: lettered options, chosen letters, numbers with units, and what kind an answer is."""

from __future__ import annotations

import re
from dataclasses import dataclass

CHOICE_LETTERS = "ABCDEF"

# One option a line: "A: front", "A. front", "(A) front", "A) front".
_OPTION_LINE = re.compile(r"^\s*(?:\(([A-Z])\)|([A-Z])\s*[:.)])\s*(\S.*?)\s*$", re.MULTILINE)
# Options written on one line: "A. front B. back C. left".
_OPTION_INLINE = re.compile(r"(?:^|(?<=\s))(?:\(([A-F])\)|([A-F])[:.)])\s+(.+?)(?=\s+(?:\([A-F]\)|[A-F][:.)])\s|\s*$)")
_BACKTICKED = re.compile(r"`+([^`]+)`+")
_SINGLE_LETTER = re.compile(r"[\s(\[*'\"]*([A-Fa-f])[\s)\].:*'\"]*")
# A capital A-F standing alone, unless it is an article starting a phrase ("A dog").
_STANDALONE_LETTER = re.compile(r"\b[A-F]\b(?!\s[a-zA-Z])")

_NUMBER = r"(?<![\d.])[-+]?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?"
_UNIT_WORDS = {
    "m": "m", "meter": "m", "meters": "m", "metre": "m", "metres": "m",
    "cm": "cm", "centimeter": "cm", "centimeters": "cm", "centimetre": "cm", "centimetres": "cm",
    "mm": "mm", "millimeter": "mm", "millimeters": "mm", "millimetre": "mm", "millimetres": "mm",
    "km": "km", "kilometer": "km", "kilometers": "km", "kilometre": "km", "kilometres": "km",
    "ft": "ft", "foot": "ft", "feet": "ft", "'": "ft",
    "in": "in", "inch": "in", "inches": "in", '"': "in",
}  # fmt: skip
_UNIT = (
    r"(?:(?:centi|milli|kilo)?(?:meters?|metres?)|cm|mm|km|m|feet|foot|ft|inch(?:es)?|in(?=\s*(?:$|[.,;:!?)]))|'|\")"
)
_NUMBER_WITH_UNIT = re.compile(rf"({_NUMBER})\s*({_UNIT})?(?![a-zA-Z])", re.IGNORECASE)
_FEET_INCHES = re.compile(rf"({_NUMBER})\s*(?:feet|foot|ft|')\s*({_NUMBER})\s*(?:inch(?:es)?|in|\")", re.IGNORECASE)
_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
}  # fmt: skip
_NUMBER_WORD = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + rf")\b\s*({_UNIT})?(?![a-zA-Z])", re.IGNORECASE)
_HEDGE = r"(?:about|approximately|approx\.?|around|roughly|nearly|almost|~|≈)"
# The whole answer is a number: optional hedge word, number, optional unit, optional full stop.
_WHOLE_NUMBER = re.compile(
    rf"(?:{_HEDGE}\s*)?(?:{_NUMBER}|{'|'.join(_NUMBER_WORDS)})\s*(?:{_UNIT}|%)?\.?", re.IGNORECASE
)
_METERS_PER = {"m": 1.0, "cm": 0.01, "mm": 0.001, "km": 1000.0, "ft": 0.3048, "in": 0.0254}
_BBOX3D_HINT = re.compile(r"""["']?bbox_3d["']?\s*["']?\s*[:=]|<3dbbox>""", re.IGNORECASE)


@dataclass(frozen=True)
class NumberAnswer:
    """A numeric answer and the length unit it was given in (None when it names none)."""

    value: float
    unit: str | None  # 'm', 'cm', 'mm', 'km', 'ft', 'in' or None


def parse_options(question: str) -> dict[str, str]:
    """Lettered options offered by a question, e.g. ``{"A": "front", "B": "back"}``; empty when it offers none.

    Letters must run A, B, C, ... without a gap, so a stray "I. think" line is not an option list.
    """
    found: dict[str, str] = {}
    for m in _OPTION_LINE.finditer(question):
        letter = m.group(1) or m.group(2)
        found.setdefault(letter, m.group(3))
    options = _consecutive_from_a(found)
    if len(options) >= 2:
        return options
    for line in question.splitlines():
        found = {}
        for m in _OPTION_INLINE.finditer(line):
            found.setdefault(m.group(1) or m.group(2), m.group(3).strip())
        inline = _consecutive_from_a(found)
        if len(inline) >= 2:
            return inline
    return {}


def _consecutive_from_a(found: dict[str, str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        if letter not in found:
            break
        options[letter] = found[letter]
    return options


def extract_choice(answer: str) -> str | None:
    """The option letter an answer picks (upstream multi_choices rule), or None when it picks none.

    Backtick-quoted text wins (the model quoted its pick); a lone letter, in any case, wins next;
    else the first standalone capital A-F that is not an article ("A dog" is not a choice).
    """
    if not answer:
        return None
    quoted = _BACKTICKED.search(answer)
    text = (quoted.group(1) if quoted else answer).replace("`", "")
    lone = _SINGLE_LETTER.fullmatch(text)
    if lone:
        return lone.group(1).upper()
    m = _STANDALONE_LETTER.search(text)
    return m.group() if m else None


def _unit(word: str | None) -> str | None:
    return _UNIT_WORDS.get(word.lower()) if word else None


def parse_number(answer: str) -> NumberAnswer | None:
    """The first number in an answer with its length unit: "about 1.8 meters" -> 1.8 m; None when there is none."""
    if not answer:
        return None
    fi = _FEET_INCHES.search(answer)
    m = _NUMBER_WITH_UNIT.search(answer)
    if fi and (m is None or fi.start() <= m.start()):
        return NumberAnswer(_to_float(fi.group(1)) + _to_float(fi.group(2)) / 12.0, "ft")
    if m is None:
        # Number words only when no digits are written: "the one on the left is 2 m" means 2.
        w = _NUMBER_WORD.search(answer)
        return NumberAnswer(float(_NUMBER_WORDS[w.group(1).lower()]), _unit(w.group(2))) if w else None
    return NumberAnswer(_to_float(m.group(1)), _unit(m.group(2)))


def _to_float(text: str) -> float:
    return float(text.replace(",", ""))


def to_meters(value: float, unit: str | None) -> float | None:
    """A length in metres; None when the unit is unknown or not stated."""
    factor = _METERS_PER.get(unit or "")
    return None if factor is None else value * factor


def classify_answer(answer: str, question: str = "") -> str:
    """What kind of answer this is: 'bbox3d', 'choice', 'number' or 'text'."""
    text = answer or ""
    if _BBOX3D_HINT.search(text):
        return "bbox3d"
    if parse_options(question) or _SINGLE_LETTER.fullmatch(text.replace("`", "")):
        return "choice"
    if _WHOLE_NUMBER.fullmatch(text.strip()):
        return "number"
    return "text"
