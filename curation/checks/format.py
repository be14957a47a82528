"""Format checks: placeholders vs media, answers present, think tags, extractable answers, RL modes, known types and
upstream quirks, meta_info, ids."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation.checks.base import (
    OUTCOME_SCHEMA,
    Check,
    CheckContext,
    GlobalCheck,
    Outcome,
    SqlCheck,
    conform,
    outcome_table,
)
from curation.checks.priors import load_priors
from curation.checks.registry import register
from curation.query.severity import ERROR, INFO
from curation.vst.answers import extract_choice, parse_options
from curation.vst.scoring import VALID_RL_MODES
from curation.vst.vocabulary import (
    IMAGE_PLACEHOLDERS,
    PLACEHOLDERS,
    THINK_CLOSE,
    THINK_OPEN,
    VIDEO_PLACEHOLDERS,
    answer_turn_sql,
    human_turn_sql,
)

# Text of the human turns / the answer turns of a sample, as SQL over ``batch s``.
HUMAN_TEXT = (
    f"array_to_string(list_transform(list_filter(s.turns, lambda t: {human_turn_sql()}), "
    "lambda t: coalesce(t.text, '')), chr(10))"
)
ANSWER_TEXT = (
    f"array_to_string(list_transform(list_filter(s.turns, lambda t: {answer_turn_sql()}), "
    "lambda t: coalesce(t.text, '')), chr(10))"
)
FIRST_ANSWER = f"coalesce(list_filter(s.turns, lambda t: {answer_turn_sql()})[1].text, '')"
_OPEN, _CLOSE = f"'{THINK_OPEN}'", f"'{THINK_CLOSE}'"


# Most rows are a question then an answer: their texts are read directly, not through a filter over the turns.
_QUESTION_ANSWER = f"len(s.turns) = 2 AND {human_turn_sql('s.turns[1]')} AND {answer_turn_sql('s.turns[2]')}"


def _occurrences(text: str, tokens: tuple[str, ...]) -> str:
    """SQL: how often the tokens occur in ``text``, by the bytes replace() takes out (cheaper than a regex; the
    export runs this check over every row it writes). None of the tokens holds another, so the counts add up."""
    return " + ".join(f"(strlen({text}) - strlen(replace({text}, '{t}', ''))) // {len(t.encode())}" for t in tokens)


@register
class Placeholders(SqlCheck):
    name = "format.placeholders"
    description = ("One media placeholder per image/video in the human turns, none in the answers (a mismatch makes "
                   "the trainers' loaders raise).")
    severity = ERROR
    applies_to = "SFT samples, and RL samples whose question holds placeholders"
    columns = ("sample_id", "kind", "turns", "n_images", "n_videos")
    score_meaning = "placeholders minus media items (0 is right)"
    query = f"""
    WITH x AS (
      SELECT s.sample_id, s.kind, coalesce(s.n_images, 0) AS ni, coalesce(s.n_videos, 0) AS nv,
             CASE WHEN {_QUESTION_ANSWER} THEN coalesce(s.turns[1].text, '') ELSE {HUMAN_TEXT} END AS h,
             CASE WHEN {_QUESTION_ANSWER} THEN coalesce(s.turns[2].text, '') ELSE {ANSWER_TEXT} END AS g
      FROM batch s
    ), c AS (
      SELECT *, {_occurrences("h", IMAGE_PLACEHOLDERS)} AS pi, {_occurrences("h", VIDEO_PLACEHOLDERS)} AS pv,
             CASE WHEN contains(g, '<') THEN {_occurrences("g", PLACEHOLDERS)} ELSE 0 END AS pg
      FROM x
    )
    SELECT sample_id, pi = ni AND pv = nv AND pg = 0 AS passed, (pi + pv + pg - ni - nv)::DOUBLE AS score,
      CASE WHEN pi = ni AND pv = nv AND pg = 0 THEN NULL
           WHEN pi = ni AND pv = nv THEN format('turns: {{}} media placeholder(s) inside answer turns', pg)
           ELSE format('turns: human turns hold {{}} image and {{}} video placeholder(s) for {{}} image(s) and '
                       || '{{}} video(s) in media', pi, pv, ni, nv) END AS reason
    FROM c WHERE kind = 'sft' OR pi + pv + pg > 0
    """


# An answer turn's text without its reasoning block: what the model is trained to say.
_STATED_ANSWER = f"trim(regexp_replace(coalesce(t.text, ''), '(?s){THINK_OPEN}.*?{THINK_CLOSE}', '', 'g'))"


@register
class AnswerPresent(SqlCheck):
    name = "format.answer_present"
    description = ("Every sample has an answer turn and no answer turn is empty once its <think> block is left out "
                   "(an empty target trains the model to say nothing, and an RL row has no ground truth).")
    applies_to = "all samples"
    columns = ("sample_id", "kind", "turns")
    score_meaning = "answer turns with no answer text"
    severity = ERROR
    query = f"""
    WITH x AS (
      SELECT s.sample_id,
        list_transform(list_filter(s.turns, lambda t: {answer_turn_sql()}), lambda t: {_STATED_ANSWER}) AS said
      FROM batch s
    ), y AS (SELECT *, len(list_filter(said, lambda a: a = '')) AS empty, len(said) AS n FROM x)
    SELECT sample_id, n > 0 AND empty = 0 AS passed, empty::DOUBLE AS score,
      CASE WHEN n = 0 THEN 'turns: no answer turn (gpt/assistant) at all'
           WHEN empty > 0 THEN format('turns: {{}} of {{}} answer turn(s) say nothing once the <think> block is '
                                      || 'left out', empty, n) END AS reason
    FROM y
    """


@register
class ThinkTags(SqlCheck):
    name = "format.think_tags"
    description = ("Exactly one <think>...</think> block first in the answer, then a non-empty answer "
                   "(the upstream format reward).")
    applies_to = "reasoning samples: a `type` containing 'thought', or think tags in the answer"
    columns = ("sample_id", "kind", "type", "turns")
    score_meaning = "upstream format reward (1 well formed, 0 not)"
    query = f"""
    WITH x AS (SELECT s.sample_id, s.kind, s.type, {FIRST_ANSWER} AS g FROM batch s),
    c AS (
      SELECT *, len(regexp_extract_all(g, {_OPEN})) AS o, len(regexp_extract_all(g, {_CLOSE})) AS cl,
             len(regexp_extract_all(g, '(?s){THINK_OPEN}.*?{THINK_CLOSE}')) AS blocks,
             trim(regexp_extract(g, '(?s)^.*{THINK_CLOSE}(.*)$', 1)) AS after,
             starts_with(ltrim(g), {_OPEN}) AS first
      FROM x
      WHERE contains(g, {_OPEN}) OR contains(g, {_CLOSE})
         OR (kind = 'sft' AND contains(lower(coalesce(type, '')), 'thought'))
    )
    SELECT sample_id,
      o = 1 AND cl = 1 AND first AND instr(g, {_OPEN}) < instr(g, {_CLOSE}) AND after <> '' AS passed,
      CASE WHEN blocks = 1 AND after <> '' THEN 1.0 ELSE 0.0 END AS score,
      CASE WHEN o = 1 AND cl = 1 AND first AND instr(g, {_OPEN}) < instr(g, {_CLOSE}) AND after <> '' THEN NULL
           WHEN o = 0 AND cl = 0 THEN 'turns: the answer has no <think> block (type ' || coalesce(type, '?') || ')'
           WHEN o <> 1 OR cl <> 1 THEN format('turns: the answer has {{}} <think> and {{}} </think> tag(s); '
                                               || 'exactly one of each is needed', o, cl)
           WHEN NOT first THEN 'turns: text before <think> (the block must come first)'
           WHEN instr(g, {_OPEN}) > instr(g, {_CLOSE}) THEN 'turns: </think> comes before <think>'
           ELSE 'turns: no answer text after </think>' END AS reason
    FROM c
    """


_NUMERIC_QUESTION = (
    r"how many|how far|distance|how (tall|long|wide|high|big|deep)|\bin (meters|metres|centimeters|centimetres)\b"
    r"|(height|length|width|depth|size) of"
)
_NUMBER_ANSWER = r"\d|\b(zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\b"
_EMPTY_BOXES = r"^\s*(```(json)?)?\s*\[\s*\]\s*(```)?\s*$"


@register
class AnswerExtractable(Check):
    name = "format.answer_extractable"
    description = ("The answer can be read as its kind asks: an offered option letter, a number (with unit), "
                   "or bbox3d JSON of 9 numbers per box.")
    applies_to = "choice questions, numeric questions, 3D box answers and RL rows with those modes"
    columns = ("sample_id", "kind", "question", "answer", "answer_kind", "rl_modes", "boxes_3d")
    score_meaning = "none"
    # An RL row's answer is its ground truth: one the scorer cannot parse breaks the reward (error); an SFT answer
    # that cannot be read is a quality doubt (the check's warning).
    _severity = f"CASE WHEN rl THEN '{ERROR}' END"

    # Boxes and numbers are vectorised SQL; choice letters follow the Python reference rule (curation.vst.answers).
    _sql = f"""
    WITH x AS (
      SELECT *,
        -- the question is read (a regex) only where a number, not boxes, is wanted
        CASE WHEN NOT want_boxes THEN list_contains(coalesce(m, []), 'relaxed_score')
                                      OR regexp_matches(coalesce(q, ''), '{_NUMERIC_QUESTION}', 'i') END AS want_number
      FROM (
        SELECT s.sample_id, coalesce(s.answer, '') AS a, s.boxes_3d AS b, s.question AS q, s.rl_modes AS m,
          s.kind = 'rl' AS rl,
          s.answer_kind = 'bbox3d' OR list_contains(coalesce(s.rl_modes, []), 'bbox3d') AS want_boxes
        FROM batch s
        WHERE s.answer_kind IS DISTINCT FROM 'choice'
          AND NOT list_contains(coalesce(s.rl_modes, []), 'multi_choices_score'))
    ), boxes AS (
      SELECT sample_id, rl,
        regexp_matches(a, '{_EMPTY_BOXES}') OR (b IS NOT NULL AND len(list_filter(b,
          lambda v: len(v.bbox) NOT IN (9, 10) OR len(list_filter(v.bbox, lambda n: n IS NULL)) > 0)) = 0) AS passed,
        CASE WHEN b IS NULL THEN 'answer: no parsable bbox3d JSON list of {{"label", "bbox_3d"}} objects'
             ELSE 'answer: a box has ' || list_filter(b, lambda v: len(v.bbox) NOT IN (9, 10))[1].bbox::VARCHAR
                  || ' (9 numbers expected)' END AS why
      FROM x WHERE want_boxes
    ), numbers AS (
      SELECT sample_id, rl, regexp_matches(a, '{_NUMBER_ANSWER}', 'i') AS passed,
        'answer: no number in ' || left(a, 80) AS why
      FROM x WHERE want_number
    )
    SELECT sample_id, passed, NULL::DOUBLE AS score, CASE WHEN passed THEN NULL ELSE why END AS reason,
      {_severity} AS severity FROM boxes
    UNION ALL
    SELECT sample_id, passed, NULL::DOUBLE, CASE WHEN passed THEN NULL ELSE why END, {_severity} FROM numbers
    """
    # A lone letter the question offers as an option line (or a question with no option lines) is decided in SQL;
    # every other choice answer goes through the reference rule (curation.vst.answers).
    _choice_rows = r"""
    WITH c AS (
      SELECT s.sample_id, s.question, s.answer, s.kind,
             upper(regexp_extract(coalesce(s.answer, ''), '^\s*\(?([A-Fa-f])\)?[.:]?\s*$', 1)) AS letter,
             regexp_extract_all(coalesce(s.question, ''), '(?m)^\s*\(?([A-Z])(?:\)|\s*[:.)])\s*\S', 1) AS offered
      FROM batch s
      WHERE s.answer_kind = 'choice' OR list_contains(coalesce(s.rl_modes, []), 'multi_choices_score')
    )
    SELECT sample_id, question, answer, kind,
      letter <> '' AND (len(offered) = 0 OR list_contains(offered, letter)) AS fast
    FROM c
    """

    def run(self, batch: pa.Table, ctx: CheckContext) -> pa.Table:
        con = ctx.bind(batch)
        vectorised = conform(con.sql(self._sql).to_arrow_table())
        choice = con.sql(self._choice_rows).to_arrow_table()
        decided = choice.column("fast")
        ids = choice.filter(decided).column("sample_id")
        fast = pa.table([ids, pa.repeat(pa.scalar(True), len(ids)), pa.nulls(len(ids), pa.float64()),
                         pa.nulls(len(ids), pa.string()), pa.nulls(len(ids), pa.string())], schema=OUTCOME_SCHEMA)
        slow = choice.filter(pc.invert(decided)).select(["sample_id", "question", "answer", "kind"]).to_pylist()
        choices = outcome_table([(r["sample_id"], self.check_choice(r)) for r in slow])
        return pa.concat_tables([vectorised, fast, choices])

    @staticmethod
    def check_choice(row: dict[str, Any]) -> Outcome:
        answer = row.get("answer") or ""
        options = parse_options(row.get("question") or "")
        letter = extract_choice(answer)
        severity = ERROR if row.get("kind") == "rl" else None
        if letter is None:
            return Outcome(False, None, f"answer: no option letter in {answer[:80]!r}", severity)
        if options and letter not in options:
            return Outcome(False, None, f"answer: letter {letter} is not among the offered options {''.join(options)}",
                           severity)
        return Outcome(True)


@register
class RlModeValid(SqlCheck):
    name = "format.rl_mode"
    description = "RL rows name at least one mode, and every mode is one VST's reward defines (else no reward)."
    severity = ERROR
    applies_to = "RL samples (and any sample whose meta_info names a mode)"
    columns = ("sample_id", "kind", "rl_modes", "meta_info")
    score_meaning = "none"
    _valid = "[" + ", ".join(f"'{m}'" for m in VALID_RL_MODES) + "]"
    query = f"""
    WITH x AS (
      SELECT s.sample_id, coalesce(s.rl_modes, []) AS modes,
             list_filter(coalesce(s.rl_modes, []), lambda m: m IS NULL OR NOT list_contains({_valid}, m)) AS bad
      FROM batch s WHERE s.kind = 'rl' OR s.rl_modes IS NOT NULL
    )
    SELECT sample_id, len(modes) > 0 AND len(bad) = 0 AS passed, NULL::DOUBLE AS score,
      CASE WHEN len(modes) > 0 AND len(bad) = 0 THEN NULL
           WHEN len(modes) = 0 THEN 'meta_info.mode: missing (meta_info must be a JSON object with a mode list)'
           ELSE 'meta_info.mode: ' || array_to_string(bad, ', ') || ' is not a valid RL mode (valid: '
                || array_to_string({_valid}, ', ') || ')' END AS reason
    FROM x
    """


# `type` values upstream misspells, and the word meant: a known quirk (info), not an unknown type (warning). The
# real data's caption rows say "unknow".
TYPE_QUIRKS = {"unknow": "unknown"}


@register
class TypeKnown(SqlCheck):
    name = "format.type_known"
    version = "2"
    description = ("The free-form `type` tag is a known value (the list is in checks/priors.yaml); upstream's known "
                   "misspelling 'unknow' is info, any other unknown type a warning.")
    applies_to = "samples with a `type`"
    columns = ("sample_id", "type")
    score_meaning = "none"
    query = f"""
    WITH x AS (
      SELECT s.sample_id, s.type, lower(trim(s.type)) AS t,
        lower(trim(s.type)) IN (SELECT t FROM known_types)
          OR regexp_matches(lower(s.type), '^[a-z][a-z0-9_-]*thought[a-z0-9_-]*$') AS known
      FROM batch s WHERE s.type IS NOT NULL
    )
    SELECT x.sample_id, x.known AS passed, NULL::DOUBLE AS score,
      CASE WHEN x.known THEN NULL
           WHEN q.meant IS NOT NULL THEN format('type: "{{}}" is upstream''s misspelling of "{{}}" (a known quirk: '
                                               || 'kept as found, harmless for training)', x.type, q.meant)
           ELSE format('type: "{{}}" is not a known type (add it to checks/priors.yaml if it is meant)', x.type)
      END AS reason,
      CASE WHEN NOT x.known AND q.meant IS NOT NULL THEN '{INFO}' END AS severity
    FROM x LEFT JOIN type_quirks q ON q.t = x.t
    """

    def tables(self) -> dict[str, pa.Table]:
        known = list(load_priors().known_types) + [str(t).lower() for t in self.params.get("known_types", [])]
        return {"known_types": pa.table({"t": pa.array(known, pa.string())}),
                "type_quirks": pa.table({"t": list(TYPE_QUIRKS), "meant": list(TYPE_QUIRKS.values())})}


@register
class BytesField(Check):
    name = "format.bytes_field"
    description = ("Embedded images keep their bytes under `bytes`; a shard using upstream's misspelt `byres` is read "
                   "alike and exported as `bytes` (info: a known quirk the catalog normalises).")
    applies_to = "Parquet samples with embedded images"
    columns = ("sample_id", "source_file", "source_format", "media")
    score_meaning = "none"
    severity = INFO

    def __init__(self, params: dict[str, Any] | None = None):
        super().__init__(params)
        self._misspelt: dict[str, bool] = {}  # shard -> whether its images say byres (one footer read per shard)

    def run(self, batch: pa.Table, ctx: CheckContext) -> pa.Table:
        rows = ctx.bind(batch).sql(
            "SELECT s.sample_id, s.source_file FROM batch s WHERE ends_with(s.source_format, 'parquet') "
            "AND list_bool_or(list_transform(s.media, lambda m: coalesce(m.embedded, false)))"
        ).to_arrow_table()
        misspelt = [f for f in pc.unique(rows.column("source_file")).to_pylist() if self._says_byres(f)]
        passed = pc.invert(pc.is_in(rows.column("source_file"), value_set=pa.array(misspelt, pa.string())))
        reason = ("images: the shard stores image bytes under `byres` (upstream's misspelling of `bytes`); the "
                  "catalog reads them alike and exports write `bytes`")
        return conform(pa.table({
            "sample_id": rows.column("sample_id"), "passed": passed, "score": pa.nulls(rows.num_rows, pa.float64()),
            "reason": pc.if_else(passed, pa.scalar(None, pa.string()), pa.scalar(reason))}))

    def _says_byres(self, source_file: str) -> bool:
        if source_file not in self._misspelt:
            try:
                item = pq.read_schema(source_file).field("images").type.value_type
                names = {item.field(i).name for i in range(item.num_fields)}
            except (OSError, KeyError, AttributeError, pa.ArrowException):
                names = set()  # unreadable now: media.decodable says why
            self._misspelt[source_file] = "byres" in names and "bytes" not in names
        return self._misspelt[source_file]


@register
class MetaInfoValid(SqlCheck):
    name = "format.meta_info"
    description = ("meta_info is valid JSON: an object for RL rows, a list with one entry per media item for SFT "
                   "Parquet rows. An RL row's is an error (its reward mode is in there), an SFT row's a warning.")
    applies_to = "samples with meta_info"
    columns = ("sample_id", "kind", "meta_info", "n_images", "n_videos", "source_format")
    score_meaning = "none"
    query = f"""
    WITH x AS (
      SELECT s.sample_id, s.kind, s.meta_info AS m, coalesce(s.n_images, 0) + coalesce(s.n_videos, 0) AS nm,
             json_valid(s.meta_info) AS ok
      FROM batch s WHERE s.meta_info IS NOT NULL
    ), y AS (
      SELECT *,
        CASE WHEN NOT ok THEN 'meta_info: not valid JSON: ' || left(m, 60)
             WHEN kind = 'rl' AND json_type(m) <> 'OBJECT' THEN 'meta_info: RL meta_info must be a JSON object'
             WHEN kind = 'sft' AND json_type(m) = 'ARRAY' AND nm > 0 AND json_array_length(m) <> nm
               THEN format('meta_info: {{}} entries for {{}} media item(s)', json_array_length(m), nm)
        END AS why
      FROM x
    )
    SELECT sample_id, why IS NULL AS passed, NULL::DOUBLE AS score, why AS reason,
      CASE WHEN why IS NOT NULL AND kind = 'rl' THEN '{ERROR}' END AS severity FROM y
    """


@register
class IdsUnique(GlobalCheck):
    name = "format.ids_unique"
    description = ("Source ids are unique across the catalog (params ids_scope='dataset': within a dataset); upstream "
                   "converters regenerate or copy ids. The first sample with an id passes, later ones fail naming it.")
    applies_to = "samples with a source id"
    columns = ("sample_id", "source_id", "dataset", "source_file", "row_index")
    score_meaning = "how many samples share the id"

    def run_global(self, gctx: Any) -> Iterator[pa.Table]:
        # Upstream ids are uuids: a collision anywhere is suspicious; ids_scope='dataset' allows reuse across datasets.
        scope = "dataset, " if self.params.get("ids_scope") == "dataset" else ""
        sql = """
        WITH shared AS (
          SELECT {scope}source_id, count(*) AS n FROM samples
          WHERE source_id IS NOT NULL AND trim(source_id) <> '' GROUP BY ALL HAVING count(*) > 1
        ), g AS (
          SELECT {g_scope}s.source_id, any_value(shared.n) AS n,
                 arg_min(struct_pack(id := s.sample_id, f := s.source_file, r := s.row_index),
                         (s.source_file, s.row_index, s.sample_id)) AS first
          FROM samples s JOIN shared ON shared.source_id = s.source_id {scope_join_shared}
          GROUP BY ALL
        )
        SELECT s.sample_id, g.n IS NULL OR g.first.id = s.sample_id AS passed, coalesce(g.n, 1)::DOUBLE AS score,
          CASE WHEN g.n IS NULL OR g.first.id = s.sample_id THEN NULL
               ELSE format('id: {} is also the id of sample {} ({} row {})', s.source_id, g.first.id, g.first.f,
                           g.first.r) END AS reason
        FROM samples s LEFT JOIN g ON g.source_id = s.source_id {scope_join}
        WHERE s.source_id IS NOT NULL AND trim(s.source_id) <> ''
        """.replace("{scope}", scope).replace("{g_scope}", "s.dataset, " if scope else "")
        sql = sql.replace("{scope_join_shared}", "AND shared.dataset = s.dataset" if scope else "")
        sql = sql.replace("{scope_join}", "AND g.dataset = s.dataset" if scope else "")
        for batch in gctx.catalog_batches(sql):
            yield conform(pa.Table.from_batches([batch]))
