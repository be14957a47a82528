"""Cameras and boxes stated in question and answer text, parsed into geometry (vst-format.md §4)."""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from curation.vst.geometry import Box3D, Camera

BOX_ENCODINGS = ("euler9", "uvd9", "quat10", "tag9", "invalid")

_NUM = r"(?<![\d.])[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_SEP = r"\s*(?:is|of|:|=)?\s*(?:about\s+|approximately\s+)?"
_DEG = r"\s*(?:°|degrees?|deg)?"
_HFOV = re.compile(
    rf"(?:\bhfov\b|horizontal\s+field\s+of\s+view)(?:\s*\(\s*hfov\s*\))?{_SEP}({_NUM}){_DEG}", re.IGNORECASE
)
_VFOV = re.compile(
    rf"(?:\bvfov\b|vertical\s+field\s+of\s+view)(?:\s*\(\s*vfov\s*\))?{_SEP}({_NUM}){_DEG}", re.IGNORECASE
)
_SIZE_WXH = re.compile(r"(?<!\d)(\d+)\s*[x×X*]\s*(\d+)\s*(?:pixels?|px)\b", re.IGNORECASE)
_SIZE_WORDS = re.compile(
    r"\bwidth\s*(?:is|of|:|=)?\s*(\d+).{0,40}?\bheight\s*(?:is|of|:|=)?\s*(\d+)", re.IGNORECASE | re.DOTALL
)
_SIZE_WIDE = re.compile(
    r"(?<!\d)(\d+)\s*(?:pixels?|px)\s+wide\b.{0,40}?(\d+)\s*(?:pixels?|px)\s+(?:high|tall)\b", re.IGNORECASE | re.DOTALL
)


def _intrinsic(name: str) -> re.Pattern[str]:
    # f_x, fx, f_{x}, "f_x is"; a word boundary keeps "fx" out of longer words.
    return re.compile(rf"(?<![A-Za-z]){name[0]}_?\{{?{name[1]}\}}?(?![A-Za-z]){_SEP}({_NUM})", re.IGNORECASE)


_FX, _FY, _CX, _CY = (_intrinsic(n) for n in ("fx", "fy", "cx", "cy"))
_K_MATRIX = re.compile(
    rf"intrinsic.{{0,80}}?\[\s*\[\s*({_NUM})\s*,\s*{_NUM}\s*,\s*({_NUM})\s*\]\s*,"
    rf"\s*\[\s*{_NUM}\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]",
    re.IGNORECASE | re.DOTALL,
)

# JSON-ish objects holding a bbox_3d key (fenced, bare, single-quoted or inside a broken list).
_BOX_OBJECT = re.compile(r"\{[^{}]*?[\"']bbox_3d[\"'][^{}]*\}", re.DOTALL)
_BOX_KEY_VALUES = re.compile(r"[\"']bbox_3d[\"']\s*:\s*\[([^\]]*)\]")
_LABEL_KEY = re.compile(r"[\"']label[\"']\s*:\s*[\"']([^\"']*)[\"']")
_TAG = re.compile(r"<3dbbox>(.*?)</3dbbox>", re.DOTALL)
_MENTION_3D = re.compile(r"(?<![\"'\w])bbox_3d(?![\"'\w])\s*(?:[:=]|is|of)?\s*\[([^\]\[]*)\]", re.IGNORECASE)
_MENTION_2D = re.compile(
    r"(?<![\"'\w])(?:bbox|bbox_2d|box)(?![\"'\w])\s*(?:[:=]|is|of)?\s*\[([^\]\[]*)\]", re.IGNORECASE
)
_UVD_HINT = re.compile(r"\buvd\b|\[\s*u\s*,\s*v\s*,|\(\s*u\s*,\s*v\s*[,)]", re.IGNORECASE)
_CLAUSE_BREAK = re.compile(r"[.;,:!?\]\)\}\n]|\band\b|\bor\b|\bwhile\b|\bbetween\b", re.IGNORECASE)
_TRAILING_FILLER = re.compile(
    r"(?:\s|\(|\bis\b|\bare\b|\bat\b|\blocated\b|\bplaced\b|\bwith\b|\bhas\b|\bits\b|\bgiven\b|\bby\b|"
    r"\brepresented\b|\bdenoted\b|\bas\b|\bin\b|\bbounding\b|\b3d\b|<[^<>]*>|[\"'`*])+$",
    re.IGNORECASE,
)
_DETERMINER = re.compile(r"\b(?:the|a|an|this|that|one|another)\b", re.IGNORECASE)


@dataclass(frozen=True)
class StatedCamera:
    """The camera a prompt states, and whether it gave fields of view or intrinsics."""

    camera: Camera
    stated_as: str  # 'fov' | 'intrinsics'


@dataclass(frozen=True)
class ParsedBox:
    """A 3D box found in text: numbers as written, how they are encoded, and the VST box when convertible."""

    label: str
    values: list[float]
    encoding: str  # one of BOX_ENCODINGS; 'invalid' when the count of numbers fits no encoding
    box: Box3D | None  # None when it cannot be converted (wrong count, uvd without camera, zero quaternion)
    start: int = -1  # character offset in the text, for highlighting


@dataclass(frozen=True)
class ParsedBox2D:
    """A pixel rectangle [x1, y1, x2, y2] mentioned in text with the object it belongs to."""

    label: str
    box: list[float]
    start: int = -1


def parse_camera(prompt: str, width: int | None = None, height: int | None = None) -> StatedCamera | None:
    """The camera a 3D prompt states, as fields of view or as intrinsics; None when it states none.

    Intrinsics win when both are present (they are exact). Image size comes from the arguments, else
    from the prompt, else (intrinsics only) from twice the principal point.
    """
    if not prompt:
        return None
    stated_w, stated_h = _stated_size(prompt)
    w = width or stated_w
    h = height or stated_h
    fx, fy, cx, cy = (_first_number(p, prompt) for p in (_FX, _FY, _CX, _CY))
    k = _K_MATRIX.search(prompt)
    if fx is None and k:
        fx, cx, fy, cy = (float(g) for g in k.groups())
    if fx is not None and fx > 0:
        fy = fy if fy and fy > 0 else fx
        if cx is None:
            cx = w / 2.0 if w else None
        if cy is None:
            cy = h / 2.0 if h else None
        if cx is not None and cy is not None:
            w = w or max(1, round(2 * cx))
            h = h or max(1, round(2 * cy))
            return StatedCamera(Camera(fx, fy, cx, cy, int(w), int(h)), "intrinsics")
    hfov, vfov = _first_number(_HFOV, prompt), _first_number(_VFOV, prompt)
    if (hfov is None and vfov is None) or not w or not h:
        return None
    # One field of view and square pixels give the other.
    if hfov is None:
        hfov = math.degrees(2 * math.atan(w / h * math.tan(math.radians(vfov) / 2)))
    if vfov is None:
        vfov = math.degrees(2 * math.atan(h / w * math.tan(math.radians(hfov) / 2)))
    if not (0 < hfov < 180 and 0 < vfov < 180):
        return None
    return StatedCamera(Camera.from_fov(hfov, vfov, int(w), int(h)), "fov")


def _first_number(pattern: re.Pattern[str], text: str) -> float | None:
    m = pattern.search(text)
    return float(m.group(1)) if m else None


def _stated_size(text: str) -> tuple[int | None, int | None]:
    for pattern in (_SIZE_WXH, _SIZE_WORDS, _SIZE_WIDE):
        m = pattern.search(text)
        if m:
            return int(m.group(1)), int(m.group(2))
    return None, None


def parse_boxes_3d(text: str, camera: Camera | None = None, encoding: str | None = None) -> list[ParsedBox]:
    """Every 3D box in a text, in order of appearance; malformed pieces are skipped, never raised.

    Reads fenced or bare JSON lists of ``{"bbox_3d": [...], "label": ...}`` (9 numbers: euler9, or
    uvd9 when the text speaks of ``[u, v, depth ...]``; 10 numbers: quat10), legacy ``<3dbbox>`` tags and
    prose mentions like ``the chair at bbox_3d [...]``. ``encoding='uvd9'`` forces the pixel reading of
    9-number boxes (the hint is often in the question, not the answer); ``camera`` converts uvd9 boxes.
    """
    if not text:
        return []
    uvd = encoding == "uvd9" or (encoding is None and _UVD_HINT.search(text) is not None)
    found: list[ParsedBox] = []
    taken: list[tuple[int, int]] = []
    for m in _BOX_OBJECT.finditer(text):
        label, values = _read_box_object(m.group())
        if values is None:
            continue
        found.append(_make_box(label, values, uvd, camera, m.start()))
        taken.append(m.span())
    for m in _BOX_KEY_VALUES.finditer(text):
        # A cut-off JSON list: the last object lost its closing brace but its numbers are whole.
        if any(a <= m.start() < b for a, b in taken):
            continue
        values = _numbers(m.group(1))
        if values is None:
            continue
        tail = text[m.end() : m.end() + 80].split("{")[0]
        head = text[max(0, m.start() - 80) : m.start()].rsplit("{", 1)[-1]
        label = _LABEL_KEY.search(head + tail)
        found.append(_make_box(label.group(1) if label else "", values, uvd, camera, m.start()))
        taken.append(m.span())
    for m in _TAG.finditer(text):
        values = _numbers(m.group(1))
        if values is None:
            continue
        label = _label_before(text, m.start())
        found.append(_make_box(label, values, False, camera, m.start(), tag=True))
        taken.append(m.span())
    for m in _MENTION_3D.finditer(text):
        if any(a <= m.start() < b for a, b in taken):
            continue
        values = _numbers(m.group(1))
        if values is None:
            continue
        found.append(_make_box(_label_before(text, m.start()), values, uvd, camera, m.start()))
    return sorted(found, key=lambda b: b.start)


def _read_box_object(chunk: str) -> tuple[str, list[float] | None]:
    try:
        obj = json.loads(chunk)
        raw = obj.get("bbox_3d")
        if isinstance(raw, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
            return str(obj.get("label", "")), [float(v) for v in raw]
    except (ValueError, AttributeError):
        pass
    # Not valid JSON (single quotes, trailing commas, a cut-off list): read the two keys directly.
    m = _BOX_KEY_VALUES.search(chunk)
    label = _LABEL_KEY.search(chunk)
    return (label.group(1) if label else ""), (_numbers(m.group(1)) if m else None)


def _numbers(text: str) -> list[float] | None:
    parts = [p for p in re.split(r"[\s,]+", text.strip()) if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        return None
    return values or None


def _make_box(
    label: str, values: list[float], uvd: bool, camera: Camera | None, start: int, tag: bool = False
) -> ParsedBox:
    label = label.strip()
    if len(values) == 10:
        return ParsedBox(label, values, "quat10", _box_from_quaternion(label, values), start)
    if len(values) != 9:
        return ParsedBox(label, values, "invalid", None, start)
    if tag:
        # The legacy tag carried angles in degrees upstream; values within [-1, 1] already follow VST.
        vst = values[:6] + ([a / 180.0 for a in values[6:]] if any(abs(a) > 1 for a in values[6:]) else values[6:])
        return ParsedBox(label, values, "tag9", Box3D.from_vst(label, vst), start)
    if uvd:
        return ParsedBox(label, values, "uvd9", _box_from_uvd(label, values, camera), start)
    return ParsedBox(label, values, "euler9", Box3D.from_vst(label, values), start)


def _box_from_quaternion(label: str, values: list[float]) -> Box3D | None:
    from scipy.spatial.transform import Rotation  # here: scipy costs 0.3 s to import, quaternion boxes are rare

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gimbal lock warnings: the angles are still a valid rotation
            angles = Rotation.from_quat(values[6:10]).as_euler("xyz") / math.pi
    except ValueError:  # zero-norm quaternion
        return None
    return Box3D.from_vst(label, [*values[:6], *(float(a) for a in angles)])


def _box_from_uvd(label: str, values: list[float], camera: Camera | None) -> Box3D | None:
    if camera is None:
        return None
    u, v, depth = values[:3]
    x = (u - camera.cx) / camera.fx * depth
    y = (v - camera.cy) / camera.fy * depth
    return Box3D.from_vst(label, [x, y, depth, *values[3:]])


def _label_before(text: str, pos: int) -> str:
    """The object named just before a box: "The chair is at bbox_3d [...]" -> "chair"."""
    window = text[max(0, pos - 120) : pos]
    breaks = list(_CLAUSE_BREAK.finditer(window))
    clause = window[breaks[-1].end() :] if breaks else window
    clause = _TRAILING_FILLER.sub("", clause)
    clause = re.sub(r"</?ref>", " ", clause)
    dets = list(_DETERMINER.finditer(clause))
    if dets:
        clause = clause[dets[-1].end() :]
    words = re.findall(r"[A-Za-z][\w-]*", clause)
    return " ".join(words[-3:]) if dets else (words[-1] if words else "")


def parse_boxes_2d(text: str) -> list[ParsedBox2D]:
    """Pixel boxes mentioned in text: "the table (represented by bbox [374, 433, 670, 584])"."""
    out: list[ParsedBox2D] = []
    for m in _MENTION_2D.finditer(text or ""):
        values = _numbers(m.group(1))
        if values is None or len(values) != 4:
            continue
        out.append(ParsedBox2D(_label_before(text, m.start()), values, m.start()))
    return out


def objects_named(question: str, labels: Iterable[str]) -> list[str]:
    """Which of the given labels a question mentions (plurals count), in the order they appear.

    A label found only inside a longer one ("table" in "coffee table") is left out, so highlighting
    marks the object the question means.
    """
    spans: dict[str, list[tuple[int, int]]] = {}
    for label in dict.fromkeys(lab for lab in labels if lab and lab.strip()):
        words = re.split(r"[\s_]+", label.strip())
        pattern = r"\b" + r"[\s_-]+".join(re.escape(w) for w in words) + r"(?:s|es)?\b"
        spans[label] = [m.span() for m in re.finditer(pattern, question or "", re.IGNORECASE)]
    hits: list[tuple[int, str]] = []
    for label, own in spans.items():
        longer = [s for other, ss in spans.items() if len(other) > len(label) for s in ss]
        free = [a for a, b in own if not any(la <= a and b <= lb for la, lb in longer)]
        if free:
            hits.append((free[0], label))
    return [label for _, label in sorted(hits)]
