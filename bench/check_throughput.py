"""Check throughput at full size: rule checks over a 4.1M-row catalog, plus media, embedding and model rates.

    python -m bench.check_throughput [--rows 4100000] [--workers 2] [--home DIR] [--phases rules,media,...]

The catalog is the demo data set (2,000 varied VST-shaped samples: boxes, cameras, traces, RL rows, videos)
copied to ``--rows`` rows in VST's skill shares (§6: half of VST-P is 3D detection) and shards of about 10k rows,
so every rule has realistic work at full size (``--mix demo`` keeps the demo's own, consistency-heavy shares). Media
checks read real bytes, so they are timed on the 2,000 demo rows; the embedding rate is MiniLM on distinct demo
questions (replicated questions would repeat and flatter it). Each phase runs in a child process so its peak
memory is its own; the last line is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROWS_PER_SHARD = 10_000


# Samples per skill in VST (vst-format.md §6), thousands: the full-size catalog copies demo rows in these shares.
VST_SKILLS = {
    "si_3d_detection": 1586, "si_depth_comparison": 412, "si_scene_caption": 106, "si_3d_grounding": 170,
    "si_distance": 251, "si_measurement": 175, "mi_correspondence": 361, "mi_object_object_relation": 230,
    "mi_camera_motion": 88, "mi_3d_detection": 600, "mi_camera_camera": 63, "mi_scene_caption": 35,
    "video_measurement": 3, "video_object_counting": 12, "video_spatiotemporal": 10,
    "video_object_object_relation": 19, "video_route_plan": 4, "video_scene_caption": 5, "video_others": 35,
    "cot_sr_si": 15, "cot_sr_camera_motion": 6, "cot_sr_object_object": 15, "cot_sr_camera_camera": 6,
    "cot_gr_math": 31, "cot_gr_ocr": 9, "cot_gr_knowledge": 24, "rl_sr_si": 2, "rl_sr_camera_motion": 1,
    "rl_sr_object_object": 5, "rl_sr_camera_camera": 2, "rl_gr_math": 8, "rl_gr_ocr": 2, "rl_gr_knowledge": 10,
}  # fmt: skip


def build_catalog(home: Path, rows: int, mix: str = "vst", samples: int = 2000, seed: int = 0) -> Path:
    """The demo ingested once, then its rows copied inside DuckDB into a catalog of ``rows`` rows: in VST's skill
    shares (mix='vst'), or in the demo's own (mix='demo'). Copies of one demo file form shards of ~10k rows."""
    import pyarrow as pa

    from curation.demo import generate_demo
    from curation.ingest.run import ingest
    from curation.settings import load_settings
    from db.catalog import SAMPLE_COLUMNS, open_catalog

    demo_home = home / "demo_home"
    demo = demo_home / "demo"
    small = load_settings(demo_home)
    if not (demo / "defects.parquet").exists():
        generate_demo(demo, samples=samples, seed=seed, progress=False)
    if not small.catalog_path.exists():
        ingest([demo / "vst_p", demo / "vst_r"], small, progress=False)
    big = load_settings(home / f"big_{mix}")
    if big.catalog_path.exists():
        return big.catalog_path
    big.ensure_dirs()
    con = open_catalog(big.catalog_path, read_only=False)
    try:
        con.execute("SET memory_limit = '3GB'")  # DuckDB spills to disk beyond it
        con.execute(f"ATTACH '{small.catalog_path}' AS demo (READ_ONLY)")
        counts = dict(con.execute("SELECT skill, count(*) FROM demo.samples GROUP BY skill").fetchall())
        weights = VST_SKILLS if mix == "vst" else counts
        total = sum(w for k, w in weights.items() if k in counts)
        files = dict(con.execute("SELECT source_file, count(*) FROM demo.samples GROUP BY 1").fetchall())
        con.register("plan", pa.table({
            "skill": list(counts),
            "copies": [max(1, -(-int(rows * weights.get(k, 0) / total) // counts[k])) if weights.get(k) else 0
                       for k in counts],
        }))
        con.register("files", pa.table({"source_file": list(files),
                                        "per_shard": [max(1, ROWS_PER_SHARD // n) for n in files.values()]}))
        cols = ", ".join(
            "s.sample_id || '-' || k AS sample_id" if c == "sample_id"
            else "s.source_id || '-' || k AS source_id" if c == "source_id"
            else "s.source_file || '#' || lpad(CAST(k // f.per_shard AS VARCHAR), 5, '0') AS source_file"
            if c == "source_file" else f"s.{c}"
            for c, _ in SAMPLE_COLUMNS
        )
        con.execute(f"""INSERT INTO samples BY NAME SELECT * FROM (
            SELECT {cols} FROM demo.samples s JOIN plan p USING (skill) JOIN files f USING (source_file),
                   LATERAL (SELECT unnest(range(p.copies)) AS k)
        ) ORDER BY source_file, row_index LIMIT {rows}""")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return big.catalog_path


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children: the cost, whatever else the machine is doing."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _peak_mb() -> float:
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(self_kb, child_kb) / 1024


def phase_rules(home: Path, workers: int, mix: str = "vst") -> dict:
    from curation.checks.registry import all_checks
    from curation.jobs.run import run_checks
    from curation.review.actors import local_actor
    from curation.settings import load_settings

    settings = load_settings(home / f"big_{mix}")
    names = sorted(n for n, c in all_checks().items() if c.cost == "rule")
    import duckdb

    con = duckdb.connect(str(settings.catalog_path), read_only=True)
    rows = con.execute("SELECT count(*), count(DISTINCT source_file) FROM samples").fetchone()
    mix_share = dict(con.execute("SELECT skill, round(count(*) / (SELECT count(*) FROM samples), 3) FROM samples "
                                 "GROUP BY skill ORDER BY 2 DESC LIMIT 5").fetchall())
    con.close()
    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), _cpu_s()
    summary = run_checks(settings, names, by=local_actor(), workers=workers, batch_rows=50_000)
    seconds, cpu = time.perf_counter() - t0, _cpu_s() - c0
    return {
        "phase": "rules", "mix": mix, "top_skills": mix_share, "rows": rows[0], "shards": rows[1], "checks": names,
        "workers": workers,
        "seconds": round(seconds, 1), "samples_per_s": round(rows[0] / seconds), "cpu_s": round(cpu, 1),
        # What the same work gives on `workers` cores of its own (the machine is shared: see load_before).
        "samples_per_s_on_free_cores": round(rows[0] / (cpu / workers)), "load_before": round(load, 1),
        # Seconds inside each check (a single-threaded DuckDB in each worker), summed over the workers; the rest of
        # cpu_s is reading the catalog, writing results and starting the worker processes.
        "per_check_s": {k: round(v.seconds, 2) for k, v in sorted(summary.stats.items())},
        "failed": {k: v.failed for k, v in sorted(summary.stats.items())}, "peak_rss_mb": round(_peak_mb()),
    }


def phase_media(home: Path) -> dict:
    from curation.jobs.run import run_checks
    from curation.review.actors import local_actor
    from curation.settings import load_settings

    settings = load_settings(home / "demo_home")
    out = {"phase": "media"}
    for name in ("media.decodable", "media.video"):
        t0 = time.perf_counter()
        summary = run_checks(settings, name, by=local_actor())
        seconds = time.perf_counter() - t0
        n = summary.stats.get(name).rows if name in summary.stats else 0
        out[name] = {"samples": n, "seconds": round(seconds, 2), "samples_per_s": round(n / seconds)}
    out["peak_rss_mb"] = round(_peak_mb())
    return out


def phase_embedding(home: Path) -> dict:
    import duckdb

    from curation.checks.embeddings import get_embedder, question_core
    from curation.settings import load_settings

    settings = load_settings(home / "demo_home")
    con = duckdb.connect(str(settings.catalog_path), read_only=True)
    questions = sorted({question_core(q) for (q,) in con.execute("SELECT question FROM samples").fetchall()})
    con.close()
    t0 = time.perf_counter()
    embedder = get_embedder("minilm")
    load_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    vectors = embedder.encode(questions)
    seconds = time.perf_counter() - t1
    return {"phase": "embedding", "model": embedder.name, "distinct_questions": len(questions),
            "load_s": round(load_s, 1), "seconds": round(seconds, 1), "samples_per_s": round(len(questions) / seconds),
            "dim": int(vectors.shape[1]), "peak_rss_mb": round(_peak_mb())}


def phase_global_embedding(home: Path) -> dict:
    """duplicates.near and contamination.question end to end on the demo rows (distinct texts, MiniLM)."""
    from curation.jobs.run import run_checks
    from curation.review.actors import local_actor
    from curation.settings import load_settings

    settings = load_settings(home / "demo_home")
    t0 = time.perf_counter()
    summary = run_checks(settings, "duplicates.near,contamination.question", by=local_actor(),
                         benchmarks=[str(home / "demo_home" / "demo" / "benchmarks")])
    seconds = time.perf_counter() - t0
    n = max(s.rows for s in summary.stats.values())
    return {"phase": "embedding_checks", "samples": n, "seconds": round(seconds, 1),
            "samples_per_s": round(n / seconds), "peak_rss_mb": round(_peak_mb())}


PHASES = {"rules": phase_rules, "media": phase_media, "embedding": phase_embedding,
          "embedding_checks": phase_global_embedding}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.check_throughput", description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=4_100_000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--home", help="where to build/reuse the catalogs (default: a temporary folder)")
    ap.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated, of {', '.join(PHASES)}")
    ap.add_argument("--mix", choices=["vst", "demo"], default="vst",
                    help="skill shares of the big catalog: VST's (default) or the demo's own")
    ap.add_argument("--phase", help=argparse.SUPPRESS)  # internal: run one phase in this process
    args = ap.parse_args(argv)
    if args.phase:
        home = Path(args.home)
        fn = PHASES[args.phase]
        result = fn(home, args.workers, args.mix) if args.phase == "rules" else fn(home)
        print("RESULT " + json.dumps(result))
        return 0
    tmp = None if args.home else tempfile.TemporaryDirectory(prefix="check-throughput-")
    home = Path(args.home or tmp.name)  # type: ignore[union-attr]
    t0 = time.perf_counter()
    # In a child process: Linux keeps a process's peak RSS across exec, so the phases must not descend from it.
    built = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                            "from bench.check_throughput import build_catalog; "
                            "build_catalog(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3])",
                            str(home), str(args.rows), args.mix], capture_output=True, text=True)
    if built.returncode:
        print(f"building the catalog failed:\n{built.stderr[-3000:]}", file=sys.stderr)
        return 1
    print(f"catalog: {args.rows:,} rows built in {time.perf_counter() - t0:.0f} s under {home}", flush=True)
    figures = {"rows": args.rows, "cores": os.cpu_count(), "mix": args.mix}
    for phase in args.phases.split(","):
        proc = subprocess.run([sys.executable, "-m", "bench.check_throughput", "--phase", phase, "--home", str(home),
                               "--workers", str(args.workers), "--mix", args.mix], capture_output=True, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if proc.returncode or line is None:
            print(f"phase {phase} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
            return 1
        result = json.loads(line[len("RESULT "):])
        figures[phase] = result
        print(json.dumps(result, indent=1), flush=True)
    print(json.dumps(figures))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
