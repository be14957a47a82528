"""The demo generator: a curator asks for synthetic VST-like data and gets every skill, exact formats, known defects."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from curation.demo import allocate, generate_demo
from curation.demo.defects import DEFECT_TYPES
from curation.demo.rooms import build_room, canonical_angles
from curation.vst.geometry import Box3D, Camera, project_points, rotation_matrix

SAMPLES, SEED = 250, 3

VST_P_IMAGE_SKILLS = [
    "si_3d_detection",
    "si_depth_comparison",
    "si_scene_caption",
    "si_3d_grounding",
    "si_distance",
    "si_measurement",
    "mi_correspondence",
    "mi_object_object_relation",
    "mi_camera_motion",
    "mi_3d_detection",
    "mi_camera_camera",
    "mi_scene_caption",
]
COT_SKILLS = [
    "cot_sr_si",
    "cot_sr_camera_motion",
    "cot_sr_object_object",
    "cot_sr_camera_camera",
    "cot_gr_math",
    "cot_gr_ocr",
    "cot_gr_knowledge",
]
RL_SKILLS = [s.replace("cot_", "rl_") for s in COT_SKILLS]
VALID_MODES = {"vqa_score", "relaxed_score", "anls_score", "math_score", "multi_choices_score", "bbox3d"}

# The formats exactly as vst-format.md §1 and §2 state them (written out here, not imported from the generator).
TURNS = pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))
IMAGES = pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
SFT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("conversations", TURNS),
        ("images", IMAGES),
        ("data_source", pa.string()),
        ("type", pa.string()),
        ("meta_info", pa.string()),
    ]
)
RL_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("images", IMAGES),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("meta_info", pa.string()),
    ]
)

HFOV_RE = re.compile(
    r"horizontal field of view \(hfov\) is ([\d.]+) degrees and vertical field of view \(vfov\) is "
    r"([\d.]+) degrees; the image is (\d+)x(\d+) pixels\."
)
INTRINSICS_RE = re.compile(
    r"The camera intrinsics are f_x = ([\d.]+), f_y = ([\d.]+), c_x = ([\d.]+), c_y = ([\d.]+)\."
)
BOX_IN_PROMPT_RE = re.compile(r"The (.+?) is at bbox_3d (\[[^\]]+\]) and the (.+?) at bbox_3d (\[[^\]]+\])\.")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "a"
    summary = generate_demo(out, samples=SAMPLES, seed=SEED, progress=False)
    assert summary.samples == SAMPLES and summary.defects == round(0.08 * SAMPLES)
    return out


@pytest.fixture(scope="module")
def defects(demo: Path) -> dict[tuple[str, int], str]:
    table = pq.read_table(demo / "defects.parquet").to_pylist()
    return {(d["file"], d["row"]): d["defect_type"] for d in table}


def sft_rows(demo: Path, rel: str) -> list[dict]:
    return pq.read_table(demo / rel).to_pylist()


def all_image_shards(demo: Path) -> list[str]:
    rels = [f"vst_p/{s}/part-00000.parquet" for s in VST_P_IMAGE_SKILLS]
    return rels + [f"vst_r/cot/{s}/part-00000.parquet" for s in COT_SKILLS]


def stated_camera(text: str, width: int, height: int) -> Camera:
    if m := HFOV_RE.search(text):
        return Camera.from_fov(float(m[1]), float(m[2]), int(m[3]), int(m[4]))
    m = INTRINSICS_RE.search(text)
    assert m, f"no camera statement in {text!r}"
    return Camera(float(m[1]), float(m[2]), float(m[3]), float(m[4]), width, height)


def answer_boxes(text: str) -> list[dict]:
    m = re.fullmatch(r"```json\n(.*)\n```", text, re.DOTALL)
    assert m, f"not a fenced json answer: {text!r}"
    return json.loads(m[1])


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def first_letter(answer: str) -> str | None:
    m = re.search(r"(?<![A-Za-z])([A-F])(?![A-Za-z])", answer.replace("`", ""))
    return m[1] if m else None


def file_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------- layout and formats


def test_every_skill_has_its_folder_and_the_manifest_counts_them(demo: Path):
    for skill in VST_P_IMAGE_SKILLS:
        assert (demo / "vst_p" / skill / "part-00000.parquet").is_file(), skill
    for skill in COT_SKILLS:
        assert (demo / "vst_r/cot" / skill / "part-00000.parquet").is_file(), skill
    for skill in RL_SKILLS:
        assert (demo / "vst_r/rl" / skill / "part-00000.parquet").is_file(), skill
    for rel in [
        "vst_p/video/video_train.json",
        "vst_r/rl_json/rl_extra.json",
        "benchmarks/vsi_bench.jsonl",
        "defects.parquet",
        "demo_manifest.json",
        "vst_p/si_distance/part-00001.parquet",
    ]:
        assert (demo / rel).is_file(), rel
    manifest = json.loads((demo / "demo_manifest.json").read_text())
    assert manifest["seed"] == SEED and manifest["samples"] == SAMPLES
    assert sum(manifest["skills"].values()) == SAMPLES
    assert len([s for s in manifest["skills"] if s.startswith("video_")]) == 7
    rows_in_files = sum(
        n
        for rel, n in manifest["files"].items()
        if rel.startswith(("vst_p/", "vst_r/")) and rel.endswith((".parquet", ".json"))
    )
    assert rows_in_files == SAMPLES
    assert sorted(manifest["defects"]) == sorted(DEFECT_TYPES)


def test_parquet_schemas_match_the_vst_formats_exactly(demo: Path):
    for rel in all_image_shards(demo):
        assert pq.read_schema(demo / rel).remove_metadata() == SFT_SCHEMA, rel
    for skill in RL_SKILLS:
        assert pq.read_schema(demo / f"vst_r/rl/{skill}/part-00000.parquet").remove_metadata() == RL_SCHEMA, skill
    byres = pq.read_schema(demo / "vst_p/si_distance/part-00001.parquet")
    assert byres.field("images").type.value_type.names == ["byres", "path"]
    big = pq.ParquetFile(demo / "vst_p/si_3d_detection/part-00000.parquet")
    assert big.num_row_groups >= 1 and big.metadata.row_group(0).num_rows <= 64


def test_rows_carry_placeholders_meta_info_and_scene_paths(demo: Path, defects):
    for rel in all_image_shards(demo):
        for i, row in enumerate(sft_rows(demo, rel)):
            if (rel, i) in defects:
                continue
            first = row["conversations"][0]
            assert first["from"] == "human"
            assert first["value"].count("<|image_pad|>") == len(row["images"]) >= 1
            assert first["value"].startswith("<|image_pad|>")
            meta = json.loads(row["meta_info"])
            assert len(meta) == len(row["images"])
            for item, img in zip(meta, row["images"]):
                assert (item["width"], item["height"]) == decode(img["bytes"]).size
                assert item["resized_width"] % 28 == 0 and item["resized_height"] % 28 == 0
                if rel.startswith("vst_p/"):
                    assert re.fullmatch(r"scenes/room_\d{4}/cam_\d{2}\.jpg", img["path"])


def test_video_rows_are_llava_json_and_their_videos_decode(demo: Path, defects):
    rel = "vst_p/video/video_train.json"
    rows = json.loads((demo / rel).read_text())
    decoded = set()
    for i, row in enumerate(rows):
        assert sorted(row) == ["conversations", "data_source", "id", "type", "video"]
        if (rel, i) in defects:
            continue
        assert row["conversations"][0]["value"].startswith("<|video_pad|>\nThese are frames of a video.")
        path = demo / "vst_p/video" / row["video"]
        assert path.is_file(), row["video"]
        if path not in decoded:
            with av.open(str(path)) as container:
                frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
            assert len(frames) == 16 and frames[0].shape == (120, 160, 3)
            decoded.add(path)
    assert decoded


def test_rl_rows_have_valid_modes_and_stay_in_the_token_budget(demo: Path, defects):
    for skill in RL_SKILLS:
        rel = f"vst_r/rl/{skill}/part-00000.parquet"
        for i, row in enumerate(sft_rows(demo, rel)):
            if (rel, i) in defects:
                continue
            meta = json.loads(row["meta_info"])
            assert set(meta["mode"]) <= VALID_MODES and meta["question_type"]
            tokens = 0
            for img in row["images"]:
                w, h = decode(img["bytes"]).size
                tokens += min(max(w * h, 4 * 28 * 28), 4096 * 28 * 28) // (28 * 28)
            assert tokens < 8192 and len(row["images"]) <= 4
            if meta["mode"] == ["multi_choices_score"]:
                assert first_letter(row["answer"]) is not None
    extra = json.loads((demo / "vst_r/rl_json/rl_extra.json").read_text())
    for rec in extra:
        assert {"id", "images", "question", "answer", "thought", "answer_gt", "data_source"} <= set(rec)
        for p in rec["images"]:
            decode((demo / "vst_r/rl_json" / p).read_bytes())


def test_cot_rows_reason_in_one_think_block_that_concludes_the_answer(demo: Path, defects):
    for skill in COT_SKILLS:
        rel = f"vst_r/cot/{skill}/part-00000.parquet"
        for i, row in enumerate(sft_rows(demo, rel)):
            assert "thought" in row["type"] or (rel, i) in defects
            if (rel, i) in defects:
                continue
            target = row["conversations"][1]["value"]
            m = re.fullmatch(r"<think>(.*)</think> (\S+)", target, re.DOTALL)
            assert m and "<think>" not in m[1]
            assert m[1].endswith(f"So the answer is {m[2]}.")


# ---------------------------------------------------------------- geometry


def test_answer_boxes_land_on_the_pixels_of_their_objects(demo: Path, defects):
    scenes: dict[str, dict] = {}
    checked = 0
    for skill in ("si_3d_detection", "si_3d_grounding"):
        rel = f"vst_p/{skill}/part-00000.parquet"
        for i, row in enumerate(sft_rows(demo, rel)):
            if (rel, i) in defects:
                continue
            img = np.asarray(decode(row["images"][0]["bytes"]).convert("RGB")).astype(int)
            room = re.search(r"room_\d{4}", row["images"][0]["path"])[0]
            scene = scenes.setdefault(room, json.loads((demo / "scenes" / f"{room}.json").read_text()))
            camera = stated_camera(row["conversations"][0]["value"], img.shape[1], img.shape[0])
            for item in answer_boxes(row["conversations"][1]["value"]):
                box = Box3D.from_vst(item["label"], item["bbox_3d"])
                assert all(s > 0 for s in box.size) and all(-1 < a < 1 for a in box.angles)
                ((u, v),) = project_points(camera, np.asarray([box.center]))[0]
                assert 0 <= u < camera.width and 0 <= v < camera.height and box.center[2] > 0
                patch = img[int(v) - 1 : int(v) + 2, int(u) - 1 : int(u) + 2].reshape(-1, 3)
                colour = np.median(patch, axis=0)
                colours = [o["color"] for o in scene["objects"] if o["label"] == item["label"]]
                assert min(np.abs(colour - c).max() for c in colours) < 40, (rel, i, item)
                checked += 1
    assert checked > 20


def test_depth_and_distance_answers_follow_the_boxes_in_the_prompt(demo: Path, defects):
    wrong_seen = 0
    for skill in ("si_depth_comparison", "si_distance"):
        rel = f"vst_p/{skill}/part-00000.parquet"
        for i, row in enumerate(sft_rows(demo, rel)):
            question, answer = row["conversations"][0]["value"], row["conversations"][1]["value"]
            m = BOX_IN_PROMPT_RE.search(question)
            if (rel, i) in defects and defects[(rel, i)] not in ("wrong_answer",):
                continue
            a, b = np.array(json.loads(m[2])), np.array(json.loads(m[4]))
            if skill == "si_distance":
                ok = abs(float(answer) - float(np.linalg.norm(a[:3] - b[:3]))) <= 0.06
            else:
                closer = m[1] if np.linalg.norm(a[:3]) < np.linalg.norm(b[:3]) else m[3]
                farther = m[3] if closer == m[1] else m[1]
                options = dict(re.findall(r"^([A-F]): (.+)$", question, re.MULTILINE))
                said = options.get(answer, answer)
                ok = said == (farther if "farther" in question else closer)
            assert ok == ((rel, i) not in defects), (rel, i, question, answer)
            wrong_seen += not ok
    assert wrong_seen == sum(1 for (f, _), t in defects.items() if t == "wrong_answer" and "si_d" in f)


def test_box_angles_are_the_rotation_the_geometry_module_expects():
    room = build_room("room_9999", np.random.default_rng(5))
    for pose in room.poses[:3]:
        for obj in room.objects:
            box = obj.box_in_camera(pose)
            assert np.allclose(rotation_matrix(canonical_angles(box.rotation)), box.rotation, atol=1e-9)
            world_corners = pose.camera_to_world(box.corners())
            assert np.allclose(
                sorted(map(tuple, world_corners.round(6))),
                sorted(map(tuple, pose.camera_to_world(obj.corners_in_camera(pose)).round(6))),
            )
            assert max(abs(a) for a in box.angles) < 1


def test_scenes_are_point_clouds_with_their_objects(demo: Path):
    import open3d as o3d

    pcd = o3d.io.read_point_cloud(str(demo / "scenes/room_0000.ply"))
    assert len(pcd.points) == 100_000 and pcd.has_colors()
    scene = json.loads((demo / "scenes/room_0000.json").read_text())
    assert 5 <= len(scene["objects"]) <= 15 and len(scene["cameras"]) >= 2
    lo, hi = np.asarray(pcd.points).min(axis=0), np.asarray(pcd.points).max(axis=0)
    assert np.all(lo > -0.01) and hi[0] <= scene["size"][0] + 0.01 and hi[1] <= scene["size"][1] + 0.01


# ---------------------------------------------------------------- defects and determinism


def test_defects_point_at_real_rows_that_really_have_the_defect(demo: Path, defects):
    table = pq.read_table(demo / "defects.parquet")
    assert table.schema.names == ["file", "row", "source_id", "defect_type"]
    cache: dict[str, list[dict]] = {}
    for rec in table.to_pylist():
        rel, i, kind = rec["file"], rec["row"], rec["defect_type"]
        assert kind in DEFECT_TYPES
        if rel not in cache:
            cache[rel] = sft_rows(demo, rel) if rel.endswith(".parquet") else json.loads((demo / rel).read_text())
        row = cache[rel][i]
        assert row["id"] == rec["source_id"]
        if kind == "missing_video":
            assert not (demo / "vst_p/video" / row["video"]).exists()
        elif kind == "invalid_meta_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(row["meta_info"])
        elif kind == "corrupt_image":
            assert any(_fails(lambda b=img["bytes"]: decode(b)) for img in row["images"])
        elif kind == "tiny_image":
            assert any(min(decode(img["bytes"]).size) < 28 for img in row["images"])
        elif kind == "extreme_aspect":
            assert any(max(s := decode(img["bytes"]).size) / min(s) > 100 for img in row["images"])
        elif kind == "placeholder_mismatch":
            text = row["conversations"][0]["value"]
            media = len(row["images"]) if "images" in row else 1
            assert text.count("<|image_pad|>") + text.count("<|video_pad|>") != media
        elif kind == "invalid_rl_mode":
            assert not set(json.loads(row["meta_info"])["mode"]) <= VALID_MODES
        elif kind == "unknown_type":
            assert (
                row["type"]
                not in (
                    "bbox_3d",
                    "depth",
                    "distance",
                    "qa",
                    "caption",
                    "correspondence",
                    "multi_image",
                    "caption-multi-view",
                    "video",
                )
                and "thought" not in row["type"]
            )


def _fails(fn) -> bool:
    try:
        fn()
    except (OSError, ValueError, SyntaxError):  # what Pillow raises for bytes that are no (complete) image
        return True
    return False


def test_every_defect_kind_appears_at_full_size_allocation():
    counts = allocate(2000)
    assert sum(counts.values()) == 2000 and min(counts.values()) >= 3
    with pytest.raises(ValueError, match="samples"):
        allocate(10)


def test_same_seed_gives_byte_identical_files(demo: Path, tmp_path: Path):
    again = tmp_path / "b"
    generate_demo(again, samples=SAMPLES, seed=SEED, progress=False)
    first, second = file_hashes(demo), file_hashes(again)
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []


def test_benchmark_overlap_rows_copy_a_benchmark_question(demo: Path, defects):
    bench = [json.loads(line) for line in (demo / "benchmarks/vsi_bench.jsonl").read_text().splitlines()]
    assert bench and set(bench[0]) == {
        "id",
        "dataset",
        "scene_name",
        "question_type",
        "question",
        "ground_truth",
        "options",
    }
    questions = {b["question"] for b in bench}
    rows = json.loads((demo / "vst_p/video/video_train.json").read_text())
    for i, row in enumerate(rows):
        copied = any(q in row["conversations"][0]["value"] for q in questions)
        assert copied == (defects.get(("vst_p/video/video_train.json", i)) == "benchmark_overlap"), row


def test_a_skill_that_runs_out_of_distinct_questions_hands_its_rows_to_the_others():
    """At 10k+ samples the video skills' few tours ran out of distinct questions and the demo raised; now the
    shortfall goes to skills that still have room, and every row stays distinct."""
    from tqdm import tqdm

    from curation.demo.generate import DemoConfig, _generate_rows
    from curation.demo.world import build_world

    world = build_world(seed=5, n_rooms=4, n_bench_rooms=0, n_cameras=4)
    counts = {"video_object_counting": 400, "si_distance": 100, "si_depth_comparison": 50}
    with tqdm(disable=True) as bar:
        rows = _generate_rows(world, DemoConfig(seed=5), counts, bar)
    by_skill = {s: sum(r.skill == s for r in rows) for s in counts}
    assert len(rows) == 550
    assert 0 < by_skill["video_object_counting"] < 400  # four rooms cannot hold 400 distinct counting questions
    assert by_skill["si_distance"] > 100 and by_skill["si_depth_comparison"] > 50
    keys = {(tuple(map(tuple, r.turns)), tuple(m.path for m in r.media), r.video) for r in rows}
    assert len(keys) == len(rows)
