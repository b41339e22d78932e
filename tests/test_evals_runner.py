"""The eval runner with fake assistants whose replies are renders of known scenes (no model)."""

import json

import pytest
from PIL import Image

from chatgen.assistant import Reply
from chatgen.conversation import Message, Session, Turn
from chatgen.errors import ChatgenError
from chatgen.evals import RunConfig, load_dialogue, run_dialogue, run_suite, summarize, write_report
from chatgen.evals.clip import ClipScorer
from chatgen.world import Obj, Scene, render

G = "grass"
DOG_TREE = Scene(G, (Obj("dog", 1, 0), Obj("tree", 1, 2)))
CAT_TREE = Scene(G, (Obj("cat", 1, 0), Obj("tree", 1, 2)))
CAT_TREE_MOVED = Scene(G, (Obj("cat", 1, 0), Obj("tree", 0, 2)))


class ScriptedAssistant:
    """Replies with the given (text, Scene | Image | None) in order; stores turns like the real one."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.calls: list[tuple[Session, Message, dict]] = []

    def respond(self, session, message, params=None):
        self.calls.append((session, message, dict(params or {})))
        text, picture = self.replies.pop(0)
        if isinstance(picture, Exception):
            raise picture
        image = render(picture) if isinstance(picture, Scene) else picture
        turn = Turn(id=session.new_turn_id(), parent=session.head, user_text=message.text, user_image=message.image, assistant_text=text, assistant_image=image)
        session.append(turn)
        return Reply(text=text, image=image, turn=turn, metadata={})


def dialogue(tmp_path, text, name="d.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return load_dialogue(p)


def pinned(scene: Scene) -> str:
    inc = ", ".join(f"{{class: {o.cls}, position: {o.name}}}" for o in scene.objects)
    return f"{{background: {scene.background}, include: [{inc}], exact: true}}"


EDIT = f"""
id: edit
tags: [replace]
turns:
  - {{user: draw, kind: draw, expect: {{reply: image, scene: {pinned(DOG_TREE)}}}}}
  - {{user: make the dog a cat, kind: replace, expect: {{reply: image, scene: {pinned(CAT_TREE)}, preserve: {{max_l1: 0.005}}, drift: {{max_l1: 0.005}}}}}}
  - {{user: "what animal is on the left?", kind: ask_what, expect: {{reply: text, answer_any: [cat]}}}}
"""


def test_a_correct_dialogue_passes_every_turn(tmp_path):
    a = ScriptedAssistant(("Here.", DOG_TREE), ("Done.", CAT_TREE), ("A cat.", None))
    res = run_dialogue(a, dialogue(tmp_path, EDIT), RunConfig(seed=5))
    assert [r.correct for r in res] == [True, True, True]
    assert [r.kind for r in res] == ["draw", "replace", "ask_what"]
    r = res[1]
    assert r.metrics["changed_slots"] == [[1, 0]] and r.metrics["l1"] == 0.0 and r.metrics["drift_l1"] == 0.0
    assert r.metrics["slot_accuracy"] == 1.0 and r.detected["objects"][0] == {"cls": "cat", "row": 1, "col": 0}
    assert set(r.images) == {"input", "reply", "expected", "heat"}
    # one session, seeds dialogue seed + turn index
    assert [c[2]["seed"] for c in a.calls] == [5, 6, 7]
    assert a.calls[0][0] is a.calls[1][0] is a.calls[2][0]
    assert all(r.latency_s is not None and r.latency_s >= 0 for r in res)


def test_wrong_replies_fail_with_reasons(tmp_path):
    a = ScriptedAssistant(("I can't.", None), ("Done.", DOG_TREE), ("A dog.", None))
    res = run_dialogue(a, dialogue(tmp_path, EDIT))
    assert [r.correct for r in res] == [False, False, False]
    assert res[0].reason == "expected an image, got text \"I can't.\""
    assert "expected cat at middle left, found dog" in res[1].reason
    assert res[2].reason == "expected an answer with 'cat', got 'A dog.'"


def test_preserve_fails_when_something_outside_the_edit_changes(tmp_path):
    a = ScriptedAssistant(("", DOG_TREE), ("", CAT_TREE_MOVED), ("cat", None))
    text = EDIT.replace(pinned(CAT_TREE), "{include: [{class: cat, position: left}]}")  # not pinned: the tree may not move
    r = run_dialogue(a, dialogue(tmp_path, text))[1]
    assert r.checks["include cat at left"]["passed"]
    assert r.checks["preserve l1"]["passed"] is False and r.checks["drift l1"]["passed"] is False
    assert r.metrics["changed_slots"] == [[1, 0]] and r.metrics["l1"] > 0.005
    assert r.reason.startswith("preserve l1 0.0") and "> 0.005" in r.reason


def test_drift_is_measured_against_the_first_image_outside_every_edit(tmp_path):
    cat_sun = Scene(G, (Obj("cat", 1, 0), Obj("tree", 1, 2), Obj("sun", 0, 0)))
    cat_sun_bad = Scene(G, (Obj("cat", 1, 0), Obj("tree", 1, 2), Obj("sun", 0, 0), Obj("ball", 2, 2)))
    lines = EDIT.strip().splitlines()[:-1] + [f"  - {{user: add a sun top left, kind: add, expect: {{scene: {pinned(cat_sun)}, drift: {{max_l1: 0.001}}}}}}"]
    d = dialogue(tmp_path, "\n".join(lines))
    ok = run_dialogue(ScriptedAssistant(("", DOG_TREE), ("", CAT_TREE), ("", cat_sun)), d)[2]
    assert ok.correct and ok.metrics["drift_l1"] == 0.0 and ok.metrics["changed_slots"] == [[0, 0]]
    # a stray ball drawn in the last turn shows as drift (the dog->cat slot stays excluded)
    bad = run_dialogue(ScriptedAssistant(("", DOG_TREE), ("", CAT_TREE), ("", cat_sun_bad)), d)[2]
    assert bad.checks["drift l1"]["passed"] is False and bad.metrics["drift_l1"] > 0.001
    assert "found ball at bottom right" in bad.reason


def test_background_change_skips_preservation(tmp_path):
    snow = Scene("snow", DOG_TREE.objects)
    d = dialogue(tmp_path, f"""
turns:
  - {{user: draw, expect: {{scene: {pinned(DOG_TREE)}}}}}
  - {{user: make it snowy, expect: {{scene: {pinned(snow)}, preserve: {{max_l1: 0.01}}}}}}
""")
    r = run_dialogue(ScriptedAssistant(("", DOG_TREE), ("", snow)), d)[1]
    assert r.correct is True and r.metrics["changed_slots"] == "all" and "l1" not in r.metrics
    assert r.checks["preserve l1"] == {"passed": None, "detail": "skipped: the background changed"}


def test_clarify_and_text_reply_kinds(tmp_path):
    d = dialogue(tmp_path, """
turns:
  - {user: remove the dog, expect: {reply: clarify, answer_all: [dog]}}
  - {user: "how many?", expect: {reply: text, answer_any: [two]}}
""")
    good = run_dialogue(ScriptedAssistant(("Which dog, the left one or the right one?", None), ("two", None)), d)
    assert [r.correct for r in good] == [True, True]
    bad = run_dialogue(ScriptedAssistant(("Done: removed the dog.", None), ("two", DOG_TREE)), d)
    assert [r.correct for r in bad] == [False, False]
    assert "expected a clarifying question" in bad[0].reason and "expected a text reply, got an image" in bad[1].reason


def test_undo_steps_back_the_session_and_the_expected_scene(tmp_path):
    d = dialogue(tmp_path, f"""
turns:
  - {{user: draw, expect: {{scene: {pinned(DOG_TREE)}}}}}
  - {{user: make the dog a cat, expect: {{scene: {pinned(CAT_TREE)}}}}}
  - {{undo: true}}
  - {{user: move the dog to the top left, expect: {{scene: {pinned(Scene(G, (Obj("dog", 0, 0), Obj("tree", 1, 2))))}, preserve: {{max_l1: 0.0}}}}}}
""")
    a = ScriptedAssistant(("", DOG_TREE), ("", CAT_TREE), ("", Scene(G, (Obj("dog", 0, 0), Obj("tree", 1, 2)))))
    res = run_dialogue(a, d)
    assert [r.correct for r in res] == [True, True, None, True]
    assert res[2].kind == "undo" and res[2].reason == "undo" and res[2].latency_s is None
    session = a.calls[2][0]
    assert [t.user_text for t in session.path()] == ["draw", "move the dog to the top left"]  # the cat turn was undone
    assert res[3].metrics["changed_slots"] == [[0, 0], [1, 0]]  # relative to the dog picture, not the cat one
    assert res[3].images["input"].tobytes() == render(DOG_TREE).tobytes()


def test_independent_mode_starts_each_turn_from_the_expected_picture(tmp_path):
    d = dialogue(tmp_path, f"""
mode: independent
turns:
  - {{user: draw, expect: {{scene: {pinned(DOG_TREE)}}}}}
  - {{user: make the dog a cat, expect: {{scene: {pinned(CAT_TREE)}}}}}
  - {{user: remove the cat, expect: {{reply: clarify}}}}
  - {{user: the left one, expect: {{scene: {pinned(Scene(G, (Obj("tree", 1, 2),)))}}}}}
  - {{user: "what is there?", expect: {{reply: text, answer_any: [tree]}}}}
""")
    wrong_draw = Scene("snow", (Obj("fox", 0, 0),))  # turn 1 is wrong; turn 2 must not suffer from it
    a = ScriptedAssistant(("", wrong_draw), ("", CAT_TREE), ("Which one?", None), ("", Scene(G, (Obj("tree", 1, 2),))), ("a tree", None))
    res = run_dialogue(a, d)
    assert [r.correct for r in res] == [False, True, True, True, True]
    assert [r.start for r in res] == ["fresh", "expected", "expected", "session", "expected"]
    s1, m1, _ = a.calls[1]
    assert len(s1) == 1 and m1.image.tobytes() == render(DOG_TREE).tobytes()  # a fresh session (holding only this turn) + the reference upload
    assert a.calls[3][0] is a.calls[2][0]  # the answer to the question continues its session
    assert a.calls[4][1].image.tobytes() == render(Scene(G, (Obj("tree", 1, 2),))).tobytes()
    assert res[1].metrics["l1"] == 0.0  # preserved relative to the reference, not to the wrong first picture


def test_mode_from_config_overrides_the_dialogue(tmp_path):
    d = dialogue(tmp_path, EDIT)
    a = ScriptedAssistant(("", DOG_TREE), ("", CAT_TREE), ("cat", None))
    res = run_dialogue(a, d, RunConfig(mode="independent"))
    assert {r.mode for r in res} == {"independent"} and a.calls[1][1].image is not None


def test_uploads_are_sent_and_become_the_previous_image(tmp_path):
    render(DOG_TREE).save(tmp_path / "up.png")
    d = dialogue(tmp_path, f"""
turns:
  - {{user: make the dog a cat, image: up.png, expect: {{scene: {pinned(CAT_TREE)}, preserve: {{max_l1: 0.0}}}}}}
""")
    a = ScriptedAssistant(("", CAT_TREE))
    r = run_dialogue(a, d)[0]
    assert r.correct and r.start == "upload" and a.calls[0][1].image.size == (96, 96)
    assert r.metrics["changed_slots"] == [[1, 0]]


def test_assistant_errors_are_recorded_not_raised(tmp_path):
    d = dialogue(tmp_path, "turns: [{user: hi, expect: {reply: text}}, {user: again}]")
    res = run_dialogue(ScriptedAssistant(("", ChatgenError("the message is empty")), ("", ChatgenError("nope"))), d)
    assert res[0].correct is False and res[0].reason == "error: the message is empty" and res[0].error
    assert res[1].correct is None  # no expect: not scored even when it fails


def test_summary_and_report_files(tmp_path):
    d1 = dialogue(tmp_path, EDIT, "a.yaml")
    d2 = dialogue(tmp_path, "id: q\ntags: [ask, extra]\nturns: [{user: hi, kind: ask_what, expect: {reply: text, answer_any: [dog]}}]", "b.yaml")
    a = ScriptedAssistant(("", DOG_TREE), ("", CAT_TREE), ("cat", None), ("no idea", None))
    res = run_suite(a, [d1, d2])
    s = summarize(res, model="fake", min_pass=0.5)
    assert s["per_tag"]["replace"]["pass_rate"] == 1.0 and s["per_tag"]["ask"]["pass_rate"] == 0.0
    assert s["overall"] == pytest.approx(1 / 3, abs=1e-4)  # mean over the tags replace, ask, extra
    assert s["turn_pass_rate"] == 0.75 and s["final_turn"] == 0.5 and s["all_turn"] == 0.5
    assert s["per_kind"]["ask_what"] == {"pass_rate": 0.5, "passed": 1, "turns": 2}
    assert s["latency_s"]["n"] == 4 and s["latency_s"]["p50"] <= s["latency_s"]["p95"]
    assert s["passed"] is False
    page = write_report(res, s, tmp_path / "report")
    lines = [json.loads(l) for l in (tmp_path / "report" / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 4
    for key in ("dialogue", "turn", "mode", "tags", "correct", "reason", "checks", "metrics", "latency_s", "image"):
        assert key in lines[0]
    assert lines[1]["image"] == "images/edit_t2_reply.png" and (tmp_path / "report" / lines[1]["image"]).is_file()
    assert json.loads((tmp_path / "report" / "summary.json").read_text()) == json.loads(json.dumps(s))
    html = page.read_text()
    assert 'src="images/edit_t2_heat.png"' in html and "expected an answer with" in html


# ---- CLIP ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A tiny random CLIP with a byte-level tokenizer, saved locally (no downloads)."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor, CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    folder = tmp_path_factory.mktemp("clip")
    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    text = dict(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=64, bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"])
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).save_pretrained(folder)
    ip = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=ip, tokenizer=tok).save_pretrained(folder)
    return folder


def test_clip_scores_and_thresholds(tmp_path, tiny_clip):
    clip = ClipScorer.from_pretrained(tiny_clip)
    same = clip.scores(render(CAT_TREE), caption="a cat and a tree", target=render(CAT_TREE))
    assert set(same) == {"clip_t", "clip_i", "dino_style"}
    assert same["clip_i"] == pytest.approx(1.0, abs=1e-5) and same["dino_style"] == pytest.approx(1.0, abs=1e-5)
    assert -1 <= same["clip_t"] <= 1
    other = clip.scores(Image.new("RGB", (96, 96), (250, 0, 250)), target=render(CAT_TREE))
    assert other["clip_i"] < 0.9999
    # thresholds in a dialogue: pass with the expected picture, fail with another one
    d = dialogue(tmp_path, f"turns: [{{user: draw, expect: {{scene: {pinned(CAT_TREE)}, clip: {{min_i: 0.9999, min_t: -1}}}}}}]")
    ok = run_dialogue(ScriptedAssistant(("", CAT_TREE)), d, RunConfig(clip=clip))[0]
    assert ok.correct and ok.checks["clip_i"]["passed"] and {"clip_t", "clip_i", "dino_style"} <= set(ok.metrics)
    d2 = dialogue(tmp_path, "turns: [{user: draw, expect: {clip: {min_i: 0.9999}}}]", "d2.yaml")
    assert run_dialogue(ScriptedAssistant(("", CAT_TREE)), d2, RunConfig(clip=clip))[0].checks["clip_i"]["passed"] is None  # nothing pinned to compare with
    magenta = Image.new("RGB", (96, 96), (250, 0, 250))
    bad = run_dialogue(ScriptedAssistant(("", magenta)), d, RunConfig(clip=clip))[0]
    assert bad.checks["clip_i"]["passed"] is False and "< 0.9999" in bad.reason
    # without --clip the check is skipped, not failed
    skipped = run_dialogue(ScriptedAssistant(("", CAT_TREE)), d)[0]
    assert skipped.correct and skipped.checks["clip_i"] == {"passed": None, "detail": "skipped: no --clip model"}


def test_clip_load_error_is_one_line(tmp_path):
    with pytest.raises(ChatgenError, match="cannot load a CLIP model and processor from"):
        ClipScorer.from_pretrained(tmp_path)
