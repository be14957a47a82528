"""A curator's first session from the shell: demo -> ingest -> stats, on a fresh data home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CURATOR_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "curation", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_demo_ingest_stats(tmp_path):
    home = tmp_path / "home"
    demo = run("demo", "--samples", "120", "--seed", "1", home=home)
    assert demo.returncode == 0, demo.stderr
    assert (home / "demo" / "defects.parquet").exists()
    ing = run("ingest", str(home / "demo" / "vst_p"), str(home / "demo" / "vst_r"), "--quiet", home=home)
    assert ing.returncode == 0, ing.stderr
    assert "120 rows in" in ing.stdout
    stats = run("stats", "--json", home=home)
    assert stats.returncode == 0, stats.stderr
    out = json.loads(stats.stdout)
    assert out["samples"] == 120
    assert sum(out["by_skill"].values()) == 120 and sum(out["by_group"].values()) == 120
    assert set(out["by_dataset"]) == {"vst-p", "vst-r"}
    assert set(out["by_group"]) <= {"single", "multi", "video", "text"}
    again = run("ingest", str(home / "demo" / "vst_p"), str(home / "demo" / "vst_r"), "--quiet", home=home)
    assert "0 file(s) ingested" in again.stdout and "holds 120 samples" in again.stdout


def test_stats_without_a_catalog_says_what_to_do(tmp_path):
    res = run("stats", home=tmp_path / "empty")
    assert res.returncode == 2 and "curation ingest" in res.stderr and "Traceback" not in res.stderr
