"""How a check run's progress reads while it goes: on a demo of N samples, run the default checks (MiniLM) --runs
times in a row and print, per run, how many progress values the job recorded, the longest wait between two, and
the time left it stated at each quarter of the run against the time that was actually left.

The first run has no earlier run to time its cross-sample checks by, so its time left stays unknown ('?') until its
last phase; every later run takes each phase's seconds per row from the run before it (curation.jobs.run.time_left).

    python -m bench.check_progress [--samples 2000] [--runs 2] [--embedder minilm|hashing]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from curation.demo import generate_demo
from curation.ingest.run import ingest
from curation.jobs.queue import claim_job, get_job
from curation.jobs.run import queue_checks, run_job
from curation.review.actors import local_actor
from curation.settings import load_settings
from db.engine import open_state


def one_run(settings, db, embedder: str) -> dict:
    job = claim_job(db, queue_checks(settings, None, db=db, by=local_actor(), embedder=embedder).id, "bench")
    seen: list[tuple[float, int, float | None]] = []
    t0 = time.monotonic()

    def heard(done: int) -> None:
        row = get_job(db, job.id)
        seen.append((time.monotonic() - t0, row.done, row.eta_s))

    summary = run_job(settings, db, job, on_progress=heard)
    end = time.monotonic() - t0
    times = [t for t, _, _ in seen] + [end]
    return {"state": summary.state, "seconds": end, "writes": len(seen), "total": seen[-1][1] if seen else 0,
            "longest_wait": max(b - a for a, b in zip(times, times[1:], strict=False)), "seen": seen}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--embedder", default="minilm")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="check_progress_") as tmp:
        root = Path(tmp)
        generate_demo(root / "demo", samples=args.samples, seed=7, progress=False)
        settings = load_settings(root / "home", env={"CURATOR_SCENE_ROOT": str(root / "demo" / "scenes")})
        ingest([root / "demo" / "vst_p", root / "demo" / "vst_r"], settings.ensure_dirs(), progress=False)
        with open_state(settings.db_url) as db:
            waits = []
            for i in range(args.runs):
                r = one_run(settings, db, args.embedder)
                waits.append(r["longest_wait"])
                print(f"run {i + 1}: {r['state']} in {r['seconds']:.1f} s, {r['writes']} progress values recorded, "
                      f"longest wait between two {r['longest_wait']:.1f} s")
                for q in (0.0, 0.25, 0.5, 0.75):
                    t, done, eta = next(s for s in r["seen"] if s[0] >= q * r["seconds"]) if any(
                        s[0] >= q * r["seconds"] for s in r["seen"]) else r["seen"][-1]
                    stated = "?" if eta is None else f"{eta:.1f} s"
                    print(f"  at {t:5.1f} s: {done:,} / {r['total']:,} row passes, time left stated {stated}, "
                          f"actually {r['seconds'] - t:.1f} s")
            print(f"median longest wait between two progress values: {statistics.median(waits):.1f} s")


if __name__ == "__main__":
    main()
