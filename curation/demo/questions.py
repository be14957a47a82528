"""VST-P image questions (6 single-image and 6 multi-image skills), each answer computed from the room geometry."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import numpy as np

from curation.demo import phrasing as ph
from curation.demo.rooms import heading_of
from curation.demo.rows import DemoRow, Media, new_id, placeholders, sft_meta_info
from curation.demo.views import SeenObject, View
from curation.demo.world import World
from curation.vst.geometry import Camera, point_in_image

Generator = Callable[[World, np.random.Generator, int], DemoRow | None]


# ---------------------------------------------------------------- shared pieces


def data_source(rng: np.random.Generator, source: str) -> str:
    """The room's dataset name; a few rows carry the upstream placeholder ``xxx``."""
    return "xxx" if rng.random() < 0.03 else source


def view_media(views: list[View]) -> list[Media]:
    return [Media(v.jpeg, v.path, v.camera.width, v.camera.height) for v in views]


def sft_row(
    skill: str,
    rng: np.random.Generator,
    views: list[View],
    qa: list[tuple[str, str]],
    type_: str,
    hooks: dict | None = None,
) -> DemoRow:
    """A VST-P SFT row over ``views``: placeholders open the first human turn, one per image."""
    turns: list[list[str]] = []
    for i, (q, a) in enumerate(qa):
        turns.append(["human", (placeholders(len(views)) + "\n" + q) if i == 0 else q])
        turns.append(["gpt", a])
    media = view_media(views)
    room = views[0].room
    return DemoRow(
        skill,
        "sft",
        new_id(rng),
        turns,
        media,
        data_source(rng, room.source),
        type_,
        sft_meta_info(media),
        room_id=room.room_id,
        hooks=hooks or {},
    )


def ref(view: View, s: SeenObject, always_box: bool = False) -> str:
    """How a question names an object: its label, with its 2D box when the label alone is ambiguous."""
    if always_box or view.visible_count(s.label) > 1:
        return f"{s.label} (represented by bbox {ph.bbox2d_text(s.rect)})"
    return s.label


def box_items(seen: list[SeenObject]) -> list[tuple[str, list[float]]]:
    return [(s.label, ph.box_values(s.box)) for s in seen]


def horizontal_place(view: View, s: SeenObject) -> str:
    u = view.camera.fx * s.box.center[0] / s.box.center[2] + view.camera.cx
    third = view.camera.width / 3
    return "on the left" if u < third else ("on the right" if u > 2 * third else "in the middle")


def distinct_pair(
    rng: np.random.Generator, seen: list[SeenObject], ok: Callable[[SeenObject, SeenObject], bool]
) -> tuple[SeenObject, SeenObject] | None:
    """A random pair with different labels that satisfies ``ok``."""
    pairs = [(a, b) for a in seen for b in seen if a.label != b.label and ok(a, b)]
    if not pairs:
        return None
    return pairs[int(rng.integers(len(pairs)))]


def stated_distance(a: SeenObject, b: SeenObject) -> float:
    """Centre-to-centre distance from the boxes as stated (rounded), so the answer agrees with the prompt."""
    return float(np.linalg.norm(np.subtract(ph.box_values(a.box)[:3], ph.box_values(b.box)[:3])))


def stated_range(s: SeenObject) -> float:
    return float(np.linalg.norm(ph.box_values(s.box)[:3]))


def depth_separated(a: SeenObject, b: SeenObject, margin: float = 0.3) -> bool:
    """Clearly different distance from the camera, by range and by depth alike."""
    da, db = stated_range(a), stated_range(b)
    za, zb = ph.box_values(a.box)[2], ph.box_values(b.box)[2]
    return abs(da - db) >= margin and (da - db) * (za - zb) > 0 and abs(za - zb) >= 0.2


def boxes_sentence(a: SeenObject, b: SeenObject) -> str:
    return (
        f"The {a.label} is at bbox_3d {ph.box_list_text(ph.box_values(a.box))} and the {b.label} at bbox_3d "
        f"{ph.box_list_text(ph.box_values(b.box))}."
    )


def metres(x: float) -> str:
    """A length in metres as people write it: 1.4, 0.45, 2."""
    return f"{round(x, 2):g}"


def caption_for_view(view: View) -> str:
    room = view.room
    counts = Counter(s.label for s in view.seen)
    parts = [ph.count_phrase(label, n) for label, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    text = (
        f"This image shows part of a {room.kind} with {room.wall_name} and {room.floor_name}. "
        f"In view there {'is' if len(view.seen) == 1 else 'are'} {ph.join_and(parts)}."
    )
    near = sorted(view.answerable(), key=lambda s: s.distance)[:3]
    for s in near:
        text += f" The {s.label} stands {horizontal_place(view, s)}, about {s.distance:.1f} meters from the camera."
    if len(near) >= 2:
        text += f" The {near[0].label} is the closest of these to the camera."
    return text


# ---------------------------------------------------------------- single image


def si_3d_detection(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    view = world.pick_view(rng, 2)
    if view is None:
        return None
    objs = sorted(view.answerable(), key=lambda s: s.box.center[2])
    cam = ph.camera_statement(view.camera, k)
    if k % 3 == 2:
        labels = sorted({s.label for s in objs})
        chosen = sorted(rng.choice(labels, size=min(len(labels), int(rng.integers(1, 3))), replace=False).tolist())
        objs = [s for s in objs if s.label in chosen]
        q = (
            f"Find every {ph.join_and(chosen)} in the image and output their 3D bounding boxes as a JSON list of "
            f'{{"bbox_3d": [x, y, z, x_size, y_size, z_size, pitch, yaw, roll], "label": ...}}. {cam}'
        )
    else:
        q = (
            f"Detect all the objects in the image and output their 3D bounding boxes in the camera coordinate "
            f"system. {cam} Each box is [x, y, z, x_size, y_size, z_size, pitch, yaw, roll] in meters, with the "
            f"angles divided by pi. Answer in JSON."
        )
    items = box_items(objs)
    hooks = {"boxes": {"turn": 1, "items": items, "camera": view.camera, "fenced": True}}
    return sft_row("si_3d_detection", rng, [view], [(q, ph.boxes_block(items))], "bbox_3d", hooks)


def si_3d_grounding(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    multi = k % 4 == 3
    view = world.pick_view(rng, 3 if multi else 1)
    if view is None:
        return None
    objs = view.answerable()
    picks = [objs[int(i)] for i in rng.choice(len(objs), size=3 if multi else 1, replace=False)]
    cam = ph.camera_statement(view.camera, k)
    qa = []
    for i, s in enumerate(picks):
        q = f"Output the 3D bounding box of the {ref(view, s, always_box=True)} in JSON format."
        qa.append((f"{q} {cam}" if i == 0 else q, ph.boxes_block(box_items([s]))))
    hooks = {"boxes": {"turn": 1, "items": box_items([picks[0]]), "camera": view.camera, "fenced": True}}
    return sft_row("si_3d_grounding", rng, [view], qa, "bbox_3d", hooks)


def si_depth_comparison(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    view = world.pick_view(rng, 2)
    pair = distinct_pair(rng, view.answerable(), depth_separated) if view else None
    if pair is None:
        return None
    a, b = pair
    near, far = (a, b) if stated_range(a) < stated_range(b) else (b, a)
    intro = boxes_sentence(a, b)
    variant = k % 3
    hooks: dict = {}
    if variant == 0:
        q, ans, wrong = f"Which is closer to the camera, the {a.label} or the {b.label}?", near.label, far.label
    elif variant == 1:
        q, ans, wrong = f"Which is farther from the camera, the {a.label} or the {b.label}?", far.label, near.label
    else:
        options, ans = ph.shuffle_options(rng, near.label, [far.label])
        q = "Which object is closer to the camera?\n" + ph.options_block(options)
        wrong = ph.LETTERS[1 - options.index(near.label)]
        hooks["unextractable"] = near.label
    hooks["wrong_answer"] = wrong
    return sft_row("si_depth_comparison", rng, [view], [(f"{intro} {q}", ans)], "depth", hooks)


def si_distance(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    view = world.pick_view(rng, 2)
    pair = distinct_pair(rng, view.answerable(), lambda a, b: stated_distance(a, b) >= 0.5) if view else None
    if pair is None:
        return None
    a, b = pair
    d = stated_distance(a, b)
    q = (
        f"{boxes_sentence(a, b)} What is the distance between the {a.label} and the {b.label} in meters? "
        f"{ph.SINGLE_WORD}"
    )
    factor = float(rng.choice([0.45, 0.55, 1.7, 2.2]))
    cm = f"{round(d * 100)}"
    hooks = {"wrong_answer": ph.fmt_number(d * factor), "unit_mixing": cm + " cm" if k % 2 == 0 else cm}
    return sft_row("si_distance", rng, [view], [(q, ph.fmt_number(d))], "distance", hooks)


def si_measurement(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    variant = k % 4
    view = world.pick_view(rng, 3 if variant == 3 else 1)
    if view is None:
        return None
    objs = view.answerable()
    s = objs[int(rng.integers(len(objs)))]
    o = s.obj
    hooks: dict = {}
    if variant == 0:
        qa = [(f"How tall is the {ref(view, s)}? {ph.SINGLE_WORD}", f"{round(o.height * 100)} cm")]
    elif variant == 1:
        qa = [(f"How wide is the {ref(view, s)} in meters? {ph.SINGLE_WORD}", metres(o.width))]
        cm = f"{round(o.width * 100)}"
        hooks["unit_mixing"] = cm + " cm" if k % 8 == 1 else cm
    elif variant == 2:
        longest = max(o.width, o.height, o.depth)
        qa = [
            (
                (
                    f"What is the length of the longest dimension (length, width, or height) of the {ref(view, s)} in "
                    f"centimeters? {ph.SINGLE_WORD}"
                ),
                f"{round(longest * 100)}",
            )
        ]
    else:
        picks = [objs[int(i)] for i in rng.choice(len(objs), size=3, replace=False)]
        qa = [(f"How tall is the {ref(view, p)}? {ph.SINGLE_WORD}", f"{round(p.obj.height * 100)} cm") for p in picks]
    return sft_row("si_measurement", rng, [view], qa, "qa", hooks)


def si_scene_caption(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    view = world.pick_view(rng, 2)
    if view is None:
        return None
    q = [
        "Describe the scene in the image.",
        "Please provide a detailed description of the room in the image, including the objects and their layout.",
    ][k % 2]
    return sft_row("si_scene_caption", rng, [view], [(q, caption_for_view(view))], "caption")


# ---------------------------------------------------------------- multi-image


def camera_position_choices(t: np.ndarray) -> tuple[str, list[str]] | None:
    """Where the second camera sits relative to the first (the correct phrase and the three wrong ones), or None
    when the offset is too small to say left/right and in front/behind without doubt."""
    if abs(t[0]) < 0.3 or abs(t[2]) < 0.3:
        return None
    correct = f"to the {'right' if t[0] > 0 else 'left'} and {'in front' if t[2] > 0 else 'behind'}"
    wrong = [f"to the {h} and {f}" for h in ("left", "right") for f in ("in front", "behind")]
    return correct, [w for w in wrong if w != correct]


def relative_motion(a: View, b: View) -> tuple[np.ndarray, float]:
    """Camera b's centre in camera a's frame (x right, y down, z forward) and its turn in degrees (left > 0)."""
    t = a.pose.world_to_camera(b.pose.position)
    turn = math.degrees(math.remainder(heading_of(b.pose) - heading_of(a.pose), 2 * math.pi))
    return np.asarray(t), turn


def motion_phrase(t: np.ndarray, turn: float) -> str | None:
    """Options text for a camera move, or None when the move is too small to name without doubt."""
    tx, tz = float(t[0]), float(t[2])
    if max(abs(tx), abs(tz)) < 0.3 or 6 < abs(turn) < 12 or abs(abs(tx) - abs(tz)) < 0.15:
        return None
    move = (
        ("moved right" if tx > 0 else "moved left")
        if abs(tx) >= abs(tz)
        else ("moved forward" if tz > 0 else "moved backward")
    )
    rot = "kept facing the same way" if abs(turn) <= 6 else ("turned left" if turn > 0 else "turned right")
    return f"{move} and {rot}"


def motion_distractors(rng: np.random.Generator, correct: str) -> list[str]:
    moves = ["moved right", "moved left", "moved forward", "moved backward"]
    rots = ["turned left", "turned right", "kept facing the same way"]
    pool = [f"{m} and {r}" for m in moves for r in rots if f"{m} and {r}" != correct]
    return [pool[int(i)] for i in rng.choice(len(pool), size=3, replace=False)]


def mi_correspondence(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    views = world.pick_views(rng, 2)
    if views is None:
        return None
    a, b = views
    in_b = {s.obj.index: s for s in b.answerable()}
    shared = [s for s in a.answerable() if s.obj.index in in_b]
    if not shared:
        return None
    s = shared[int(rng.integers(len(shared)))]
    target = in_b[s.obj.index]
    others = [o for o in b.seen if o.obj.index != s.obj.index and o.rect != target.rect]
    if not others:
        return None
    wrong = [
        ph.bbox2d_text(others[int(i)].rect) for i in rng.choice(len(others), size=min(3, len(others)), replace=False)
    ]
    options, letter = ph.shuffle_options(rng, ph.bbox2d_text(target.rect), wrong)
    q = (
        f"The object marked by bbox {ph.bbox2d_text(s.rect)} in the first image also appears in the second image. "
        f"Which bounding box marks it in the second image?\n" + ph.options_block(options)
    )
    hooks = {"unextractable": ph.bbox2d_text(target.rect)}
    return sft_row("mi_correspondence", rng, views, [(q, letter)], "correspondence", hooks)


def mi_object_object_relation(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    views = world.pick_views(rng, 2)
    if views is None:
        return None
    a, b = views
    cands = [(p, q) for p in a.answerable() for q in b.answerable() if p.label != q.label]
    if not cands:
        return None
    p, q_seen = cands[int(rng.integers(len(cands)))]
    q_in_a = q_seen.obj.box_in_camera(a.pose)  # the second object in the first camera's frame
    if k % 2 == 0:
        dx = q_in_a.center[0] - p.box.center[0]
        if abs(dx) < 0.4:
            return None
        options, letter = ph.shuffle_options(rng, "right" if dx > 0 else "left", ["left" if dx > 0 else "right"])
        q = (
            f"The first image shows a {p.label} (represented by bbox {ph.bbox2d_text(p.rect)}) and the second image "
            f"a {q_seen.label} (represented by bbox {ph.bbox2d_text(q_seen.rect)}). Seen from the first camera, is the "
            f"{q_seen.label} to the left or to the right of the {p.label}?\n" + ph.options_block(options)
        )
        correct = "right" if dx > 0 else "left"
    else:
        dp, dq = p.distance, float(np.linalg.norm(q_in_a.center))
        if abs(dp - dq) < 0.4:
            return None
        correct = p.label if dp < dq else q_seen.label
        options, letter = ph.shuffle_options(rng, correct, [q_seen.label if dp < dq else p.label])
        q = (
            f"The first image shows a {p.label} (represented by bbox {ph.bbox2d_text(p.rect)}) and the second image "
            f"a {q_seen.label} (represented by bbox {ph.bbox2d_text(q_seen.rect)}). Which of the two is closer to the "
            f"first camera?\n" + ph.options_block(options)
        )
    return sft_row("mi_object_object_relation", rng, views, [(q, letter)], "multi_image", {"unextractable": correct})


def mi_camera_motion(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    views = world.pick_views(rng, 2)
    if views is None:
        return None
    t, turn = relative_motion(*views)
    if k % 3 == 2:
        if abs(turn) < 10:
            return None
        q = f"By how many degrees did the camera turn horizontally from the first image to the second? {ph.SINGLE_WORD}"
        return sft_row("mi_camera_motion", rng, views, [(q, f"{round(abs(turn))}")], "multi_image")
    correct = motion_phrase(t, turn)
    if correct is None:
        return None
    options, letter = ph.shuffle_options(rng, correct, motion_distractors(rng, correct))
    q = "How did the camera move from the first image to the second?\n" + ph.options_block(options)
    return sft_row("mi_camera_motion", rng, views, [(q, letter)], "multi_image", {"unextractable": correct})


def mi_3d_detection(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    views = world.pick_views(rng, int(rng.integers(2, 5)))
    if views is None:
        return None
    first = views[0]
    ids = sorted({s.obj.index for v in views for s in v.answerable()})
    objs = []
    for i in ids:
        box = first.room.objects[i].box_in_camera(first.pose)
        # Boxes are stated in the first camera's frame: keep those whose centre that camera can see.
        if box.center[2] > 0.3 and point_in_image(_inset(first.camera), np.asarray(box.center)):
            objs.append(box)
    if len(objs) < 2:
        return None
    objs.sort(key=lambda bx: bx.center[2])
    items = [(bx.label, ph.box_values(bx)) for bx in objs]
    q = (
        f"These images show the same room from different viewpoints. Detect the 3D bounding boxes of all the "
        f"objects, in the camera coordinate system of the first image. {ph.camera_statement(first.camera, k)}"
    )
    hooks = {"boxes": {"turn": 1, "items": items, "camera": first.camera, "fenced": True}}
    return sft_row("mi_3d_detection", rng, views, [(q, ph.boxes_block(items))], "bbox_3d", hooks)


def _inset(camera: Camera, margin: int = 4) -> Camera:
    """The same camera with its image shrunk by ``margin`` pixels on every side (centres safely inside)."""
    return Camera(
        camera.fx,
        camera.fy,
        camera.cx - margin,
        camera.cy - margin,
        camera.width - 2 * margin,
        camera.height - 2 * margin,
    )


def mi_camera_camera(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    views = world.pick_views(rng, 2)
    if views is None:
        return None
    t, _ = relative_motion(*views)
    variant = k % 3
    hooks: dict = {}
    if variant == 0:
        d = float(np.linalg.norm(t))
        if d < 0.5:
            return None
        q = f"What is the distance between the two cameras in meters? {ph.SINGLE_WORD}"
        ans = ph.fmt_number(d)
        hooks["unit_mixing"] = f"{round(d * 100)} cm"
    elif variant == 1:
        choices = camera_position_choices(t)
        if choices is None:
            return None
        correct, wrong = choices
        options, ans = ph.shuffle_options(rng, correct, wrong)
        q = "Where is the second camera relative to the first camera?\n" + ph.options_block(options)
        hooks["unextractable"] = correct
    else:
        q = (
            "Give the position of the second camera in the coordinate system of the first camera (X right, Y down, "
            "Z forward), in meters, as [x, y, z]."
        )
        ans = ph.box_list_text([ph.r2(v) for v in t])
    return sft_row("mi_camera_camera", rng, views, [(q, ans)], "multi_image", hooks)


def mi_scene_caption(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    views = world.pick_views(rng, int(rng.integers(2, 5)))
    if views is None:
        return None
    room = views[0].room
    seen = {s.obj.index: s.obj for v in views for s in v.seen}
    counts = Counter(o.label for o in seen.values())
    parts = [ph.count_phrase(label, n) for label, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    text = (
        f"These images show a {room.kind} with {room.wall_name} and {room.floor_name}. Across the views there "
        f"{'is' if len(seen) == 1 else 'are'} {ph.join_and(parts)}."
    )
    first = sorted(views[0].answerable(), key=lambda s: s.distance)[:2]
    for s in first:
        text += (
            f" In the first view the {s.label} is {horizontal_place(views[0], s)}, about {s.distance:.1f} meters away."
        )
    t, turn = relative_motion(views[0], views[1])
    text += (
        f" The second view is taken {float(np.linalg.norm(t)):.1f} meters from the first, turned "
        f"{abs(turn):.0f} degrees to the {'left' if turn > 0 else 'right'}."
    )
    q = [
        "Describe the room shown in these images.",
        "These are images of the same room from different viewpoints. Describe the room and its layout.",
    ][k % 2]
    return sft_row("mi_scene_caption", rng, views, [(q, text)], "caption-multi-view")


GENERATORS: dict[str, Generator] = {
    "si_3d_detection": si_3d_detection,
    "si_depth_comparison": si_depth_comparison,
    "si_scene_caption": si_scene_caption,
    "si_3d_grounding": si_3d_grounding,
    "si_distance": si_distance,
    "si_measurement": si_measurement,
    "mi_correspondence": mi_correspondence,
    "mi_object_object_relation": mi_object_object_relation,
    "mi_camera_motion": mi_camera_motion,
    "mi_3d_detection": mi_3d_detection,
    "mi_camera_camera": mi_camera_camera,
    "mi_scene_caption": mi_scene_caption,
}
