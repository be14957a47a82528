"""Export at scale: 1M samples written in the text formats (no media bytes) next to DuckDB COPY ... TO of the same
columns, with the peak memory of each run. Budget (DESIGN.md): export <= 2x COPY, peak <= 4 GiB.

    python -m bench.export_scale --samples 1000000            # builds a synthetic catalog under bench/out/
    python -m bench.export_scale --samples 1000000 --reuse    # keeps the catalog from the last run

Each measurement runs in its own process, so its peak RSS is its own; imports happen before the clock starts (the
COPY run imports duckdb and connects first, the export run imports the curator and opens the catalog first; the
clock then runs over the selection and the export). Runs are interleaved and
repeated; the fastest counts, and CPU seconds (all threads) are reported next to wall seconds, since on a busy
machine the wall ratio swings with the load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT_FORMATS = ["llamafactory", "swift", "llava"]
SKILLS = ["si_distance", "si_depth_comparison", "si_measurement", "mi_camera_motion", "mi_correspondence",
          "si_3d_grounding", "mi_object_object_relation", "si_scene_caption"]
SOURCES = ["scannet", "scannetpp", "arkitscenes", "hypersim"]


def build_catalog(home: Path, samples: int) -> None:
    """A catalog of ``samples`` rows shaped like VST SFT rows (one image pointer each, two turns, ~200 chars)."""
    from db.catalog import SAMPLE_COLUMNS, open_catalog

    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    con = open_catalog(home / "catalog.duckdb", read_only=False)
    skills = "[" + ", ".join(f"'{s}'" for s in SKILLS) + "]"
    sources = "[" + ", ".join(f"'{s}'" for s in SOURCES) + "]"
    values = {
        "sample_id": "'b-' || lpad(i::VARCHAR, 8, '0')",
        "source_id": "'b-' || lpad(i::VARCHAR, 8, '0')",
        "dataset": "'vst-p'",
        "subset": f"{skills}[1 + i % {len(SKILLS)}]",
        "sample_group": "'single'",
        "skill": f"{skills}[1 + i % {len(SKILLS)}]",
        "data_source": f"{sources}[1 + i % {len(SOURCES)}]",
        "source": f"{sources}[1 + i % {len(SOURCES)}]",
        "type": "'distance'",
        "kind": "'sft'",
        "turns": ("[struct_pack(role := 'human', text := '<|image_pad|>What is the distance between the chair ' || i "
                  "|| ' and the table ' || (i * 7 % 1000) || ' in meters? Please answer the question using a single "
                  "word or phrase.'), struct_pack(role := 'gpt', text := ((i % 500) / 100.0)::VARCHAR)]"),
        "n_turns": "2",
        "question": "'What is the distance between the chair ' || i || ' and the table?'",
        "answer": "((i % 500) / 100.0)::VARCHAR",
        "reasoning": "NULL",
        "has_reasoning": "false",
        "answer_kind": "'number'",
        "rl_modes": "NULL",
        "question_type": "NULL",
        "meta_info": "'[{\"width\": 640, \"height\": 480, \"resized_width\": 640, \"resized_height\": 480}]'",
        "media": ("[struct_pack(kind := 'image', digest := substr(md5(i::VARCHAR), 1, 16), width := 640, "
                  "height := 480, path := 'scenes/room_' || (i % 5000) || '/cam_' || (i % 7) || '.jpg', "
                  "byte_size := 50000, embedded := true, problem := NULL)]"),
        "n_images": "1",
        "n_videos": "0",
        "camera": "NULL",
        "boxes_3d": "NULL",
        "boxes_2d": "NULL",
        "scene_id": "'room_' || (i % 5000)",
        "content_hash": "md5(i::VARCHAR || 'c')",
        "problems": "[]",
        "source_file": "'/bench/shards/part-' || lpad((i // 100000)::VARCHAR, 5, '0') || '.parquet'",
        "source_format": "'vst-sft-parquet'",
        "row_group": "(i % 100000) // 64",
        "row_in_group": "(i % 100000) % 64",
        "row_index": "i % 100000",
        "ingest_run": "1",
    }
    cols = [name for name, _ in SAMPLE_COLUMNS]
    con.execute(f"INSERT INTO samples ({', '.join(cols)}) SELECT {', '.join(values[c] for c in cols)} "
                f"FROM range({int(samples)}) t(i)")
    con.execute("INSERT INTO ingest_runs VALUES (1, now(), now(), 10, ?, 0)", [samples])
    con.execute("CHECKPOINT")
    con.close()


def _child(args: list[str]) -> tuple[dict, float]:
    """Run one measurement in a child process; (its JSON result, its peak RSS in MiB)."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.export_scale", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"measurement {args} failed with exit code {proc.returncode}")
    return json.loads(out.decode().strip().splitlines()[-1]), usage.ru_maxrss / 1024


def measure_copy(home: Path, out: Path) -> dict:
    """DuckDB COPY of the columns the text exports read (id, turns, media) to newline-delimited JSON."""
    import duckdb

    target = out / "copy.jsonl"
    target.unlink(missing_ok=True)
    con = duckdb.connect(str(home / "catalog.duckdb"), read_only=True)
    cpu, t = _cpu(), time.perf_counter()
    con.execute(f"COPY (SELECT sample_id, turns, media FROM samples) TO '{target}' (FORMAT json)")
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "cpu_seconds": _cpu() - cpu, "bytes": target.stat().st_size}


def _cpu() -> float:
    """CPU seconds of this process, all threads (DuckDB's included)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


RECIPES = {
    # every row: one threshold component (no rank order needed)
    "all": {"components": [{"name": "all", "filter": {}, "fraction": 1.0}]},
    # a weighted mixture whose components take their whole pools by rank (bottom-n sampling, sorted by rank)
    "weighted": {"total": None, "components": [
        {"name": f"part{k}", "filter": {"skills": SKILLS[2 * k: 2 * k + 2]}, "weight": 0.25} for k in range(4)]},
}


def measure_export(home: Path, out: Path, fmt: str, recipe_name: str) -> dict:
    from curation.mixtures.export import export_mixture
    from curation.mixtures.recipe import parse_recipe
    from curation.mixtures.selection import select_mixture
    from curation.query.catalog import CatalogQuery
    from curation.review.actors import local_actor
    from curation.settings import load_settings

    settings = load_settings(home)
    q = CatalogQuery(settings)  # connected before the clock, as the COPY run is
    samples = q.cursor().execute("SELECT count(*) FROM samples").fetchone()[0]
    spec = dict(RECIPES[recipe_name])
    if "total" in spec:
        spec["total"] = samples
    recipe = parse_recipe({"name": "bench", "seed": 1, "shard_size": "1GB", **spec})
    target = out / fmt
    if target.exists():
        shutil.rmtree(target)
    import pyarrow as pa

    pa.array([1])  # pyarrow imports pandas on its first Python conversion: a start-up cost, kept off the clock
    cpu, t = _cpu(), time.perf_counter()
    sel = select_mixture(recipe, q)
    t_sel = time.perf_counter() - t
    (outcome,) = export_mixture(recipe, settings, [fmt], target, by=local_actor(), write_media=False,
                                selection=sel, query=q)
    seconds = time.perf_counter() - t
    cpu = _cpu() - cpu
    q.close()
    size = sum(f["bytes"] for f in outcome.manifest["files"])
    shutil.rmtree(target)
    return {"seconds": seconds, "cpu_seconds": cpu, "selection_seconds": t_sel, "rows": outcome.rows, "bytes": size}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=1_000_000)
    p.add_argument("--out", default=str(ROOT / "bench" / "out" / "export_scale"))
    p.add_argument("--formats", default=",".join(TEXT_FORMATS))
    p.add_argument("--recipes", default=",".join(RECIPES))
    p.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the fastest counts")
    p.add_argument("--reuse", action="store_true", help="keep the synthetic catalog of the last run")
    p.add_argument("--step", choices=["copy", "export"], help=argparse.SUPPRESS)  # child processes
    p.add_argument("--format", help=argparse.SUPPRESS)
    p.add_argument("--recipe", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    out = Path(args.out)
    home = out / "home"
    if args.step == "copy":
        print(json.dumps(measure_copy(home, out)))
        return 0
    if args.step == "export":
        print(json.dumps(measure_export(home, out, args.format, args.recipe)))
        return 0

    out.mkdir(parents=True, exist_ok=True)
    if not (args.reuse and (home / "catalog.duckdb").exists()):
        t = time.perf_counter()
        build_catalog(home, args.samples)
        print(f"synthetic catalog: {args.samples:,} rows in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    runs: dict[str, list[tuple[dict, float]]] = {}
    plan = [("copy", ["--step", "copy"])] + [
        (f"{r}/{f}", ["--step", "export", "--format", f, "--recipe", r])
        for r in args.recipes.split(",") if r for f in args.formats.split(",") if f]
    for _ in range(max(1, args.repeat)):  # interleaved, so a busy moment hits every measurement alike
        for name, extra in plan:
            runs.setdefault(name, []).append(_child(["--out", str(out), *extra]))
    best = {name: min(rs, key=lambda r: r[0]["seconds"]) for name, rs in runs.items()}
    base = best["copy"][0]["seconds"]
    results = {"samples": args.samples, "repeat": args.repeat, "runs": {}}
    base_cpu = min(r[0]["cpu_seconds"] for r in runs["copy"])
    print(f"{'run':<24}{'best s':>8}{'median s':>10}{'ratio':>7}{'cpu s':>7}{'cpu ratio':>10}{'peak MiB':>10}"
          f"{'MB out':>8}  selection")
    for name, rs in runs.items():
        times = sorted(r[0]["seconds"] for r in rs)
        r, _ = best[name]
        peak = max(m for _, m in rs)
        ratio = r["seconds"] / base
        cpu = min(x[0]["cpu_seconds"] for x in rs)
        results["runs"][name] = {**r, "median_seconds": times[len(times) // 2], "all_seconds": times,
                                 "peak_rss_mib": peak, "ratio": ratio, "cpu_ratio": cpu / base_cpu}
        sel = f"{r['selection_seconds']:.2f} s" if "selection_seconds" in r else ""
        print(f"{name:<24}{r['seconds']:>8.2f}{times[len(times) // 2]:>10.2f}{ratio:>7.2f}{cpu:>7.2f}"
              f"{cpu / base_cpu:>10.2f}{peak:>10.0f}{r['bytes'] / 1e6:>8.0f}  {sel}")
    exports = [v for k, v in results["runs"].items() if k != "copy"]
    worst = max((e["ratio"] for e in exports), default=0.0)
    peak = max(v["peak_rss_mib"] for v in results["runs"].values())
    results["budget"] = {"ratio_max": 2.0, "ratio_worst": worst, "peak_mib_max": 4096, "peak_mib_worst": peak,
                         "ok": worst <= 2.0 and peak <= 4096}
    (out / "export_scale.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"budget: ratio <= 2 (worst {worst:.2f}), peak <= 4096 MiB (worst {peak:.0f}): "
          f"{'OK' if results['budget']['ok'] else 'OVER'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
