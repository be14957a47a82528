"""Build the synthetic VST-like demo: rooms, samples for all 33 skills, injected defects, and the files on disk."""

from __future__ import annotations

import math
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from curation.demo import writer
from curation.demo.defects import DEFECT_TYPES, DefectInjector, DefectRecord
from curation.demo.questions import GENERATORS
from curation.demo.reasoning import COT_GENERATORS, RL_GENERATORS, rl_json_row
from curation.demo.rooms import write_scene
from curation.demo.rows import DemoRow
from curation.demo.video import write_mp4
from curation.demo.video_questions import VIDEO_GENERATORS, benchmark_items
from curation.demo.world import World, build_world

# Rows per skill in the full VST sets (thousands, vst-format.md §6). The demo takes square roots so
# rare skills still get rows, and leans toward the families that carry most defect kinds.
FULL_COUNTS_K: dict[str, float] = {
    "si_3d_detection": 1586,
    "si_depth_comparison": 412,
    "si_scene_caption": 106,
    "si_3d_grounding": 170,
    "si_distance": 251,
    "si_measurement": 175,
    "mi_correspondence": 361,
    "mi_object_object_relation": 230,
    "mi_camera_motion": 88,
    "mi_3d_detection": 600,
    "mi_camera_camera": 63,
    "mi_scene_caption": 35,
    "video_measurement": 3,
    "video_object_counting": 12,
    "video_spatiotemporal": 10,
    "video_object_object_relation": 19,
    "video_route_plan": 4,
    "video_scene_caption": 5,
    "video_others": 35,
    "cot_sr_si": 15,
    "cot_sr_camera_motion": 6,
    "cot_sr_object_object": 15,
    "cot_sr_camera_camera": 6,
    "cot_gr_math": 31,
    "cot_gr_ocr": 9,
    "cot_gr_knowledge": 24,
    "rl_sr_si": 2,
    "rl_sr_camera_motion": 1,
    "rl_sr_object_object": 5,
    "rl_sr_camera_camera": 2,
    "rl_gr_math": 8,
    "rl_gr_ocr": 2,
    "rl_gr_knowledge": 10,
}
FAMILY_BOOST = {"si": 1.0, "mi": 1.0, "video": 2.0, "cot": 1.5, "rl": 2.5}
ALL_GENERATORS = {**GENERATORS, **VIDEO_GENERATORS, **COT_GENERATORS, **RL_GENERATORS}
MIN_SAMPLES = 40
_OWNED = ["vst_p", "vst_r", "scenes", "benchmarks", "defects.parquet", "demo_manifest.json"]


@dataclass(frozen=True)
class DemoSummary:
    """What a demo run produced."""

    out_dir: Path
    samples: int  # rows written across all sample files
    defects: int  # rows that carry an injected defect
    files: int  # files written
    seconds: float


@dataclass(frozen=True)
class DemoConfig:
    """Every knob of a demo run; ``generate_demo`` fills the defaults."""

    samples: int = 2000
    seed: int = 0
    defect_rate: float = 0.08
    points_per_room: int = 100_000
    cameras_per_room: int = 8
    benchmark_rooms: int = 2


def allocate(samples: int) -> dict[str, int]:
    """Rows per skill (plus ``rl_json``) summing to ``samples``: a floor for every skill, the rest by weight."""
    if samples < MIN_SAMPLES:
        raise ValueError(f"demo: samples={samples} is too small; use at least {MIN_SAMPLES} so every skill gets a row")
    n_json = max(1, round(0.01 * samples))
    rest = samples - n_json
    floor = max(1, min(3, rest // (3 * len(FULL_COUNTS_K)) + 1))
    weights = {s: math.sqrt(c) * FAMILY_BOOST[s.split("_")[0]] for s, c in FULL_COUNTS_K.items()}
    total_w = sum(weights.values())
    spare = rest - floor * len(weights)
    raw = {s: spare * w / total_w for s, w in weights.items()}
    counts = {s: floor + int(v) for s, v in raw.items()}
    # Largest remainders take the rows that rounding down left over (ties broken by name: deterministic).
    left = rest - sum(counts.values())
    for s in sorted(raw, key=lambda s: (-(raw[s] - int(raw[s])), s))[:left]:
        counts[s] += 1
    counts["rl_json"] = n_json
    return counts


def generate_demo(
    out_dir: Path, samples: int = 2000, seed: int = 0, defect_rate: float = 0.08, progress: bool = True
) -> DemoSummary:
    """Write a synthetic VST-like dataset with known defects under ``out_dir`` (same seed, same bytes)."""
    return build_demo(Path(out_dir), DemoConfig(samples=samples, seed=seed, defect_rate=defect_rate), progress)


class _SkillRows:
    """Distinct rows of one skill from one random stream; ``exhausted`` once its rooms stop yielding new ones."""

    ATTEMPTS = 200  # misses in a row before a skill counts as out of distinct questions

    def __init__(self, world: World, skill: str, rng: np.random.Generator):
        self.world, self.skill, self.rng = world, skill, rng
        self.gen = rl_json_row if skill == "rl_json" else ALL_GENERATORS[skill]
        self.seen: set[tuple] = set()
        self.k = 0  # variant index of the next row
        self.exhausted = False

    def next(self) -> DemoRow | None:
        for attempt in range(self.ATTEMPTS):
            # Variant k first; after repeated misses move on to the next variant of the question.
            row = self.gen(self.world, self.rng, self.k + attempt // 20)
            if row is None:
                continue
            key = (tuple(map(tuple, row.turns)), tuple(m.path for m in row.media), row.video)
            if key not in self.seen:
                self.seen.add(key)
                self.k += 1
                return row
        self.exhausted = True
        return None


def _generate_rows(world: World, config: DemoConfig, counts: dict[str, int], bar: tqdm) -> list[DemoRow]:
    """``counts`` rows per skill, all distinct. A skill whose rooms run out of distinct questions (the video skills,
    whose tours are few, past about 10k samples) stops there; what it could not fill goes to the skills that still
    have room, in proportion to their allocation, so the demo has as many rows as asked."""
    streams = {skill: _SkillRows(world, skill, np.random.default_rng([config.seed, 2, index]))
               for index, skill in enumerate(counts)}
    rows: list[DemoRow] = []
    wanted = dict(counts)
    while wanted:
        for skill, n in wanted.items():
            stream = streams[skill]
            for _ in range(n):
                row = stream.next()
                if row is None:
                    break
                rows.append(row)
                bar.update(1)
        short = sum(counts.values()) - len(rows)
        open_skills = {s: counts[s] for s, st in streams.items() if not st.exhausted}
        if short <= 0:
            break
        if not open_skills:
            raise RuntimeError(f"demo: every skill ran out of distinct questions at {len(rows)} rows "
                               f"(seed {config.seed}); ask for fewer samples")
        wanted = _spread(short, open_skills)
    return rows


def _spread(total: int, weights: dict[str, int]) -> dict[str, int]:
    """``total`` split in proportion to ``weights`` by largest remainders (ties by name: deterministic)."""
    whole = sum(weights.values())
    raw = {s: total * w / whole for s, w in weights.items()}
    share = {s: int(v) for s, v in raw.items()}
    for s in sorted(raw, key=lambda s: (-(raw[s] - share[s]), s))[: total - sum(share.values())]:
        share[s] += 1
    return {s: n for s, n in share.items() if n}


def _clear(out_dir: Path) -> None:
    """Remove what an earlier demo wrote here (only the demo's own entries), so no stale files survive."""
    for name in _OWNED:
        p = out_dir / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def build_demo(out_dir: Path, config: DemoConfig, progress: bool = True) -> DemoSummary:
    t0 = time.perf_counter()
    if not 0.0 <= config.defect_rate <= 0.5:
        raise ValueError(f"demo: defect_rate={config.defect_rate} must lie in [0, 0.5]")
    counts = allocate(config.samples)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear(out_dir)

    n_rooms = int(np.clip(round(config.samples / 60), 4, 40))
    world = build_world(config.seed, n_rooms, config.benchmark_rooms, config.cameras_per_room)
    with tqdm(total=config.samples, desc="demo samples", disable=not progress, unit="row") as bar:
        rows = _generate_rows(world, config, counts, bar)

    # A small slice of si_distance goes to a second file whose image struct uses the upstream "byres" key.
    si_distance = [r for r in rows if r.skill == "si_distance"]
    n_byres = max(1, min(len(si_distance) // 4, round(0.01 * config.samples)))
    for r in rows:
        r.file = writer.file_for(r)
    for r in si_distance[-n_byres:]:
        r.file = "vst_p/si_distance/part-00001.parquet"

    bench = benchmark_items(world, np.random.default_rng([config.seed, 3]))
    injector = DefectInjector(rows, world, bench, np.random.default_rng([config.seed, 4]))
    n_defects = injector.inject(round(config.defect_rate * config.samples))

    written = _write_all(out_dir, world, rows, bench, config, progress)
    manifest = _manifest(config, counts, rows, world, written, out_dir)
    writer.write_json(out_dir / "demo_manifest.json", manifest)
    return DemoSummary(out_dir, len(rows), n_defects, len(written) + 1, time.perf_counter() - t0)


def _write_all(
    out_dir: Path, world: World, rows: list[DemoRow], bench: list, config: DemoConfig, progress: bool
) -> dict[str, int]:
    """Write every file; returns {relative path: rows} (0 for media and scene files)."""
    by_file: dict[str, list[DemoRow]] = {}
    for r in rows:
        by_file.setdefault(r.file, []).append(r)
    written: dict[str, int] = {}
    defects: list[DefectRecord] = []
    for rel, file_rows in sorted(by_file.items()):
        path = out_dir / rel
        if rel == writer.VIDEO_JSON:
            writer.write_video_json(path, file_rows)
        elif rel == writer.RL_JSON:
            for p in writer.write_rl_json(path, file_rows):
                written[p.relative_to(out_dir).as_posix()] = 0
        elif rel.startswith("vst_r/rl/"):
            writer.write_rl(path, file_rows)
        else:
            writer.write_sft(path, file_rows, byres=rel.endswith("part-00001.parquet"))
        written[rel] = len(file_rows)
        defects += [DefectRecord(rel, i, r.id, r.defect) for i, r in enumerate(file_rows) if r.defect]

    rooms = world.rooms + world.bench_rooms
    for k, room in enumerate(tqdm(rooms, desc="demo scenes", disable=not progress, unit="room")):
        for p in write_scene(
            room, out_dir / "scenes", np.random.default_rng([config.seed, 5, k]), config.points_per_room
        ):
            written[p.relative_to(out_dir).as_posix()] = 0
    video_dir = out_dir / writer.VIDEO_JSON.rsplit("/", 1)[0] / "videos"
    for room_id, index in sorted(world.used_videos):
        path = video_dir / f"{room_id}_path{index}.mp4"
        write_mp4(path, world.tour(world.room(room_id), index).frames)
        written[path.relative_to(out_dir).as_posix()] = 0

    writer.write_jsonl(out_dir / "benchmarks" / "vsi_bench.jsonl", [b.record for b in bench])
    written["benchmarks/vsi_bench.jsonl"] = len(bench)
    writer.write_defects(out_dir / "defects.parquet", defects)
    written["defects.parquet"] = len(defects)
    return written


def _manifest(
    config: DemoConfig,
    counts: dict[str, int],
    rows: list[DemoRow],
    world: World,
    written: dict[str, int],
    out_dir: Path,
) -> dict:
    defect_counts = Counter(r.defect for r in rows if r.defect)
    return {
        "generator": "curation.demo",
        "version": 1,
        "seed": config.seed,
        "samples": len(rows),
        "defect_rate": config.defect_rate,
        "defects": {d: defect_counts.get(d, 0) for d in DEFECT_TYPES},
        "defects_total": sum(defect_counts.values()),
        "skills": dict(sorted(Counter(r.skill for r in rows).items())),
        "rooms": [r.room_id for r in world.rooms],
        "benchmark_rooms": [r.room_id for r in world.bench_rooms],
        "points_per_room": config.points_per_room,
        "files": dict(sorted(written.items())),
        "conventions": {
            "boxes": "camera frame of the first image: X right, Y down, Z forward; [x, y, z, x_size, y_size, "
            "z_size, pitch, yaw, roll], metres, angles = radians / pi, rounded to 2 decimals",
            "distances": "object-object distances are between box centres; depth comparisons by distance from "
            "the camera centre (depth order agrees)",
            "duplicates": "defects.parquet marks the copy, not the original it was copied from",
            "video_rows": "all video skills share vst_p/video/video_train.json; rows are told apart by wording",
        },
    }
