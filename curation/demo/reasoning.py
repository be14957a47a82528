"""VST-R samples: CoT SFT rows with <think> traces and RL rows (Parquet and JSON forms) for the 14 categories."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from curation.demo import phrasing as ph
from curation.demo.questions import (
    box_items,
    boxes_sentence,
    camera_position_choices,
    data_source,
    depth_separated,
    motion_distractors,
    motion_phrase,
    relative_motion,
    stated_distance,
    stated_range,
    view_media,
)
from curation.demo.render import encode_image, shape_card, text_card
from curation.demo.rooms import LABEL_PRIORS
from curation.demo.rows import DemoRow, Media, new_id, placeholders, rl_meta_info, sft_meta_info
from curation.demo.views import SeenObject, View
from curation.demo.world import World

PURPOSES = {
    "chair": "sitting at a table or desk",
    "table": "eating meals",
    "sofa": "relaxing with several people",
    "bed": "sleeping",
    "cabinet": "storing dishes and supplies",
    "lamp": "lighting the room",
    "desk": "working or studying",
    "tv": "watching shows",
    "bookshelf": "keeping books",
    "plant": "decorating the room with greenery",
    "nightstand": "keeping things within reach of the bed",
    "refrigerator": "keeping food cold",
    "trash can": "throwing away rubbish",
    "dresser": "storing clothes",
    "door": "entering and leaving the room",
}
GR_SOURCES = ["coco", "openimages"]
SHOPS = [
    "CORNER CAFE",
    "FRESH BAKERY",
    "CITY PHARMACY",
    "BLUE MOON BAR",
    "GREEN GROCER",
    "PAPER & INK",
    "SUNRISE DINER",
    "NORTH STAR BOOKS",
    "TOWN HALL",
    "RIVERSIDE HOTEL",
]
MENU = [
    ("Latte", 3.5),
    ("Muffin", 2.75),
    ("Water", 1.2),
    ("Bagel", 2.4),
    ("Tea", 2.1),
    ("Salad", 6.9),
    ("Soup", 4.5),
    ("Juice", 3.25),
    ("Cookie", 1.6),
    ("Sandwich", 5.8),
]

Generator = Callable[[World, np.random.Generator, int], DemoRow | None]


# ---------------------------------------------------------------- shared reasoning pieces


class Problem:
    """A multiple-choice problem with its reasoning: question text, options, correct letter, trace body."""

    def __init__(self, question: str, options: list[str], letter: str, think: str, correct_text: str):
        self.question, self.options, self.letter, self.think, self.correct_text = (
            question,
            options,
            letter,
            think,
            correct_text,
        )

    def text(self) -> str:
        return self.question + "\n" + ph.options_block(self.options)

    def trace(self) -> str:
        return f"{self.think} So the answer is {self.letter}."


def depth_problem(rng: np.random.Generator, view: View) -> Problem | None:
    pairs = [
        (a, b) for a in view.answerable() for b in view.answerable() if a.label != b.label and depth_separated(a, b)
    ]
    if not pairs:
        return None
    a, b = pairs[int(rng.integers(len(pairs)))]
    near, far = (a, b) if stated_range(a) < stated_range(b) else (b, a)
    options, letter = ph.shuffle_options(rng, near.label, [far.label])
    think = (
        f"I need to compare how far the {a.label} and the {b.label} are from the camera. The {a.label} is about "
        f"{stated_range(a):.1f} meters away (depth {a.box.center[2]:.1f} m) and the {b.label} about "
        f"{stated_range(b):.1f} meters (depth {b.box.center[2]:.1f} m). The {near.label} is nearer, and the option "
        f"naming it is {letter}."
    )
    return Problem("Which object is closer to the camera?", options, letter, think, near.label)


def left_right_problem(rng: np.random.Generator, view: View) -> Problem | None:
    pairs = [
        (a, b)
        for a in view.answerable()
        for b in view.answerable()
        if a.label != b.label and abs(a.box.center[0] - b.box.center[0]) >= 0.4
    ]
    if not pairs:
        return None
    a, b = pairs[int(rng.integers(len(pairs)))]
    side = "left" if a.box.center[0] < b.box.center[0] else "right"
    options, letter = ph.shuffle_options(rng, side, ["right" if side == "left" else "left"])
    think = (
        f"In the camera frame x grows to the right. The {a.label} is at x = {a.box.center[0]:.1f} m and the "
        f"{b.label} at x = {b.box.center[0]:.1f} m, so from the camera's viewpoint the {a.label} is to the {side} "
        f"of the {b.label}; that is option {letter}."
    )
    return Problem(
        f"From the camera's viewpoint, is the {a.label} to the left or to the right of the {b.label}?",
        options,
        letter,
        think,
        side,
    )


def motion_problem(rng: np.random.Generator, views: list[View]) -> Problem | None:
    t, turn = relative_motion(*views)
    correct = motion_phrase(t, turn)
    if correct is None:
        return None
    options, letter = ph.shuffle_options(rng, correct, motion_distractors(rng, correct))
    side = f"{abs(t[0]):.1f} m to the {'right' if t[0] > 0 else 'left'}"
    ahead = f"{abs(t[2]):.1f} m {'forward' if t[2] > 0 else 'backward'}"
    turned = f"turned {abs(turn):.0f} degrees to the {'left' if turn > 0 else 'right'}"
    think = (
        f"Objects shift between the two images. Relative to the first view the camera moved {side} and {ahead}, "
        f"and it {turned}. So it {correct}, which is option {letter}."
    )
    return Problem("How did the camera move from the first image to the second?", options, letter, think, correct)


def camera_position_problem(rng: np.random.Generator, views: list[View]) -> Problem | None:
    t, _ = relative_motion(*views)
    choices = camera_position_choices(t)
    if choices is None:
        return None
    correct, wrong = choices
    options, letter = ph.shuffle_options(rng, correct, wrong)
    think = (
        f"Matching the shared objects, the second camera sits about {abs(t[0]):.1f} m to the "
        f"{'right' if t[0] > 0 else 'left'} of the first and {abs(t[2]):.1f} m "
        f"{'ahead of' if t[2] > 0 else 'behind'} it. That places it {correct}: option {letter}."
    )
    return Problem("Where is the second camera relative to the first camera?", options, letter, think, correct)


def math_problem(rng: np.random.Generator) -> tuple[Problem, Media, int]:
    kind = "rectangle" if rng.random() < 0.5 else "triangle"
    a, b = int(rng.integers(3, 13)), int(rng.integers(2, 11)) * 2
    area = a * b if kind == "rectangle" else a * b // 2
    wrong = sorted({a + b, 2 * (a + b), area + a, abs(area - b) or area + 1} - {area})[:3]
    options, letter = ph.shuffle_options(rng, str(area), [str(w) for w in wrong])
    formula = f"{a} x {b} = {area}" if kind == "rectangle" else f"{a} x {b} / 2 = {area}"
    think = (
        f"The figure is a {kind} with sides labelled {a} cm and {b} cm. Its area is {formula} square centimeters, "
        f"which is option {letter}."
    )
    img = shape_card(kind, [a, b])
    media = Media(encode_image(img), "", img.width, img.height)
    q = f"What is the area of the {kind} in the figure, in square centimeters?"
    return Problem(q, options, letter, think, str(area)), media, area


def receipt_problem(rng: np.random.Generator) -> tuple[Problem, Media, str]:
    shop = SHOPS[int(rng.integers(len(SHOPS)))]
    items = [MENU[int(i)] for i in rng.choice(len(MENU), size=int(rng.integers(2, 5)), replace=False)]
    total = round(sum(p for _, p in items), 2)
    lines = [shop, "-" * 22, *[f"{n:<10}{p:>8.2f}" for n, p in items], "-" * 22, f"{'TOTAL':<10}{total:>8.2f}"]
    img = text_card(lines)
    wrong = sorted(
        {f"{total + 1:.2f}", f"{items[0][1]:.2f}", f"{total - items[-1][1]:.2f}", f"{total * 2:.2f}"} - {f"{total:.2f}"}
    )[:3]
    options, letter = ph.shuffle_options(rng, f"{total:.2f}", wrong)
    think = (
        f"The receipt from {shop.title()} lists "
        + ", ".join(f"{n} {p:.2f}" for n, p in items)
        + f". They add up to {total:.2f}, matching the TOTAL line, which is option {letter}."
    )
    media = Media(encode_image(img), "", img.width, img.height)
    return Problem("What is the total amount on the receipt?", options, letter, think, f"{total:.2f}"), media, shop


def knowledge_problem(rng: np.random.Generator, view: View) -> Problem | None:
    objs = [s for s in view.answerable() if s.label in PURPOSES]
    if not objs:
        return None
    s = objs[int(rng.integers(len(objs)))]
    shown = {x.label for x in view.seen}
    pool = sorted(lab for lab in LABEL_PRIORS if lab not in shown)
    wrong = [pool[int(i)] for i in rng.choice(len(pool), size=3, replace=False)]
    options, letter = ph.shuffle_options(rng, s.label, wrong)
    think = (
        f"The question asks which object is mainly used for {PURPOSES[s.label]}. The image shows "
        f"{ph.join_and(sorted(shown))}. A {s.label} is the object people use for that, so the answer is the "
        f"{s.label}, option {letter}."
    )
    return Problem(
        f"Which of these objects in the image is mainly used for {PURPOSES[s.label]}?", options, letter, think, s.label
    )


# ---------------------------------------------------------------- CoT SFT rows


def cot_row(
    skill: str,
    rng: np.random.Generator,
    problem: Problem,
    media: list[Media],
    type_: str,
    source: str,
    room_id: str = "",
) -> DemoRow:
    turns = [
        ["human", placeholders(len(media)) + "\n" + problem.text()],
        ["gpt", f"<think>{problem.trace()}</think> {problem.letter}"],
    ]
    hooks = {
        "cot": {
            "think": problem.think,
            "letter": problem.letter,
            "letters": [ph.LETTERS[i] for i in range(len(problem.options))],
        }
    }
    return DemoRow(
        skill,
        "sft",
        new_id(rng),
        turns,
        media,
        data_source(rng, source),
        type_,
        sft_meta_info(media),
        room_id=room_id,
        hooks=hooks,
    )


def _with_path(media: Media, folder: str, rng: np.random.Generator) -> Media:
    return Media(media.data, f"{folder}/{new_id(rng)[:8]}.jpg", media.width, media.height)


def _gr_source(rng: np.random.Generator) -> str:
    return GR_SOURCES[int(rng.integers(len(GR_SOURCES)))]


def cot_sr_si(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    view = world.pick_view(rng, 2)
    p = depth_problem(rng, view) if view else None
    return (
        None
        if p is None
        else cot_row("cot_sr_si", rng, p, view_media([view]), "depth_thought", view.room.source, view.room.room_id)
    )


def cot_sr_camera_motion(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    views = world.pick_views(rng, 2)
    p = motion_problem(rng, views) if views else None
    return (
        None
        if p is None
        else cot_row(
            "cot_sr_camera_motion",
            rng,
            p,
            view_media(views),
            "camera_motion_thought",
            views[0].room.source,
            views[0].room.room_id,
        )
    )


def cot_sr_object_object(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    view = world.pick_view(rng, 2)
    p = left_right_problem(rng, view) if view else None
    return (
        None
        if p is None
        else cot_row(
            "cot_sr_object_object", rng, p, view_media([view]), "relation_thought", view.room.source, view.room.room_id
        )
    )


def cot_sr_camera_camera(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    views = world.pick_views(rng, 2)
    p = camera_position_problem(rng, views) if views else None
    return (
        None
        if p is None
        else cot_row(
            "cot_sr_camera_camera",
            rng,
            p,
            view_media(views),
            "camera_thought",
            views[0].room.source,
            views[0].room.room_id,
        )
    )


def cot_gr_math(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    p, media, _ = math_problem(rng)
    return cot_row("cot_gr_math", rng, p, [_with_path(media, "gr/math", rng)], "math_thought", _gr_source(rng))


def cot_gr_ocr(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    p, media, _ = receipt_problem(rng)
    return cot_row("cot_gr_ocr", rng, p, [_with_path(media, "gr/ocr", rng)], "ocr_thought", _gr_source(rng))


def cot_gr_knowledge(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    view = world.pick_view(rng, 1)
    p = knowledge_problem(rng, view) if view else None
    return (
        None
        if p is None
        else cot_row(
            "cot_gr_knowledge", rng, p, view_media([view]), "knowledge_thought", _gr_source(rng), view.room.room_id
        )
    )


# ---------------------------------------------------------------- RL rows


def rl_row(
    skill: str,
    rng: np.random.Generator,
    question: str,
    answer: str,
    media: list[Media],
    modes: list[str],
    question_type: str,
    thought: str,
    source: str,
    room_id: str = "",
    hooks: dict | None = None,
) -> DemoRow:
    """An RL row: no placeholders in the question (the trainer adds them); ``meta_info`` is the mode object."""
    hooks = dict(hooks or {})
    hooks["thought"] = thought
    return DemoRow(
        skill,
        "rl",
        new_id(rng),
        [["human", question], ["gpt", answer]],
        media,
        data_source(rng, source),
        meta_info=rl_meta_info(modes, question_type),
        room_id=room_id,
        hooks=hooks,
    )


def rl_choice(
    skill: str, rng: np.random.Generator, p: Problem, media: list[Media], source: str, room_id: str = ""
) -> DemoRow:
    return rl_row(
        skill,
        rng,
        p.text(),
        p.letter,
        media,
        ["multi_choices_score"],
        "multi_choices",
        p.trace(),
        source,
        room_id,
        {"unextractable": p.correct_text},
    )


def rl_sr_si(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    view = world.pick_view(rng, 2)
    if view is None:
        return None
    media, room = view_media([view]), view.room
    if k % 3 == 0:
        p = depth_problem(rng, view)
        return None if p is None else rl_choice("rl_sr_si", rng, p, media, room.source, room.room_id)
    if k % 3 == 1:
        objs = view.answerable()
        pairs = [(a, b) for a in objs for b in objs if a.label != b.label and stated_distance(a, b) >= 0.5]
        if not pairs:
            return None
        a, b = pairs[int(rng.integers(len(pairs)))]
        d = stated_distance(a, b)
        q = f"{boxes_sentence(a, b)} What is the distance between the {a.label} and the {b.label} in meters?"
        thought = f"The centres differ by the vector between the two boxes; its length is {d:.2f} m."
        return rl_row(
            "rl_sr_si",
            rng,
            q,
            ph.fmt_number(d),
            media,
            ["relaxed_score"],
            "numeric",
            thought,
            room.source,
            room.room_id,
            {"unit_mixing": f"{round(d * 100)}"},
        )
    objs: list[SeenObject] = sorted(view.answerable(), key=lambda s: s.box.center[2])
    items = box_items(objs)
    q = (
        f"Detect all the objects in the image and output their 3D bounding boxes as a JSON list of "
        f'{{"bbox_3d": [x, y, z, x_size, y_size, z_size, pitch, yaw, roll], "label": ...}}. '
        f"{ph.camera_statement(view.camera, k // 3)}"
    )
    thought = f"I can see {ph.join_and([s.label for s in objs])}; I estimate each box from its image position and size."
    hooks = {"boxes": {"turn": 1, "items": items, "camera": view.camera, "fenced": False}}
    return rl_row(
        "rl_sr_si", rng, q, ph.boxes_json(items), media, ["bbox3d"], "bbox3d", thought, room.source, room.room_id, hooks
    )


def rl_sr_camera_motion(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    views = world.pick_views(rng, 2)
    p = motion_problem(rng, views) if views else None
    return (
        None
        if p is None
        else rl_choice("rl_sr_camera_motion", rng, p, view_media(views), views[0].room.source, views[0].room.room_id)
    )


def rl_sr_object_object(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    view = world.pick_view(rng, 2)
    p = left_right_problem(rng, view) if view else None
    return (
        None
        if p is None
        else rl_choice("rl_sr_object_object", rng, p, view_media([view]), view.room.source, view.room.room_id)
    )


def rl_sr_camera_camera(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    views = world.pick_views(rng, 2)
    if views is None:
        return None
    room = views[0].room
    if k % 2 == 0:
        p = camera_position_problem(rng, views)
        return (
            None
            if p is None
            else rl_choice("rl_sr_camera_camera", rng, p, view_media(views), room.source, room.room_id)
        )
    t, _ = relative_motion(*views)
    d = float(np.linalg.norm(t))
    if d < 0.5:
        return None
    thought = f"Matching shared objects puts the second camera {d:.2f} m from the first."
    return rl_row(
        "rl_sr_camera_camera",
        rng,
        "What is the distance between the two cameras in meters?",
        ph.fmt_number(d),
        view_media(views),
        ["relaxed_score"],
        "numeric",
        thought,
        room.source,
        room.room_id,
    )


def rl_gr_math(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    p, media, area = math_problem(rng)
    answer = f"\\boxed{{{area}}}" if k % 2 == 0 else str(area)
    return rl_row(
        "rl_gr_math",
        rng,
        p.question,
        answer,
        [_with_path(media, "gr/math", rng)],
        ["math_score"],
        "math",
        p.think,
        _gr_source(rng),
    )


def rl_gr_ocr(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    shop = SHOPS[int(rng.integers(len(SHOPS)))]
    img = text_card(["", shop, ""], size=(400, 160), background=(30, 60, 120), ink=(250, 250, 250), font_size=34)
    media = Media(encode_image(img), "", img.width, img.height)
    thought = f"The sign shows large white letters reading {shop}."
    return rl_row(
        "rl_gr_ocr",
        rng,
        "What is written on the sign?",
        shop,
        [_with_path(media, "gr/ocr", rng)],
        ["anls_score"],
        "ocr",
        thought,
        _gr_source(rng),
    )


def rl_gr_knowledge(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    view = world.pick_view(rng, 1)
    p = knowledge_problem(rng, view) if view else None
    if p is None:
        return None
    if k % 2 == 0:
        return rl_choice("rl_gr_knowledge", rng, p, view_media([view]), _gr_source(rng), view.room.room_id)
    q = f"Which object in the image is mainly used for {PURPOSES[p.correct_text]}? Answer with one or two words."
    return rl_row(
        "rl_gr_knowledge",
        rng,
        q,
        p.correct_text,
        view_media([view]),
        ["vqa_score"],
        "vqa",
        p.think,
        _gr_source(rng),
        view.room.room_id,
    )


COT_GENERATORS: dict[str, Generator] = {
    "cot_sr_si": cot_sr_si,
    "cot_sr_camera_motion": cot_sr_camera_motion,
    "cot_sr_object_object": cot_sr_object_object,
    "cot_sr_camera_camera": cot_sr_camera_camera,
    "cot_gr_math": cot_gr_math,
    "cot_gr_ocr": cot_gr_ocr,
    "cot_gr_knowledge": cot_gr_knowledge,
}
RL_GENERATORS: dict[str, Generator] = {
    "rl_sr_si": rl_sr_si,
    "rl_sr_camera_motion": rl_sr_camera_motion,
    "rl_sr_object_object": rl_sr_object_object,
    "rl_sr_camera_camera": rl_sr_camera_camera,
    "rl_gr_math": rl_gr_math,
    "rl_gr_ocr": rl_gr_ocr,
    "rl_gr_knowledge": rl_gr_knowledge,
}
RL_JSON_SKILLS = ["rl_sr_si", "rl_gr_ocr", "rl_gr_math", "rl_sr_object_object", "rl_gr_knowledge"]


def rl_json_row(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
    """An RL row in the JSON form: images as files beside the JSON, plus ``thought`` and ``answer_gt``."""
    skill = RL_JSON_SKILLS[k % len(RL_JSON_SKILLS)]
    row = RL_GENERATORS[skill](world, rng, k)
    if row is None:
        return None
    row.layout = "rl_json"
    row.thought = row.hooks.get("thought", "")
    row.answer_gt = row.turns[1][1]
    row.media = [Media(m.data, f"images/{row.id[:8]}_{i}.jpg", m.width, m.height) for i, m in enumerate(row.media)]
    row.hooks = {}
    return row
