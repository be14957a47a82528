"""Hostile files beside good ones: each bad file or row is recorded with its file, row and field, and everything else
lands (issue #12, "one bad file never stops the others")."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.ingest.run import ingest
from tests.support.shards import CONV, sft_row, write_sft

GOOD_ROWS = 12


def good_shard(folder: Path) -> Path:
    """A sound shard of GOOD_ROWS rows that must land whatever sits beside it."""
    rows = [sft_row(i, f"What is the distance between chair {i} and the table?", str(i)) for i in range(GOOD_ROWS)]
    return write_sft(folder / "si_distance" / "part-00000.parquet", rows)


def llava(question: str, **fields) -> dict:
    return {"conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": "1.5"}], **fields}


def errors(settings) -> list[tuple[str, int | None, str | None, str]]:
    with duckdb.connect(str(settings.catalog_path), read_only=True) as con:
        rows = con.execute("SELECT file, row_index, field, reason FROM ingest_errors ORDER BY file, row_index")
        return [(Path(f).name, r, fld, why) for f, r, fld, why in rows.fetchall()]


def landed(settings, name: str | None = None) -> int:
    with duckdb.connect(str(settings.catalog_path), read_only=True) as con:
        if name is None:
            return con.execute("SELECT count(*) FROM samples").fetchone()[0]
        return con.execute("SELECT count(*) FROM samples WHERE source_file LIKE ?", [f"%/{name}"]).fetchone()[0]


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "vst_p"
    good_shard(folder)
    return folder


def test_json_whose_bytes_are_not_utf8_loses_only_those_records(home, src):
    records = [llava(f"How far is lamp {i}?") for i in range(4)]
    text = json.dumps(records, ensure_ascii=False).encode()
    bad = text.replace(b"lamp 2", b"lamp \xff2")  # a Latin-1 byte in record 2's question
    (src / "video").mkdir()
    (src / "video" / "train.json").write_bytes(bad)
    s = ingest([src], home, progress=False)
    assert s.rows_ok == GOOD_ROWS + 3 and landed(home, "train.json") == 3
    ((file, row, field, reason),) = errors(home)
    assert (file, row, field) == ("train.json", 2, "conversations[0].value")
    assert "not valid UTF-8" in reason and "UTF-8" in reason.split(";")[-1]


def test_jsonl_line_that_is_not_utf8_is_that_rows_error(home, src):
    lines = [json.dumps(llava(f"How far is lamp {i}?")).encode() for i in range(5)]
    lines[3] = lines[3].replace(b"lamp", b"l\xe4mp")
    (src / "video").mkdir()
    (src / "video" / "train.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    s = ingest([src], home, progress=False)
    assert s.rows_ok == GOOD_ROWS + 4 and landed(home, "train.jsonl") == 4
    assert [(f, r) for f, r, _, _ in errors(home)] == [("train.jsonl", 3)]
    assert "line 4 is not valid UTF-8 (byte 0xe4" in errors(home)[0][3]


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_json_nested_hundreds_of_thousands_deep_costs_only_its_record(home, src, suffix):
    deep = '{"conversations": ' + "[" * 300_000 + "]" * 300_000 + "}"
    good = [json.dumps(llava(f"How far is sofa {i}?")) for i in range(3)]
    records = [good[0], deep, good[1], good[2]]
    text = "\n".join(records) if suffix == ".jsonl" else "[" + ", ".join(records) + "]"
    (src / "video").mkdir()
    (src / "video" / f"deep{suffix}").write_text(text)
    s = ingest([src], home, progress=False)
    assert s.rows_ok == GOOD_ROWS + 3 and landed(home, f"deep{suffix}") == 3
    ((file, row, _, reason),) = errors(home)
    assert (file, row) == (f"deep{suffix}", 1) and "nested deeper" in reason


def test_media_fields_of_the_wrong_type_skip_their_rows(home, src):
    (src / "video").mkdir()
    (src / "video" / "train.json").write_text(
        json.dumps(
            [
                llava("<image>How far is the bed?", image=5),
                llava("<image>How far is the desk?", images=7),
                llava("<image>How far is the door?", images=["a.png", 3]),
                llava("<video>How many chairs?", video={"fps": 2}),
                llava("<image>How far is the sink?", image="a.png"),  # sound: a path (missing: a problem, not an error)
                llava("<image>How far is the tub?", images=[{"path": "b.png"}]),
            ]
        )
    )
    (src / "rl").mkdir()
    (src / "rl" / "rl.json").write_text(
        json.dumps(
            [
                {"question": "What is 2+2?", "answer": "4", "images": 7},
                {"question": "What is 3+3?", "answer": "6", "images": ["c.png"]},
            ]
        )
    )
    s = ingest([src], home, progress=False)
    assert s.rows_ok == GOOD_ROWS + 3
    assert [(f, r, fld) for f, r, fld, _ in errors(home)] == [
        ("rl.json", 0, "images"),
        ("train.json", 0, "image"),
        ("train.json", 1, "images"),
        ("train.json", 2, "images[1]"),
        ("train.json", 3, "video"),
    ]
    assert "is int 5; expected a path" in errors(home)[1][3]


def test_a_parquet_images_column_of_strings_reads_as_one_path_per_row(home, src, tmp_path):
    (tmp_path / "vst_p" / "si_depth").mkdir()
    (tmp_path / "vst_p" / "si_depth" / "cam.png").write_bytes(b"not really a png")
    conv = [[{"from": "human", "value": "<image>Which is closer?"}, {"from": "gpt", "value": "A"}]] * 3
    pq.write_table(
        pa.table({"id": ["s0", "s1", "s2"], "conversations": pa.array(conv, CONV), "images": ["cam.png", None, ""]}),
        tmp_path / "vst_p" / "si_depth" / "part-00000.parquet",
    )
    pq.write_table(  # no shape of media at all: the file is unusable, and says which column and why
        pa.table({"id": ["t0"], "conversations": pa.array(conv[:1], CONV), "images": pa.array([7], pa.int64())}),
        tmp_path / "vst_p" / "si_depth" / "part-00001.parquet",
    )
    s = ingest([src], home, progress=False)
    assert s.rows_ok == GOOD_ROWS + 3 and s.files_failed == 1
    with duckdb.connect(str(home.catalog_path), read_only=True) as con:
        media = dict(con.execute("SELECT sample_id, media FROM samples WHERE source_id LIKE 's%'").fetchall())
    assert [m["path"] for m in media["s0"]] == ["cam.png"] and media["s1"] == [] == media["s2"]
    ((file, row, _, reason),) = errors(home)
    assert file == "part-00001.parquet" and row is None and "column 'images' is list<item: int64>" not in reason
    assert "column 'images' is int64" in reason and "expected list<struct<bytes, path>>" in reason


def test_a_truncated_parquet_file_is_recorded_and_the_rest_lands(home, src):
    shard = write_sft(
        src / "si_measurement" / "part-00000.parquet",
        [sft_row(i, f"How tall is shelf {i}?", "2 m") for i in range(40)],
        row_group_size=10,
    )
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    s = ingest([src], home, progress=False)
    assert s.rows_ok == GOOD_ROWS and s.files_failed == 1
    ((file, row, _, reason),) = errors(home)
    assert file == "part-00000.parquet" and row is None and "not a readable Parquet file" in reason
    assert str(shard) in reason


@pytest.mark.parametrize("name", ["empty.parquet", "empty.json", "empty.jsonl"])
def test_a_zero_byte_file_never_stops_the_others(home, src, name):
    (src / "si_measurement").mkdir()
    (src / "si_measurement" / name).write_bytes(b"")
    s = ingest([src], home, progress=False)
    assert s.rows_ok == GOOD_ROWS and landed(home) == GOOD_ROWS
    assert s.files_failed == (0 if name.endswith(".jsonl") else 1)  # an empty JSONL file is zero records


def test_a_directory_named_like_a_shard_is_walked_not_read(home, src):
    spark = src / "si_measurement" / "table.parquet"  # how Spark writes a Parquet data set
    write_sft(spark / "part-00000.parquet", [sft_row(0, "How tall is the shelf?", "2 m")])
    (src / "si_measurement" / "empty.parquet").mkdir()
    s = ingest([src, spark], home, progress=False)
    assert s.rows_ok == GOOD_ROWS + 1 and s.files_failed == 0 and errors(home) == []


def test_a_symlink_loop_in_the_ingest_folder_is_recorded_and_the_rest_lands(home, src):
    (src / "si_measurement").mkdir()
    os.symlink("loop.parquet", src / "si_measurement" / "loop.parquet")  # a link to itself
    os.symlink("b.jsonl", src / "si_measurement" / "a.jsonl")  # two links to each other
    os.symlink("a.jsonl", src / "si_measurement" / "b.jsonl")
    os.symlink("..", src / "si_measurement" / "up")  # a folder link back up the tree
    os.symlink("gone.parquet", src / "si_measurement" / "dangling.parquet")
    s = ingest([src], home, progress=False)
    assert s.rows_ok == GOOD_ROWS and landed(home) == GOOD_ROWS  # each file once: the folder link is not walked
    assert {(f, why.split(";")[0]) for f, _, _, why in errors(home)} == {
        ("loop.parquet", "skipped: a symlink that loops back on itself"),
        ("a.jsonl", "skipped: a symlink that loops back on itself"),
        ("b.jsonl", "skipped: a symlink that loops back on itself"),
        ("dangling.parquet", "skipped: a symlink to gone.parquet, which does not exist"),
    }
    assert s.files_failed == 4
    again = ingest([src], home, progress=False)  # recorded once, not once per ingest
    assert again.files_unchanged == 1 and len(errors(home)) == 4
    (src / "si_measurement" / "dangling.parquet").unlink()
    write_sft(src / "si_measurement" / "dangling.parquet", [sft_row(0, "How tall is the lamp?", "1 m")])
    ingest([src], home, progress=False)  # fixed: its error goes
    assert len(errors(home)) == 3 and landed(home) == GOOD_ROWS + 1


def test_any_failure_inside_a_reader_costs_that_file_only(home, src, monkeypatch):
    import curation.ingest.readers as readers

    real = readers.read_json_records

    def explodes(path, *args, **kwargs):
        if path.name == "boom.json":
            raise MemoryError("the reader ran out of memory (injected)")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(readers, "read_json_records", explodes)
    (src / "video").mkdir()
    for name in ("boom.json", "fine.json"):
        (src / "video" / name).write_text(json.dumps([llava("How far is the fridge?")]))
    s = ingest([src], home, progress=False)
    assert s.rows_ok == GOOD_ROWS + 1 and s.files_failed == 1
    ((file, row, _, reason),) = errors(home)
    assert file == "boom.json" and row is None
    assert "boom.json: could not be read (MemoryError: the reader ran out of memory (injected))" in reason


@pytest.mark.parametrize("groups", ["one group", "a group per file", "a group and a commit per file"])
def test_rows_the_derivation_fails_on_are_recorded_and_their_files_other_rows_land(home, tmp_path, monkeypatch, groups):
    """A data error in the canonical SELECT (the INSERT of a whole group of files) costs the rows it fails on: the
    group's other files and rows land, in both stores, and so do the groups written before it in the transaction
    the failed statement aborted."""
    import curation.ingest.run as run_module
    from curation.ingest.canonical import canonical_select

    if groups != "one group":
        monkeypatch.setattr(run_module, "ROWS_PER_GROUP", 1)
    if groups == "a group and a commit per file":
        monkeypatch.setattr(run_module, "ROWS_PER_COMMIT", 1)

    def poisoned(tax, source):  # the SELECT fails on any row whose question says POISON, as a bad value would
        return (
            f"SELECT * REPLACE (CASE WHEN contains(question, 'POISON') THEN error('cannot derive {{row}} (injected)') "
            f"ELSE question END AS question) FROM ({canonical_select(tax, source)})"
        )

    monkeypatch.setattr(run_module, "canonical_select", poisoned)
    src = tmp_path / "vst_p"
    for f in range(4):
        rows = [sft_row(i, f"How far is table {f}-{i}?", "1") for i in range(200)]
        if f in (1, 2):
            rows[50 + f] = sft_row(50 + f, "POISON: how far is it?", "1")
        write_sft(src / "si_distance" / f"part-{f:05d}.parquet", rows, row_group_size=64)
    s = ingest([src], home, progress=False)
    assert s.rows_ok == 798 and s.rows_failed == 2 and s.files_ingested == 4
    assert [(f, r) for f, r, _, _ in errors(home)] == [("part-00001.parquet", 51), ("part-00002.parquet", 52)]
    assert "cannot derive {row} (injected)" in errors(home)[0][3]
    with duckdb.connect(str(home.catalog_path), read_only=True) as con:
        per_file = con.execute("SELECT rows_ok, rows_failed FROM ingested_files ORDER BY file").fetchall()
    assert per_file == [(200, 0), (199, 1), (199, 1), (200, 0)]
    import tantivy

    assert tantivy.Index.open(str(home.text_index_dir)).searcher().num_docs == 798


def test_past_its_budget_of_tries_the_derivation_records_the_rows_still_failing_as_a_range(home, tmp_path, monkeypatch):
    import curation.ingest.run as run_module
    from curation.ingest.canonical import canonical_select

    monkeypatch.setattr(run_module, "MAX_DERIVE_TRIES", 3)
    monkeypatch.setattr(
        run_module,
        "canonical_select",
        lambda tax, source: (
            "SELECT * REPLACE (CASE WHEN contains(question, 'POISON') THEN error('bad') ELSE question END AS question) "
            f"FROM ({canonical_select(tax, source)})"
        ),
    )
    rows = [sft_row(i, ("POISON " if 10 <= i < 20 else "") + f"How far is crate {i}?", "1") for i in range(100)]
    write_sft(tmp_path / "vst_p" / "si_distance" / "part-00000.parquet", rows)
    s = ingest([tmp_path / "vst_p"], home, progress=False)
    assert (s.rows_ok, s.rows_failed) == (75, 25)  # halves: 100 fails, 0-49 fails, 0-24 fails: out of tries
    ((file, row, _, reason),) = errors(home)
    assert (file, row) == (
        "part-00000.parquet",
        0,
    ) and "failed on rows 0-24 (25 rows) (Invalid Input Error: bad)" in reason


@pytest.mark.parametrize("prompt", [
    "The camera intrinsics are f_x = 1, f_y = 1, c_x = 99999999999, c_y = 1. How far is the chair?",
    "The camera's hfov is 60.0 degrees and vfov is 46.8 degrees; the image is 99999999999x480 pixels. How far?",
])
def test_a_camera_number_too_large_for_the_catalog_lands_its_row_with_the_problem_recorded(home, src, prompt):
    """Real hostile data for the derive step: a principal point or an image size past the INTEGER the camera's size
    is derived to. The row lands (its number ignored, the problem recorded against it); its neighbours land too."""
    rows = [sft_row(i, f"How far is stool {i}?", "1") for i in range(30)]
    rows[7] = sft_row(7, prompt, "2", n_images=0, images=[])
    write_sft(src / "si_measurement" / "part-00000.parquet", rows)
    s = ingest([src], home, progress=False)
    assert (s.rows_ok, s.rows_failed) == (GOOD_ROWS + 30, 0) and errors(home) == []
    with duckdb.connect(str(home.catalog_path), read_only=True) as con:
        camera, problems = con.execute("SELECT camera, problems FROM samples WHERE subset = 'si_measurement' "
                                       "AND row_index = 7").fetchone()
    assert camera is None or camera["width"] is None or camera["width"] < 99999999999
    ((code, field, message),) = [(p["code"], p["field"], p["message"]) for p in problems]
    assert (code, field) == ("camera_out_of_range", "question") and "fix it in the shard" in message


def test_the_demo_lands_beside_every_kind_of_bad_file(home, demo_root, demo_home, tmp_path):
    """The issue's story: 0 of the demo's rows landed beside one malformed file."""
    bad = tmp_path / "bad" / "vst_p" / "video"
    bad.mkdir(parents=True)
    (bad / "latin1.json").write_bytes(json.dumps([llava("How far?")]).encode().replace(b"far", b"f\xe4r"))
    (bad / "deep.json").write_text("[" * 300_000 + "]" * 300_000)
    (bad / "image.json").write_text(json.dumps([llava("How far?", image=5)]))
    (bad / "empty.parquet").write_bytes(b"")
    (bad / "dir.parquet").mkdir()
    os.symlink("loop.jsonl", bad / "loop.jsonl")
    s = ingest([demo_root / "vst_p", demo_root / "vst_r", bad.parent], home, progress=False)
    assert landed(home) == landed(demo_home) and s.rows_ok == landed(demo_home)
