"""Retag at scale: every sample's skill derived anew from taxonomy.yaml over a large catalog.

    python -m bench.retag_scale --samples 1000000 [--vst-r-share 0.033] [--no-folders] [--out DIR] [--keep]

Builds a catalog of ``--samples`` rows from the demo's rows (VST-P rows, and VST-R rows at VST's own share of
135K in 4.2M unless told otherwise; each copy a new sample id), every skill set to ``unknown``, then times:

- ``retag_all_s``: the first retag (every skill changes);
- ``retag_none_s``: a second retag (no skill changes);
- ``retag_copy_s``: a retag while another process reads the catalog (written into a copy swapped in, as with the
  app open);

each with the CPU seconds it took (on a shared machine the wall time grows with the load; the figures name the load
average and DuckDB's threads), and the peak RSS. With ``--no-folders`` no subset folder names a skill, so every row's
skill comes from its wording (the worst case). Ends with one JSON line of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb


def build(out: Path, samples: int, vst_r_share: float, folders: bool) -> Path:
    from curation.demo import generate_demo
    from curation.ingest.run import ingest
    from curation.settings import load_settings
    from db.catalog import SAMPLE_COLUMNS, open_catalog

    demo_home = load_settings(out / "demo_home")
    if not demo_home.catalog_path.exists():
        generate_demo(out / "demo", samples=2000, seed=0, progress=False)
        ingest([out / "demo" / "vst_p", out / "demo" / "vst_r"], demo_home, progress=False)
    home = load_settings(out / "home").ensure_dirs()
    home.catalog_path.unlink(missing_ok=True)
    con = open_catalog(home.catalog_path, read_only=False)
    try:
        con.execute(f"ATTACH '{demo_home.catalog_path}' AS demo (READ_ONLY)")
        for dataset, share in (("vst-p", 1 - vst_r_share), ("vst-r", vst_r_share)):
            want = round(samples * share)
            have = con.execute("SELECT count(*) FROM demo.samples WHERE dataset = ?", [dataset]).fetchone()[0]
            copies = -(-want // have)
            changed = {"sample_id": "s.sample_id || '-' || c.i", "skill": "'unknown'",
                       "subset": "s.subset" if folders else "'shard'"}
            cols = ", ".join(f"{changed.get(name, 's.' + name)} AS {name}" for name, _ in SAMPLE_COLUMNS)
            con.execute(f"INSERT INTO samples BY NAME SELECT {cols} FROM demo.samples s, range(?) c(i) "
                        "WHERE dataset = ? LIMIT ?", [copies, dataset, want])
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return out / "home"


def hold_open(path: Path) -> subprocess.Popen:
    """A process holding a read-only connection to the catalog until its stdin closes."""
    code = ("import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
            "con.execute('SELECT count(*) FROM samples'); print('open', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
    return proc


def timed(fn, *args):
    """fn(*args) and the CPU seconds this process spent on it (user + system, all threads): on a shared machine the
    wall time grows with the load, the CPU time hardly."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    out = fn(*args)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return out, round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.retag_scale", description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--vst-r-share", type=float, default=135 / (4100 + 135))
    ap.add_argument("--no-folders", action="store_true",
                    help="subset folders that name no skill: every row's skill comes from its wording (the worst case)")
    ap.add_argument("--out", help="working folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the working folder")
    args = ap.parse_args(argv)

    from curation.ingest.retag import retag
    from curation.settings import load_settings

    out = Path(args.out or tempfile.mkdtemp(prefix="retag-scale-"))
    t0 = time.perf_counter()
    home = load_settings(build(out, args.samples, args.vst_r_share, not args.no_folders))
    build_s = time.perf_counter() - t0
    first, first_cpu = timed(retag, home)
    second, second_cpu = timed(retag, home)
    reader = hold_open(home.catalog_path)  # another process reads the catalog, as the app does
    try:
        third, third_cpu = timed(retag, home)
    finally:
        reader.stdin.close()
        reader.wait()
    figures = {
        "samples": first.samples, "vst_r_share": args.vst_r_share, "folders": not args.no_folders,
        "build_s": round(build_s, 1),
        "retag_all_s": round(first.seconds, 2), "retag_all_cpu_s": first_cpu, "moved_all": first.moved,
        "retag_none_s": round(second.seconds, 2), "retag_none_cpu_s": second_cpu, "moved_none": second.moved,
        "retag_copy_s": round(third.seconds, 2), "retag_copy_cpu_s": third_cpu, "copy_in_place": third.in_place,
        "threads": duckdb.connect().execute("SELECT current_setting('threads')").fetchone()[0],
        "load_average_1m": round(os.getloadavg()[0], 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "catalog_mb": round(home.catalog_path.stat().st_size / 2**20),
    }
    print(f"{figures['samples']:,} samples ({args.vst_r_share:.1%} VST-R): retag rewriting every skill "
          f"{figures['retag_all_s']} s, changing none {figures['retag_none_s']} s, with a reader holding the catalog "
          f"(copy + swap) {figures['retag_copy_s']} s; peak RSS {figures['peak_rss_mb']} MB; catalog "
          f"{figures['catalog_mb']} MB")
    for skill, before, after in first.changes[:12]:
        print(f"  {skill}: {before:,} -> {after:,}")
    print(json.dumps(figures))
    if not args.keep and not args.out:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
