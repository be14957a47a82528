"""Review queues at scale: a queue of N random (UUID) samples with overlap 2, half of it settled and most of the rest
judged once by one fast reviewer; prints the median seconds of a review step (next_item + submit) for that reviewer
(who must pass every sample she judged) and for a second one, plus creating the queue, its progress, its conflicts
and its agreement.

    python -m bench.queue_scale [--samples 100000] [--steps 9] [--db-url postgresql://...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import insert, select, update

from curation.review.actors import Actor
from curation.review.agreement import queue_agreement
from curation.review.assignment import conflicts, create_queue, next_item, queue_progress, submit
from curation.review.reviews import add_review
from db.engine import open_state
from db.models import QueueItem, QueueVerdict, utcnow

ADMIN = Actor("bench admin", None, "admin")
ANN, BOB = Actor("ann", None, "annotator"), Actor("bob", None, "annotator")


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run(n: int, steps: int, db_url: str) -> dict[str, float]:
    out: dict[str, float] = {}
    with open_state(db_url) as db:
        samples = [(str(uuid.uuid4()), f"skill_{i % 19}") for i in range(n)]
        box: dict[str, object] = {}
        out["create_queue"] = timed(lambda: box.update(q=create_queue(db, ADMIN, f"bench {uuid.uuid4().hex[:6]}",
                                                                      samples, "/Browse", overlap=2)))  # fmt: skip
        q = box["q"]
        settled, judged = n // 2, (n * 2) // 5  # 50% settled, the next 40% judged by ann alone
        review_id = add_review(db, "bench-elsewhere", "approve", ADMIN).review_id
        now = utcnow()
        with db.write() as s:
            s.execute(update(QueueItem).where(QueueItem.queue_id == q.id, QueueItem.position <= settled)
                      .values(settled_at=now, settlement="agreed", verdict="approve", reviewer="ann, bob",
                              settle_count=1, review_id=review_id, n_verdicts=2))  # fmt: skip
            s.execute(update(QueueItem).where(QueueItem.queue_id == q.id, QueueItem.position > settled,
                                              QueueItem.position <= settled + judged).values(n_verdicts=1))
            rows = [{"queue_id": q.id, "sample_id": sid, "who": who, "verdict": "approve", "reserved_at": now,
                     "expires_at": now, "submitted_at": now}
                    for sid, _ in samples[:settled] for who in ("ann", "bob")]  # fmt: skip
            rows += [{"queue_id": q.id, "sample_id": sid, "who": "ann", "verdict": "reject", "reserved_at": now,
                      "expires_at": now, "submitted_at": now} for sid, _ in samples[settled : settled + judged]]
            s.execute(insert(QueueVerdict), rows)
            assert s.scalar(select(QueueItem.settled_at).where(QueueItem.position == settled + 1)) is None
        if db.engine.dialect.name == "postgresql":  # what autovacuum does after a bulk load, before anyone works
            with db.engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE queue_items")
                conn.exec_driver_sql("ANALYZE queue_verdicts")
                conn.commit()

        for who in (ANN, BOB):
            times = []
            for _ in range(steps):
                def step(who: Actor = who) -> None:
                    r = next_item(db, who, q.id)
                    assert r is not None
                    submit(db, who, q.id, r.sample_id, "approve")

                times.append(timed(step))
            out[f"next_item+submit ({who.name})"] = statistics.median(times)
        out["queue_progress"] = statistics.median(timed(lambda: queue_progress(db, q.id)) for _ in range(3))
        out["conflicts"] = statistics.median(timed(lambda: conflicts(db, q.id)) for _ in range(3))
        out["queue_agreement"] = statistics.median(timed(lambda: queue_agreement(db, q.id)) for _ in range(3))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=9, help="review steps per reviewer (the median is printed)")
    ap.add_argument("--db-url", default=None, help="a state database URL (default: a fresh SQLite file)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db_url or f"sqlite:///{Path(tmp) / 'state.sqlite'}"
        figures = run(args.samples, args.steps, url)
    print(f"queue of {args.samples:,} samples, overlap 2, on {url.split(':', 1)[0]}")
    for name, seconds in figures.items():
        print(f"  {name:32s} {seconds * 1000:9.1f} ms")


if __name__ == "__main__":
    main()
