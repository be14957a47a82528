"""The shell when the machine says no: a data home on a read-only disk, or on a disk that fills up mid-command. Every
command that writes (ingest, check, check --wait, export) answers with one line that names the path and says what to
do, exits non-zero, never shows a traceback, and leaves what earlier commands committed as it was."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from curation.cli.errors import environment_problem
from curation.settings import load_settings
from tests.support.shards import small_vst_tree

ROOT = Path(__file__).resolve().parents[2]


def run(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURATOR_")}
    return subprocess.run([sys.executable, "-m", "curation", "--home", str(home), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def writers(home: Path, src: Path, recipe: Path) -> dict[str, list[str]]:
    """Each command that writes into the data home, doing new work (a new shard folder, a new export folder)."""
    check = ["check", "--checks", "format.placeholders,media.min_side", "--embedder", "hashing"]
    return {
        "ingest": ["ingest", str(src), "--dataset", "second", "--quiet"],
        "check": check,
        "check --wait": [*check, "--wait"],
        "export": ["export", str(recipe), "--format", "llava", "--out", str(home / "exports" / "again"),
                   "--no-media", "--quiet"],
    }


def build_home(root: Path) -> tuple[Path, Path, Path]:
    """A data home with one ingest, one finished check run and one export; a second shard tree and a recipe."""
    home, first, second = root / "home", small_vst_tree(root / "src1"), small_vst_tree(root / "src2")
    recipe = root / "all.yaml"
    recipe.write_text(yaml.safe_dump({"name": "all", "components": [{"name": "all", "filter": {}, "fraction": 1.0}]}))
    for args in (["ingest", str(first), "--quiet"],
                 ["check", "--checks", "format.placeholders", "--embedder", "hashing", "--wait"],
                 ["export", str(recipe), "--format", "llava", "--no-media", "--quiet"]):
        done = run(home, *args)
        assert done.returncode == 0, done.stderr
    return home, second, recipe


def committed(home: Path) -> dict:
    """What earlier commands committed: catalog rows, a text-search count, check runs, jobs, exports."""
    from curation.jobs.queue import list_jobs
    from curation.query.catalog import CatalogQuery
    from curation.query.filters import FilterSpec
    from db.engine import open_state

    settings = load_settings(home)
    q = CatalogQuery(settings)
    try:
        rows, hits = q.count(FilterSpec()), q.count(FilterSpec(text="distance"))
    finally:
        q.close()
    with open_state(settings.db_url, upgrade=False) as db:
        jobs = [(j.id, j.state) for j in list_jobs(db)]
    runs = sorted(p.name for p in settings.results_dir.iterdir() if not p.name.startswith("."))
    exports = sorted(str(p.relative_to(settings.exports_dir)) for p in settings.exports_dir.rglob("manifest.json"))
    return {"rows": rows, "hits": hits, "jobs": jobs, "runs": runs, "exports": exports}


def assert_one_clear_line(command: str, result: subprocess.CompletedProcess, home: Path, *words: str) -> None:
    err = result.stderr.strip()
    assert result.returncode == 1, (command, result.returncode, result.stdout, err)
    assert "Traceback" not in err and len(err.splitlines()) == 1, (command, err)
    assert err.startswith("error: ") and str(home) in err and all(w in err for w in words), (command, err)


@contextmanager
def read_only(path: Path):
    """``path`` made read-only for this process: a read-only bind mount as root (root ignores file modes), else
    the files' write bits taken away."""
    if os.geteuid() == 0:
        if subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True).returncode != 0:
            pytest.skip("root without the right to mount: cannot make a read-only data home")
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True, capture_output=True)
            yield
        finally:
            subprocess.run(["umount", str(path)], check=True)
        return
    modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
    for p, mode in modes.items():
        p.chmod(mode & ~0o222)
    try:
        yield
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


def test_a_read_only_data_home_is_one_clear_message_per_writing_command_and_nothing_is_lost(tmp_path):
    home, second, recipe = build_home(tmp_path)
    before = committed(home)
    with read_only(home):
        for name, args in writers(home, second, recipe).items():
            assert_one_clear_line(name, run(home, *args), home, "cannot be written", "writable")
        assert run(home, "stats").returncode == 0  # reading still works
    assert committed(home) == before
    assert run(home, *writers(home, second, recipe)["ingest"]).returncode == 0  # and writing, once allowed


@pytest.fixture
def small_disk(tmp_path):
    """A 48 MiB tmpfs: a real disk that fills up (mounting needs root; elsewhere the story is skipped and the
    message itself is covered by the last test)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full, down to its last block; return it (delete it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_a_disk_that_fills_up_is_one_clear_message_per_command_and_nothing_committed_is_lost(small_disk):
    home, second, recipe = build_home(small_disk)
    sources = small_disk / "sources"  # the new shards live off the full disk: only the data home fills up
    shutil.move(str(second), sources)
    before = committed(home)
    filler = fill(small_disk)
    for name, args in writers(home, sources, recipe).items():
        assert_one_clear_line(name, run(home, *args), home, "is full", "free some space")
    filler.unlink()  # (even reading SQLite needs a little room, for its shared-memory file)
    after = committed(home)
    failed_jobs = [j for j in after.pop("jobs") if j not in before["jobs"]]
    assert after == {k: v for k, v in before.items() if k != "jobs"}
    assert all(state in ("queued", "failed") for _, state in failed_jobs)  # said so, or never started
    for name, args in writers(home, sources, recipe).items():
        done = run(home, *args)
        assert done.returncode == 0, (name, done.stderr)
    assert committed(home)["rows"] == 2 * before["rows"]


def test_disk_and_permission_failures_of_every_library_read_as_one_message(tmp_path):
    """The wordings of the OS, DuckDB, SQLite and tantivy all map to the message (for machines where the stories
    above are skipped)."""
    import duckdb
    from sqlalchemy.exc import OperationalError

    settings = load_settings(tmp_path / "home")
    catalog = settings.catalog_path
    cases = [
        (OSError(errno.ENOSPC, "No space left on device", str(catalog)), f"disk holding {catalog} is full"),
        (duckdb.IOException(f'Could not write file "{catalog}.wal": No space left on device'), f"{catalog}.wal"),
        (ValueError("An IO error occurred: 'No space left on device'"), f"disk holding {settings.home} is full"),
        (PermissionError(errno.EACCES, "Permission denied", str(catalog)), f"{catalog} cannot be written"),
        (OSError(errno.EROFS, "Read-only file system", str(catalog)), "(Read-only file system)"),
        (OperationalError("PRAGMA", {}, Exception("unable to open database file")),
         f"{settings.home}/state.sqlite cannot be written"),
        (RuntimeError("check run failed: OSError: [Errno 28] No space left on device: '/x/y.parquet'"),
         "disk holding /x/y.parquet is full"),
    ]
    for exc, words in cases:
        message = environment_problem(exc, settings)
        assert message is not None and words in message, (exc, message)
    assert environment_problem(KeyError("bug"), settings) is None  # a bug keeps its traceback
    assert environment_problem(FileNotFoundError(errno.ENOENT, "No such file", "x"), settings) is None
