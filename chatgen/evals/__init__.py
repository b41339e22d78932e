"""Evaluation: scripted dialogues scored turn by turn, and the embedded model's world benchmark.

`suite` reads the dialogue files and checks them against their format (pydantic),
`runner` drives the assistant (iterative or independent mode), `checks` and `regions` score a
turn, `grid` is what is where in a picture, `clip` adds optional embedding scores, `report`
writes results.jsonl / summary.json / index.html, `cli` is `chatgen eval`, `make_suite`
regenerates the shipped suite under `evals/` and `bench_world` is `chatgen bench-world` (the
embedded model's figures on dialogues generated fresh from held-out world seeds).
"""

from .bench_world import run_bench
from .checks import Check, check_answer, check_reply, check_scene
from .grid import Grid
from .regions import changed_region, changed_slots, distance_outside
from .report import summarize, write_report
from .runner import RunConfig, TurnResult, run_dialogue, run_suite
from .suite import EvalDialogue, Expect, SceneSpec, ScriptedTurn, SuiteError, load_dialogue, load_suite

__all__ = [
    "Check", "EvalDialogue", "Expect", "Grid", "RunConfig", "SceneSpec", "ScriptedTurn", "SuiteError", "TurnResult",
    "changed_region", "changed_slots", "check_answer", "check_reply", "check_scene", "distance_outside",
    "load_dialogue", "load_suite", "run_bench", "run_dialogue", "run_suite", "summarize", "write_report",
]
