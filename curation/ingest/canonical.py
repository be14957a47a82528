"""Raw rows -> canonical catalog rows, as one DuckDB SELECT so millions of rows are derived in vectorised SQL.

The Python parsers in ``reasoning``, ``answers`` and ``spatial_text`` are the reference for single rows
(checks, the app); tests hold both to the same answers on the demo data.
"""

from __future__ import annotations

from curation.vst.taxonomy import Taxonomy
from curation.vst.vocabulary import (
    THINK_CLOSE,
    THINK_OPEN,
    answer_turn_sql,
    human_turn_sql,
    placeholders_replaced_sql,
)

NUM = r"(-?[0-9]+(?:\.[0-9]+)?)"
WS = "chr(32) || chr(10) || chr(13) || chr(9)"  # trim() alone strips spaces only
_NUMBER_ANSWER = (
    r"^(?:about |approximately |around |~)?-?[0-9][0-9,]*(?:\.[0-9]+)?\s*"
    r"(?:m|cm|mm|km|meters?|metres?|centimeters?|centimetres?|millimeters?|feet|foot|ft|inches|inch|in)?\.?$"
)
_CHOICE_OPTIONS = r"(?m)^\s*\(?[A-F][\.\):]\s*\S"
_CHOICE_ANSWER = r"^\(?[A-Fa-f]\)?[\.:]?$"


def _stated(guard: str, pattern: str, sql_type: str) -> str:
    """A number stated in the prompt; the regex runs only on prompts that contain ``guard`` (most do not)."""
    return (
        f"CASE WHEN contains(first_human, '{guard}') THEN "
        f"TRY_CAST(nullif(regexp_extract(first_human, '{pattern}', 1), '') AS {sql_type}) END"
    )


_STATED = {  # numbers a prompt states about its camera
    "hfov": _stated("fov", r"hfov\)?\s*(?:is|=|:)?\s*" + NUM, "DOUBLE"),
    "vfov": _stated("fov", r"vfov\)?\s*(?:is|=|:)?\s*" + NUM, "DOUBLE"),
    "fx": _stated("f_x", r"f_x\s*[=:]\s*" + NUM, "DOUBLE"),
    "fy": _stated("f_x", r"f_y\s*[=:]\s*" + NUM, "DOUBLE"),
    "cx": _stated("f_x", r"c_x\s*[=:]\s*" + NUM, "DOUBLE"),
    "cy": _stated("f_x", r"c_y\s*[=:]\s*" + NUM, "DOUBLE"),
}


# The skill's inputs under their names in the SELECT below (the others are the catalog's own column names).
_SKILL_INPUTS = {"sample_group": "grp", "question": "q", "has_reasoning": "has_r", "rl_modes": "modes"}


def _first(turn_test: str) -> str:
    return f"list_filter(conversations, lambda t: {turn_test})[1].text"


def canonical_select(tax: Taxonomy, source: str = "staged") -> str:
    """SELECT producing samples' columns (in db.catalog.SAMPLE_COLUMNS order) from a staged raw relation.

    ``source`` must have the raw columns (curation.ingest.readers.raw.RAW_SCHEMA) plus ``dataset``, ``subset``,
    ``ingest_run`` and ``sample_id``.
    """
    return f"""
WITH base AS (
  SELECT *,
    {_first(human_turn_sql())} AS first_human,
    {_first(answer_turn_sql())} AS first_answer,
    len(list_filter(media, lambda m: m.kind = 'image')) AS n_img,
    len(list_filter(media, lambda m: m.kind = 'video')) AS n_vid
  FROM {source}
), parsed AS (
  SELECT *,
    trim({placeholders_replaced_sql("coalesce(first_human, '')")}, {WS}) AS q,
    CASE WHEN contains(coalesce(first_answer, ''), '{THINK_CLOSE}')
         THEN trim(regexp_extract(first_answer, '(?s).*{THINK_CLOSE}(.*)$', 1), {WS})
         ELSE trim(coalesce(first_answer, ''), {WS}) END AS a,
    coalesce(thought, nullif(regexp_extract(coalesce(first_answer, ''), '(?s){THINK_OPEN}(.*?){THINK_CLOSE}', 1), ''))
      AS r,
    thought IS NOT NULL OR contains(coalesce(first_answer, ''), '{THINK_OPEN}') AS has_r,
    CASE WHEN n_vid > 0 THEN 'video' WHEN n_img > 1 THEN 'multi' WHEN n_img = 1 THEN 'single' ELSE 'text' END AS grp,
    CASE WHEN json_valid(meta_info) THEN meta_info END AS meta_json,
    {_STATED["hfov"]} AS hfov,
    {_STATED["vfov"]} AS vfov,
    -- "W x H pixels": one regex for both numbers (two cost twice: no literal prefix for RE2 to skip ahead to)
    CASE WHEN contains(first_human, 'pixels') THEN
      regexp_extract(first_human, '([0-9]+)\\s*[x×]\\s*([0-9]+)\\s*pixels', ['w', 'h']) END AS stated_px,
    {_STATED["fx"]} AS fx,
    {_STATED["fy"]} AS fy,
    {_STATED["cx"]} AS cx,
    {_STATED["cy"]} AS cy,
    list_filter(media, lambda m: m.kind = 'image')[1] AS img0
  FROM base
), cams AS (
  SELECT *,
    CASE WHEN json_type(meta_json) = 'OBJECT' THEN meta_json END AS meta_obj,
    CASE json_type(meta_json, '$.mode')
      WHEN 'ARRAY' THEN json_extract_string(meta_json, '$.mode[*]')
      WHEN 'VARCHAR' THEN [json_extract_string(meta_json, '$.mode')]
    END AS modes,
    -- A stated size or principal point past an INTEGER's range is ignored and recorded (camera_out_of_range).
    coalesce(TRY_CAST(nullif(stated_px.w, '') AS INTEGER), img0.width, TRY_CAST(round(2 * cx) AS INTEGER)) AS cam_w,
    coalesce(TRY_CAST(nullif(stated_px.h, '') AS INTEGER), img0.height, TRY_CAST(round(2 * cy) AS INTEGER)) AS cam_h,
    coalesce(nullif(stated_px.w, '') IS NOT NULL AND TRY_CAST(stated_px.w AS INTEGER) IS NULL
      OR nullif(stated_px.h, '') IS NOT NULL AND TRY_CAST(stated_px.h AS INTEGER) IS NULL
      OR cx IS NOT NULL AND TRY_CAST(round(2 * cx) AS INTEGER) IS NULL
      OR cy IS NOT NULL AND TRY_CAST(round(2 * cy) AS INTEGER) IS NULL, false) AS camera_too_large
  FROM parsed
)
SELECT
  sample_id,
  source_id,
  dataset,
  subset,
  grp AS sample_group,
  {tax.skill_sql(_SKILL_INPUTS)} AS skill,
  data_source,
  {tax.source_sql("data_source")} AS source,
  type,
  kind,
  conversations AS turns,
  len(conversations) AS n_turns,
  q AS question,
  a AS answer,
  r AS reasoning,
  has_r AS has_reasoning,
  CASE
    WHEN contains(a, 'bbox_3d') OR contains(a, '<3dbbox>') THEN 'bbox3d'
    WHEN regexp_matches(q, '{_CHOICE_OPTIONS}') OR regexp_matches(a, '{_CHOICE_ANSWER}') THEN 'choice'
    WHEN regexp_matches(a, '{_NUMBER_ANSWER}', 'i') THEN 'number'
    ELSE 'text' END AS answer_kind,
  modes AS rl_modes,
  json_extract_string(meta_obj, '$.question_type') AS question_type,
  meta_info,
  media,
  n_img AS n_images,
  n_vid AS n_videos,
  CASE
    WHEN hfov IS NOT NULL AND vfov IS NOT NULL AND cam_w IS NOT NULL AND cam_h IS NOT NULL THEN struct_pack(
      fx := (cam_w / 2.0) / tan(radians(hfov) / 2), fy := (cam_h / 2.0) / tan(radians(vfov) / 2),
      cx := cam_w / 2.0, cy := cam_h / 2.0, width := cam_w, height := cam_h, stated_as := 'fov')
    WHEN fx IS NOT NULL AND fy IS NOT NULL AND cx IS NOT NULL AND cy IS NOT NULL THEN struct_pack(
      fx := fx, fy := fy, cx := cx, cy := cy, width := cam_w, height := cam_h, stated_as := 'intrinsics')
  END AS camera,
  CASE
    WHEN contains(a, 'bbox_3d') THEN list_transform(
      try(from_json(regexp_extract(a, '(?s)(\\[.*\\])', 1), '[{{"label": "VARCHAR", "bbox_3d": "DOUBLE[]"}}]')),
      lambda b: struct_pack(label := b.label, bbox := b.bbox_3d,
        encoding := CASE len(b.bbox_3d) WHEN 9 THEN 'euler9' WHEN 10 THEN 'quat10' ELSE 'invalid' END))
    WHEN contains(a, '<3dbbox>') THEN list_transform(
      regexp_extract_all(a, '<3dbbox>([^<]*)</3dbbox>', 1),
      lambda s: struct_pack(label := '', bbox := list_transform(
        string_split_regex(trim(s), '[\\s,]+'), lambda v: TRY_CAST(v AS DOUBLE)), encoding := 'tag9'))
  END AS boxes_3d,
  CASE WHEN NOT contains(coalesce(first_human, '') || a, 'represented by bbox') THEN [] ELSE list_transform(
    regexp_extract_all(coalesce(first_human, '') || ' ' || a, '(\\w+) \\(represented by bbox \\[[-0-9., ]+\\]\\)', 0),
    lambda s: struct_pack(label := regexp_extract(s, '^(\\w+)', 1),
      bbox := list_transform(string_split(regexp_extract(s, '\\[([-0-9., ]+)\\]', 1), ','),
                             lambda v: TRY_CAST(trim(v) AS DOUBLE)))) END AS boxes_2d,
  {tax.scene_sql("array_to_string(list_transform(media, lambda m: coalesce(m.path, '')), ' ')")} AS scene_id,
  content_hash,
  CASE WHEN problems IS NULL AND meta_json IS NOT DISTINCT FROM meta_info AND NOT camera_too_large
            AND NOT coalesce(list_bool_or(list_transform(media, lambda m: m.problem IS NOT NULL)), false) THEN []
  ELSE list_concat(
    coalesce(problems, []),
    CASE WHEN meta_info IS NOT NULL AND NOT json_valid(meta_info) THEN
      [struct_pack(code := 'invalid_meta_info', field := 'meta_info', message := 'meta_info is not valid JSON')]
    ELSE [] END,
    CASE WHEN camera_too_large THEN
      [struct_pack(code := 'camera_out_of_range', field := 'question', message := 'the prompt states an image size '
        || 'or principal point (c_x, c_y) too large for a pixel count; the number is ignored: fix it in the shard')]
    ELSE [] END,
    list_transform(
      list_filter(list_transform(media, lambda m, i: struct_pack(m := m, i := i)), lambda x: x.m.problem IS NOT NULL),
      lambda x: struct_pack(code := 'media_' || split_part(x.m.problem, ':', 1), field := 'media[' || (x.i - 1) || ']',
        message := x.m.kind || ' ' || coalesce(nullif(x.m.path, ''), '(embedded)') || ': ' || x.m.problem))
  ) END AS problems,
  source_file,
  source_format,
  row_group,
  row_in_group,
  row_index,
  ingest_run
FROM cams
"""


def content_hash_sql() -> str:
    """Content identity of a raw row: its turns plus its media digests (DESIGN.md: stable sample identity)."""
    return (
        "md5(array_to_string(list_transform(conversations, lambda t: coalesce(t.role, '') || chr(31) || "
        "coalesce(t.text, '')), chr(30)) || chr(29) || coalesce(thought, '') || chr(29) || "
        "array_to_string(list_transform(media, lambda m: coalesce(m.digest, m.path, '')), chr(30)))"
    )
