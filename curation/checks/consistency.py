"""Consistency checks: the trace's conclusion vs the answer, the answer vs the sample's own 3D boxes, and units."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from curation.checks.base import CheckContext, Outcome, RowCheck, outcome_table
from curation.checks.priors import load_priors
from curation.checks.registry import register
from curation.vst.answers import _OPTION_LINE, _SINGLE_LETTER, extract_choice, parse_number, parse_options, to_meters
from curation.vst.reasoning import reasoning_conclusion
from curation.vst.scoring import ASKED_UNIT as _ASKED_UNIT
from curation.vst.scoring import UNIT_OF as _UNIT_OF
from curation.vst.scoring import meters as _meters
from curation.vst.scoring import metric_for, mra_score, score_metric
from curation.vst.scoring import normalise as _norm
from curation.vst.spatial_text import parse_boxes_3d

# The score at or above which two answers agree, per metric (binary metrics score 0 or 1).
PASS_AT = {"choice": 1.0, "relaxed": 1.0, "mra": 0.5, "anls": 0.5, "bbox3d": 0.5, "rl": 1.0}
_LENGTH_QUESTION = re.compile(
    r"distance|how far|how (?:tall|long|wide|high|deep)|\b(?:height|length|width|depth|dimension)\b", re.I
)
_CLOSER = re.compile(r"which\b[^?]*?\bis (closer|nearer|farther|further) (?:to|from) the camera", re.I)
_EITHER = re.compile(r"\bthe ([\w -]+?) or the ([\w -]+?)\s*\?", re.I)
_DISTANCE = re.compile(r"distance between the ([\w -]+?) and the ([\w -]+?)(?:\s+in\s+\w+)?\s*\?", re.I)
_TALL = re.compile(r"how tall is the ([\w -]+?)\s*(?:\(|\?|in\b)|height of the ([\w -]+?)\s*(?:\(|\?|in\b)", re.I)
# Longest plausible indoor distance (metres) when no label prior bounds a length.
MAX_DISTANCE_M = 30.0
MAX_SIZE_M = 6.0


def agreement(prediction: str, truth: str, *, question: str = "", answer_kind: str | None = None,
              rl_modes: Sequence[str] | None = None) -> tuple[float, str, bool]:
    """How far a prediction agrees with a stated answer by the metric that fits the sample: (score, metric, agrees).

    When the question offers lettered options, a choice reading is tried as well, so "the door, option A" agrees
    with "door" when A is the door.
    """
    metric = metric_for(question, answer_kind, rl_modes)
    options = parse_options(question or "")
    score = score_metric(metric, prediction, truth, question, rl_modes)
    if score < PASS_AT[metric] - 1e-9 and metric != "choice" and options:
        alt = score_metric("choice", prediction, truth, question, rl_modes)
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


def _asked_unit(question: str) -> str:
    """The unit a question asks for ("in centimeters": cm), metres when it names none."""
    asked = _ASKED_UNIT.search(question)
    return _UNIT_OF[asked.group(1).lower()] if asked else "m"


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


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# The Python rules below spelled in SQL, for printable-ASCII text (tabs and newlines allowed): there RE2 and Python's re
# agree (\s, \w and \b are ASCII, submatches leftmost-first) and str.strip() strips spaces, tabs and newlines.
_WS = "(' ' || chr(9) || chr(10))"


def _norm_sql(expr: str) -> str:
    """_norm in SQL (printable ASCII): one leading article and the whitespace after it go, then trailing full stops."""
    return (f"rtrim(regexp_replace(lower(trim({expr}, {_WS})), '^(?:the |a |an )[ \\t\\n]*', ''), "
            "' .' || chr(9) || chr(10))")


# Box values _boxes_by_label reads with float(), for plain decimals: there DuckDB's cast gives the same doubles.
_DECIMAL = r"[ \t\n]*[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[ \t\n]*"
_DECIMALS = f"{_DECIMAL}(?:,{_DECIMAL})*"
# What could start an inline option ("A. front B. back"): parse_options reads those with lookarounds RE2 lacks.
_INLINE_OPTION_HINT = r"(?m)(^|\s)(\([A-F]\)|[A-F][:.)])\s"
_LETTERS = "[" + ", ".join(f"'{c}'" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ") + "]"


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

    # The question's kind and the objects it names, read in SQL for the whole batch (RE2, linear time).
    _read = f"""
        SELECT sample_id, question, answer, list_transform(stated, lambda m: m.label) AS box_labels,
          list_transform(stated, lambda m: m.v) AS box_values, box_mentions, closer_word,
          -- a closer/farther question is that whatever else it says (check() reads these only when it is not)
          CASE WHEN closer_word = '' THEN regexp_extract(question, '{_DISTANCE.pattern}', ['a', 'b'], 'i')
          END AS distance_pair,
          CASE WHEN closer_word = '' THEN regexp_extract(question, '{_TALL.pattern}', ['a', 'b'], 'i') END AS tall_pair
        FROM (
          SELECT s.sample_id, s.question, s.answer,
            regexp_extract_all(s.question, '{_STATED_BOX}', ['label', 'v']) AS stated,
            len(regexp_extract_all(s.question, 'bbox_3d')) AS box_mentions,
            lower(regexp_extract(s.question, '{_CLOSER.pattern}', 1, 'i')) AS closer_word
          FROM batch s WHERE {where})"""
    # Everything check() reads from the text, in SQL, for the rows where SQL reads as Python does (``decided``):
    # the boxes (plain decimals), the labels stated once, the branch (``kind``; NULL: no outcome), the candidates of
    # a closer/farther question (its option lines, or "the X or the Y?") and the box values each branch needs.
    # Python then does the arithmetic and the wording (_closer_verdict, _number), as check() does.
    _option_line = _sql_str("(?m)" + _OPTION_LINE.pattern)
    _lone = _sql_str(f"^{_SINGLE_LETTER.pattern}$")
    _decide = f"""
    WITH r AS (
      SELECT *, NOT regexp_matches(question || answer, '[^ -~\\t\\n]') AND len(box_labels) = box_mentions
                AND len(list_filter(box_values, lambda v: NOT regexp_full_match(v, '{_DECIMALS}'))) = 0 AS simple,
             trim(answer, {_WS}) AS a
      FROM ({_read})
    ), b AS (
      SELECT *, CASE WHEN simple THEN list_filter(list_transform(box_labels, lambda l, i: struct_pack(
               label := l, n := {_norm_sql("l")},
               v := list_transform(string_split(box_values[i], ','), lambda x: TRY_CAST(x AS DOUBLE)))),
             lambda x: len(x.v) = 9) END AS found
      FROM r
    ), k AS (
      SELECT *, CASE WHEN NOT simple OR len(boxes) = 0 THEN NULL WHEN closer_word <> '' THEN 'closer'
                     WHEN distance_pair.a <> '' AND distance_pair.b <> '' THEN 'pair'
                     WHEN tall_pair.a <> '' OR tall_pair.b <> '' THEN 'tall' END AS kind
      FROM (SELECT *, list_filter(found, lambda x: len(list_filter(found, lambda y: y.n = x.n)) = 1) AS boxes FROM b)
    ), o AS (
      SELECT *, list_transform({_LETTERS}, lambda c: list_position(letters, c)) AS opt_at
      FROM (SELECT *, list_transform(lines, lambda m: coalesce(m.p, m.l)) AS letters,
                   list_transform(lines, lambda m: m.t) AS texts
            FROM (SELECT *, CASE WHEN kind = 'closer' THEN regexp_extract_all(question, {_option_line}, ['p', 'l', 't'])
                            END AS lines,
                         -- from the last "which" on (a regex to find it reads the text many times over)
                         CASE WHEN kind = 'closer' AND strpos(lower(question), 'which') > 0 THEN regexp_extract(
                           substr(question, length(question) - strpos(reverse(lower(question)), 'hcihw') - 3),
                           '{_EITHER.pattern}', ['a', 'b'], 'i') END AS either,
                         regexp_matches(a, {_lone}) AS lone
                  FROM k))
    ), c AS (
      SELECT *, CASE WHEN n >= 2 THEN list_transform(list_slice(opt_at, 1, n), lambda j: texts[j]) END AS options
      FROM (SELECT *, coalesce(list_position(list_transform(opt_at, lambda j: j IS NULL), true) - 1, 26) AS n FROM o)
    ), d AS (
      SELECT *, CASE WHEN kind <> 'closer' OR kind IS NULL THEN TRUE
                     WHEN options IS NULL THEN NOT regexp_matches(question, '{_INLINE_OPTION_HINT}')
                     ELSE NOT contains(a, '`') AND (lone OR NOT regexp_matches(a, '\\b[A-F]\\b')) END AS decided,
             CASE WHEN options IS NOT NULL THEN list_transform(options, lambda x: {_norm_sql("x")})
                  WHEN either.a <> '' THEN [{_norm_sql("either.a")}, {_norm_sql("either.b")}] END AS cands,
             CASE WHEN options IS NOT NULL AND lone THEN {_norm_sql(
                       f"coalesce(options[ascii(upper(regexp_extract(a, {_lone}, 1))) - 64], '')")}
                  WHEN kind = 'closer' THEN {_norm_sql("a")} END AS picked
      FROM c
    ), e AS (
      SELECT *, list_transform(boxes, lambda x: x.n) AS names,
             {_norm_sql("distance_pair.a")} AS na, {_norm_sql("distance_pair.b")} AS nb,
             {_norm_sql("coalesce(nullif(tall_pair.a, ''), tall_pair.b)")} AS nt
      FROM d
    )
    SELECT sample_id, question, answer, box_labels, box_values, box_mentions, closer_word, distance_pair, tall_pair,
      simple AND decided AS decided, a,
      CASE WHEN kind = 'closer' AND (cands IS NULL OR NOT list_contains(cands, picked)
                                     OR len(list_filter(cands, lambda x: NOT list_contains(names, x))) > 0)
           THEN NULL ELSE kind END AS kind,
      closer_word IN ('closer', 'nearer') AS closer, cands, picked,
      CASE WHEN kind = 'closer' THEN list_transform(cands, lambda x: list_filter(boxes, lambda y: y.n = x)[1].v[1:3])
      END AS centers,
      na, nb,
      CASE WHEN kind = 'pair' THEN list_filter(boxes, lambda y: y.n = na)[1].v[1:3] END AS ac,
      CASE WHEN kind = 'pair' THEN list_filter(boxes, lambda y: y.n = nb)[1].v[1:3] END AS bc,
      CASE WHEN kind = 'tall' THEN list_filter(boxes, lambda y: y.n = nt)[1] END AS tb,
      CASE WHEN kind IN ('pair', 'tall') THEN lower(regexp_extract(question, '{_ASKED_UNIT.pattern}', 1, 'i')) END
        AS asked
    FROM e"""

    def rows(self, batch, ctx) -> list[dict[str, Any]]:
        return ctx.bind(batch).sql(self._read).to_arrow_table().to_pylist()

    def run(self, batch: pa.Table, ctx: CheckContext) -> pa.Table:
        table = ctx.bind(batch).sql(self._decide).to_arrow_table()
        decided = table.column("decided")
        fast = table.filter(pc.and_(decided, pc.is_valid(table.column("kind"))))
        decided_rows: list[tuple[str, Outcome]] = []
        for row in zip(*(fast.column(c).to_pylist() for c in (
                "sample_id", "kind", "a", "closer", "cands", "picked", "centers", "na", "nb", "ac", "bc", "tb",
                "asked"))):
            sample_id, kind, answer, closer, cands, picked, centers, na, nb, ac, bc, tb, asked = row
            unit = _UNIT_OF[asked] if asked else "m"
            if kind == "closer":
                outcome = self._closer_verdict(cands, picked, dict(zip(cands, centers)), closer)
            elif kind == "pair":
                outcome = None if ac is None or bc is None else self._number(
                    answer, math.dist(ac, bc), f"the distance between the {na} and the {nb}", unit)
            else:
                v = None if tb is None else tb["v"]
                outcome = None if v is None or abs(v[6]) > 1e-6 or abs(v[8]) > 1e-6 else self._number(
                    answer, float(v[4]), f"the height of the {tb['label']}", unit)
            if outcome is not None:
                decided_rows.append((sample_id, outcome))
        return outcome_table(decided_rows + self.checked(table.filter(pc.invert(decided)).to_pylist()))

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
            return self._number(answer, truth, f"the distance between the {_norm(pair[0])} and the {_norm(pair[1])}",
                                _asked_unit(question))
        if tall:
            box = boxes.get(_norm(tall))
            if box is None or any(abs(a) > 1e-6 for a in (box.angles[0], box.angles[2])):
                return None  # pitch or roll: the box's y size is no longer its height
            return self._number(answer, float(box.size[1]), f"the height of the {box.label}", _asked_unit(question))
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
        return self._closer_verdict(candidates, picked, {c: boxes[c].center for c in candidates}, closer)

    @staticmethod
    def _closer_verdict(candidates: list[str], picked: str, centers: dict[str, Sequence[float]],
                        closer: bool) -> Outcome | None:
        ranges = {c: math.dist(centers[c], (0.0, 0.0, 0.0)) for c in candidates}
        order = sorted(candidates, key=ranges.get)
        if abs(ranges[order[0]] - ranges[order[1]]) < 0.05 * ranges[order[1]]:
            return None  # too close to call from the boxes
        expected = order[0] if closer else order[-1]
        if picked == expected:
            return Outcome(True, 1.0)
        word = "closer" if closer else "farther"
        return Outcome(False, 0.0, f"answer: says the {picked} is {word}, but the stated boxes put the {expected} "
                                   f"{word} ({ranges[expected]:.2f} m vs {ranges[picked]:.2f} m from the camera)")

    def _number(self, answer: str, truth: float, what: str, unit: str) -> Outcome | None:
        """Outcome of a numeric answer (read in ``unit`` when it names none) against the recomputed ``truth``."""
        stated = _meters(answer, unit)
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

    def run(self, batch: pa.Table, ctx: CheckContext) -> pa.Table:
        # The question's regexes in SQL (RE2) for printable-ASCII rows; Python reads the answer and judges.
        labels = "[" + ", ".join(_sql_str(k) for k in load_priors().object_sizes) + "]"
        table = ctx.bind(batch).sql(f"""
          SELECT sample_id, question, answer, plain, trim(answer, {_WS}) AS a,
            regexp_matches(question, '{_LENGTH_QUESTION.pattern}', 'i') AS length_q,
            regexp_extract(question, '{_ASKED_UNIT.pattern}', 1, 'i') AS asked,
            distance, CASE WHEN len(named) > 0 THEN list_filter(named, lambda k: length(k) = list_max(
                                list_transform(named, lambda j: length(j))))[1] END AS label
          FROM (
            SELECT *, list_filter({labels}, lambda k: list_contains(grams, k)) AS named
            FROM (
              SELECT *, list_concat(g, list_transform(list_filter(g, lambda x: ends_with(x, 's')),
                                                      lambda x: left(x, length(x) - 1))) AS grams
              FROM (
                SELECT *, CASE WHEN plain AND NOT distance THEN list_concat(words, list_transform(
                             words[2:], lambda w, i: words[i] || ' ' || w)) END AS g
                FROM (
                  SELECT *, CASE WHEN plain AND NOT distance THEN regexp_extract_all(lower(question), '[a-z]+') END
                         AS words
                  FROM (
                    SELECT s.sample_id, s.question, coalesce(s.answer, '') AS answer,
                      NOT regexp_matches(coalesce(s.question, '') || coalesce(s.answer, ''), '[^ -~\\t\\n]') AS plain,
                      regexp_matches(s.question, '{_DISTANCE_WORDS.pattern}', 'i') AS distance
                    FROM batch s WHERE {self.where})))))""").to_arrow_table()
        plain = table.column("plain")
        fast = table.filter(pc.and_(plain, table.column("length_q")))
        decided_rows: list[tuple[str, Outcome]] = []
        for sample_id, answer, asked, distance, label in zip(*(fast.column(c).to_pylist() for c in (
                "sample_id", "a", "asked", "distance", "label"))):
            outcome = self._verdict(answer, asked or None, lambda d=distance, k=label: self._limit_for(d, k))
            if outcome is not None:
                decided_rows.append((sample_id, outcome))
        return outcome_table(decided_rows + self.checked(table.filter(pc.invert(plain)).to_pylist()))

    def check(self, row: dict[str, Any]) -> Outcome | None:
        question, answer = row["question"] or "", (row["answer"] or "").strip()
        if not _LENGTH_QUESTION.search(question):
            return None
        asked = _ASKED_UNIT.search(question)
        return self._verdict(answer, asked.group(1) if asked else None, lambda: self._limit(question))

    @staticmethod
    def _verdict(answer: str, asked: str | None, limit: Callable[[], tuple[float, str]]) -> Outcome | None:
        """The outcome of a length answer to a question that asks for ``asked`` (its wording: "meters"), or None."""
        parsed = parse_number(answer)
        if parsed is None:
            return None
        want = _UNIT_OF[asked.lower()] if asked else None
        if want and parsed.unit and parsed.unit != want:
            value = to_meters(parsed.value, parsed.unit)
            return Outcome(False, value, f"answer: the question asks for {asked}, the answer "
                                         f"{answer!r} is in {parsed.unit}")
        unit = parsed.unit or want or "m"
        value = to_meters(parsed.value, unit)
        if value is None or not math.isfinite(value):
            return None
        most, what = limit()
        if value > most or value <= 0:
            hint = " (it reads like centimetres)" if unit == "m" and 0 < value / 100 <= most else ""
            return Outcome(False, value, f"answer: {answer!r} gives {value:g} m, implausible for {what} "
                                         f"(at most {most:g} m){hint}")
        return Outcome(True, value)

    @classmethod
    def _limit(cls, question: str) -> tuple[float, str]:
        if _DISTANCE_WORDS.search(question):
            return cls._limit_for(True, None)
        named = _labels_named(question, tuple(load_priors().object_sizes))
        return cls._limit_for(False, max(named, key=len) if named else None)

    @staticmethod
    def _limit_for(distance: bool, label: str | None) -> tuple[float, str]:
        """The largest plausible length: a distance indoors, else the size of the longest label the question names."""
        if distance:
            return MAX_DISTANCE_M, "a distance indoors"
        if label:
            return load_priors().object_sizes[label].longest[1] * 1.5, f"a {label}"
        return MAX_SIZE_M, "an object's size"


_DISTANCE_WORDS = re.compile(r"distance|how far", re.I)


_WORD = re.compile(r"[a-z]+")


def _labels_named(question: str, labels: tuple[str, ...]) -> list[str]:
    """Labels (one or two words, plurals too) a question names: a set lookup per word, not a regex per label."""
    words = _WORD.findall(question.lower())
    grams = set(words) | {f"{a} {b}" for a, b in zip(words, words[1:])}
    grams |= {g[:-1] for g in grams if g.endswith("s")}
    return [k for k in labels if k in grams]
