"""`chatgen eval PATH... --out DIR`: run a suite of scripted dialogues and write the report.

Exit codes: 0 done, 1 the overall pass rate is under --min-pass, 2 a malformed suite or any
other input error (one line, no traceback; `chatgen.cli.main` prints it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import ChatgenError
from .common import add_model_args, add_sampling_args, comma_list, load_assistant, sampling_from_args

EVAL_HELP = "run scripted dialogues and score them"


def add_parser(sub) -> argparse.ArgumentParser:
    """Add the `eval` subcommand to chatgen's subparsers."""
    p = sub.add_parser("eval", help=EVAL_HELP, description="Run scripted dialogues (YAML files, folders or globs) through the assistant, score every turn and write results.jsonl, summary.json and index.html.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="dialogue files, folders of them (searched recursively) or globs")
    p.add_argument("--out", required=True, metavar="DIR", help="report folder (created if missing)")
    p.add_argument("--mode", choices=["iterative", "independent"], help="force every dialogue into this mode (default: each dialogue's own, else iterative)")
    p.add_argument("--min-pass", type=float, metavar="F", help="exit with code 1 when the overall pass rate is under F")
    p.add_argument("--json", action="store_true", help="print summary.json to stdout")
    p.add_argument("--clip", metavar="PATH", help="a CLIP checkpoint (CLIPModel + CLIPProcessor) for CLIP-T / CLIP-I / DINO-style scores")
    p.add_argument("--limit", type=int, metavar="N", help="run only the first N dialogues (after --tags)")
    p.add_argument("--tags", metavar="A,B", help="run only dialogues with any of these tags")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="run dialogues in N worker processes (or N Ray actors with --ray); the results equal a serial run")
    p.add_argument("--ray", nargs="?", const=True, default=None, metavar="ADDRESS", help="spread the dialogues over a Ray cluster at ADDRESS (a local Ray instance when no address is given); needs pip install ray")
    add_model_args(p)
    add_sampling_args(p)
    p.set_defaults(func=cmd_eval)
    return p


def cmd_eval(args) -> int:
    from ..evals.clip import ClipScorer
    from ..evals.report import summarize, write_report
    from ..evals.runner import RunConfig, run_suite
    from ..evals.suite import load_suite

    # 1. Check the inputs: the whole suite is loaded before the model.
    if args.min_pass is not None and not 0 <= args.min_pass <= 1:
        raise ChatgenError(f"--min-pass must be between 0 and 1, got {args.min_pass}")
    if args.limit is not None and args.limit < 1:
        raise ChatgenError(f"--limit must be at least 1, got {args.limit}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ChatgenError(f"--out must be a folder, but {out} is a file")
    tags = list(comma_list(args.tags)) if args.tags else None
    dialogues = load_suite(args.paths, tags=tags, limit=args.limit)
    if args.workers < 1:
        raise ChatgenError(f"--workers must be at least 1, got {args.workers}")
    parallel = args.workers > 1 or args.ray
    if parallel and getattr(args, "refiner", None) not in (None, "off"):
        raise ChatgenError("--workers and --ray run the model without a refiner; drop --refiner or run serially")
    # 2. Load the parts (in each worker when the run is spread).
    params = sampling_from_args(args)
    config = RunConfig(mode=args.mode, seed=params.pop("seed", 0), params=params)
    if parallel:
        from ..evals.parallel import AssistantSpec, run_parallel

        spec = AssistantSpec(model=args.model, quantize=args.quantize, dtype=getattr(args, "dtype", None), device=getattr(args, "device", None), clip=args.clip)
        assistant = None
    else:
        config.clip = ClipScorer.from_pretrained(args.clip) if args.clip else None
        assistant = load_assistant(args)

    # 3. Run, one progress line per dialogue.
    def progress(i, dlg, res):
        scored = [r for r in res if r.correct is not None]
        print(f"[{i + 1}/{len(dialogues)}] {dlg.id}: {sum(r.correct for r in scored)}/{len(scored)} turns passed", file=sys.stderr, flush=True)

    if parallel:
        results = run_parallel(spec, dialogues, config, args.workers, progress=progress, ray_address=args.ray)
    else:
        results = run_suite(assistant, dialogues, config, progress=progress)
    # 4. Report.
    model = getattr(getattr(assistant, "backend", None), "name", "") or str(args.model or "default")  # spread runs: the path
    summary = summarize(results, model=model, mode=args.mode, min_pass=args.min_pass)
    refiner = getattr(assistant, "refiner", None)
    if refiner is not None:  # the scores are of refined pictures: say which refiner drew them
        summary["refiner"] = refiner.describe() if hasattr(refiner, "describe") else type(refiner).__name__
    page = write_report(results, summary, out)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"overall {summary['overall']:.3f} (turns {summary['turn_pass_rate']:.3f}, final turn {summary['final_turn']:.3f}, all turns {summary['all_turn']:.3f}); report: {page}")
    if args.min_pass is not None and summary["overall"] < args.min_pass:
        print(f"chatgen: overall pass rate {summary['overall']:.3f} is under --min-pass {args.min_pass}", file=sys.stderr)
        return 1
    return 0
