"""The `demo` command: write a synthetic VST-shaped data set with known defects."""

from __future__ import annotations

import argparse
from pathlib import Path

from curation.settings import Settings


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    # Imported when the command runs: the generator loads numpy, PIL and pyarrow (~0.4 s) other commands skip.
    from curation.demo import generate_demo

    out = Path(args.out) if args.out else settings.home / "demo"
    summary = generate_demo(out, samples=args.samples, seed=args.seed, defect_rate=args.defect_rate)
    print(f"demo data set: {summary.samples} samples ({summary.defects} with injected defects) in {out} "
          f"[{summary.seconds:.1f} s]")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    d = subparsers.add_parser("demo", help="generate a synthetic VST-shaped data set with known defects")
    d.add_argument("--out", help="output folder (default: <home>/demo)")
    d.add_argument("--samples", type=int, default=2000)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--defect-rate", type=float, default=0.08)
    d.set_defaults(func=cmd_demo)
