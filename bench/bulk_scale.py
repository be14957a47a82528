"""Bulk actions at scale: flag, then approve, every sample of a filter of N random (UUID) ids as one batch each, and
undo each batch; prints seconds, samples per second and the peak memory of each step (median of --runs runs).

The ids stream from DuckDB as Arrow batches, in sample-id order, the way ``filter_sample_ids`` reads a whole filter
from the catalog.

    python -m bench.bulk_scale --samples 4100000 [--runs 1] [--actions flag,approve] [--db-url postgresql://...]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from curation.review.actors import Actor
from curation.review.bulk import flag_samples, review_samples, undo_batch
from db.engine import open_state


def ids(n: int, seed: int, batch_rows: int = 50_000) -> Iterator[str]:
    con = duckdb.connect()
    # Random-looking but repeatable ids (UUID-shaped), so every run and step acts on the same samples.
    sql = f"SELECT md5(i::VARCHAR || '-{int(seed)}')::UUID::VARCHAR AS sample_id FROM range({int(n)}) t(i) ORDER BY 1"
    reader = con.sql(sql).to_arrow_reader(batch_rows)
    for batch in reader:
        yield from batch.column(0).to_pylist()
    con.close()


BENCH = Actor("bench", None, "curator")  # bulk actions need a curator's (or an admin's) role


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_run(n: int, db_url: str, seed: int, actions: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    with open_state(db_url) as db:
        acts = {"flag": lambda: flag_samples(db, ids(n, seed), "wrong_answer", BENCH, note="bulk"),
                "approve": lambda: review_samples(db, ids(n, seed), "approve", BENCH)}
        for name in actions:
            act = acts[name]
            t = time.perf_counter()
            batch = act()
            out[name] = time.perf_counter() - t
            assert batch.samples == n, (name, batch.samples)
            t = time.perf_counter()
            assert undo_batch(db, batch, BENCH) == n
            out[f"undo {name}"] = time.perf_counter() - t
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--db-url", help="a state database to use (default: a new SQLite file per run)")
    ap.add_argument("--actions", default="flag,approve", help="which bulk actions to time (each with its undo)")
    args = ap.parse_args()
    runs = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            url = args.db_url or f"sqlite:///{Path(tmp) / 'state.sqlite'}"
            runs.append(one_run(args.samples, url, seed=i, actions=args.actions.split(",")))
    print(f"bulk actions on {args.samples:,} samples ({'given database' if args.db_url else 'SQLite'}), "
          f"median of {len(runs)} run(s):")
    for step in runs[0]:
        s = statistics.median(r[step] for r in runs)
        print(f"  {step:<14} {s:8.1f} s  {args.samples / s:10,.0f} samples/s")
    print(f"  peak RSS {peak_mib():,.0f} MiB")


if __name__ == "__main__":
    main()
