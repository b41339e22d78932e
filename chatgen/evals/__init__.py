"""Scripted evaluation: run YAML dialogues through the `Assistant` and score every turn.

`suite` reads and checks the dialogue files, `runner` drives the assistant (iterative or
independent mode), `checks` and `regions` score a turn, `clip` adds optional embedding
scores, `report` writes results.jsonl / summary.json / index.html, `cli` is `chatgen eval`
and `make_suite` regenerates the shipped suite under `evals/`.
"""

from .checks import Check, check_answer, check_reply, check_scene
from .grid import Grid
from .regions import changed_region, distance_outside
from .report import summarize, write_report
from .runner import RunConfig, TurnResult, run_dialogue, run_suite
from .suite import EvalDialogue, EvalTurn, Expect, SceneSpec, SuiteError, load_dialogue, load_suite

__all__ = [
    "Check", "EvalDialogue", "EvalTurn", "Expect", "Grid", "RunConfig", "SceneSpec", "SuiteError", "TurnResult",
    "changed_region", "check_answer", "check_reply", "check_scene", "distance_outside", "load_dialogue",
    "load_suite", "run_dialogue", "run_suite", "summarize", "write_report",
]
