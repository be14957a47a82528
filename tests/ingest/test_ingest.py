"""Ingest stories: shards in, catalog rows out; bad input is recorded and never stops the rest."""

from __future__ import annotations

import json

import duckdb
import pytest

from curation.ingest.run import ingest
from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from curation.query.stats import catalog_stats
from tests.support.shards import png, sft_row, write_sft


def rows(settings, sql="SELECT * FROM samples ORDER BY sample_id", params=None):
    with duckdb.connect(str(settings.catalog_path), read_only=True) as con:
        res = con.execute(sql, params or [])
        names = [d[0] for d in res.description]
        return [dict(zip(names, r)) for r in res.fetchall()]


def test_small_tree_lands_with_canonical_fields(home, small_tree):
    s = ingest([small_tree / "vst_p", small_tree / "vst_r"], home, progress=False)
    assert (s.rows_ok, s.rows_failed, s.files_failed) == (8, 0, 0)
    by_id = {r["sample_id"]: r for r in rows(home)}
    d = by_id["id-1"]
    assert d["dataset"] == "vst-p" and d["subset"] == "si_distance" and d["skill"] == "si_distance"
    assert d["sample_group"] == "single" and d["source"] == "scannet" and d["answer_kind"] == "number"
    assert d["question"].startswith("What is the distance") and "<|image_pad|>" not in d["question"]
    assert d["media"][0]["width"] == 65 and d["media"][0]["digest"] and d["media"][0]["embedded"]
    assert d["scene_id"] == "room_0001" and (d["source_file"], d["row_group"]) and d["row_index"] == 1
    assert by_id["id-3"]["answer_kind"] == "choice"
    # The public video subset mixes skills: wording decides.
    assert by_id["v-0"]["skill"] == "video_object_counting" and by_id["v-0"]["sample_group"] == "video"
    assert by_id["v-1"]["skill"] == "video_measurement"
    # A missing video lands, with its problem recorded against the sample.
    assert [p["code"] for p in by_id["v-1"]["problems"]] == ["media_missing_file"]
    rl = by_id["rl-1"]
    assert rl["dataset"] == "vst-r" and rl["kind"] == "rl" and rl["rl_modes"] == ["multi_choices_score"]
    assert rl["question_type"] == "multi_choices" and rl["skill"] == "rl_gr_math"


def test_reingest_is_idempotent_and_more_shards_append(home, small_tree):
    ingest([small_tree / "vst_p"], home, progress=False)
    first = rows(home, "SELECT sample_id, content_hash FROM samples ORDER BY 1")
    again = ingest([small_tree / "vst_p"], home, progress=False)
    assert again.files_unchanged == 2 and again.files_ingested == 0
    forced = ingest([small_tree / "vst_p"], home, progress=False, force=True)
    assert forced.files_ingested == 2
    assert rows(home, "SELECT sample_id, content_hash FROM samples ORDER BY 1") == first
    ingest([small_tree / "vst_r"], home, progress=False)
    assert len(rows(home)) == len(first) + 2


def test_bad_input_is_recorded_and_the_rest_lands(home, tmp_path):
    src = tmp_path / "bad" / "vst_p"
    (src / "si_distance").mkdir(parents=True)
    (src / "si_distance" / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    (src / "si_distance" / "notes.json").write_text("{ not json")
    good = [
        sft_row(0, "What is the distance between the chair and the table in meters?", "1.8"),
        sft_row(1, "What is the distance between a and b?", "2", meta_info="{not valid json"),
        sft_row(2, "How tall is the lamp?", "1.5 m", images=[{"bytes": b"\x89PNG garbage", "path": ""}]),
        {**sft_row(3, "x", "y"), "conversations": []},
        {**sft_row(4, "x", "y"), "conversations": [{"from": "gpt", "value": "only an answer"}]},
    ]
    write_sft(src / "si_distance" / "part-00000.parquet", good, row_group_size=2)
    s = ingest([src], home, progress=False)
    assert s.rows_ok == 3 and s.rows_failed == 2 and s.files_failed == 2
    errors = rows(home, "SELECT file, row_index, field, reason FROM ingest_errors ORDER BY file, row_index")
    assert any(
        e["file"].endswith("broken.parquet") and e["row_index"] is None and "Parquet" in e["reason"] for e in errors
    )
    assert any(e["file"].endswith("notes.json") and "not valid JSON" in e["reason"] for e in errors)
    skipped = {(e["row_index"], e["field"], e["reason"]) for e in errors if e["file"].endswith("part-00000.parquet")}
    assert skipped == {(3, "conversations", "no turns"), (4, "conversations", "no human turn with text")}
    problems = {r["sample_id"]: [p["code"] for p in r["problems"]] for r in rows(home)}
    assert problems["id-1"] == ["invalid_meta_info"]
    assert problems["id-2"] == ["media_undecodable"]
    assert problems["id-0"] == []
    assert catalog_stats(home).errors == len(errors)


def test_a_file_fixed_since_it_failed_loses_its_old_error(home, tmp_path):
    broken = tmp_path / "vst_p" / "si_distance" / "part-00000.parquet"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"PAR1 this is not parquet")
    ingest([tmp_path / "vst_p"], home, progress=False)
    ingest([tmp_path / "vst_p"], home, progress=False)  # still broken: one error, not one per try
    assert len(rows(home, "SELECT * FROM ingest_errors")) == 1
    write_sft(broken, [sft_row(0, "What is the distance between the chair and the table?", "1.8")])
    s = ingest([tmp_path / "vst_p"], home, progress=False)
    assert s.rows_ok == 1 and rows(home, "SELECT * FROM ingest_errors") == []


def test_misspelt_byres_key_is_read(home, tmp_path):
    import pyarrow as pa

    byres = pa.list_(pa.struct([("byres", pa.binary()), ("path", pa.string())]))
    row = sft_row(
        0, "What is the distance between the chair and the table?", "1.8", images=[{"byres": png(80, 60), "path": ""}]
    )
    write_sft(tmp_path / "vst_p" / "si_distance" / "part-00001.parquet", [row], images_type=byres)
    ingest([tmp_path / "vst_p"], home, progress=False)
    (r,) = rows(home)
    assert r["media"][0]["width"] == 80 and r["media"][0]["problem"] is None


def test_sample_ids_follow_the_identity_rule(home, tmp_path):
    same = sft_row(0, "What is the distance between the chair and the table?", "1.8")
    rows_in = [
        {**same, "id": "dup"},
        {**sft_row(1, "Another question about the sofa?", "2"), "id": "dup"},  # id collides within the dataset
        {**same, "id": ""},  # no id: content hash
        {**same, "id": None},  # an exact copy: numbered content hash
        sft_row(5, "Unique question?", "3"),
    ]
    write_sft(tmp_path / "vst_p" / "si_distance" / "part-00000.parquet", rows_in)
    ingest([tmp_path / "vst_p"], home, progress=False)
    ids = [r["sample_id"] for r in rows(home, "SELECT sample_id FROM samples ORDER BY row_index")]
    assert ids[4] == "id-5"
    assert all(i.startswith("h") for i in ids[:4]) and len(set(ids)) == 5
    # Rows 0, 2 and 3 differ only by their id, which is not content: one hash, numbered copies in file order.
    assert (ids[2], ids[3]) == (ids[0] + "-2", ids[0] + "-3")
    again = ingest([tmp_path / "vst_p"], home, progress=False, force=True)
    assert again.rows_ok == 5
    assert [r["sample_id"] for r in rows(home, "SELECT sample_id FROM samples ORDER BY row_index")] == ids


def _ids_by_file(settings) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in rows(settings, "SELECT source_file, sample_id FROM samples ORDER BY source_file, row_index"):
        out.setdefault(r["source_file"].rsplit("/", 2)[-2], []).append(r["sample_id"])
    return out


@pytest.mark.parametrize("how", ["one-group", "group-per-file", "three-ingests"])
def test_ids_taken_by_earlier_files_are_never_handed_out_again(home, tmp_path, monkeypatch, how):
    """Given a catalog that already holds a file, when a later file reuses its ids or copies its content (in the
    same ingest, or in a later one), then every sample still gets an id of its own, by the identity rule."""
    copy = sft_row(0, "What is the distance between the chair and the table?", "1.8", id="")
    first = [{**sft_row(1, "How far is the lamp?", "2", id="x1")}, copy, sft_row(2, "Unique?", "3", id="x2")]
    later = [
        {**sft_row(3, "How big is the sofa?", "2 m"), "id": "x1"},  # its id is taken in the dataset
        copy,  # an exact copy of a sample of the first file: its content hash is taken
        sft_row(4, "A fresh question?", "4", id="x3"),
    ]
    write_sft(tmp_path / "vst_p" / "si_distance" / "part-00000.parquet", first)
    write_sft(tmp_path / "later" / "vst_p" / "si_measurement" / "part-00000.parquet", later)
    other = tmp_path / "other" / "mydata" / "si_depth_comparison" / "part-00000.parquet"
    write_sft(other, [sft_row(5, "Which is closer?", "the chair", id="x2")])  # taken as a sample id elsewhere
    sources = [tmp_path / "vst_p", tmp_path / "later" / "vst_p", other.parent.parent]
    if how == "group-per-file":
        import curation.ingest.run as ingest_module

        monkeypatch.setattr(ingest_module, "ROWS_PER_GROUP", 1)
    if how == "three-ingests":
        for src in sources:
            ingest([src], home, progress=False)
    else:
        ingest(sources, home, progress=False)
    ids = _ids_by_file(home)
    assert ids["si_distance"][0] == "x1" and ids["si_distance"][2] == "x2"
    assert ids["si_measurement"][0].startswith("h") and ids["si_measurement"][2] == "x3"
    # The copy's hash id is taken by the first file's copy: the later one is told apart by its file.
    assert ids["si_measurement"][1].startswith(ids["si_distance"][1] + "-")
    assert ids["si_depth_comparison"][0].startswith("h")
    everything = [i for file_ids in ids.values() for i in file_ids]
    assert len(everything) == len(set(everything)) == 7
    # Re-ingesting them all gives every sample the id it had.
    ingest(sources, home, progress=False, force=True)
    assert _ids_by_file(home) == ids


def test_a_3d_box_answer_is_found_by_its_labels_not_its_numbers(home, tmp_path):
    answer = '```json\n[{"bbox_3d": [0.25, -0.1, 3.5, 0.9, 1.2, 0.4, 0.0, 0.5, 0.0], "label": "bookshelf"}]\n```'
    write_sft(tmp_path / "vst_p" / "si_3d_detection" / "part-00000.parquet", [
        sft_row(0, "Detect the 3D bounding boxes of the furniture.", answer),
        sft_row(1, "What is the distance between the chair and the table?", "0.25"),
    ])
    ingest([tmp_path / "vst_p"], home, progress=False)
    q = CatalogQuery(home)
    assert [r["sample_id"] for r in q.page(FilterSpec(text="bookshelf")).rows] == ["id-0"]
    assert [r["sample_id"] for r in q.page(FilterSpec(text="0.25")).rows] == ["id-1"]  # a stated number still is


def test_a_file_reached_through_two_paths_lands_once(home, small_tree):
    summary = ingest([small_tree / "vst_p", small_tree / "vst_p" / "si_distance"], home, progress=False)
    assert summary.files_ingested == 2 and len(rows(home)) == 6


def test_fingerprint_runs_answer_like_a_set():
    import numpy as np

    from curation.ingest.sample_ids import _Fingerprints

    rng = np.random.default_rng(7)
    fps, seen = _Fingerprints(), set()
    for size in [0, 5, 1000, 3, 40, 2000, 1, 700]:
        batch = rng.integers(0, 5000, size, dtype=np.uint64)
        fps.add(batch)
        seen.update(batch.tolist())
        probe = rng.integers(0, 6000, 500, dtype=np.uint64)
        assert fps.contains(probe).tolist() == [int(v) in seen for v in probe]
    assert len(fps._runs) <= 4  # runs are merged as they grow


def test_hostile_text_is_data_never_sql(home, small_tree):
    ingest([small_tree / "vst_p", small_tree / "vst_r"], home, progress=False)
    q = CatalogQuery(home)
    for hostile in ["'; DROP TABLE samples; --", '" OR 1=1 --', "chair) OR (1=1", "title:\\", "*", "[", "\x00"]:
        assert q.count(FilterSpec(text=hostile)) >= 0
        assert q.count(FilterSpec(skills=[hostile], sources=[hostile])) == 0
    assert q.count(FilterSpec()) == 8


def test_missing_path_is_reported_not_fatal(home, tmp_path, small_tree):
    s = ingest([tmp_path / "nope", small_tree / "vst_r"], home, progress=False)
    assert s.rows_ok == 2 and any("does not exist" in e.reason for e in s.errors)


@pytest.mark.parametrize(
    "answer,kind",
    [
        ("B", "choice"),
        ("3.5", "number"),
        ("152 cm", "number"),
        ('```json\n[{"bbox_3d": [1,2,3,1,1,1,0,0,0], "label": "chair"}]\n```', "bbox3d"),
        ("A wooden chair near the window.", "text"),
    ],
)
def test_answer_kind(home, tmp_path, answer, kind):
    write_sft(tmp_path / "vst_p" / "x" / "p.parquet", [sft_row(0, "Question?", answer)])
    ingest([tmp_path / "vst_p"], home, progress=False)
    (r,) = rows(home)
    assert r["answer_kind"] == kind
    if kind == "bbox3d":
        assert r["boxes_3d"] == [
            {"label": "chair", "bbox": [1.0, 2.0, 3.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0], "encoding": "euler9"}
        ]


def test_think_split_and_camera_from_prompt(home, tmp_path):
    q = (
        "The camera intrinsics are f_x = 346.4, f_y = 346.4, c_x = 200.0, c_y = 150.0. Detect the chair "
        "(represented by bbox [10, 20, 110, 220])."
    )
    a = ('<think>The chair is left.</think> ```json\n'
         '[{"bbox_3d": [0.1,0.2,3,0.5,0.9,0.5,0,0.25,0], "label": "chair"}]\n```')
    write_sft(tmp_path / "vst_r" / "cot_sr_si" / "p.parquet", [sft_row(0, q, a, type_="bbox_3d_thought")])
    ingest([tmp_path / "vst_r"], home, progress=False)
    (r,) = rows(home)
    assert r["has_reasoning"] and r["reasoning"] == "The chair is left."
    assert r["answer"].startswith("```json") and r["answer_kind"] == "bbox3d"
    cam = r["camera"]
    assert cam["stated_as"] == "intrinsics" and cam["fx"] == pytest.approx(346.4) and cam["width"] == 64
    assert r["boxes_2d"] == [{"label": "chair", "bbox": [10.0, 20.0, 110.0, 220.0]}]
    assert r["skill"] == "cot_sr_si" and r["dataset"] == "vst-r"


def test_fov_camera(home, tmp_path):
    q = (
        "The camera's horizontal field of view (hfov) is 60.0 degrees and vertical field of view (vfov) is 46.8 "
        "degrees; the image is 400x300 pixels. Detect all chairs."
    )
    write_sft(tmp_path / "vst_p" / "si_3d_detection" / "p.parquet", [sft_row(0, q, "[]")])
    ingest([tmp_path / "vst_p"], home, progress=False)
    (r,) = rows(home)
    cam = r["camera"]
    assert cam["stated_as"] == "fov" and (cam["width"], cam["height"]) == (400, 300)
    assert cam["fx"] == pytest.approx(200 / 0.57735, rel=1e-3)


def test_stats_json_shape(home, small_tree, capsys):
    from curation.cli.main import main

    ingest([small_tree / "vst_p", small_tree / "vst_r"], home, progress=False)
    assert main(["--home", str(home.home), "stats", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"samples", "errors", "by_dataset", "by_group", "by_skill", "by_source", "unknown_by_dataset",
                        "unknown_by_source"}
    assert out["samples"] == 8 and out["by_group"] == {"single": 6, "video": 2}
    assert out["by_dataset"] == {"vst-p": 6, "vst-r": 2}


def test_ingest_while_the_app_reads_swaps_in_a_new_catalog(home, small_tree):
    """The app and the worker keep read-only connections open; ingest must still land, and they see it on reopen."""
    import subprocess
    import sys
    import textwrap

    ingest([small_tree / "vst_p"], home, progress=False)
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(home.catalog_path)!r}, read_only=True)
            print(con.execute("SELECT count(*) FROM samples").fetchone()[0], flush=True)
            sys.stdin.readline()
            print(con.execute("SELECT count(*) FROM samples").fetchone()[0], flush=True)
        """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout.readline().strip() == "6"
    s = ingest([small_tree / "vst_r"], home, progress=False)  # the reader holds the file: copy, write, swap
    assert s.rows_ok == 2 and s.samples_total == 8
    out, _ = reader.communicate("\n", timeout=60)
    assert out.strip() == "6"  # the old connection keeps its snapshot
    assert len(rows(home)) == 8  # a new connection sees the new catalog
    assert not home.catalog_path.with_name(home.catalog_path.name + ".ingest").exists()


def _fail_on_insert(monkeypatch, call_no: int) -> None:
    """Make the ``call_no``-th group's insert (one file a group here) fail the way a crash or a full disk would."""
    import curation.ingest.run as ingest_module

    real, calls = ingest_module._insert_group, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == call_no:
            raise OSError("disk full (injected)")
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest_module, "_insert_group", failing)
    monkeypatch.setattr(ingest_module, "ROWS_PER_COMMIT", 1)  # a commit after every file


def _index_docs(settings) -> int:
    import tantivy

    return tantivy.Index.open(str(settings.text_index_dir)).searcher().num_docs


def test_a_failure_mid_ingest_keeps_earlier_commits_in_both_stores(home, small_tree, monkeypatch):
    _fail_on_insert(monkeypatch, call_no=3)
    with pytest.raises(OSError, match="injected"):
        ingest([small_tree / "vst_p", small_tree / "vst_r"], home, progress=False)
    # The two vst_p files were committed before the vst_r file failed: the catalog and the text index agree.
    assert len(rows(home)) == 6 and _index_docs(home) == 6
    monkeypatch.undo()
    again = ingest([small_tree / "vst_p", small_tree / "vst_r"], home, progress=False)
    assert (again.files_unchanged, again.files_ingested) == (2, 1)
    assert len(rows(home)) == 8 and _index_docs(home) == 8


def test_a_failure_while_writing_a_copy_changes_neither_store(home, small_tree, monkeypatch):
    """While a reader holds the catalog, ingest writes a copy that is swapped in only at the end: when it fails,
    the text index must not keep what its earlier commits would have added."""
    import subprocess
    import sys

    ingest([small_tree / "vst_p"], home, progress=False)
    reader = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys; c = duckdb.connect({str(home.catalog_path)!r}, read_only=True); "
         "print('open', flush=True); sys.stdin.readline()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "open"
        _fail_on_insert(monkeypatch, call_no=2)
        with pytest.raises(OSError, match="injected"):  # vst_r's file lands (and commits), then vst_p's fails
            ingest([small_tree / "vst_r", small_tree / "vst_p"], home, progress=False, force=True)
    finally:
        reader.communicate("\n", timeout=60)
    assert len(rows(home)) == 6 and _index_docs(home) == 6
    assert not rows(home, "SELECT * FROM samples WHERE dataset = 'vst-r'")


def test_rows_land_in_file_order(home, tmp_path):
    rows_in = [sft_row(i, f"What is the distance between object {i} and the wall?", str(i)) for i in range(300)]
    write_sft(tmp_path / "vst_p" / "si_distance" / "part-00000.parquet", rows_in, row_group_size=7)
    ingest([tmp_path / "vst_p"], home, progress=False)
    order = [r["row_index"] for r in rows(home, "SELECT row_index FROM samples ORDER BY rowid")]
    assert order == list(range(300))
