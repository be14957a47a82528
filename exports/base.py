"""What an export format is, and the SQL every writer starts from (relation ``e``, the rows as exported).

Relation ``e`` is the selected catalog rows with fixes, downgrades and placeholder conversion applied, computed by
DuckDB so millions of rows stay fast.

Rows come from the catalog's ``samples`` next to one of two Arrow tables the pipeline registers, both with columns
ord, out_id, copy, component, downgrade, fix_gpt, fix_answer:

- ``mask``: one row per catalog row in scan order (NULL ord where the row is not exported), read with a
  POSITIONAL JOIN: no hash join and no sort, and the output keeps the catalog's order;
- ``extra``: one row per exported copy with its sample_id (up-sampled copies), joined and sorted by ord.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from exports.media_store import MEDIA_EXTS

WHITESPACE = "' ' || chr(9) || chr(10) || chr(13)"  # DuckDB's trim() alone strips spaces only
_USUAL_EXTS = ("jpg", "png", "jpeg", "mp4")  # tested by suffix before the regex over every MEDIA_EXTS
IMAGE_ITEM = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
IMAGES = pa.list_(IMAGE_ITEM)
# Columns the pipeline reads from every writer's SELECT besides the format's own (tallies for the manifest, media).
TALLY_COLUMNS = ("_component", "_skill", "_source", "_group", "_dataset")
# The catalog's vocabulary as exports read and write it. Exports import nothing of curation (DESIGN.md, import
# direction), so these repeat curation/vst/vocabulary.py; tests/vst/test_vocabulary.py holds the two equal.
HUMAN_ROLES = ("human", "user")
ASSISTANT_ROLES = ("gpt", "assistant")
SYSTEM_ROLE = "system"
IMAGE_PAD, VIDEO_PAD, IMAGE_TAG, VIDEO_TAG = "<|image_pad|>", "<|video_pad|>", "<image>", "<video>"
PLACEHOLDERS = (IMAGE_PAD, VIDEO_PAD, IMAGE_TAG, VIDEO_TAG)
THINK_CLOSE = "</think>"


@dataclass(frozen=True)
class FormatContext:
    """What a format's SQL may depend on besides the rows."""

    has_videos: bool  # any selected row has a video (verl adds a videos column only then)
    media_prefix: str = ""  # '' (paths relative to the export folder) or an absolute folder ending in '/'
    dataset_name: str = "vst_mixture"


@dataclass(frozen=True)
class ExportFormat:
    """A training format: how its records are selected from ``e`` and how its files are laid out."""

    name: str
    description: str
    media: Literal["embedded", "files"]  # bytes inside the data files, or content-addressed files beside them
    file_kind: Literal["parquet", "jsonl", "json"]
    placeholders: Literal["vst", "tags"]  # <|image_pad|>/<|video_pad|> or <image>/<video>
    select: Callable[[FormatContext], str]  # SELECT list over e: Parquet columns, or one `_json` text per record
    schema: Callable[[FormatContext], pa.Schema] | None = None  # Parquet formats
    media_columns: Callable[[list[list[dict]], list[list[bytes]], FormatContext], dict[str, pa.Array]] | None = None
    extra_files: Callable[[FormatContext, list[str]], dict[str, bytes]] | None = None  # (ctx, data files) -> files
    partition_by_skill: bool = False  # <out>/<skill>/part-*.parquet, like the public VST release
    # The turns of ``e`` as the format writes them (built in the one pass over the turns): the structs' field names
    # (role, text), and what human/user and gpt/assistant turns are called (other roles are kept as found).
    turn_fields: tuple[str, str] = ("role", "text")
    roles: tuple[str, str] = ("human", "gpt")
    ensure_tags: bool = True  # rows with media but no placeholder get one per item (trainers count them)
    data_dir: str = "data"
    # Media paths in records are absolute (the export folder's path): trainers that resolve relative paths against
    # their working directory (ms-swift, verl's video reader) then load from anywhere.
    absolute_media: bool = False
    file_kinds: tuple[str, ...] = ()  # media kinds an embedded format writes as files instead (verl: videos)
    # SQL over e: why a row cannot be written in this format (NULL when it can); such rows are left out and listed.
    left_out: Callable[[FormatContext], str] | None = None


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def media_relpath_sql(item: str, prefix: str = "") -> str:
    """Content-addressed path of a media item (a struct expression): prefix + media/ab/abcdef....ext, the extension
    taken from the source path when it is a known media one, in lower case (else .mp4 for videos, none for
    images); NULL when the item has no digest."""
    path = f"{item}.path"  # a NULL path matches no test below, like an empty one
    # Plain suffix tests for the usual extensions first (cheap at millions of items), a regex for the others (and
    # for any upper-case one): the regex alone would give the same, at several times the cost.
    whens = " ".join(f"WHEN suffix({path}, '.{e}') THEN '.{e}'" for e in _USUAL_EXTS)
    known = f"'(?i)\\.({'|'.join(MEDIA_EXTS)})$'"
    ext = (f"CASE {whens} WHEN regexp_matches({path}, {known}) THEN '.' || lower(regexp_extract({path}, {known}, 1)) "
           f"WHEN {item}.kind = 'video' THEN '.mp4' ELSE '' END")
    # One concat() rather than a chain of || (each link a new string); it skips NULLs, || gives NULL: hence the CASE.
    return (f"CASE WHEN {item}.digest IS NOT NULL THEN concat({_q(prefix + 'media/')}, substr({item}.digest, 1, 2), "
            f"'/', {item}.digest, {ext}) END")


def unexportable_media_sql(media: str = "s.media") -> str:
    """Why a row's media cannot be exported, from what ingest recorded: 'media[i] kind path: problem' for the first
    item with a problem (missing file or path, unreadable, undecodable, outside the media roots) or without bytes
    (no digest); NULL when every item can be. Selection and the pipeline both leave such rows out by it."""
    return f"""list_filter(list_transform({media}, lambda m, i:
          CASE WHEN m.problem IS NOT NULL OR m.digest IS NULL
          THEN 'media[' || (i - 1) || '] ' || m.kind || ' ' || coalesce(nullif(m.path, ''), '(embedded)')
               || ': ' || coalesce(m.problem, 'no bytes') END), lambda x: x IS NOT NULL)[1]"""


def media_paths_sql(kind: str, prefix: str = "") -> str:
    """The list of relative paths of a row's media items of one kind (image | video)."""
    count, other = ("n_videos", "n_images") if kind == "video" else ("n_images", "n_videos")
    path = f"lambda m: {media_relpath_sql('m', prefix)}"
    # Most rows hold one kind only (no filter needed then), most of those a single item (no lambda needed).
    return (f"CASE WHEN {count} = 0 THEN []::VARCHAR[] "
            f"WHEN {other} = 0 AND len(media) = 1 THEN [{media_relpath_sql('media[1]', prefix)}] "
            f"WHEN {other} = 0 THEN list_transform(media, {path}) "
            f"ELSE list_transform(list_filter(media, lambda m: m.kind = {_q(kind)}), {path}) END")


def _has_tag(x: str) -> str:
    return " OR ".join(f"contains({x}, {_q(tag)})" for tag in PLACEHOLDERS)


def _strip_tags(x: str) -> str:
    for tag in PLACEHOLDERS:
        x = f"replace({x}, {_q(tag)}, '')"
    return x


def _swap_tags(x: str, image: tuple[str, str], video: tuple[str, str]) -> str:
    """replace(replace(x, image...), video...), with each replace() run only where its tag is found (a replace()
    copies the text even when there is nothing to replace). Same result: replacing the image tag cannot make a
    video tag (the tags used here open with '<' and close with '>' and hold neither within them)."""
    (a, a2), (b, b2) = ((_q(t), _q(u)) for t, u in (image, video))
    return (f"CASE WHEN contains({x}, {b}) THEN replace(replace({x}, {a}, {a2}), {b}, {b2}) "
            f"WHEN contains({x}, {a}) THEN replace({x}, {a}, {a2}) ELSE {x} END")


def _tag_prefix_sql(style: str) -> str:
    """One placeholder per media item, in media order (empty when the row has no media): VST's run together
    before the text as upstream writes them, <image>/<video> one per line as LLaVA-style trainers expect."""
    if style == "vst":
        return ("array_to_string(list_transform(media, lambda m: CASE WHEN m.kind = 'video' "
                f"THEN {_q(VIDEO_PAD)} ELSE {_q(IMAGE_PAD)} END), '')")
    tags = ("array_to_string(list_transform(media, lambda m: CASE WHEN m.kind = 'video' "
            f"THEN {_q(VIDEO_TAG)} ELSE {_q(IMAGE_TAG)} END), chr(10))")
    return f"CASE WHEN len(media) > 0 THEN {tags} || chr(10) ELSE '' END"


def _role_sql(human: str, gpt: str) -> str:
    """Role of turn t: human/user and gpt/assistant as the format calls them, any other role as found."""
    names = {**dict.fromkeys(HUMAN_ROLES, human), **dict.fromkeys(ASSISTANT_ROLES, gpt)}
    whens = " ".join(f"WHEN {_q(k)} THEN {_q(v)}" for k, v in names.items() if k != v)  # x -> x needs no test
    return f"CASE t.role {whens} ELSE t.role END" if whens else "t.role"


def _is_role(turn: str, roles: tuple[str, ...]) -> str:
    return f"{turn}.role IN ({', '.join(map(_q, roles))})"


_IS_GPT = _is_role("t", ASSISTANT_ROLES)
_IS_HUMAN = _is_role("t", HUMAN_ROLES)


def _text_sql(style: str, mode: str, ensure: bool) -> str:
    """Text of turn t (index i) with media placeholders in the format's style.

    convert: swap the placeholder style (and strip placeholders from answers, except in VST's own format); a row
    with media but no placeholder at all (VST RL questions) gets one per item at the start of its first human turn
    when ``ensure``. repair: strip every placeholder and re-prepend one per media item (upstream's fix for count
    mismatches).
    """
    x = "coalesce(t.text, '')"
    prefix = "tag_prefix"  # the row's placeholders, computed outside the lambda (see effective_rows_sql)
    if mode == "repair":
        return (f"CASE WHEN i = human_i THEN {prefix} || ltrim({_strip_tags(x)}, {WHITESPACE}) "
                f"ELSE {_strip_tags(x)} END")
    if style == "vst":
        text = _swap_tags("t.text", (IMAGE_TAG, IMAGE_PAD), (VIDEO_TAG, VIDEO_PAD))
        gpt = "t.text"
    else:
        text = _swap_tags("t.text", (IMAGE_PAD, IMAGE_TAG), (VIDEO_PAD, VIDEO_TAG))
        gpt = f"CASE WHEN contains({x}, '<') THEN {_strip_tags(x)} ELSE t.text END"
    if ensure:  # tag_prefix is NULL unless the row is tagless
        text = f"CASE WHEN i = human_i AND {prefix} IS NOT NULL THEN {prefix} || {text} ELSE {text} END"
    return f"CASE WHEN {_IS_GPT} THEN {gpt} ELSE {text} END"


def effective_rows_sql(style: str, placeholders: str = "convert", ensure_tags: bool = True, *,
                       source: Literal["mask", "extra"] = "mask", fixes: bool = True, downgrades: bool = True,
                       rowids: tuple[int, int] | None = None, turn_fields: tuple[str, str] = ("role", "text"),
                       roles: tuple[str, str] = ("human", "gpt"), repairs: bool = False) -> str:
    """WITH ... e AS (...): one row per exported copy, text ready for the format (ends before the final SELECT).

    ``fixes`` / ``downgrades`` say whether the rows hold any: the SQL leaves out what is not needed, which matters
    at millions of rows. ``rowids`` (first, last), with the mask source: only the catalog rows in that rowid range,
    the mask holding exactly their rows (a slice of the catalog, so that slices run side by side). ``turn_fields``
    and ``roles``: see ExportFormat. ``repairs``: under convert, the rows whose ``repair`` is true (the source's
    column) have their placeholders repaired as ``placeholders: repair`` does (rows whose placeholders do not match
    their media, exported on purpose).
    """
    if placeholders not in ("convert", "repair"):
        raise ValueError(f"placeholders is {placeholders!r}; use 'convert' or 'repair'")
    answer = "coalesce(m.fix_answer, s.answer)" if fixes else "s.answer"
    fix_gpt = "m.fix_gpt" if fixes else "NULL::VARCHAR"
    gpt_i = (f"CASE WHEN {fix_gpt} IS NOT NULL OR m.downgrade THEN "
             f"coalesce(list_position(list_transform(s.turns, lambda t: {_IS_GPT}), true), 0) ELSE 0 END"
             if fixes or downgrades else "0")
    human_i = (f"CASE WHEN {_is_role('s.turns[1]', HUMAN_ROLES)} THEN 1 ELSE "
               f"coalesce(list_position(list_transform(s.turns, lambda t: {_IS_HUMAN}), true), 0) END")
    type_ = ("CASE WHEN m.downgrade THEN coalesce(nullif(regexp_replace(coalesce(s.type, ''), '_?thought', '', 'g'), "
             "''), 'qa') ELSE s.type END" if downgrades else "s.type")
    tagless = "false"
    if ensure_tags and placeholders == "convert":
        # Only rows whose first human turn has no placeholder pay for the look at every turn.
        first = "coalesce(turns0[human_i].text, '')"
        every = "array_to_string(list_transform(turns0, lambda t: coalesce(t.text, '')), ' ')"
        # CASE, not AND: DuckDB evaluates every operand of an AND, but only the CASE branches a row reaches.
        tagless = (f"CASE WHEN len(media) = 0 OR human_i = 0 THEN false WHEN {_has_tag(first)} THEN false "
                   f"ELSE NOT ({_has_tag(every)}) END")
    # The placeholders to prepend, per row, where a turn may need them: a lambda over the turns that read the
    # media list itself would copy that list for every turn.
    tag_prefix = "NULL::VARCHAR"
    repairs = repairs and placeholders == "convert"
    if placeholders == "repair":
        tag_prefix = _tag_prefix_sql(style)
    elif ensure_tags or repairs:
        whens = (f"WHEN repair THEN {_tag_prefix_sql(style)} " if repairs else "") + (
            f"WHEN tagless THEN {_tag_prefix_sql(style)} " if ensure_tags else "")
        tag_prefix = f"CASE {whens}END"
    text = _text_sql(style, placeholders, ensure_tags)
    if repairs:
        text = f"CASE WHEN repair THEN {_text_sql(style, 'repair', ensure_tags)} ELSE {text} END"
    edit = "turns0"
    if fixes or downgrades:
        edit = f"""list_transform(turns0, lambda t, i: struct_pack(role := t.role, text := CASE
      WHEN NOT ({_IS_GPT}) THEN t.text
      WHEN downgrade AND i = gpt_i THEN answer
      WHEN downgrade THEN trim(regexp_replace(coalesce(t.text, ''), '(?s)^.*{THINK_CLOSE}', ''))
      WHEN i = gpt_i AND fix_gpt IS NOT NULL THEN fix_gpt
      ELSE t.text END))"""
    repair = ", m.repair" if repairs else ""
    samples = "samples" if rowids is None else (
        f"(SELECT * FROM samples WHERE rowid BETWEEN {int(rowids[0])} AND {int(rowids[1])})")
    rows = (f"FROM {samples} s POSITIONAL JOIN mask m WHERE m.ord IS NOT NULL" if source == "mask"
            else "FROM extra m JOIN samples s USING (sample_id)")
    return f"""
WITH j AS (
  SELECT m.ord, coalesce(m.out_id, s.sample_id) AS out_id, m.copy, m.component::VARCHAR AS component, m.downgrade,
         s.sample_id, s.dataset, s.skill, s.source, s.sample_group, s.kind, s.data_source, s.meta_info, s.media,
         s.n_images, s.n_videos, s.rl_modes, s.question_type, s.answer_kind, s.source_file, s.row_group,
         s.row_in_group, s.row_index, s.question AS plain_question, {type_} AS type, {answer} AS answer,
         {fix_gpt} AS fix_gpt, s.turns AS turns0, {human_i} AS human_i, {gpt_i} AS gpt_i{repair}
  {rows}
), k AS (
  SELECT * EXCLUDE (turns0), {tagless} AS tagless, {edit} AS turns1 FROM j
), p AS (
  SELECT *, {tag_prefix} AS tag_prefix FROM k
), e AS (
  SELECT * EXCLUDE (turns1, tag_prefix{', repair' if repairs else ''}),
    list_transform(turns1, lambda t, i: struct_pack({_ident(turn_fields[0])} := {_role_sql(*roles)},
      {_ident(turn_fields[1])} := {text})) AS turns
  FROM p
)"""


def helper_select() -> str:
    """The helper columns the pipeline adds to every writer's SELECT (media pointers and manifest tallies)."""
    return ("sample_id AS _sample_id, media AS _media, source_file AS _source_file, row_group AS _row_group, "
            "row_in_group AS _row_in_group, component AS _component, skill AS _skill, "
            "coalesce(source, '(none)') AS _source, sample_group AS _group, dataset AS _dataset")


def question_sql() -> str:
    """The first human turn's text (placeholders already in the format's style; turns with the default fields)."""
    return "CASE WHEN human_i > 0 THEN turns[human_i].text END"


def rl_meta_sql() -> str:
    """VST RL meta_info: the row's own JSON object when it has one, else modes derived from the answer kind."""
    mode = ("CASE answer_kind WHEN 'choice' THEN 'multi_choices_score' WHEN 'number' THEN 'relaxed_score' "
            "WHEN 'bbox3d' THEN 'bbox3d' ELSE 'vqa_score' END")
    qtype = ("CASE answer_kind WHEN 'choice' THEN 'multi_choices' WHEN 'number' THEN 'numeric' "
             "WHEN 'bbox3d' THEN 'bbox3d' ELSE 'open' END")
    return (
        "CASE WHEN meta_info IS NOT NULL AND json_valid(meta_info) AND json_type(meta_info) = 'OBJECT' "
        f"THEN meta_info ELSE to_json(struct_pack(mode := coalesce(rl_modes, [{mode}]), "
        f"question_type := coalesce(question_type, {qtype})))::VARCHAR END"
    )


def reward_modes_sql() -> str:
    mode = ("CASE answer_kind WHEN 'choice' THEN 'multi_choices_score' WHEN 'number' THEN 'relaxed_score' "
            "WHEN 'bbox3d' THEN 'bbox3d' ELSE 'vqa_score' END")
    return f"coalesce(rl_modes, [{mode}])"


# A choice answer's option letter, as the multiple-choice scorer reads it: the letter alone, a letter opening the
# answer ("B. back", "(B) back"), or a letter closing it ("... so the answer is B. B").
_LONE_LETTER = r"^[\s(\[*'\"`]*([A-Fa-f])[\s)\].:*'\"`]*$"
_OPENING_LETTER = r"^[\s(\[*`]*([A-F])(?:[).:]|\s*$)"
_CLOSING_LETTER = r"(?:^|\s)[(\[*`]*([A-F])[)\].*`]*\s*$"
# The question's lettered options, one a line ("A: front", "(B) back", "C. left"): an answer that is an option's text
# is that option's letter.
_OPTION_LINE = r"(?m)^\s*\(?([A-F])\s*[:.)]\s*(\S.*?)\s*$"
# A number with an optional length unit or %, as the relaxed and MRA scorers read one.
_NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?"
_NUMBER_UNIT = (_NUMBER + r"\s*(?:%|(?:centi|milli|kilo)?(?:meters?|metres?)|cm|mm|km|m|feet|foot|ft|inch(?:es)?"
                r"|in)?")


def ground_truth_sql() -> str:
    """An RL row's ground truth in the form VST's scorer expects, from the final answer (the text after the last
    </think>): a choice's option letter (named, or the option whose text the answer is; else a short answer as
    written), a number with its unit, a 3D-box or text answer as written. NULL when there is none to give (empty, or
    a long sentence where a letter or a number belongs): such a row cannot be scored, and RL formats leave it out
    (see left_out_sql)."""
    # The text after the last </think> (the regex only where there is one: most answers have no trace).
    final = (f"trim(CASE WHEN contains(answer, '{THINK_CLOSE}') THEN regexp_replace(answer, '(?s)^.*{THINK_CLOSE}', '')"
             f" ELSE coalesce(answer, '') END, {WHITESPACE})")
    letter = " ".join(f"WHEN regexp_matches({final}, {_q(rx)}) THEN upper(regexp_extract({final}, {_q(rx)}, 1))"
                      for rx in (_LONE_LETTER, _OPENING_LETTER, _CLOSING_LETTER))
    whole_number, has_digit = _q(r"\s*" + _NUMBER_UNIT + r"\s*\.?"), _q(r"\d")
    number = f"nullif(trim(regexp_extract({final}, {_q('(' + _NUMBER_UNIT + ')')}, 1)), '')"
    words = f"len(string_split({final}, ' '))"
    option = (f"regexp_extract_all(coalesce(plain_question, ''), {_q(_OPTION_LINE)}, 1)[list_position(list_transform("
              f"regexp_extract_all(coalesce(plain_question, ''), {_q(_OPTION_LINE)}, 2), lambda o: lower(o)), "
              f"lower(rtrim({final}, '.')))]")
    # The final answer is written out where it is used, not named through a lambda: a row-by-row lambda would undo
    # DuckDB's work once per distinct answer (answers repeat: dictionary vectors).
    return f"""CASE
      WHEN {final} = '' THEN NULL
      WHEN answer_kind = 'choice' THEN CASE {letter} WHEN {option} IS NOT NULL THEN {option}
        WHEN {words} <= 5 THEN {final} END
      WHEN answer_kind = 'number' THEN CASE WHEN TRY_CAST({final} AS DOUBLE) IS NOT NULL THEN {final}
        WHEN regexp_full_match({final}, {whole_number}) THEN rtrim({final}, '.')
        WHEN {words} <= 6 AND regexp_matches({final}, {has_digit}) THEN {number} END
      ELSE {final} END"""


def left_out_sql(ground_truth: str = "ground_truth") -> str:
    """Why an RL row is left out: its ground truth cannot be given (see ground_truth_sql); NULL when it can."""
    return (f"CASE WHEN {ground_truth} IS NULL THEN 'RL ground truth cannot be parsed: ' || coalesce(answer_kind, "
            "'(no kind)') || ' answer ' || coalesce(to_json(left(answer, 80))::VARCHAR, 'missing') END")


def embedded_items(media: list[dict], data: list[bytes], kinds: tuple[str, ...] = ("image", "video")) -> list[dict]:
    """{bytes, path} structs for a row's media of the given kinds, in the row's order (path as in the source)."""
    return [{"bytes": b, "path": m.get("path") or ""} for m, b in zip(media, data) if m.get("kind") in kinds]


def embedded_images(media: list[list[dict]], data: list[list[bytes]], ctx: FormatContext) -> dict[str, pa.Array]:
    """VST's ``images`` column: every item embedded in the row's order (VST keeps a video as images[0], the MP4)."""
    return {"images": pa.array([embedded_items(m, d) for m, d in zip(media, data)], IMAGES)}
