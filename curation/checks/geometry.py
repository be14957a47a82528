"""Geometry checks: 3D boxes well formed, in front of the camera, inside the image, plausibly sized; 2D boxes inside."""

from __future__ import annotations

import pyarrow as pa

from curation.checks.base import SqlCheck
from curation.checks.priors import load_priors
from curation.checks.registry import register

# Boxes of an answer with their index, as SQL over ``batch s``.
_BOXES = "list_transform(s.boxes_3d, lambda b, i: struct_pack(i := i - 1, label := b.label, v := b.bbox))"


@register
class Bbox3dValid(SqlCheck):
    name = "geometry.bbox3d_valid"
    description = "Each 3D box has 9 finite numbers (or a 10-number quaternion box), positive sizes, angles in (-1, 1)."
    applies_to = "samples whose answer holds 3D boxes"
    columns = ("sample_id", "boxes_3d")
    score_meaning = "share of the answer's boxes that are valid"
    query = f"""
    WITH x AS (SELECT s.sample_id, {_BOXES} AS bx FROM batch s WHERE len(s.boxes_3d) > 0),
    y AS (
      SELECT sample_id, len(bx) AS n, list_filter(list_transform(bx, lambda b: struct_pack(i := b.i, label := b.label,
        why := CASE
          WHEN len(b.v) NOT IN (9, 10) THEN format('has {{}} numbers (9 expected)', len(b.v))
          WHEN len(list_filter(b.v, lambda n: n IS NULL OR isnan(n) OR isinf(n))) > 0 THEN 'has a non-finite number'
          WHEN least(b.v[4], b.v[5], b.v[6]) <= 0
            THEN format('has a non-positive size [{{}}, {{}}, {{}}]', b.v[4], b.v[5], b.v[6])
          WHEN len(b.v) = 9 AND greatest(abs(b.v[7]), abs(b.v[8]), abs(b.v[9])) >= 1
            THEN format('has an angle outside (-1, 1): [{{}}, {{}}, {{}}]', b.v[7], b.v[8], b.v[9])
        END)), lambda c: c.why IS NOT NULL) AS bad
      FROM x
    )
    SELECT sample_id, len(bad) = 0 AS passed, 1.0 - len(bad) / n AS score,
      CASE WHEN len(bad) = 0 THEN NULL
           ELSE format('answer: box {{}} ({{}}) {{}}', bad[1].i, bad[1].label, bad[1].why)
                || CASE WHEN len(bad) > 1 THEN format(' (and {{}} more)', len(bad) - 1) ELSE '' END END AS reason
    FROM y
    """


@register
class Bbox3dInView(SqlCheck):
    name = "geometry.bbox3d_in_view"
    description = "Each 3D box centre lies in front of the stated camera and projects inside the image."
    applies_to = "samples with 9-number 3D boxes and a stated camera"
    columns = ("sample_id", "boxes_3d", "camera")
    score_meaning = "share of the answer's box centres inside the view"
    query = f"""
    WITH x AS (
      SELECT s.sample_id, s.camera AS c,
             list_filter({_BOXES}, lambda b: len(b.v) = 9 AND b.v[1] IS NOT NULL AND b.v[2] IS NOT NULL
                                              AND b.v[3] IS NOT NULL) AS bx
      FROM batch s
      WHERE len(s.boxes_3d) > 0 AND s.camera.fx > 0 AND s.camera.fy > 0 AND s.camera.width > 0 AND s.camera.height > 0
    ), y AS (
      SELECT sample_id, c, len(bx) AS n, list_transform(bx, lambda b: struct_pack(i := b.i, label := b.label,
             z := b.v[3], u := CASE WHEN b.v[3] > 0 THEN c.fx * b.v[1] / b.v[3] + c.cx END,
             v := CASE WHEN b.v[3] > 0 THEN c.fy * b.v[2] / b.v[3] + c.cy END)) AS p
      FROM x WHERE len(bx) > 0
    ), z AS (
      SELECT sample_id, c, n,
        list_filter(p, lambda q: q.z <= 0 OR q.u < 0 OR q.u > c.width OR q.v < 0 OR q.v > c.height) AS bad
      FROM y
    )
    SELECT sample_id, len(bad) = 0 AS passed, 1.0 - len(bad) / n AS score,
      CASE WHEN len(bad) = 0 THEN NULL
           WHEN bad[1].z <= 0 THEN format('answer: box {{}} ({{}}) has its centre behind the camera (z = {{}} m)',
                                          bad[1].i, bad[1].label, bad[1].z)
           ELSE format('answer: box {{}} ({{}}) centre projects to ({{}}, {{}}), outside the {{}}x{{}} image',
                       bad[1].i, bad[1].label, round(bad[1].u), round(bad[1].v), c.width, c.height) END
        || CASE WHEN len(bad) > 1 THEN format(' (and {{}} more)', len(bad) - 1) ELSE '' END AS reason
    FROM z
    """


@register
class SizePlausible(SqlCheck):
    name = "geometry.size_plausible"
    description = "A box's longest side is plausible for its label (ranges per label in checks/priors.yaml)."
    applies_to = "samples with 3D boxes of a label the priors know"
    columns = ("sample_id", "boxes_3d")
    score_meaning = "largest ratio of a box's longest side to its label's typical longest side"
    query = """
    WITH b AS (
      SELECT s.sample_id, unnest(list_transform(s.boxes_3d, lambda b, i: struct_pack(i := i - 1,
             label := lower(trim(b.label)), v := b.bbox))) AS u
      FROM batch s WHERE len(s.boxes_3d) > 0
    ), j AS (
      SELECT b.sample_id, u.i AS i, u.label AS label, greatest(u.v[4], u.v[5], u.v[6]) AS longest, p.typical, p.lo, p.hi
      FROM b JOIN size_priors p ON p.label = u.label
      WHERE len(u.v) IN (9, 10) AND least(u.v[4], u.v[5], u.v[6]) > 0
    ), r AS (
      SELECT *, longest < lo OR longest > hi AS bad, longest / typical AS ratio FROM j
    )
    SELECT sample_id, passed, score,
      CASE WHEN NOT passed THEN format('answer: box {} ({}) has a longest side of {} m; a {} measures {}-{} m',
                                       w.i, w.label, round(w.longest, 2), w.label, w.lo, w.hi) END AS reason
    FROM (
      -- the worst box of each sample, worded once (not every box's sentence, then the worst's)
      SELECT sample_id, NOT bool_or(bad) AS passed, max(greatest(ratio, 1.0 / ratio)) AS score,
             arg_max(struct_pack(i := i, label := label, longest := longest, lo := lo, hi := hi),
                     bad::INT * 1e9 + ratio) AS w
      FROM r GROUP BY sample_id
    )
    """

    def tables(self) -> dict[str, pa.Table]:
        return {"size_priors": load_priors().sizes_table()}


@register
class Bbox2dInImage(SqlCheck):
    name = "geometry.bbox2d_in_image"
    description = "Each 2D box [x1, y1, x2, y2] has x1 < x2, y1 < y2 and lies inside the image (1 px slack)."
    applies_to = "samples whose text names 2D boxes, with known image size"
    columns = ("sample_id", "boxes_2d", "media", "camera")
    score_meaning = "share of the 2D boxes that are inside the image"
    query = """
    WITH x AS (
      SELECT s.sample_id, s.boxes_2d AS bx,
        coalesce(list_max(list_transform(list_filter(s.media, lambda m: m.kind = 'image'), lambda m: m.width)),
                 s.camera.width) AS w,
        coalesce(list_max(list_transform(list_filter(s.media, lambda m: m.kind = 'image'), lambda m: m.height)),
                 s.camera.height) AS h
      FROM batch s WHERE len(s.boxes_2d) > 0
    ), y AS (
      SELECT sample_id, w, h, len(bx) AS n, list_filter(list_transform(bx, lambda b, i: struct_pack(i := i - 1,
        label := b.label, v := b.bbox)), lambda b: len(b.v) <> 4 OR b.v[1] IS NULL OR b.v[2] IS NULL
          OR b.v[3] IS NULL OR b.v[4] IS NULL OR b.v[1] >= b.v[3] OR b.v[2] >= b.v[4]
          OR b.v[1] < -1 OR b.v[2] < -1 OR b.v[3] > w + 1 OR b.v[4] > h + 1) AS bad
      FROM x WHERE w > 0 AND h > 0
    )
    SELECT sample_id, len(bad) = 0 AS passed, 1.0 - len(bad) / n AS score,
      CASE WHEN len(bad) = 0 THEN NULL
           ELSE format('text: 2D box {} ({}) {} is not a box inside the {}x{} image', bad[1].i, bad[1].label,
                       bad[1].v::VARCHAR, w, h) END AS reason
    FROM y
    """
