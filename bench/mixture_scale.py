"""Mixture selection at scale: the seconds and peak memory of selecting a recipe's rows from a catalog of random
(UUID) sample ids, the way the Mixtures page and `export --dry-run` do. Budget (DESIGN.md, issue #12): selecting
all 4.1M rows stays within 4 GiB.

    python -m bench.mixture_scale --samples 4100000            # builds a synthetic catalog under bench/out/
    python -m bench.mixture_scale --samples 4100000 --reuse    # keeps the catalog from the last run

The catalog is bench.export_scale's (VST SFT-shaped rows) with its ids replaced by UUIDs, as real VST ids are. Each
recipe is selected in its own process, so its peak RSS is its own (imports and the catalog connection included);
one JSON line of the figures ends the output.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.export_scale import SKILLS, build_catalog
from curation.mixtures.selection import MAX_PASSES

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {
    # every row: one threshold component (no rank order needed)
    "all": {"components": [{"name": "all", "filter": {}, "fraction": 1.0}]},
    # half the rows, as four weighted components taken by rank (bottom-n: an md5 rank and a top-n per pool)
    "weighted": {"total": 0.5, "components": [
        {"name": f"part{k}", "filter": {"skills": SKILLS[2 * k: 2 * k + 2]}, "weight": 0.25} for k in range(4)]},
    # the largest mixture a catalog allows: every row up-sampled to MAX_PASSES copies
    "upsampled": {"total": float(MAX_PASSES), "components": [
        {"name": "all", "filter": {}, "weight": 1.0, "upsample": True, "max_repeat": MAX_PASSES}]},
    # the whole catalog by weight, with exclusions and exact-duplicate removal
    "excluding": {"total": 1.0, "components": [{"name": "all", "filter": {}, "weight": 1.0}],
                  "exclude": {"flagged": True, "rejected": True, "exact_duplicates": True}},
}


def build(home: Path, samples: int) -> None:
    """bench.export_scale's catalog, its ids replaced by random-looking UUIDs (md5 of the old id: reproducible)."""
    import duckdb

    build_catalog(home, samples)
    con = duckdb.connect(str(home / "catalog.duckdb"))
    con.execute("UPDATE samples SET sample_id = md5(sample_id)::UUID::VARCHAR, source_id = NULL")
    con.execute("CHECKPOINT")
    con.close()


def measure(home: Path, name: str) -> dict:
    """One recipe's selection in this process (the child)."""
    from curation.mixtures.recipe import parse_recipe
    from curation.mixtures.selection import select_mixture
    from curation.query.catalog import CatalogQuery
    from curation.query.filters import FilterSpec
    from curation.settings import load_settings

    q = CatalogQuery(load_settings(home))
    samples = q.count(FilterSpec())
    spec = dict(RECIPES[name])
    if "total" in spec:  # a share of the catalog
        spec["total"] = int(spec["total"] * samples)
    recipe = parse_recipe({"name": f"bench-{name}", "seed": 1, **spec})
    t = time.perf_counter()
    sel = select_mixture(recipe, q)
    seconds = time.perf_counter() - t
    q.close()
    return {"seconds": seconds, "rows": sel.rows, "excluded": sel.excluded_total, "catalog_rows": samples}


def _child(home: Path, name: str) -> tuple[dict, float]:
    """Run one measurement in a child process; (its JSON result, its peak RSS in MiB)."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.mixture_scale", "--home", str(home), "--child", name],
                            cwd=ROOT, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"selecting {name} failed")
    return json.loads(out.decode().strip().splitlines()[-1]), usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=1_000_000)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "mixture")
    p.add_argument("--reuse", action="store_true", help="keep the catalog built by the last run")
    p.add_argument("--recipe", action="append", choices=list(RECIPES), help="only these recipes (repeatable)")
    p.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--child", choices=list(RECIPES), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.home, args.child)))
        return 0
    home = args.out / "home"
    if not (args.reuse and (home / "catalog.duckdb").exists()):
        t = time.perf_counter()
        build(home, args.samples)
        print(f"catalog of {args.samples:,} rows with UUID ids built in {time.perf_counter() - t:.1f} s")
    figures = {}
    for name in args.recipe or RECIPES:
        result, peak = _child(home, name)
        figures[name] = {**result, "peak_rss_mib": round(peak)}
        print(f"{name:10s} {result['rows']:>10,} rows selected in {result['seconds']:6.2f} s, "
              f"peak RSS {peak:7,.0f} MiB")
    peak = max(f["peak_rss_mib"] for f in figures.values())
    print(f"largest peak {peak:,} MiB (budget 4,096 MiB)")
    samples = next(iter(figures.values())).pop("catalog_rows")
    for f in figures.values():
        f.pop("catalog_rows", None)
    print(json.dumps({"samples": samples, "recipes": figures, "peak_rss_mib": peak}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
