"""A curator edits taxonomy.yaml and re-derives every skill without re-ingesting (`python -m curation retag`),
while the app keeps reading; `stats` shows what share of each dataset and source no rule recognises."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from curation.ingest.retag import retag
from curation.ingest.run import ingest
from curation.vst.taxonomy import TAXONOMY_PATH, load_taxonomy
from db.catalog import catalog_version
from tests.support.shards import sft_row, small_vst_tree, write_sft

ROOT = Path(__file__).resolve().parents[2]


def skills(settings) -> dict[str, str]:
    with duckdb.connect(str(settings.catalog_path), read_only=True) as con:
        return dict(con.execute("SELECT sample_id, skill FROM samples").fetchall())


def version(settings) -> str:
    with duckdb.connect(str(settings.catalog_path), read_only=True) as con:
        return catalog_version(con)


@pytest.fixture
def catalog(home, tmp_path):
    """The small tree (ingested as one dataset, `src`), plus two CoT rows in a folder that names no skill."""
    root = small_vst_tree(tmp_path / "src")
    write_sft(root / "vst_r" / "cot_part3" / "part-00000.parquet", [
        sft_row(0, "Is the lamp left of the sofa?", "<think>The lamp is at x=0.2, the sofa at 0.6.</think> Yes",
                type_="relation_thought", id="cot-0"),
        sft_row(1, "What is written on the sign?", "<think>The sign reads EXIT.</think> EXIT", type_="ocr_thought",
                id="cot-1"),
    ])
    ingest([root], home, progress=False)
    return home


def edited_taxonomy(tmp_path: Path) -> Path:
    """taxonomy.yaml with one rule changed: OCR wording makes math, as a curator might (mis)decide."""
    text = TAXONOMY_PATH.read_text().replace("    - {pattern: *ocr, category: gr_ocr}",
                                              "    - {pattern: *ocr, category: gr_math}")
    path = tmp_path / "taxonomy.yaml"
    path.write_text(text)
    return path


def test_retag_after_ingest_changes_nothing(catalog):
    """Ingest's SQL and retag's are the same rules: nothing moves, yet the catalog's version changes."""
    before, v0 = skills(catalog), version(catalog)
    s = retag(catalog)
    assert s.changes == [] and s.moved == 0 and s.samples == len(before) and s.in_place
    assert skills(catalog) == before and version(catalog) != v0
    assert before["cot-0"] == "cot_sr_si" and before["cot-1"] == "cot_gr_ocr"  # their folder names no skill


def test_an_edited_rule_moves_samples_without_re_ingesting(catalog, tmp_path):
    before = skills(catalog)
    ocr = [sid for sid, skill in before.items() if skill == "cot_gr_ocr"]
    assert len(ocr) == 1
    s = retag(catalog, load_taxonomy(edited_taxonomy(tmp_path)))
    after = skills(catalog)
    assert after[ocr[0]] == "cot_gr_math"
    assert {k: v for k, v in after.items() if k not in ocr} == {k: v for k, v in before.items() if k not in ocr}
    assert ("cot_gr_ocr", 1, 0) in s.changes and ("cot_gr_math", 0, 1) in s.changes and s.moved == 1
    with duckdb.connect(str(catalog.catalog_path), read_only=True) as con:
        meta = dict(con.execute("SELECT key, value FROM catalog_meta").fetchall())
    assert meta["skills_taxonomy"] == load_taxonomy(edited_taxonomy(tmp_path)).digest


def _hold_open(path: Path) -> subprocess.Popen:
    """Another process reading the catalog as the app does: it answers 'skill of ID?' lines from its connection."""
    code = textwrap.dedent("""
        import duckdb, sys
        con = duckdb.connect(sys.argv[1], read_only=True)
        print(con.execute("SELECT count(*) FROM samples").fetchone()[0], flush=True)
        for line in sys.stdin:
            print(con.execute("SELECT skill FROM samples WHERE sample_id = ?", [line.strip()]).fetchone()[0],
                  flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert int(proc.stdout.readline()) > 0
    return proc


def test_retag_while_the_app_reads_swaps_in_a_copy_and_the_reader_keeps_working(catalog, tmp_path):
    ocr = next(sid for sid, skill in skills(catalog).items() if skill == "cot_gr_ocr")
    reader = _hold_open(catalog.catalog_path)
    try:
        s = retag(catalog, load_taxonomy(edited_taxonomy(tmp_path)))
        assert not s.in_place  # the reader held the file: written to a copy, swapped in
        reader.stdin.write(ocr + "\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "cot_gr_ocr"  # its open catalog is the one it had
    finally:
        reader.stdin.close()
        reader.wait(timeout=30)
    assert skills(catalog)[ocr] == "cot_gr_math"  # every new connection sees the new skills
    assert not catalog.catalog_path.with_name(catalog.catalog_path.name + ".ingest").exists()


KILLER = textwrap.dedent("""
    import os, signal, sys
    import curation.ingest.retag as r
    from curation.settings import load_settings
    from curation.vst.taxonomy import load_taxonomy

    written = r._update_skills
    def update_then_die(con, sql):
        written(con, sql)  # every row rewritten inside the transaction, nothing committed yet
        os.kill(os.getpid(), signal.SIGKILL)
    r._update_skills = update_then_die
    r.retag(load_settings(sys.argv[1]), load_taxonomy(sys.argv[2]))
""")


@pytest.mark.parametrize("app_reading", [False, True], ids=["in-place", "copy"])
def test_a_retag_killed_before_it_commits_leaves_every_skill_as_it_was(catalog, tmp_path, app_reading):
    before, v0 = skills(catalog), version(catalog)
    reader = _hold_open(catalog.catalog_path) if app_reading else None
    try:
        res = subprocess.run([sys.executable, "-c", KILLER, str(catalog.home), str(edited_taxonomy(tmp_path))],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        if reader is not None:
            reader.stdin.close()
            reader.wait(timeout=30)
    assert res.returncode == -signal.SIGKILL, res.stderr
    assert skills(catalog) == before and version(catalog) == v0
    s = retag(catalog, load_taxonomy(edited_taxonomy(tmp_path)))  # the lock died with the process; a leftover
    assert s.moved == 1  # copy is cleared and the next retag goes through
    assert not catalog.catalog_path.with_name(catalog.catalog_path.name + ".ingest").exists()


def cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CURATOR_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "curation", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_retag_command_and_the_unknown_share_in_stats(catalog, tmp_path):
    # A VST-P LLaVA row outside the 19 skills' wording stays unknown and is counted, per dataset and source.
    write_sft(tmp_path / "more" / "vst_p" / "llava" / "part-00000.parquet",
              [sft_row(0, "Is the lamp left of the sofa?", "Yes", type_=None, id="llava-0")])
    ingest([tmp_path / "more" / "vst_p"], catalog, progress=False)
    res = cli("retag", home=catalog.home)
    assert res.returncode == 0, res.stderr
    assert "retag: skills of 11 samples derived anew" in res.stdout and "0 samples moved" in res.stdout
    out = json.loads(cli("stats", "--json", home=catalog.home).stdout)
    assert out["unknown_by_dataset"] == {"vst-p": {"samples": 1, "unknown": 1, "share": 1.0},
                                         "src": {"samples": 10, "unknown": 0, "share": 0.0}}
    assert out["unknown_by_source"]["scannet"] == {"samples": 7, "unknown": 1, "share": round(1 / 7, 4)}
    text = cli("stats", home=catalog.home).stdout
    assert "skill unknown, by dataset" in text and "skill unknown, by source" in text
