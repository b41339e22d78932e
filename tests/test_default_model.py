"""The shipped embedded model really draws, edits and answers (skipped before it is trained)."""

import pytest

from chatgen import world
from chatgen.defaults import SHIPPED

pytestmark = pytest.mark.skipif(not (SHIPPED / "config.json").is_file(), reason="no trained model shipped in chatgen/weights/default")

GREEDY = {"temperature": 0.0, "seed": 0}


@pytest.fixture(scope="module")
def default_assistant():
    from chatgen.assistant import Assistant
    from chatgen.backends import load_backend

    return Assistant(load_backend(SHIPPED))


def test_shipped_weights_fit_the_budget():
    size = sum(f.stat().st_size for f in SHIPPED.rglob("*") if f.is_file())
    assert size <= 60 * 2**20, f"{size / 2**20:.1f} MB"
    assert list(SHIPPED.rglob("*.safetensors"))


def test_draw_edit_ask(default_assistant):
    from chatgen.conversation import Session

    s = Session()
    r = default_assistant.respond(s, "draw a dog on the left, on grass", GREEDY)
    assert r.image is not None
    assert world.detect(r.image) == world.Scene("grass", (world.Obj("dog", 1, 0),))
    r = default_assistant.respond(s, "make the dog a cat", GREEDY)
    assert world.detect(r.image) == world.Scene("grass", (world.Obj("cat", 1, 0),))
    r = default_assistant.respond(s, "how many animals are there?", GREEDY)
    assert r.image is None and r.text  # a text answer (its accuracy is a bench-world figure)


def test_out_of_world_request_gets_text(default_assistant):
    from chatgen.conversation import Session

    r = default_assistant.respond(Session(), "draw a giraffe on the beach", GREEDY)
    assert r.image is None and "giraffe" in r.text


def test_ci_eval_subset_does_not_regress(tmp_path, capsys):
    """The CI subset of the scripted dialogues, with a threshold just under the measured pass rate."""
    from chatgen.cli import main

    # a floor well under what the shipped model scores greedy (the README has the suite figures)
    code = main(["eval", "evals/ci", "--out", str(tmp_path / "report"), "--temperature", "0", "--min-pass", "0.7"])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    assert (tmp_path / "report" / "index.html").is_file()


def test_bench_world_command(capsys):
    """The command prints run_bench's figures as JSON (the figures are tested in test_evals_bench_world.py)."""
    import json

    from chatgen.cli import main

    assert main(["bench-world", "--n", "5", "--only", "ask", "--temperature", "0"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["rates"]) >= {"ask"} and "failures" not in report
    assert main(["bench-world", "--only", "ask,juggling"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--only takes sections out of draw, edit" in err


def test_a_picture_from_outside_the_world_gets_one_sentence_and_the_chat_goes_on(default_assistant):
    """A photo-like upload is not read (no loop, no picture), and it leaves nothing in the context."""
    from chatgen.conversation import Message, Session
    from chatgen.evals.bench_world import nonworld_image

    s = Session()
    for seed in range(4):  # noise, a gradient, blurred blobs, a flat colour
        r = default_assistant.respond(s, Message("what is in this picture?", image=nonworld_image(seed)), GREEDY)
        assert r.image is None and r.text.startswith("I can't read this picture")  # its speed is a bench-world figure
        v = default_assistant.backend.vocab
        assert not any(v.is_image(i) for i in r.turn.user_ids)  # its codes never enter the context
    # ... nor does the turn at all: the next prompt is the one a new conversation gets
    b = default_assistant.backend
    assert b.prompt(s, Message("draw a dog on the grass")).ids == b.prompt(Session(), Message("draw a dog on the grass")).ids
    r = default_assistant.respond(s, "draw a dog on the grass", GREEDY)
    assert world.detect(r.image) == world.Scene("grass", (world.Obj("dog", 1, 1),))
    # a world picture, even resized, is read as usual
    upload = world.render(world.Scene("snow", (world.Obj("cat", 1, 0),))).resize((300, 300))
    assert default_assistant.backend.unreadable(upload) is None
