"""An export shard that cannot be written (the disk fills up under it) is named in the error, with what to do: Python's
file writes and Arrow's writer name no file of their own."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pyarrow as pa
import pytest

from curation.cli.errors import environment_problem
from curation.settings import load_settings
from exports.shards import ParquetShards, TextShards, shard_name

FULL_DISK = Path("/dev/full")  # every write to it fails with ENOSPC, as on a disk that just filled up


@pytest.fixture
def out(tmp_path: Path) -> Path:
    if not FULL_DISK.exists():
        pytest.skip("no /dev/full on this machine")
    return tmp_path / "export" / "data"


def on_full_disk(out: Path, ext: str) -> Path:
    """The export's first shard as a file on a full disk."""
    out.mkdir(parents=True)
    shard = out / shard_name(0, ext)
    os.symlink(FULL_DISK, shard)
    return shard


def test_a_jsonl_shard_on_a_full_disk_names_the_file_and_what_to_do(out, tmp_path):
    shard = on_full_disk(out, "jsonl")
    shards = TextShards(out, array=False)
    with pytest.raises(OSError) as raised:
        shards.write(pa.array(['{"id": "a"}\n'] * 1000))
        shards.close()
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(shard)
    assert str(shard) in str(raised.value) and "free space" in str(raised.value)
    message = environment_problem(raised.value, load_settings(tmp_path / "home"))
    assert message is not None and f"the disk holding {shard} is full" in message


def test_a_parquet_shard_on_a_full_disk_names_the_file_and_what_to_do(out, tmp_path):
    shard = on_full_disk(out, "parquet")
    shards = ParquetShards(out, pa.schema([("id", pa.string())]), row_group_rows=100)
    with pytest.raises(OSError) as raised:
        shards.write(pa.table({"id": [f"sample-{i}" for i in range(1000)]}))
        shards.close()
    assert raised.value.filename == str(shard) and str(shard) in str(raised.value)
    message = environment_problem(raised.value, load_settings(tmp_path / "home"))
    assert message is not None and f"the disk holding {shard} is full" in message
