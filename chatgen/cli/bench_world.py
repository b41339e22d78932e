"""`chatgen bench-world`: the embedded model's figures on fresh held-out world dialogues."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import ChatgenError
from .common import add_model_args, add_sampling_args, comma_list, load_assistant, sampling_from_args


def cmd_bench_world(args) -> int:
    from ..evals.bench_world import SECTIONS, run_bench

    only = comma_list(args.only) if args.only else SECTIONS
    unknown = [x for x in only if x not in SECTIONS]
    if unknown or not only:
        raise ChatgenError(f"--only takes sections out of {', '.join(SECTIONS)}; got {args.only!r}.")
    assistant = load_assistant(args)
    report = run_bench(assistant, n=args.n, params=sampling_from_args(args), log=lambda m: print(m, file=sys.stderr, flush=True), only=only)
    text = json.dumps(report, indent=1)
    if args.out:
        Path(args.out).write_text(text)
    failures = report.pop("failures")
    print(json.dumps(report, indent=1))
    if failures and args.show_failures:
        for name, user, why in failures[: args.show_failures]:
            print(f"FAIL {name}: {user!r}: {why}")
    return 0



def add_parser(sub) -> None:
    p = sub.add_parser("bench-world", help="measure the embedded model on fresh held-out world dialogues", description="Score drawing, single edits of each kind, 3-edit chains, questions, clarifying questions and out-of-world refusals on dialogues generated from held-out seeds, with the world detector; prints the figures as JSON. Greedy decoding unless sampling flags are given.")
    p.add_argument("--n", type=int, default=200, help="drawing prompts (other figures scale with it; default 200)")
    p.add_argument("--out", help="also write the full report (with failures) to this JSON file")
    p.add_argument("--show-failures", type=int, default=0, metavar="K", help="print the first K failures")
    p.add_argument("--only", metavar="SECTION,...", help="run only these sections, for a quicker look: draw, edit, chain3, ask, clarify (with its unambiguous counterpart), out_of_world")
    add_model_args(p)
    add_sampling_args(p)
    p.set_defaults(func=cmd_bench_world)

