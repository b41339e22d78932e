"""Shared by the tests of the hand-written held-out suites (`evals/people`, `evals/fresh`): how
messages are compared, and every message the training generators write for a fixed set of seeds."""

import random
import re
from functools import lru_cache

from chatgen.train.data import sample_dialogue

GENERATOR_SEEDS = 20_000  # training dialogues sampled for the disjointness checks (about 10 s on 2 cores)


def normal(text: str) -> str:
    """Lowercase, punctuation and runs of spaces collapsed to one space."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


@lru_cache(maxsize=1)
def generated_messages() -> frozenset[str]:
    """User messages of the training mixture as trained: half the seeds with people's wording
    (`--people-share`), each `normal`-ised."""
    out = set()
    for s in range(GENERATOR_SEEDS):
        out.update(normal(t.user) for t in sample_dialogue(random.Random(s), people=0.5 * (s % 2)).turns)
    return frozenset(out)


def assert_a_perfect_model_passes(suite, mode: str) -> None:
    """The oracle (it answers every turn exactly as expected) passes every scored turn of `suite`:
    the expectations are consistent and reachable, in `mode` (iterative or independent)."""
    from chatgen.evals import RunConfig, run_suite, summarize
    from chatgen.evals.oracle import OracleAssistant

    results = run_suite(OracleAssistant(suite), suite, RunConfig(mode=mode))
    failed = [f"{r.dialogue} turn {r.turn}: {r.reason}" for r in results if r.correct is not True]
    assert not failed, failed[:5]
    assert len(results) == sum(1 for d in suite for t in d.turns if not t.undo)
    s = summarize(results)
    assert s["overall"] == s["turn_pass_rate"] == s["all_turn"] == 1.0
    assert s["metrics"]["slot_accuracy"] == 1.0
