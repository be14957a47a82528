"""Pinhole rendering of a room with Pillow: flat-coloured surfaces painted far to near, plus an object-id buffer."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from curation.demo.rooms import CEILING_COLOUR, Room
from curation.vst.geometry import Camera, Pose

NEAR = 0.02  # metres: polygons are clipped here so nothing behind the camera is drawn
# Id-buffer values: objects are index + 1 (a room holds at most 15); room surfaces get their own codes.
FLOOR_ID, WALL_ID, CEILING_ID = 250, 251, 252
_SURFACE_IDS = {"floor": FLOOR_ID, "wall": WALL_ID, "ceiling": CEILING_ID}

# Box faces as indices into geometry.box_corners (bottom face y=+1 first, then top y=-1).
BOX_FACES = [(0, 1, 2, 3), (4, 5, 6, 7), (0, 3, 7, 4), (1, 2, 6, 5), (0, 1, 5, 4), (3, 2, 6, 7)]


def clip_near(poly: np.ndarray, near: float = NEAR) -> np.ndarray:
    """Sutherland-Hodgman clip of a camera-frame polygon (N, 3) to z >= near."""
    out: list[np.ndarray] = []
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        a_in, b_in = a[2] >= near, b[2] >= near
        if a_in:
            out.append(a)
        if a_in != b_in:
            t = (near - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.array(out) if out else np.zeros((0, 3))


def _project(camera: Camera, pts: np.ndarray) -> list[tuple[float, float]]:
    u = camera.fx * pts[:, 0] / pts[:, 2] + camera.cx
    v = camera.fy * pts[:, 1] / pts[:, 2] + camera.cy
    return list(zip(u.tolist(), v.tolist()))


def render_view(room: Room, pose: Pose, camera: Camera) -> tuple[Image.Image, np.ndarray]:
    """RGB image and id buffer (H, W uint8) of ``room`` seen from ``pose`` through ``camera``.

    The room is convex and the camera inside it, so its six surfaces never overlap on screen;
    objects are drawn after them, farthest first, each with back faces culled.
    """
    size = (camera.width, camera.height)
    img = Image.new("RGB", size, CEILING_COLOUR)
    ids = Image.new("L", size, CEILING_ID)
    draw, draw_ids = ImageDraw.Draw(img), ImageDraw.Draw(ids)

    def paint(poly_cam: np.ndarray, colour: tuple[int, int, int], code: int, edge: bool = False) -> None:
        clipped = clip_near(poly_cam)
        if len(clipped) >= 3:
            xy = _project(camera, clipped)
            # A thin darker edge lets the eye read the box in 3D; the face itself stays one flat colour.
            draw.polygon(xy, fill=colour, outline=tuple(int(c * 0.55) for c in colour) if edge else None)
            draw_ids.polygon(xy, fill=code)

    for name, quad, colour in room.surfaces():
        paint(pose.world_to_camera(quad), colour, _SURFACE_IDS[name])
    boxes = [(obj, obj.corners_in_camera(pose)) for obj in room.objects]
    boxes.sort(key=lambda ob: -float(np.linalg.norm(ob[1].mean(axis=0))))
    for obj, corners in boxes:
        centre = corners.mean(axis=0)
        for face in BOX_FACES:
            quad = corners[list(face)]
            face_centre = quad.mean(axis=0)
            if float(np.dot(face_centre - centre, face_centre)) >= 0:  # faces away from the camera
                continue
            paint(quad, obj.color, obj.index + 1, edge=True)
    return img, np.asarray(ids)


def encode_image(img: Image.Image, fmt: str = "JPEG") -> bytes:
    """Deterministic JPEG/PNG bytes (fixed quality, no metadata)."""
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, format="JPEG", quality=90, optimize=False, progressive=False, subsampling=0)
    else:
        img.save(buf, format="PNG", compress_level=6, optimize=False)
    return buf.getvalue()


def text_card(lines: list[str], size: tuple[int, int] = (400, 300), background: tuple[int, int, int] = (250, 248, 240),
              ink: tuple[int, int, int] = (20, 20, 20), font_size: int = 20) -> Image.Image:
    """A picture of a few lines of text (a receipt, a sign, a worksheet) for OCR and maths questions."""
    img = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=font_size)
    y = 16
    for line in lines:
        draw.text((18, y), line, fill=ink, font=font)
        y += int(font_size * 1.45)
    return img


def shape_card(kind: str, dims: list[float], size: tuple[int, int] = (400, 300)) -> Image.Image:
    """A worksheet figure: a rectangle or right triangle with its sides labelled (for maths questions)."""
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=18)
    w, h = size
    if kind == "rectangle":
        box = (60, 60, w - 60, h - 70)
        draw.rectangle(box, outline=(30, 60, 200), width=3)
        draw.text(((box[0] + box[2]) / 2 - 20, box[3] + 8), f"{dims[0]:g} cm", fill=(0, 0, 0), font=font)
        draw.text((box[2] + 6, (box[1] + box[3]) / 2 - 9), f"{dims[1]:g} cm", fill=(0, 0, 0), font=font)
    else:
        pts = [(60, h - 60), (w - 80, h - 60), (60, 50)]
        draw.polygon(pts, outline=(200, 40, 40), width=3)
        draw.text(((pts[0][0] + pts[1][0]) / 2 - 20, h - 52), f"{dims[0]:g} cm", fill=(0, 0, 0), font=font)
        draw.text((4, (pts[0][1] + pts[2][1]) / 2 - 9), f"{dims[1]:g} cm", fill=(0, 0, 0), font=font)
        draw.text((pts[0][0] + 4, pts[0][1] - 26), "90°", fill=(0, 0, 0), font=font)
    return img
