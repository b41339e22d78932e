"""`chatgen bench-world`'s figures: preservation outside the changed slots, and the sections of a run."""

import json

import numpy as np
import pytest
from PIL import Image

from chatgen import world
from chatgen.defaults import SHIPPED
from chatgen.evals.bench_world import SECTIONS, preserve_l1, run_bench
from chatgen.world import Obj, Scene, render

DOG_TREE = Scene("grass", (Obj("dog", 1, 0), Obj("tree", 1, 2)))
CAT_TREE = Scene("grass", (Obj("cat", 1, 0), Obj("tree", 1, 2)))


def test_preserve_l1_looks_outside_the_changed_slots_only():
    assert preserve_l1(DOG_TREE, CAT_TREE, render(CAT_TREE)) == 0.0  # the edit itself is inside (1, 0)
    assert preserve_l1(DOG_TREE, CAT_TREE, render(CAT_TREE).resize((128, 128))) < 0.01  # other sizes are resized back
    moved = Scene("grass", (Obj("cat", 1, 0), Obj("tree", 0, 2)))
    l1 = preserve_l1(DOG_TREE, CAT_TREE, render(moved))  # the tree moved although only the dog was to change
    assert l1 > 0.01 and isinstance(l1, float)
    assert preserve_l1(DOG_TREE, Scene("snow", DOG_TREE.objects), render(DOG_TREE)) is None  # background: all changed
    inverted = np.asarray(render(CAT_TREE), dtype=np.float32)  # (96, 96, 3)
    inverted[:32] = 255 - inverted[:32]  # the top row of slots
    keep = np.ones((96, 96), dtype=bool)
    keep[32:64, 0:32] = False  # slot (1, 0), the one the edit changes
    by_hand = np.abs(inverted / 255 - np.asarray(render(DOG_TREE), dtype=np.float32) / 255)[keep].mean()
    assert preserve_l1(DOG_TREE, CAT_TREE, Image.fromarray(inverted.astype(np.uint8))) == pytest.approx(float(by_hand), rel=1e-6)


@pytest.mark.skipif(not (SHIPPED / "config.json").is_file(), reason="no trained model shipped in chatgen/weights/default")
def test_run_bench_runs_only_the_sections_asked():
    from chatgen.assistant import Assistant
    from chatgen.backends import load_backend

    logged = []
    report = run_bench(Assistant(load_backend(SHIPPED)), n=10, only=("ask", "clarify"), log=logged.append)
    json.dumps(report)  # the CLI prints it
    rates, counts = report["rates"], report["counts"]
    assert {"ask", "clarify", "unambiguous"} <= set(rates) and not {"draw", "edit", "chain3", "out_of_world"} & set(rates)
    kinds = {f"ask.{k.removeprefix('ask_')}" for k in world.ASK_KINDS}
    assert kinds <= set(counts) and all(counts[k][1] == 2 for k in kinds)  # n/5 questions of each kind
    assert rates["ask"] == round(sum(counts[k][0] for k in kinds) / 10, 4)
    assert all(0.0 <= r <= 1.0 for r in rates.values())
    assert [line.split()[0] for line in logged] == ["ask", "clarify"] and set(SECTIONS) >= {"ask", "clarify"}
