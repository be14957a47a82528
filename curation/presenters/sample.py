"""What the Sample page (and the Browse table) show: geometry, boxes drawn on images, 3D scene, conversation."""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw, ImageFont

from curation.media.scenes import SceneCloud
from curation.presenters.search_hits import hit_spans, search_terms
from curation.vst.geometry import BOX_EDGES, Box3D, Camera, Pose, frustum_corners
from curation.vst.reasoning import split_reasoning
from curation.vst.spatial_text import objects_named, parse_boxes_2d, parse_boxes_3d, parse_camera
from curation.vst.vocabulary import (
    ASSISTANT,
    ASSISTANT_ROLES,
    HUMAN,
    HUMAN_ROLES,
    PLACEHOLDER_RE,
    THINK_CLOSE,
    THINK_OPEN,
)

# Distinct, saturated colours; a label always gets the same one in the image and in the 3D view.
# No yellows: yellow is the highlight.
PALETTE: list[tuple[int, int, int]] = [
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 220, 230),
    (240, 50, 230), (0, 128, 128), (170, 110, 40), (128, 0, 0), (0, 0, 128), (100, 100, 255),
    (255, 105, 180), (40, 40, 40), (0, 90, 40), (200, 80, 0),
]
HIGHLIGHT = (255, 230, 0)  # outline drawn around objects the question names
NEAR = 0.05  # metres: edges are clipped here so boxes partly behind the camera still draw correctly


def label_colour(label: str) -> tuple[int, int, int]:
    return PALETTE[zlib.crc32((label or "").strip().lower().encode()) % len(PALETTE)]


def _light(c: tuple[int, int, int]) -> tuple[int, int, int]:
    # Label text on a dark plate: lift dark palette colours so they stay readable.
    return tuple(int(v + (255 - v) * 0.45) for v in c)  # type: ignore[return-value]


def _rgb(c: tuple[int, int, int]) -> str:
    return f"rgb({c[0]},{c[1]},{c[2]})"


# --- a sample's geometry -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledBox:
    """A 3D box to draw, where it was written ('answer' or 'question'), whether the question names it, and the image
    whose camera frame it is stated in."""

    label: str
    box: Box3D
    source: str  # 'answer' | 'question' | 'scene' (an annotated object of the sample's scene)
    named: bool = False
    image: int | None = 0  # index among the sample's images; None when the text does not say which
    selected: bool = False  # picked in the box table: drawn highlighted, the others faded


@dataclass(frozen=True)
class Rect2D:
    label: str
    rect: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels
    named: bool = False
    image: int | None = 0  # index among the sample's images; None when the text does not say which


@dataclass(frozen=True)
class SampleGeometry:
    """The camera a sample's prompt states and the boxes in its text, ready to draw."""

    camera: Camera | None
    camera_stated_as: str | None
    boxes: list[LabelledBox] = field(default_factory=list)
    rects: list[Rect2D] = field(default_factory=list)
    named: list[str] = field(default_factory=list)  # labels the question mentions, in order
    notes: list[str] = field(default_factory=list)  # what could not be drawn, and why
    n_images: int = 1


# --- which image a box belongs to ----------------------------------------------------------------------

_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
             "ninth": 9, "tenth": 10, "last": -1}
# "the second image", "2nd view", "Image-2", "image 2", "Image #2", "<image 2>", "img2", "camera 2". A number of
# three digits ("the image is 400x300") is a size, not an image.
_IMAGE_REF = re.compile(
    r"\b(?:(?P<word>first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|last|\d{1,2}(?:st|nd|rd|th))"
    r"[\s-]+(?:image|view|picture|photo|camera)s?\b"
    r"|(?:image|view|picture|photo|img|camera)[\s_#-]*(?P<num>\d{1,2})(?![\d.,]\d|\s*[x×X*]\s*\d))",
    re.IGNORECASE)
# Sentence ends ("." between digits is a decimal point, not an end).
_SENTENCE_END = re.compile(r"(?<!\d)[.?!;](?!\d)|\n")
# "in the camera coordinate system of the first image": the frame a text states its 3D boxes in.
_FRAME_OF = re.compile(r"(?:coordinate\s+system|coordinates|coordinate\s+frame|frame|reference)\s+(?:of|in)\s+"
                       r"(?:the\s+)?$", re.IGNORECASE)
# A box object of a JSON answer may say which image it is in: {"bbox_3d": [...], "image": 2}.
_IMAGE_KEY = re.compile(r"[\"'](?:image|image_id|image_index|view)[\"']\s*:\s*[\"']?(\d{1,2})\b")


@dataclass(frozen=True)
class ImageMention:
    start: int
    end: int
    image: int  # index among the sample's images (0 = the first)


def image_mentions(text: str, n_images: int) -> list[ImageMention]:
    """Where a text names one of a sample's images ("the second image", "Image-2", ...), in order of appearance;
    names of images the sample does not have are left out."""
    out = []
    for m in _IMAGE_REF.finditer(text or ""):
        word = (m.group("word") or "").lower()
        if m.group("num"):
            k = int(m.group("num"))
        elif word in _ORDINALS:
            k = _ORDINALS[word] if _ORDINALS[word] > 0 else n_images
        else:
            k = int(re.sub(r"\D", "", word))
        if 1 <= k <= n_images:
            out.append(ImageMention(m.start(), m.end(), k - 1))
    return out


def _sentence(text: str, pos: int) -> tuple[int, int]:
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    start = max((e for e in ends if e <= pos), default=0)
    end = min((e for e in ends if e > pos), default=len(text))
    return start, end


def image_at(text: str, pos: int, mentions: Sequence[ImageMention]) -> int | None:
    """The image a box written at ``pos`` belongs to: the image its sentence names last before it ("the second
    image shows a lamp (bbox [...])"), else the first one it names after it ("bbox [...] in the first image")."""
    start, end = _sentence(text, pos)
    before = [m for m in mentions if start <= m.start and m.end <= pos]
    if before:
        return before[-1].image
    after = [m for m in mentions if pos <= m.start < end]
    return after[0].image if after else None


def stated_frame(text: str, mentions: Sequence[ImageMention]) -> int | None:
    """The image whose camera frame a text states its 3D boxes in ("... coordinate system of the first image")."""
    for m in mentions:
        if _FRAME_OF.search(text[max(0, m.start - 60):m.start]):
            return m.image
    return None


def asked_image(question: str, mentions: Sequence[ImageMention]) -> int | None:
    """The image a question asks about: the last one its last question sentence names ("Which bounding box marks
    it in the second image?"), for boxes in the answer."""
    for q in reversed(list(re.finditer(r"[^.?!\n]*\?", question or ""))):
        inside = [m for m in mentions if q.start() <= m.start < q.end()]
        if inside:
            return inside[-1].image
    return None


def _image_count(row: Mapping) -> int:
    return sum(1 for m in row.get("media") or [] if (m.get("kind") or "image") == "image")


def _turn_texts(row: Mapping) -> tuple[str, str]:
    """(all human text, all assistant final answers) of a row; falls back to question / answer."""
    human, answers = [], []
    for t in row.get("turns") or []:
        role = (t.get("role") or "").lower()
        text = t.get("text") or ""
        if role in HUMAN_ROLES:
            human.append(PLACEHOLDER_RE.sub("", text))
        elif role in ASSISTANT_ROLES:
            answers.append(split_reasoning(text).final)
    return ("\n".join(human) or row.get("question") or "", "\n".join(answers) or row.get("answer") or "")


def _first_image_size(row: Mapping) -> tuple[int | None, int | None]:
    for m in row.get("media") or []:
        if (m.get("kind") or "image") == "image":
            w, h = m.get("width"), m.get("height")
            return (int(w) if w and w > 0 else None, int(h) if h and h > 0 else None)
    return None, None


def _catalog_camera(row: Mapping, width: int | None, height: int | None) -> tuple[Camera | None, str | None]:
    cam = row.get("camera") or None
    if not cam or any(cam.get(k) is None for k in ("fx", "fy", "cx", "cy")):
        return None, None
    w = cam.get("width") or width or round(2 * cam["cx"])
    h = cam.get("height") or height or round(2 * cam["cy"])
    if cam["fx"] <= 0 or cam["fy"] <= 0 or not w or not h:
        return None, None
    return Camera(float(cam["fx"]), float(cam["fy"]), float(cam["cx"]), float(cam["cy"]), int(w), int(h)), (
        cam.get("stated_as") or "intrinsics"
    )


def sample_geometry(row: Mapping) -> SampleGeometry:
    """Camera from the catalog (else parsed from the prompt), 3D boxes from the answer (and any stated in the
    question), 2D boxes from the text, and the labels the question names (to highlight)."""
    human, answer = _turn_texts(row)
    width, height = _first_image_size(row)
    n_images = _image_count(row)
    single = 0 if n_images <= 1 else None
    in_human, in_answer = image_mentions(human, n_images), image_mentions(answer, n_images)
    frame = stated_frame(human, in_human)
    if frame is None:
        frame = stated_frame(answer, in_answer)
    camera, stated_as = _catalog_camera(row, width, height)
    if camera is None:
        stated = parse_camera(human, width, height)
        camera, stated_as = (stated.camera, stated.stated_as) if stated else (None, None)
    notes: list[str] = []
    found: list[tuple[str, Box3D, str, int | None]] = []
    for source, text, mentions in (("answer", answer, in_answer), ("question", human, in_human)):
        for pb in parse_boxes_3d(text, camera):
            if pb.box is None:
                notes.append(f"{source} box {pb.label or '(no label)'} ({pb.encoding}, {len(pb.values)} numbers) "
                             "cannot be drawn")
                continue
            key = _IMAGE_KEY.search(text, pb.start, text.find("}", pb.start) + 1 or len(text)) if pb.start >= 0 \
                else None
            image = int(key.group(1)) - 1 if key and 0 < int(key.group(1)) <= n_images else None
            for guess in (image_at(text, pb.start, mentions) if pb.start >= 0 else None, frame, single):
                image = guess if image is None else image
            found.append((pb.label or "object", pb.box, source, image))
    if not any(src == "answer" for _, _, src, _ in found):
        # The catalog's own parse (ingest SQL) for answers our text parser did not read.
        for b in row.get("boxes_3d") or []:
            values = b.get("bbox") or []
            if len(values) == 9 and all(v is not None for v in values):
                found.append((b.get("label") or "object", Box3D.from_vst(b.get("label") or "object", values),
                              "answer", frame if frame is not None else single))
    asked = asked_image(human, in_human)
    rects_raw: list[tuple[str, tuple, int | None]] = []
    for text, mentions, fallback in ((human, in_human, single), (answer, in_answer, asked)):
        for r in parse_boxes_2d(text):
            image = image_at(text, r.start, mentions)
            rects_raw.append((r.label, tuple(r.box), image if image is not None else
                              (fallback if fallback is not None else single)))
    if not rects_raw:
        rects_raw = [(b.get("label") or "", tuple(b["bbox"]), single) for b in row.get("boxes_2d") or []
                     if b.get("bbox") and len(b["bbox"]) == 4 and all(v is not None for v in b["bbox"])]
    labels = [lab for lab, _, _, _ in found] + [lab for lab, _, _ in rects_raw]
    named = objects_named(row.get("question") or human, labels)
    named_set = {n.lower() for n in named}
    boxes = [LabelledBox(lab, box, src, lab.lower() in named_set, image) for lab, box, src, image in found]
    rects = [Rect2D(lab, rect, lab.lower() in named_set, image)  # type: ignore[arg-type]
             for lab, rect, image in rects_raw]
    if boxes and camera is None:
        notes.append("the prompt states no camera: 3D boxes are shown in the 3D view only, not in the image")
    unplaced = list(dict.fromkeys([b.label for b in boxes if b.image is None] + [r.label for r in rects
                                                                               if r.image is None]))
    if unplaced:
        notes.append(f"the text does not say which of the {n_images} images "
                     f"{'box' if len(unplaced) == 1 else 'boxes'} {', '.join(unplaced)} "
                     f"{'belongs' if len(unplaced) == 1 else 'belong'} to: drawn in image 1, whose camera frame "
                     "multi-image 3D boxes are stated in by default")
    return SampleGeometry(camera, stated_as, boxes, rects, named, notes, max(n_images, 1))


def on_image(geometry: SampleGeometry, image: int) -> SampleGeometry:
    """The boxes drawn into image ``image`` (0 = the first): those stated there; the first image also takes the
    boxes whose image the text does not say (their note says so)."""
    def here(k: int | None) -> bool:
        return (k if k is not None else 0) == image

    return replace(geometry, boxes=[b for b in geometry.boxes if here(b.image)],
                   rects=[r for r in geometry.rects if here(r.image)])


def boxes_per_image(geometry: SampleGeometry) -> list[int]:
    """How many boxes (3D and 2D) each image gets, image by image."""
    counts = [0] * max(geometry.n_images, 1)
    for k in [b.image for b in geometry.boxes] + [r.image for r in geometry.rects]:
        counts[min(k or 0, len(counts) - 1)] += 1
    return counts


def with_scene_objects(geometry: SampleGeometry, question: str, objects: Sequence[Box3D],
                       camera: Camera | None = None) -> SampleGeometry:
    """Add the scene's annotated objects that the question names but the text gives no box for (source 'scene'),
    so a depth or distance question shows which objects it means, in the image and in 3D. ``camera`` (the scene
    file's intrinsics) stands in when the prompt states none."""
    if geometry.camera is None and camera is not None and (objects or geometry.boxes):
        geometry = replace(geometry, camera=camera, camera_stated_as="scene file",
                           notes=[n for n in geometry.notes if "states no camera" not in n])
    if not objects:
        return geometry
    have = {b.label.lower() for b in geometry.boxes}
    named = objects_named(question, sorted({o.label for o in objects} | set(geometry.named)))
    extra = [LabelledBox(o.label, o, "scene", True) for o in objects
             if o.label in named and o.label.lower() not in have]
    if not extra:
        return geometry
    names = list(dict.fromkeys([*geometry.named, *named]))
    return replace(geometry, boxes=[*geometry.boxes, *extra], named=names)


# --- a 3D-box answer as a table, and back -------------------------------------------------------------

# The box table's columns: the VST box's nine numbers in the units a curator reads (metres, degrees).
BOX_COLUMNS = ["label", "x (m)", "y (m)", "z (m)", "x size (m)", "y size (m)", "z size (m)", "pitch (°)", "yaw (°)",
               "roll (°)"]
_NUMBER_COLUMNS = BOX_COLUMNS[1:]


class BoxEditError(ValueError):
    """An edited box table that cannot become an answer; the message names the row and the column."""


def box_table(geometry: SampleGeometry) -> list[dict]:
    """One row per 3D box (answer boxes first, in the order the answer gives them): label, centre and size in metres,
    angles in degrees (VST stores them as fractions of pi), where it comes from and which image it is drawn in."""
    rows = []
    for b in geometry.boxes:
        row = {"label": b.label, **dict(zip(_NUMBER_COLUMNS, [*b.box.center, *b.box.size],  strict=False))}
        row.update({c: a * 180.0 for c, a in zip(BOX_COLUMNS[7:], b.box.angles, strict=True)})
        row["from"] = b.source
        row["image"] = f"image {b.image + 1}" if b.image is not None else "not stated"
        rows.append(row)
    return rows


def select_box(geometry: SampleGeometry, index: int | None) -> SampleGeometry:
    """The geometry with box ``index`` (a row of box_table) marked selected; unchanged for None or a stale index."""
    if index is None or not 0 <= index < len(geometry.boxes):
        return geometry
    return replace(geometry, boxes=[replace(b, selected=i == index) for i, b in enumerate(geometry.boxes)])


def answer_boxes(geometry: SampleGeometry) -> list[dict]:
    """The answer's boxes as editable rows (box_table's columns, no provenance)."""
    return [{k: v for k, v in row.items() if k in BOX_COLUMNS}
            for row, b in zip(box_table(geometry), geometry.boxes, strict=True) if b.source == "answer"]


def boxes_from_answer(answer: str) -> list[dict] | None:
    """An answer's 3D boxes as editable rows (e.g. a fix saved earlier); None when it holds none."""
    parsed = [pb for pb in parse_boxes_3d(answer or "") if pb.box is not None]
    if not parsed:
        return None
    return answer_boxes(SampleGeometry(None, None, [LabelledBox(pb.label or "object", pb.box, "answer")
                                                    for pb in parsed]))


def _number(value: object, row: int, column: str) -> float:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        x = math.nan
    if not math.isfinite(x):
        raise BoxEditError(f"row {row}, {column}: {value!r} is not a number; type one (or delete the row)")
    return x


def boxes_answer(rows: Sequence[Mapping], fenced: bool = True) -> str:
    """Edited box rows as the answer VST writes: a (fenced) JSON list of ``{"bbox_3d": [9 numbers], "label": ...}``
    with angles back in fractions of pi. BoxEditError names the row and column of an empty label, a missing number
    or a size that is not positive."""
    items = []
    for i, r in enumerate(rows, start=1):
        label = str(r.get("label") or "").strip()
        if not label:
            raise BoxEditError(f"row {i}, label: empty; name the object (or delete the row)")
        values = [_number(r.get(c), i, c) for c in _NUMBER_COLUMNS]
        for c, v in zip(_NUMBER_COLUMNS[3:6], values[3:6], strict=True):
            if v <= 0:
                raise BoxEditError(f"row {i}, {c}: {v:g} is not a positive size; sizes are metres along the box's "
                                   "own axes")
        vst = [round(v, 4) for v in values[:6]] + [round(v / 180.0, 6) for v in values[6:]]
        items.append({"bbox_3d": vst, "label": label})
    text = json.dumps(items)
    return f"```json\n{text}\n```" if fenced else text


def is_fenced(answer: str | None) -> bool:
    return "```" in (answer or "")


# --- search hits in the turns ---------------------------------------------------------------------------

def search_hits(text: str, query: str) -> list[tuple[int, int]]:
    """Character spans of ``text`` that the full-text ``query`` matches, word by word as the index does (same
    stems: "chairs" finds "chair"); query syntax (AND, OR, NOT, field:) is not a word to find."""
    return hit_spans(text, search_terms(query))


# --- boxes drawn into an image -----------------------------------------------------------------------


def _clip_edge(a: np.ndarray, b: np.ndarray, near: float = NEAR) -> tuple[np.ndarray, np.ndarray] | None:
    """The part of segment a-b in front of the near plane (z >= near), or None."""
    if a[2] < near and b[2] < near:
        return None
    if a[2] >= near and b[2] >= near:
        return a, b
    t = (near - a[2]) / (b[2] - a[2])
    cut = a + t * (b - a)
    return (cut, b) if a[2] < near else (a, cut)


def project_box_edges(camera: Camera, box: Box3D) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """Pixel segments of a box's 12 edges (clipped at the near plane), in the camera's own pixel grid."""
    corners = box.corners()
    out = []
    for i, j in BOX_EDGES:
        seg = _clip_edge(corners[i], corners[j])
        if seg is None:
            continue
        pts = np.stack(seg)
        u = camera.fx * pts[:, 0] / pts[:, 2] + camera.cx
        v = camera.fy * pts[:, 1] / pts[:, 2] + camera.cy
        out.append(((float(u[0]), float(v[0])), (float(u[1]), float(v[1]))))
    return out


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    # DejaVu (Debian fonts-dejavu-core) has the star used for named objects; Pillow's own font does not.
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        pass
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType
        return ImageFont.load_default()


def _star(font) -> str:
    return "★ " if "DejaVu" in str(getattr(font, "path", "")) else "* "


def _dashed(draw: ImageDraw.ImageDraw, p: tuple[float, float], q: tuple[float, float], fill, width: int,
            dash: float = 8.0) -> None:
    length = math.dist(p, q)
    steps = max(1, int(length // dash))
    for k in range(0, steps, 2):
        t0, t1 = k / steps, min(1.0, (k + 1) / steps)
        draw.line([(p[0] + (q[0] - p[0]) * t0, p[1] + (q[1] - p[1]) * t0),
                   (p[0] + (q[0] - p[0]) * t1, p[1] + (q[1] - p[1]) * t1)], fill=fill, width=width)


def _clamp(pt: tuple[float, float], limit: float = 1e5) -> tuple[float, float]:
    return (max(-limit, min(limit, pt[0])), max(-limit, min(limit, pt[1])))


def draw_overlays(image: Image.Image, geometry: SampleGeometry, *, show_3d: bool = True, show_2d: bool = True,
                  min_side: int = 640) -> Image.Image:
    """The image (enlarged to at least ``min_side`` on its long side, so lines stay legible) with the 3D boxes
    projected through the stated camera and the 2D boxes of the text drawn in; named objects get a yellow halo."""
    base = image.convert("RGB")
    scale_up = max(1, min(4, math.ceil(min_side / max(base.size)))) if max(base.size) < min_side else 1
    if scale_up > 1:
        base = base.resize((base.width * scale_up, base.height * scale_up), Image.Resampling.BILINEAR)
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    font = _font(max(12, base.width // 45))
    any_named = any(b.named for b in geometry.boxes) or any(r.named for r in geometry.rects)
    any_selected = any(b.selected for b in geometry.boxes)
    labels: list[tuple[tuple[float, float], str, tuple[int, int, int], bool]] = []
    cam = geometry.camera
    if show_3d and cam is not None:
        sx, sy = base.width / cam.width, base.height / cam.height  # the stated camera may be another resolution
        for lb in geometry.boxes:
            segs = [(_clamp((a[0] * sx, a[1] * sy)), _clamp((b[0] * sx, b[1] * sy)))
                    for a, b in project_box_edges(cam, lb.box)]
            if not segs:
                continue
            colour = label_colour(lb.label)
            alpha = 255 if lb.named or not any_named else 130
            if any_selected:  # the box picked in the table stands out, the others step back
                alpha = 255 if lb.selected else 60
            width = max(2, base.width // 220) + (1 if lb.named else 0) + (2 if lb.selected else 0)
            for a, b in segs:
                if lb.selected:
                    draw.line([a, b], fill=(255, 255, 255, 255), width=width + 8)
                if lb.named or lb.selected:
                    draw.line([a, b], fill=(*HIGHLIGHT, 255), width=width + 6)
                if lb.source in ("question", "scene"):
                    _dashed(draw, a, b, (*colour, alpha), width)
                else:
                    draw.line([a, b], fill=(*colour, alpha), width=width)
            top = min((p for seg in segs for p in seg), key=lambda p: p[1])
            labels.append((top, lb.label if lb.source == "answer" else f"{lb.label} ({lb.source})", colour,
                           lb.named or lb.selected))
    if show_2d:
        for r in geometry.rects:
            x1, y1, x2, y2 = (r.rect[0] * scale_up, r.rect[1] * scale_up, r.rect[2] * scale_up, r.rect[3] * scale_up)
            colour = label_colour(r.label)
            if r.named:
                draw.rectangle([x1, y1, x2, y2], outline=(*HIGHLIGHT, 255), width=6)
            draw.rectangle([x1, y1, x2, y2], outline=(*colour, 255), width=3)
            labels.append(((x1, y1), f"{r.label} (2D)", colour, r.named))
    for (x, y), text, colour, named in labels:
        text = _star(font) + text if named else text
        l_, t_, r_, b_ = draw.textbbox((0, 0), text, font=font)
        x = max(2.0, min(x, base.width - (r_ - l_) - 4.0))
        y = max(2.0, min(y - (b_ - t_) - 8, base.height - (b_ - t_) - 4.0))
        box = draw.textbbox((x, y), text, font=font)
        draw.rectangle([box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2], fill=(0, 0, 0, 180))
        draw.text((x, y), text, fill=(*(HIGHLIGHT if named else _light(colour)), 255), font=font)
    return Image.alpha_composite(base.convert("RGBA"), overlay).convert("RGB")


# --- the 3D scene ---------------------------------------------------------------------------------------


def _lines(segments: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, y, z arrays for one Scatter3d lines trace, segments separated by NaN gaps."""
    pts = []
    for a, b in segments:
        pts.extend([a, b, (np.nan, np.nan, np.nan)])
    arr = np.asarray(pts, dtype=float).reshape(-1, 3)
    return arr[:, 0], arr[:, 1], arr[:, 2]


def frustum_segments(camera: Camera | None, depth: float, pose: Pose | None = None) -> list[tuple]:
    """The 8 edges of a camera's viewing pyramid at ``depth`` metres (a unit-ish pyramid when no camera)."""
    cam = camera or Camera.from_fov(60.0, 45.0, 4, 3)
    c = frustum_corners(cam, depth)
    if pose is not None:
        c = pose.camera_to_world(c)
    apex, corners = c[0], c[1:]
    return [(apex, k) for k in corners] + [(corners[i], corners[(i + 1) % 4]) for i in range(4)]


def _palette_indices(colors: np.ndarray, n: int = 128) -> tuple[np.ndarray, list[list]]:
    """Per-point colours as indices into an adaptive palette (octree) and a matching plotly colorscale:
    one byte per point instead of an 'rgb(...)' string."""
    img = Image.fromarray(np.ascontiguousarray(colors.reshape(-1, 1, 3)), "RGB")
    q = img.quantize(colors=n, method=Image.Quantize.FASTOCTREE)
    idx = np.asarray(q, dtype=np.uint8).reshape(-1)
    pal = np.asarray(q.getpalette()[: 3 * n], dtype=int).reshape(-1, 3)
    used = int(idx.max()) + 1 if len(idx) else 1
    if used == 1:
        return idx, [[0.0, _rgb(tuple(pal[0]))], [1.0, _rgb(tuple(pal[0]))]]
    return idx, [[k / (used - 1), _rgb(tuple(pal[k]))] for k in range(used)]


def scene_figure(geometry: SampleGeometry, cloud: SceneCloud | None = None,
                 other_cameras: Sequence[tuple[str, Pose]] = (), height: int = 560,
                 point_size: float = 1.6, trajectory: Sequence[Pose] = (), frame: int | None = None) -> go.Figure:
    """Plotly 3D view in the sample's camera frame (X right, Y down, Z forward): the camera frustum(s), the 3D
    boxes with their labels (named objects thick, with a star) and the scene's point cloud when there is one.
    For a video, ``trajectory`` is its camera path and ``frame`` the frame whose camera is drawn in orange."""
    fig = go.Figure()
    depths = [lb.box.center[2] for lb in geometry.boxes if lb.box.center[2] > 0]
    fr_depth = float(np.clip(0.35 * max(depths), 0.4, 1.5)) if depths else 1.0
    x, y, z = _lines(frustum_segments(geometry.camera, fr_depth))
    fig.add_trace(go.Scatter3d(x=x, y=y, z=z, mode="lines", name="camera", line=dict(color="black", width=4),
                               hoverinfo="name"))
    for name, pose in other_cameras:
        x, y, z = _lines(frustum_segments(geometry.camera, fr_depth * 0.7, pose))
        fig.add_trace(go.Scatter3d(x=x, y=y, z=z, mode="lines", name=name, line=dict(color="grey", width=3),
                                   hoverinfo="name"))
    if trajectory:
        path = np.array([p.position for p in trajectory])
        fig.add_trace(go.Scatter3d(x=path[:, 0], y=path[:, 1], z=path[:, 2], mode="lines+markers",
                                   name="video camera path", line=dict(color="#f58518", width=4),
                                   marker=dict(size=3, color="#f58518"), hoverinfo="name"))
        if frame is not None and 0 <= frame < len(trajectory):
            x, y, z = _lines(frustum_segments(geometry.camera, fr_depth * 0.7, trajectory[frame]))
            fig.add_trace(go.Scatter3d(x=x, y=y, z=z, mode="lines", name=f"frame {frame + 1}",
                                       line=dict(color="#f58518", width=6), hoverinfo="name"))
    if cloud is not None and cloud.n_points:
        pts = cloud.points
        marker: dict = dict(size=point_size, opacity=0.85)
        if cloud.colors is not None and len(cloud.colors) == len(pts):
            idx, scale = _palette_indices(cloud.colors)
            marker.update(color=idx, colorscale=scale, cmin=0, cmax=max(len(scale) - 1, 1), showscale=False)
        else:
            marker.update(color=pts[:, 2], colorscale="Viridis", showscale=False)
        fig.add_trace(go.Scatter3d(x=pts[:, 0], y=pts[:, 1], z=pts[:, 2], mode="markers", marker=marker,
                                   name=f"scene {cloud.scene_id} ({cloud.n_points:,} pts)", hoverinfo="skip"))
    any_selected = any(b.selected for b in geometry.boxes)
    for lb in geometry.boxes:
        corners = lb.box.corners()
        colour = _rgb(HIGHLIGHT) if lb.selected else _rgb(label_colour(lb.label))
        x, y, z = _lines([(corners[i], corners[j]) for i, j in BOX_EDGES])
        name = f"★ {lb.label}" if lb.named else lb.label
        if lb.source != "answer":
            name += f" ({lb.source})"
        if lb.selected:
            name = f"▶ {name} (selected)"
        fig.add_trace(go.Scatter3d(
            x=x, y=y, z=z, mode="lines", name=name, legendgroup=name,
            opacity=0.35 if any_selected and not lb.selected else 1.0,
            line=dict(color=colour, width=12 if lb.selected else 9 if lb.named else 4,
                      dash="solid" if lb.source == "answer" else "dash"),
            hoverinfo="name"))
        top = corners[np.argmin(corners[:, 1])]
        fig.add_trace(go.Scatter3d(
            x=[top[0]], y=[top[1]], z=[top[2]], mode="text", text=[name], legendgroup=name, showlegend=False,
            textfont=dict(color=colour, size=16 if lb.named else 12), hoverinfo="skip"))
    fig.update_layout(
        height=height, margin=dict(l=0, r=0, t=30, b=0), legend=dict(itemsizing="constant"),
        scene=dict(
            aspectmode="data",
            xaxis_title="X right (m)", yaxis_title="Y down (m)", zaxis_title="Z forward (m)",
            # Look over the camera's shoulder: up is -Y in the camera frame.
            camera=dict(up=dict(x=0, y=-1, z=0), eye=dict(x=-0.6, y=-1.1, z=-1.6), center=dict(x=0, y=0, z=0)),
        ),
        uirevision="scene",  # keep the user's orbit across reruns
    )
    return fig


# --- the conversation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """A piece of a turn: text, or the place where an image / video sits (``media_index`` into row.media,
    None when the row has fewer media of that kind than placeholders)."""

    kind: str  # text | image | video
    text: str = ""
    ordinal: int = -1  # k-th placeholder of its kind in the conversation
    media_index: int | None = None


@dataclass(frozen=True)
class TurnView:
    role: str
    segments: list[Segment]
    reasoning: str | None = None  # text inside <think>...</think>; None when the turn has no think tag
    well_formed: bool | None = None  # for turns with think tags: exactly one block and an answer after it


def conversation_view(row: Mapping) -> list[TurnView]:
    """The turns split at their media placeholders, assistant turns with their reasoning set apart."""
    media = row.get("media") or []
    by_kind: dict[str, list[int]] = {"image": [], "video": []}
    for i, m in enumerate(media):
        by_kind.setdefault(m.get("kind") or "image", []).append(i)
    seen = {"image": 0, "video": 0}
    turns = list(row.get("turns") or [])
    if not turns and (row.get("question") or row.get("answer")):
        turns = [{"role": HUMAN, "text": row.get("question") or ""},
                 {"role": ASSISTANT, "text": row.get("answer") or ""}]
    out: list[TurnView] = []
    for t in turns:
        role = (t.get("role") or "").lower()
        text = t.get("text") or ""
        reasoning = well = None
        if role in ASSISTANT_ROLES and (THINK_OPEN in text or THINK_CLOSE in text):
            parts = split_reasoning(text)
            reasoning, well, text = parts.reasoning, parts.well_formed, parts.final
        segments: list[Segment] = []
        pos = 0
        for m in PLACEHOLDER_RE.finditer(text):
            if text[pos:m.start()].strip():
                segments.append(Segment("text", text[pos:m.start()].strip()))
            kind = "video" if "video" in m.group() else "image"
            k = seen[kind]
            seen[kind] += 1
            idx = by_kind.get(kind, [])
            segments.append(Segment(kind, m.group(), k, idx[k] if k < len(idx) else None))
            pos = m.end()
        if text[pos:].strip() or not segments:
            segments.append(Segment("text", text[pos:].strip()))
        out.append(TurnView(role, segments, reasoning, well))
    return out


def table_rows(rows: Sequence[Mapping], width: int = 140) -> list[dict]:
    """Rows for the Browse table: placeholders removed, whitespace collapsed, long text cut."""
    out = []
    for r in rows:
        d = dict(r)
        for key in ("question", "answer"):
            text = " ".join(PLACEHOLDER_RE.sub("", str(d.get(key) or "")).split())
            d[key] = text if len(text) <= width else text[: width - 1] + "…"
        out.append(d)
    return out
