"""The check commands: `check` (queue a run, or run it here), `worker` (run queued runs), `failures` (list them)."""

from __future__ import annotations

import argparse
import json

from curation.settings import Settings

# Each command imports the check and job modules when it runs: they load DuckDB, pandas and every check family
# (~0.7 s) that the other commands do not need.


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    # Commands act as local_actor(): whoever runs them on the server already holds the state database.
    from curation.checks.registry import describe_checks
    from curation.jobs.run import queue_checks, run_checks, run_id_for
    from curation.review.actors import local_actor

    if args.list:
        for c in describe_checks():
            print(f"{c['name']:34s} v{c['version']:3s} {c['cost']:9s} {c['severity']:8s} "
                  f"{'' if c['default'] == 'yes' else '(opt-in) '}{c['description']}")
        return 0
    params = dict(engine=args.engine, address=args.address, workers=args.workers, batch_rows=args.batch_rows,
                  benchmarks=args.benchmarks or [], model_path=args.model, embedder=args.embedder,
                  check_params=json.loads(args.params) if args.params else {})
    if args.wait:
        summary = run_checks(settings, args.checks, by=local_actor(), **params)
        print(f"check run {summary.run_id} {summary.state}: {summary.units_done} unit(s), {summary.rows:,} rows "
              f"[{summary.seconds:.1f} s]; results in {summary.results_dir}")
        for name, s in sorted(summary.stats.items()):
            print(f"  {name:34s} {s.rows:>10,} checked {s.failed:>8,} failed  {s.seconds:7.1f} s")
        return 0
    job = queue_checks(settings, args.checks, by=local_actor(), **params)
    print(f"queued check job {job.id} (run {run_id_for(job)}); run `python -m curation worker` to process it")
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from curation.jobs.worker import main_loop

    return main_loop(settings, once=args.once, poll_s=args.poll, worker_id=args.worker_id)


def cmd_failures(args: argparse.Namespace, settings: Settings) -> int:
    from curation.checks.report import write_failures

    severities = [s for s in (args.severity or "").split(",") if s.strip()] or None
    write_failures(settings, args.format, args.check, include_ingest=not args.no_ingest, severities=severities)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    c = subparsers.add_parser("check", help="queue a check run (see `worker`); --wait runs it here and now")
    c.add_argument("--checks", help="comma-separated names, families or patterns (default: every default check)")
    c.add_argument("--engine", choices=["local", "ray"], default="local")
    c.add_argument("--address", help="Ray cluster address (engine ray; default: a local Ray)")
    c.add_argument("--workers", type=int, default=1, help="local engine: processes checking shards in parallel")
    c.add_argument("--batch-rows", type=int, default=50_000)
    c.add_argument("--benchmarks", nargs="*", help="benchmark files/folders for contamination.* "
                                                   "(default: <home>/benchmarks and <home>/demo/benchmarks)")
    c.add_argument("--model", help="local Hugging Face model directory for model.* checks")
    c.add_argument("--embedder", help="text embedder: minilm (default), hashing, or a sentence-transformers folder")
    c.add_argument("--params", help='JSON of check parameters, e.g. \'{"near_threshold": 0.97}\'')
    c.add_argument("--wait", action="store_true", help="run the checks in this process instead of queueing")
    c.add_argument("--list", action="store_true", help="list the registered checks and exit")
    c.set_defaults(func=cmd_check)

    w = subparsers.add_parser("worker", help="process queued check runs (Ctrl-C re-queues the current one)")
    w.add_argument("--once", action="store_true", help="exit when the queue is empty")
    w.add_argument("--poll", type=float, default=2.0, help="seconds between looks at an empty queue")
    w.add_argument("--worker-id", help="name in the jobs table (default host:pid)")
    w.set_defaults(func=cmd_worker)

    f = subparsers.add_parser("failures", help="every failing check outcome and ingest problem, one per line, with "
                                               "its severity (error breaks training, warning, info: a known quirk)")
    f.add_argument("--check", help="a check name, family (format) or pattern (geometry.bbox*); ingest.* too")
    f.add_argument("--severity", help="only these severities, comma-separated: error, warning, info (default: all)")
    f.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    f.add_argument("--no-ingest", action="store_true", help="leave out the problems ingest recorded")
    f.set_defaults(func=cmd_failures)
