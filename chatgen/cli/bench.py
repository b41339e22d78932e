"""`chatgen bench`: per-turn latency and speed ratios of a model, measured in one run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import ChatgenError
from .common import add_model_args, load_assistant


def cmd_bench(args) -> int:
    from ..evals.speed import format_table, run_speed

    if args.repeats < 1 or args.concurrent < 1:
        raise ChatgenError("--repeats and --concurrent must be at least 1")
    report = run_speed(load_assistant(args), repeats=args.repeats, concurrent=args.concurrent, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(format_table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="time a scripted 10-turn conversation and print speed ratios", description="Run a scripted 10-turn conversation (draw, edits, questions) several times and print per-turn latency (p50/p95), time to the first image row, tokens per second, the bare forward step, a naive baseline (stock generate on the re-encoded conversation, no cache), concurrent throughput and peak memory, with the ratios between them, all measured in this one run.")
    p.add_argument("--json", metavar="FILE", help="also write the figures to this JSON file")
    p.add_argument("--repeats", type=int, default=3, help="times the conversation is run (default 3)")
    p.add_argument("--concurrent", type=int, default=8, help="conversations started together for the throughput ratio (default 8)")
    add_model_args(p)
    p.set_defaults(func=cmd_bench)
