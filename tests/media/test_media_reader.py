"""db's one media reader: embedded bytes (either key), files by path, one read per row group, errors that say why."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import db.media
from curation.ingest.readers.media_refs import path_item
from curation.media.sample_media import load_image
from db.media import MediaError, media_digest, read_media_bytes
from tests.support.shards import png

BYRES = pa.list_(pa.struct([("byres", pa.binary()), ("path", pa.string())]))
BYTES = pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))


def shard(path, images: list[list[bytes]], images_type=BYTES, row_group_size: int = 2):
    rows = [{"images": [{images_type.value_type[0].name: b, "path": ""} for b in items]} for items in images]
    pq.write_table(pa.Table.from_pylist(rows, schema=pa.schema([("images", images_type)])), path,
                   row_group_size=row_group_size)
    return str(path)


def row(source_file: str, index: int, n_items: int = 1, row_group_size: int = 2, **kw) -> dict:
    media = kw.pop("media", [{"kind": "image", "embedded": True, "path": ""}] * n_items)
    return {"sample_id": f"s{index}", "media": media, "source_file": source_file,
            "row_group": index // row_group_size, "row_in_group": index % row_group_size, **kw}


@pytest.mark.parametrize("images_type", [BYTES, BYRES], ids=["bytes", "byres"])
def test_embedded_items_are_read_from_their_row(tmp_path, images_type):
    images = [[png(10 + i, 10)] for i in range(4)] + [[png(1, 1), png(2, 2)]]
    source = shard(tmp_path / "s.parquet", images, images_type)
    for i in range(4):
        assert read_media_bytes(row(source, i), 0) == images[i][0]
    assert read_media_bytes(row(source, 4, n_items=2), 1) == images[4][1]
    assert load_image(row(source, 2), 0).size == (12, 10)


def test_rows_in_shard_order_read_each_row_group_once_and_a_replaced_shard_is_read_again(tmp_path, monkeypatch):
    source = shard(tmp_path / "s.parquet", [[png(10 + i, 10)] for i in range(6)])
    reads = []
    real = pq.ParquetFile.read_row_group

    def counting(self, i, *args, **kwargs):
        reads.append(i)
        return real(self, i, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", counting)
    for i in range(6):
        read_media_bytes(row(source, i), 0)
    assert reads == [0, 1, 2]
    stat = os.stat(source)
    shard(tmp_path / "s.parquet", [[png(20 + i, 10)] for i in range(6)])
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # same size is possible: mtime differs
    assert read_media_bytes(row(source, 0), 0) == png(20, 10) and reads == [0, 1, 2, 0]


def test_the_cache_keeps_to_its_byte_budget_but_always_the_newest_row_group(tmp_path, monkeypatch):
    source = shard(tmp_path / "s.parquet", [[png(64, 64)] for _ in range(6)])
    monkeypatch.setattr(db.media, "_ROW_GROUPS", db.media._RowGroups(max_bytes=1))
    for i in range(6):
        read_media_bytes(row(source, i), 0)
    assert len(db.media._ROW_GROUPS._entries) == 1


def test_files_by_path_resolve_against_the_shard_folder(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(png())
    r = row(str(tmp_path / "list.json"), 0, media=[{"kind": "image", "embedded": False, "path": "imgs/a.png"},
                                                   {"kind": "image", "embedded": False, "path": "imgs/gone.png"},
                                                   {"kind": "image", "embedded": False, "path": ""}])
    assert read_media_bytes(r, 0) == png()
    with pytest.raises(MediaError, match=r"sample s0: media\[1\] file .*imgs/gone.png cannot be read"):
        read_media_bytes(r, 1)
    with pytest.raises(MediaError, match="neither bytes nor a path"):
        read_media_bytes(r, 2)
    with pytest.raises(MediaError, match="no media item 3"):
        read_media_bytes(r, 3)


def test_a_lost_shard_or_an_item_without_bytes_says_so(tmp_path):
    source = shard(tmp_path / "s.parquet", [[png()], [b""]])
    with pytest.raises(MediaError, match=r"media\[0\] in .* has no bytes"):
        read_media_bytes(row(source, 1), 0)
    with pytest.raises(MediaError, match=r"media\[1\] in .* has no bytes"):
        read_media_bytes(row(source, 0, n_items=2), 1)
    os.remove(source)
    with pytest.raises(MediaError, match=r"shard .* is gone \(media\[0\] is embedded in it\)"):
        read_media_bytes(row(source, 0), 0)


def test_the_export_digest_is_the_one_ingest_records(tmp_path):
    small, big = png(), os.urandom(5 << 20)
    (tmp_path / "small.png").write_bytes(small)
    (tmp_path / "big.mp4").write_bytes(big)
    for name, data in (("small.png", small), ("big.mp4", big)):
        assert path_item("video", name, tmp_path)["digest"] == media_digest(data, embedded=False)
    assert media_digest(big, embedded=True) != media_digest(big, embedded=False)
