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


def cmd_bench_refiner(args) -> int:
    from ..backends import load_backend
    from ..defaults import SHIPPED
    from ..evals.refiner import measure_refiner, side_by_side
    from ..refiner import load_refiner

    if args.n < 2:
        raise ChatgenError("--n must be at least 2")
    refiner = load_refiner(args.refiner)
    if refiner is None:
        raise ChatgenError("--refiner is off; name the refiner to measure (embedded, a folder or a Hub id)")
    tokenizer = getattr(load_backend(args.model or SHIPPED), "image_tokenizer", None)
    if tokenizer is None:
        raise ChatgenError(f"{args.model or 'the model'} has no world image tokenizer; bench-refiner measures on the embedded world")
    report = measure_refiner(refiner.refine, tokenizer, args.n)
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    if args.sheet:
        side_by_side(refiner.refine, tokenizer).save(args.sheet)
    return 0


def add_parser(sub) -> None:
    r = sub.add_parser("bench-refiner", help="measure a refiner on held-out world scenes (PSNR gain over bicubic, scenes read, seconds)", description="Refine the VQ decodes of held-out world scenes and print, as JSON: PSNR against the clean 384 px render for the refiner and for bicubic upscaling, how often the world detector reads the same scene, and the seconds per picture (median, p95).")
    r.add_argument("--refiner", default="embedded", metavar="ID|PATH", help="the refiner to measure (default: embedded)")
    r.add_argument("--model", metavar="PATH", help="the world model whose VQ-VAE decodes the scenes (default: the embedded model)")
    r.add_argument("--n", type=int, default=200, help="held-out scenes (default 200)")
    r.add_argument("--json", metavar="FILE", help="also write the figures to this JSON file")
    r.add_argument("--sheet", metavar="PNG", help="also save one scene side by side: decode, bicubic, refined, clean")
    r.set_defaults(func=cmd_bench_refiner)

    p = sub.add_parser("bench", help="time a scripted 10-turn conversation and print speed ratios", description="Run a scripted 10-turn conversation (draw, edits, questions) several times and print per-turn latency (p50/p95), time to the first image row, tokens per second, the bare forward step, a naive baseline (stock generate on the re-encoded conversation, no cache), concurrent throughput (a burst of requests, and visitors in a closed loop) and peak memory, with the ratios between them, all measured in this one run.")
    p.add_argument("--json", metavar="FILE", help="also write the figures to this JSON file")
    p.add_argument("--repeats", type=int, default=3, help="times the conversation is run (default 3)")
    p.add_argument("--concurrent", type=int, default=8, help="conversations sent together for the throughput ratios: a burst of next turns, and visitors talking turn after turn (default 8)")
    add_model_args(p)
    p.set_defaults(func=cmd_bench)
