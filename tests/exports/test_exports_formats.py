"""Each training format, checked against its documented field names and read back by the standard readers
(Hugging Face datasets' JSON/Parquet loaders, pyarrow); determinism, shards, media and the manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import xxhash

from curation.mixtures.export import export_mixture
from curation.mixtures.recipe import load_recipe, parse_recipe
from curation.settings import Settings, load_settings
from exports import FORMATS
from exports.formats.vst_rl import SCHEMA as VST_RL_SCHEMA
from exports.formats.vst_sft import SCHEMA as VST_SFT_SCHEMA
from exports.manifest import sha256_file
from tests.support.actors import CURATOR
from tests.support.exports_fixtures import make_home, recipe

TAGS = ("<image>", "<video>", "<|image_pad|>", "<|video_pad|>")
VALID_MODES = {"vqa_score", "relaxed_score", "anls_score", "math_score", "multi_choices_score", "bbox3d"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Settings:
    return make_home(tmp_path_factory.mktemp("fmt"))


@pytest.fixture(scope="module")
def exported(built: Settings, tmp_path_factory) -> dict[str, Path]:
    """Everything but the missing video, in all six formats, with one reviewed fix applied."""
    from curation.review.reviews import add_review
    from db.engine import open_state
    from tests.support.actors import person

    db = open_state(built.db_url)
    add_review(db, "dist-002", "fix", person("carol"), fixed_answer="1.25")
    out = tmp_path_factory.mktemp("exports") / "all"
    outcomes = export_mixture(parse_recipe(recipe(apply_fixes=True)), built, list(FORMATS), out, state_db=db,
                              by=CURATOR)
    db.close()
    return {o.format: o.out_dir for o in outcomes}


def _load(kind: str, files: list[Path], cache: Path):
    import datasets

    return datasets.load_dataset(kind, data_files=[str(f) for f in files], split="train", cache_dir=str(cache))


def _count_tags(text: str, tags: tuple[str, ...]) -> int:
    return sum(text.count(t) for t in tags)


def test_vst_sft_is_the_vst_schema_exactly_with_media_embedded(exported, tmp_path):
    files = sorted(exported["vst-sft"].rglob("*.parquet"))
    assert {f.parent.name for f in files} == {"si_distance", "si_depth_comparison", "cot_sr_si", "rl_gr_math",
                                              "video_object_counting"}
    for f in files:
        assert pq.read_schema(f).remove_metadata() == VST_SFT_SCHEMA
    ds = _load("parquet", files, tmp_path / "hf")
    assert ds.num_rows == 34 and set(ds.column_names) == set(VST_SFT_SCHEMA.names)
    for row in ds:
        human = row["conversations"][0]
        assert human["from"] == "human" and _count_tags(human["value"], TAGS[2:]) == len(row["images"])
        assert all(item["bytes"] for item in row["images"])
        assert isinstance(json.loads(row["meta_info"]), list)
    fixed = next(r for r in ds if r["id"] == "dist-002")
    assert fixed["conversations"][1] == {"from": "gpt", "value": "1.25"}


def test_vst_rl_has_the_rl_columns_and_valid_modes(exported, tmp_path):
    files = sorted(exported["vst-rl"].rglob("*.parquet"))
    for f in files:
        assert pq.read_schema(f).remove_metadata() == VST_RL_SCHEMA
    ds = _load("parquet", files, tmp_path / "hf")
    for row in ds:
        meta = json.loads(row["meta_info"])
        assert set(meta["mode"]) <= VALID_MODES and meta["question_type"]
        assert "<think>" not in row["answer"]
    rl = {r["id"]: r for r in ds}
    assert json.loads(rl["rl-1"]["meta_info"])["mode"] == ["math_score"]  # the row's own modes are kept
    assert json.loads(rl["depth-001"]["meta_info"])["mode"] == ["multi_choices_score"]


def test_llava_json_uses_image_tags_and_content_addressed_media(exported, tmp_path):
    out = exported["llava"]
    (data,) = sorted((out / "data").glob("*.json"))
    records = json.loads(data.read_text())
    assert len(records) == 34
    for r in records:
        assert set(r) <= {"id", "image", "video", "conversations"}  # the keys LLaVA's loader reads
        media = _llava_media(r)
        human = " ".join(t["value"] for t in r["conversations"] if t["from"] == "human")
        assert _count_tags(human, ("<image>", "<video>")) == len(media)
        assert not any(_count_tags(t["value"], TAGS) for t in r["conversations"] if t["from"] == "gpt")
        assert not _count_tags(human, TAGS[2:])
        for rel in media:
            blob = (out / rel).read_bytes()
            assert Path(rel).name.split(".")[0] == xxhash.xxh3_64_hexdigest(blob)  # named by its digest
    assert sum(1 for r in records if isinstance(r.get("image"), list)) == 10  # two-image depth questions: a list


def _llava_media(r: dict) -> list[str]:
    """A LLaVA record's media: ``image`` is one path or a list of paths, ``video`` one path."""
    image = r.get("image") or []
    return (image if isinstance(image, list) else [image]) + ([r["video"]] if "video" in r else [])


def test_media_is_written_once_per_digest(exported):
    out = exported["llava"]
    records = json.loads(next((out / "data").glob("*.json")).read_text())
    referenced = {p for r in records for p in _llava_media(r)}
    on_disk = {p.relative_to(out).as_posix() for p in (out / "media").rglob("*") if p.is_file()}
    assert referenced == on_disk
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["media"]["files"] == len(on_disk) and manifest["media"]["reused"] > 0


def test_llamafactory_sharegpt_records_and_dataset_info_entry(exported, tmp_path):
    out = exported["llamafactory"]
    info = json.loads((out / "dataset_info.json").read_text())
    assert info == {"test-mix": {
        "file_name": "data", "formatting": "sharegpt",
        "columns": {"messages": "conversations", "images": "images", "videos": "videos"},
        "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "system_tag": "system"}}}
    files = sorted((out / info["test-mix"]["file_name"]).iterdir())  # LLaMA-Factory loads the whole folder
    ds = _load("json", files, tmp_path / "hf")
    assert ds.num_rows == 34 and {"conversations", "images", "videos"} <= set(ds.column_names)
    for row in ds:
        roles = [t["from"] for t in row["conversations"]]
        assert roles[0] == "human" and roles[1] == "gpt"
        human = row["conversations"][0]["value"]
        assert human.count("<image>") == len(row["images"]) and human.count("<video>") == len(row["videos"])
        assert all((out / p).is_file() for p in row["images"] + row["videos"])  # relative to the dataset dir


def test_swift_jsonl_has_messages_media_and_a_solution_column(exported, tmp_path):
    out = exported["swift"]
    files = sorted((out / "data").glob("*.jsonl"))
    lines = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert len(lines) == 34
    for rec in lines:
        assert set(rec) == {"id", "messages", "images", "videos", "solution"}
        assert all(Path(p).is_absolute() and Path(p).is_file() for p in rec["images"] + rec["videos"])
        assert [m["role"] for m in rec["messages"]] == ["user", "assistant"]
        assert rec["messages"][0]["content"].count("<image>") == len(rec["images"])
        assert "<think>" not in rec["solution"]
    cot = next(r for r in lines if r["messages"][1]["content"].startswith("<think>"))
    assert cot["solution"] == "A"  # the final answer after the trace
    assert _load("json", files, tmp_path / "hf").num_rows == 34


def test_verl_parquet_has_prompt_images_and_rule_reward(exported, tmp_path):
    files = sorted(exported["verl"].rglob("*.parquet"))
    schema = pq.read_schema(files[0])
    assert schema.names == ["data_source", "prompt", "images", "videos", "ability", "reward_model", "extra_info"]
    ds = _load("parquet", files, tmp_path / "hf")
    for row in ds:
        (msg,) = row["prompt"]
        assert msg["role"] == "user" and msg["content"].count("<image>") == len(row["images"])
        assert row["reward_model"]["style"] == "rule" and row["reward_model"]["ground_truth"]
        extra = row["extra_info"]
        assert extra["split"] == "train" and extra["answer"] == row["reward_model"]["ground_truth"]
        assert not _count_tags(extra["question"], TAGS)
    indexes = sorted(r["extra_info"]["index"] for r in ds)
    assert indexes == list(range(34))


def test_the_manifest_says_what_went_in_and_hashes_every_file(exported):
    out = exported["vst-sft"]
    m = json.loads((out / "manifest.json").read_text())
    assert m["format"] == "vst-sft" and m["recipe"]["name"] == "test-mix" and m["catalog"]["version"]
    assert m["written"]["rows"] == 34 == sum(m["written"]["counts"]["by_skill"].values())
    assert m["written"]["counts"]["by_component"] == {"all": 34}
    assert set(m["written"]["counts"]) == {"by_component", "by_skill", "by_source", "by_group", "by_dataset"}
    assert m["selection"]["excluded"] == {"total": 1, "by_reason": {"missing_media": 1}}
    assert m["selection"]["fixes"]["applied"] == 1
    for f in m["files"]:
        assert (out / f["path"]).stat().st_size == f["bytes"] and sha256_file(out / f["path"]) == f["sha256"]
    assert {f["path"] for f in m["files"]} == {p.relative_to(out).as_posix() for p in out.rglob("*.parquet")} | {
        "vst_data.yaml"}


def test_the_same_recipe_twice_gives_byte_identical_files(built, tmp_path):
    r = parse_recipe(recipe(seed=5, shard_rows=7))
    a = {o.format: o for o in export_mixture(r, built, ["vst-sft", "llava", "verl"], tmp_path / "a", by=CURATOR)}
    b = {o.format: o for o in export_mixture(r, built, ["vst-sft", "llava", "verl"], tmp_path / "b", by=CURATOR)}
    for fmt in a:
        files_a = sorted(p.relative_to(a[fmt].out_dir) for p in a[fmt].out_dir.rglob("*") if p.is_file())
        files_b = sorted(p.relative_to(b[fmt].out_dir) for p in b[fmt].out_dir.rglob("*") if p.is_file())
        assert files_a == files_b
        for rel in files_a:
            if rel.name != "manifest.json":  # the same bytes, but for the export's own folder where it is named
                assert _own_folder(a[fmt].out_dir / rel, a[fmt].out_dir) == _own_folder(
                    b[fmt].out_dir / rel, b[fmt].out_dir), rel
        # Files that name their folder hash differently; the trainer's arguments name it too.
        ma, mb = (dict(o.manifest, created_at=None, files=[f["path"] for f in o.manifest["files"]],
                       trainer={k: v for k, v in o.manifest.get("trainer", {}).items() if k != "verl_args"})
                  for o in (a[fmt], b[fmt]))
        assert ma == mb


def test_shards_are_cut_by_rows_or_size_and_keep_every_row_in_order(built, tmp_path):
    whole, = export_mixture(parse_recipe(recipe()), built, ["llava"], tmp_path / "whole", by=CURATOR)
    ids = [r["id"] for r in json.loads(next((whole.out_dir / "data").glob("*.json")).read_text())]
    small, = export_mixture(parse_recipe(recipe(shard_size="2KB")), built, ["llava"], tmp_path / "small", by=CURATOR)
    parts = sorted((small.out_dir / "data").glob("*.json"))
    assert len(parts) > 3 and all(p.stat().st_size <= 2000 or len(json.loads(p.read_text())) == 1 for p in parts)
    assert [r["id"] for p in parts for r in json.loads(p.read_text())] == ids
    by_rows, = export_mixture(parse_recipe(recipe(shard_rows=4)), built, ["vst-sft"], tmp_path / "rows", by=CURATOR)
    for f in by_rows.out_dir.rglob("*.parquet"):
        assert pq.ParquetFile(f).metadata.num_rows <= 4
    assert sum(pq.ParquetFile(f).metadata.num_rows for f in by_rows.out_dir.rglob("*.parquet")) == 34


def test_media_that_vanished_after_ingest_is_left_out_and_listed(tmp_path):
    settings = make_home(tmp_path / "own")
    (tmp_path / "own/src/vst_p/video/videos/room_0003_path0.mp4").unlink()
    for fmt in ("llava", "vst-sft"):
        outcome, = export_mixture(parse_recipe(recipe()), settings, [fmt], tmp_path / fmt, by=CURATOR)
        assert outcome.rows == 33 and outcome.left_out == 1
        (gone,) = outcome.manifest["written"]["left_out"]
        assert gone["sample_id"] == "vid-3" and "room_0003_path0.mp4" in gone["reason"]


def test_placeholders_can_be_repaired_to_one_tag_per_media_item(tmp_path):
    from curation.ingest.run import ingest
    from tests.support.shards import sft_row, write_sft

    settings = make_home(tmp_path / "own")
    bad = sft_row(900, "How far is the bed from the door?", "3.0", id="bad-001")
    bad["conversations"][0]["value"] = "<|image_pad|><|image_pad|>How far is the bed from the door?"  # 1 image
    write_sft(tmp_path / "own/src/vst_p/si_distance/part-00009.parquet", [bad])
    ingest([tmp_path / "own/src/vst_p"], settings, progress=False)
    only = {"components": [{"name": "one", "filter": {"sample_ids": ["bad-001", "depth-000"]}, "fraction": 1.0}]}
    plain, = export_mixture(parse_recipe(recipe(**only)), settings, ["swift"], tmp_path / "plain", by=CURATOR)
    fixed, = export_mixture(parse_recipe(recipe(placeholders="repair", **only)), settings, ["swift"],
                            tmp_path / "fixed", by=CURATOR)
    kept, = export_mixture(parse_recipe(recipe(include_error_rows=True, **only)), settings, ["swift"],
                           tmp_path / "kept", by=CURATOR)

    def users(o):
        recs = [json.loads(x) for x in next((o.out_dir / "data").glob("*.jsonl")).read_text().splitlines()]
        return [r["messages"][0]["content"] for r in recs]

    # Not repaired: two placeholders for one image would fail the trainer (LLaMA-Factory: the whole dataset).
    # The reason is the format.placeholders check's own (one copy of the test), with its severity.
    assert len(users(plain)) == 1 and plain.manifest["written"]["left_out"] == [{"sample_id": "bad-001", "reason": (
        "format.placeholders (error): turns: human turns hold 2 image and 0 video placeholder(s) for 1 image(s) and "
        "0 video(s) in media; fix the row, or export with `include_error_rows: true` (repairs them) or "
        "`placeholders: repair`")}]
    assert plain.manifest["written"]["left_out_by_reason"] == {"format.placeholders (error)": 1}
    question = ("Which is closer to the camera, the chair or the lamp?\nA: chair\nB: lamp\n"
                "Answer with the option's letter.")
    assert sorted(users(fixed)) == sorted(["<image>\nHow far is the bed from the door?",
                                           f"<image>\n<image>\n{question}"])
    # Opting in to error rows repairs the failing row only; the others keep their placeholders as written.
    assert sorted(users(kept)) == sorted(["<image>\nHow far is the bed from the door?", f"<image><image>{question}"])
    assert kept.manifest["written"]["left_out"] == [] and kept.manifest["written"]["placeholders_repaired"] == 1


def test_an_existing_export_is_replaced_only_when_asked(built, tmp_path):
    r = parse_recipe(recipe())
    export_mixture(r, built, ["swift"], tmp_path / "x", by=CURATOR)
    with pytest.raises(FileExistsError, match="--force"):
        export_mixture(r, built, ["swift"], tmp_path / "x", by=CURATOR)
    export_mixture(r, built, ["swift"], tmp_path / "x", force=True, by=CURATOR)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes/todo.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an export"):
        export_mixture(r, built, ["swift"], tmp_path / "notes", force=True, by=CURATOR)
    assert (tmp_path / "notes/todo.txt").exists()


def test_exports_default_to_the_data_home(built, tmp_path):
    shutil.copytree(built.home, tmp_path / "home")
    settings = load_settings(tmp_path / "home")
    outcome, = export_mixture(parse_recipe(recipe(formats=["swift"])), settings, by=CURATOR)
    assert outcome.out_dir == (settings.exports_dir / "test-mix" / "swift").resolve()
    assert (outcome.out_dir / "manifest.json").is_file()


def _own_folder(path: Path, root: Path) -> bytes:
    """A file's bytes with the export folder's own path (absolute media paths, VST's data config) made generic;
    a Parquet file that names the folder is compared by its rows."""
    data = path.read_bytes()
    if path.suffix == ".parquet" and str(root).encode() in data:  # page statistics hold cut copies of the path
        data = json.dumps(pq.read_table(path).to_pylist(), default=repr).encode()
    return data.replace(str(root).encode(), b"<export>")


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): _own_folder(p, root) for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


def test_catalog_order_without_a_sort_matches_the_sorted_path_with_copies_last(built, tmp_path, monkeypatch):
    import exports.pipeline as pipeline

    r = parse_recipe(recipe(components=[
        {"name": "video", "filter": {"groups": ["video"]}, "count": 5, "upsample": True},
        {"name": "rest", "filter": {}, "fraction": 1.0}]))
    fast = {o.format: o.out_dir for o in export_mixture(r, built, ["llava", "vst-sft"], tmp_path / "fast", by=CURATOR)}
    monkeypatch.setattr(pipeline, "_POSITIONAL", False)  # every row joined and sorted instead
    slow = {o.format: o.out_dir for o in export_mixture(r, built, ["llava", "vst-sft"], tmp_path / "slow", by=CURATOR)}
    for fmt in fast:
        assert _files(fast[fmt]) == _files(slow[fmt])
    ids = [rec["id"] for rec in json.loads(next((fast["llava"] / "data").glob("*.json")).read_text())]
    assert ids[-3:] == ["vid-1~2", "vid-1~3", "vid-3~2"]  # up-sampled copies follow, by catalog row and copy
    assert len(ids) == len(set(ids)) == 34 + 3


def test_slices_of_the_catalog_read_side_by_side_give_the_same_bytes_as_one_query(built, tmp_path, monkeypatch):
    import exports.pipeline as pipeline

    r = parse_recipe(recipe(shard_rows=7, components=[
        {"name": "video", "filter": {"groups": ["video"]}, "count": 5, "upsample": True},
        {"name": "rest", "filter": {}, "fraction": 0.7}]))
    monkeypatch.setattr(pipeline, "_SLICE_ROWS", (10**9, 10**9))  # one query over the catalog
    whole = {o.format: o.out_dir for o in export_mixture(r, built, ["llava", "swift"], tmp_path / "whole", by=CURATOR)}
    monkeypatch.setattr(pipeline, "_SLICE_ROWS", (3, 3))  # a dozen slices, read on several threads
    sliced = {o.format: o.out_dir
              for o in export_mixture(r, built, ["llava", "swift"], tmp_path / "sliced", by=CURATOR)}
    for fmt in whole:
        assert _files(whole[fmt]) == _files(sliced[fmt])
        assert len(list((whole[fmt] / "data").iterdir())) > 1  # shards cut across slices


def test_reads_side_by_side_come_back_in_order_and_a_failing_one_fails_the_export():
    import pyarrow as pa

    from exports.pipeline import _in_order

    def reader(k: int, fail: bool = False):
        def read():
            for j in range(3):
                if fail and j == 1:
                    raise ValueError(f"reader {k} failed")
                yield pa.record_batch({"k": [k], "j": [j]})
        return read

    got = [(b["k"][0].as_py(), b["j"][0].as_py()) for b in _in_order([reader(k) for k in range(5)], 3)]
    assert got == [(k, j) for k in range(5) for j in range(3)]
    with pytest.raises(ValueError, match="reader 2 failed"):
        list(_in_order([reader(0), reader(1), reader(2, fail=True), reader(3)], 2))


def test_a_re_ingested_shard_moves_to_the_end_and_still_exports_in_order(tmp_path, monkeypatch):
    import exports.pipeline as pipeline
    from curation.ingest.run import ingest

    settings = make_home(tmp_path / "own")
    ingest([tmp_path / "own/src/vst_p/si_distance"], settings, force=True, progress=False)  # rows deleted + re-added
    r = parse_recipe(recipe())
    fast, = export_mixture(r, settings, ["swift"], tmp_path / "fast", by=CURATOR)
    monkeypatch.setattr(pipeline, "_POSITIONAL", False)
    slow, = export_mixture(r, settings, ["swift"], tmp_path / "slow", by=CURATOR)
    assert _files(fast.out_dir) == _files(slow.out_dir)
    lines = [json.loads(x) for x in next((fast.out_dir / "data").glob("*.jsonl")).read_text().splitlines()]
    assert len(lines) == 34  # text exports follow the catalog's row order: the re-ingested shard now comes last
    assert all("distance between" in rec["messages"][0]["content"] for rec in lines[-13:])


def test_a_mixture_with_nothing_in_it_writes_an_empty_export_with_its_manifest(built, tmp_path):
    r = parse_recipe(recipe(components=[{"name": "none", "filter": {"skills": ["mi_camera_motion"]}, "count": 5}]))
    for outcome in export_mixture(r, built, ["swift", "vst-sft", "llava"], tmp_path / "empty", by=CURATOR):
        assert outcome.rows == 0 and outcome.manifest["files"] == []
        assert outcome.manifest["selection"]["shortfalls"] == [
            "component 'none': asked 5, only 0 available, selected 0"]


def test_the_demo_data_set_exports_in_every_format(demo_home, tmp_path):
    r = load_recipe(Path(__file__).resolve().parents[2] / "examples/recipes/demo-all-formats.yaml")
    outcomes = {o.format: o for o in export_mixture(r, demo_home, None, tmp_path / "demo", by=CURATOR)}
    assert set(outcomes) == set(FORMATS)
    rows = {o.rows + o.left_out for o in outcomes.values()}
    assert len(rows) == 1 and rows.pop() > 100  # every format holds the same rows, or says why it left one out
    records = [json.loads(x) for f in sorted((outcomes["swift"].out_dir / "data").glob("*.jsonl"))
               for x in f.read_text().splitlines()]
    for rec in records:
        user = rec["messages"][0]["content"]
        assert user.count("<image>") == len(rec["images"]) and user.count("<video>") == len(rec["videos"])
        assert all((outcomes["swift"].out_dir / p).is_file() for p in rec["images"] + rec["videos"])
    table = pq.read_table(sorted(outcomes["verl"].out_dir.rglob("*.parquet"))[0])
    assert table.num_rows and set(table.column_names) >= {"prompt", "images", "reward_model", "extra_info"}
