"""VST-P video questions (7 skills, told apart only by wording) and the small VSI-Bench-shaped benchmark."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from curation.demo import phrasing as ph
from curation.demo.questions import data_source
from curation.demo.rooms import RoomObject
from curation.demo.rows import DemoRow, new_id, placeholders, sft_meta_info
from curation.demo.views import MIN_SEEN_FRACTION, VIDEO_CAMERA, Tour
from curation.demo.world import World

VIDEO_INTRO = "These are frames of a video."


@dataclass(frozen=True)
class VideoQA:
    """One question about a tour: training wording, benchmark wording, options, answer, benchmark type."""

    skill: str
    core: str  # training-set wording
    options: list[str] | None  # None when numeric or open
    answer: str  # a letter when options are given
    vsi_type: str | None  # the VSI-Bench question_type this corresponds to, if any
    bench_core: str = ""  # VSI-Bench wording of the same question (differs from the training wording)
    numeric: bool = False
    correct_text: str = ""  # the correct option's text (for unextractable answers)
    unit_mixing: str | None = None  # the same length in centimetres, for a question that asks meters


def _unique_seen(tour: Tour) -> list[RoomObject]:
    room = tour.room
    return [o for o in room.objects if room.count(o.label) == 1 and tour.first_seen[o.index] is not None]


def _floor_angle(a: RoomObject, b: RoomObject, c: RoomObject) -> float:
    """Degrees to turn (left > 0) for someone at ``a`` facing ``b`` to face ``c``."""
    h = np.subtract(b.center[:2], a.center[:2])
    v = np.subtract(c.center[:2], a.center[:2])
    return math.degrees(math.atan2(h[0] * v[1] - h[1] * v[0], float(np.dot(h, v))))


def _centre_distance(a: RoomObject, b: RoomObject) -> float:
    return float(np.linalg.norm(np.subtract(a.center, b.center)))


def _mc(
    rng: np.random.Generator,
    skill: str,
    core: str,
    bench_core: str,
    correct: str,
    wrong: list[str],
    vsi: str | None,
    fixed: list[str] | None = None,
) -> VideoQA:
    if fixed is not None:  # options in a fixed order (left, right, back), as the benchmark lists them
        options, letter = fixed, ph.LETTERS[fixed.index(correct)]
    else:
        options, letter = ph.shuffle_options(rng, correct, wrong)
    return VideoQA(skill, core, options, letter, vsi, bench_core, correct_text=correct)


def video_qa(kind: str, tour: Tour, rng: np.random.Generator) -> VideoQA | None:
    """A question of ``kind`` about what ``tour`` shows, or None when this tour cannot support it.

    Training rows use ``core``; the benchmark uses VSI-Bench's own wording (``bench_core``), so only
    rows deliberately copied from the benchmark share its text.
    """
    room = tour.room
    uniq = _unique_seen(tour)
    if kind == "size" and uniq:
        o = uniq[int(rng.integers(len(uniq)))]
        return VideoQA(
            "video_measurement",
            f"How long is the longest side of the {o.label}, in centimeters?",
            None,
            f"{round(max(o.width, o.height, o.depth) * 100)}",
            "object_size_estimation",
            f"What is the length of the longest dimension (length, width, or height) of the {o.label}, "
            f"measured in centimeters?",
            numeric=True,
        )
    if kind == "abs_distance" and len(uniq) >= 2:
        a, b = (uniq[int(i)] for i in rng.choice(len(uniq), size=2, replace=False))
        d = _centre_distance(a, b)
        return VideoQA(
            "video_object_object_relation",
            f"What is the distance between the centers of the {a.label} and the {b.label}, in meters?",
            None,
            ph.fmt_number(d),
            "object_abs_distance",
            f"Measuring from the center of each object, what is the direct distance between the {a.label} "
            f"and the {b.label} (in meters)?",
            numeric=True,
            unit_mixing=f"{round(d * 100)}",
        )
    if kind == "height" and uniq:
        o = uniq[int(rng.integers(len(uniq)))]
        return VideoQA(
            "video_measurement",
            f"How tall is the {o.label} in meters?",
            None,
            f"{round(o.height, 2):g}",
            None,
            numeric=True,
            unit_mixing=f"{round(o.height * 100)} cm",
        )
    if kind == "counting":
        labels = sorted({o.label for o in room.objects if tour.fully_seen(o.label)})
        if not labels:
            return None
        multi = [lab for lab in labels if room.count(lab) > 1]
        label = (multi or labels)[int(rng.integers(len(multi or labels)))]
        return VideoQA(
            "video_object_counting",
            f"How many {ph.plural(label, 2)} are in this room?",
            None,
            str(room.count(label)),
            "object_counting",
            f"How many {label}(s) are in this room?",
            numeric=True,
        )
    if kind == "appear_order":
        frames = {o.label: tour.first_seen[o.index] for o in uniq}
        labels = [lab for lab in frames if list(frames.values()).count(frames[lab]) == 1]
        if len(labels) < 3:
            return None
        chosen = [labels[int(i)] for i in rng.choice(len(labels), size=min(4, len(labels)), replace=False)]
        order = sorted(chosen, key=lambda lab: frames[lab])
        perms = [list(p) for p in itertools.permutations(chosen) if list(p) != order]
        wrong = [", ".join(perms[int(i)]) for i in rng.choice(len(perms), size=min(3, len(perms)), replace=False)]
        listed = ", ".join(chosen)
        return _mc(
            rng,
            "video_spatiotemporal",
            f"In what order do these objects appear for the first time in the video: {listed}?",
            f"What will be the first-time appearance order of the following categories in the video: {listed}?",
            ", ".join(order),
            wrong,
            "obj_appear_order",
        )
    if kind in ("rel_direction", "route") and len(uniq) >= 3:
        for _ in range(6):
            a, b, c = (uniq[int(i)] for i in rng.choice(len(uniq), size=3, replace=False))
            ang = _floor_angle(a, b, c)
            if kind == "rel_direction":
                side = (
                    "left"
                    if 25 <= ang <= 120
                    else "right"
                    if -120 <= ang <= -25
                    else "back"
                    if abs(ang) >= 150
                    else None
                )
                if side is None:
                    continue
                return _mc(
                    rng,
                    "video_object_object_relation",
                    f"Standing next to the {a.label} and looking toward the {b.label}, what is the relative "
                    f"direction of the {c.label}: left, right, or back?",
                    f"If I am standing by the {a.label} and facing the {b.label}, is the {c.label} to my left, "
                    f"right, or back? An object is to my back if I would have to turn at least 135 degrees in "
                    f"order to face it.",
                    side,
                    [],
                    "object_rel_direction_medium",
                    fixed=["left", "right", "back"],
                )
            turn = (
                "Turn left"
                if 35 <= ang <= 135
                else "Turn right"
                if -135 <= ang <= -35
                else "Turn back"
                if abs(ang) >= 150
                else None
            )
            if turn is None:
                continue
            return _mc(
                rng,
                "video_route_plan",
                f"Plan a route: I start at the {a.label}, facing the {b.label}, and want to walk to the "
                f"{c.label}. Which way should I turn before walking straight there?",
                f"You are a robot beginning at the {a.label} and facing the {b.label}. You want to navigate to "
                f"the {c.label}. You will perform the following actions (Note: for each [please fill in], choose "
                f"either 'turn back,' 'turn left,' or 'turn right.'): 1. [please fill in] 2. Go forward until the "
                f"{c.label}. You have reached the final destination.",
                turn,
                [],
                "route_planning",
                fixed=["Turn left", "Turn right", "Turn back"],
            )
        return None
    if kind == "rel_distance" and len(uniq) >= 4:
        a, *others = (uniq[int(i)] for i in rng.choice(len(uniq), size=4, replace=False))
        dists = sorted((_centre_distance(a, o), o.label) for o in others)
        if dists[1][0] - dists[0][0] < 0.4:
            return None
        names = [o.label for o in others]
        return _mc(
            rng,
            "video_object_object_relation",
            f"Among the {ph.join_and(names)}, which one is nearest to the {a.label}?",
            f"Measuring from the center of each object, which of these objects ({', '.join(names)}) is the "
            f"closest to the {a.label}?",
            dists[0][1],
            [d[1] for d in dists[1:]],
            "object_rel_distance",
        )
    if kind == "room_size":
        return VideoQA(
            "video_measurement",
            "What is the floor area of this room in square meters?",
            None,
            ph.fmt_number(room.area),
            "room_size_estimation",
            "What is the size of this room (in square meters)? If multiple rooms are shown, estimate the "
            "size of the combined space.",
            numeric=True,
        )
    if kind == "turn_direction":
        correct = "clockwise" if tour.clockwise else "counter-clockwise"
        return _mc(
            rng,
            "video_others",
            "Seen from above, is the camera turning clockwise or counter-clockwise during the video?",
            "",
            correct,
            [],
            None,
            fixed=["clockwise", "counter-clockwise"],
        )
    if kind == "last_frame":
        # Clearly in the last frame, or (every object of that label) not in it at all: nothing in between.
        big = 4 * MIN_SEEN_FRACTION * VIDEO_CAMERA.width * VIDEO_CAMERA.height
        shown = sorted({o.label for o in room.objects if tour.last_pixels[o.index] >= big})
        hidden = sorted(
            {o.label for o in room.objects if tour.first_seen[o.index] is not None}
            - {o.label for o in room.objects if tour.last_pixels[o.index] > 0}
        )
        if not shown or len(hidden) < 2:
            return None
        correct = shown[int(rng.integers(len(shown)))]
        wrong = [hidden[int(i)] for i in rng.choice(len(hidden), size=min(3, len(hidden)), replace=False)]
        return _mc(
            rng,
            "video_others",
            "Which of these objects can be seen in the last frame of the video?",
            "",
            correct,
            wrong,
            None,
        )
    if kind == "caption":
        seen = [o for o in room.objects if tour.first_seen[o.index] is not None]
        counts = Counter(o.label for o in seen)
        parts = [ph.count_phrase(lab, n) for lab, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        first = sorted(seen, key=lambda o: tour.first_seen[o.index] or 0)[:3]
        tour_turn = 'clockwise' if tour.clockwise else 'counter-clockwise'
        text = (
            f"The video pans around a {room.kind} of about {room.area:.0f} square meters with {room.wall_name} and "
            f"{room.floor_name}. It shows {ph.join_and(parts)}. The camera first sees the "
            f"{ph.join_and([o.label for o in first])}, then turns {tour_turn} "
            f"through the rest of the room."
        )
        return VideoQA("video_scene_caption", "Describe this room in detail.", None, text, None)
    return None


SKILL_KINDS: dict[str, list[str]] = {
    "video_measurement": ["size", "height", "room_size"],
    "video_object_counting": ["counting"],
    "video_spatiotemporal": ["appear_order"],
    "video_object_object_relation": ["rel_direction", "rel_distance", "abs_distance"],
    "video_route_plan": ["route"],
    "video_scene_caption": ["caption"],
    "video_others": ["turn_direction", "last_frame"],
}


def training_text(qa: VideoQA, bench_wording: bool = False) -> str:
    """The first human turn of a video row asking ``qa`` (in the benchmark's words for a contaminated row)."""
    text = f"{placeholders(0, video=True)}\n{VIDEO_INTRO}\n{qa.bench_core if bench_wording else qa.core}"
    if qa.options:
        text += "\n" + ph.options_block(qa.options)
    elif qa.numeric:
        text += " " + ph.SINGLE_WORD
    return text


def video_row(world: World, qa: VideoQA, tour: Tour, rng: np.random.Generator) -> DemoRow:
    hooks: dict = {}
    if qa.options:
        hooks["unextractable"] = qa.correct_text
    if qa.unit_mixing:
        hooks["unit_mixing"] = qa.unit_mixing
    turns = [["human", training_text(qa)], ["gpt", qa.answer]]
    return DemoRow(
        qa.skill,
        "video",
        new_id(rng),
        turns,
        [],
        data_source(rng, tour.room.source),
        "video",
        sft_meta_info([], video=True),
        video=world.use_video(tour),
        room_id=tour.room.room_id,
        hooks=hooks,
    )


def make_video_generator(skill: str):
    kinds = SKILL_KINDS[skill]

    def generate(world: World, rng: np.random.Generator, k: int) -> DemoRow | None:
        room = world.rooms[int(rng.integers(len(world.rooms)))]
        tour = world.tour(room, int(rng.integers(len(room.tours))))
        qa = video_qa(kinds[k % len(kinds)], tour, rng)
        return None if qa is None else video_row(world, qa, tour, rng)

    return generate


VIDEO_GENERATORS = {skill: make_video_generator(skill) for skill in SKILL_KINDS}


# ---------------------------------------------------------------- VSI-Bench-shaped benchmark


@dataclass(frozen=True)
class BenchItem:
    """One benchmark question (VSI-Bench fields) and the tour it is about."""

    record: dict
    qa: VideoQA
    tour: Tour


BENCH_KINDS = [
    "counting",
    "abs_distance",
    "size",
    "room_size",
    "rel_direction",
    "rel_distance",
    "route",
    "appear_order",
]


def benchmark_items(world: World, rng: np.random.Generator) -> list[BenchItem]:
    """Questions about the benchmark-only rooms; a few are later copied into training rows (benchmark_overlap)."""
    items: list[BenchItem] = []
    for room in world.bench_rooms:
        tour = world.tour(room, 0)
        for kind in BENCH_KINDS:
            qa = video_qa(kind, tour, rng)
            if qa is None or qa.vsi_type is None:
                continue
            record = {
                "id": len(items),
                "dataset": room.source,
                "scene_name": room.room_id,
                "question_type": qa.vsi_type,
                "question": qa.bench_core,
                "ground_truth": qa.answer,
                "options": [f"{ph.LETTERS[i]}. {o}" for i, o in enumerate(qa.options)] if qa.options else None,
            }
            items.append(BenchItem(record, qa, tour))
    return items
