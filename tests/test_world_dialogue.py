"""Dialogue generator and canonical texts of the synthetic world."""

import json
import random
import re

import pytest

from chatgen.world import (
    ASK_KINDS, CLASSES, EDIT_KINDS, HONEST_KINDS, KINDS, Dialogue, Obj, Scene, State, answer_question, describe,
    generate_dialogue, generate_edit_chain, generate_turn_of_kind, next_turn,
)
from chatgen.world import DEFAULT_BACKGROUND
from chatgen.world.message_style import typo
from chatgen.world.replies import clarify_question, distinguishing_labels

IMAGE_KINDS = {"draw", "resolve", "upload_edit", *EDIT_KINDS}
TEXT_KINDS = {"clarify", "out_of_world", "upload_describe", *ASK_KINDS, *HONEST_KINDS}


@pytest.fixture(scope="module")
def dialogues():
    return [generate_dialogue(random.Random(seed), max_turns=8) for seed in range(400)]


def _slots(scene: Scene) -> dict:
    return {o.slot: o.cls for o in scene.objects}


def test_canonical_texts():
    s = Scene("grass", (Obj("tree", 0, 2), Obj("dog", 1, 0)))
    assert describe(s) == "There is a tree in the top right and a dog on the left, on grass."
    assert describe(Scene("night")) == "There are no objects, only the night background."
    two = Scene("sea", (Obj("dog", 1, 0), Obj("dog", 1, 2), Obj("apple", 2, 1)))
    assert answer_question(two, "ask_count", "dog") == "There are two dogs."
    assert answer_question(two, "ask_count", "apple") == "There is one apple."
    assert answer_question(two, "ask_count", "fox") == "There are no foxes."
    assert answer_question(two, "ask_count", "animals") == "There are two animals."
    assert answer_question(two, "ask_where", "dog") == "There are dogs on the left and on the right."
    assert answer_question(two, "ask_where", "apple") == "The apple is at the bottom."
    assert answer_question(two, "ask_where", "cat") == "There is no cat."
    assert answer_question(two, "ask_is_there", "dog") == "Yes, there are two dogs."
    assert answer_question(two, "ask_is_there", "cat") == "No, there is no cat."
    assert answer_question(two, "ask_background") == "The background is sea."
    assert clarify_question("dog", distinguishing_labels(two.find("dog"))) == "Which dog, the left one or the right one?"
    three = (Obj("cat", 0, 0), Obj("cat", 1, 0), Obj("cat", 2, 2))
    assert clarify_question("cat", distinguishing_labels(three)) == \
        "Which cat, the top one, the middle one or the bottom one?"
    mixed = (Obj("cat", 0, 0), Obj("cat", 0, 2), Obj("cat", 2, 0))
    assert distinguishing_labels(mixed) == ["top left", "top right", "bottom left"]


def test_dialogues_are_seeded():
    a = generate_dialogue(random.Random(3), max_turns=8).to_dict()
    assert a == generate_dialogue(random.Random(3), max_turns=8).to_dict()
    assert a == generate_dialogue(3, max_turns=8).to_dict()
    assert generate_dialogue(random.Random(4), max_turns=8).to_dict() != a


def test_dialogue_json_round_trip(dialogues):
    for d in dialogues[:50]:
        assert Dialogue.from_dict(json.loads(json.dumps(d.to_dict()))) == d


def test_dialogue_invariants(dialogues):
    seen = set()
    for d in dialogues:
        assert 1 <= len(d.turns) <= 8
        latest = None
        for i, t in enumerate(d.turns):
            seen.add(t.kind)
            assert t.kind in KINDS and t.user.strip() and t.reply_text.strip()
            # 1. Images exactly where they belong.
            assert (t.reply_scene is not None) == (t.kind in IMAGE_KINDS), t
            assert (t.upload is not None) == t.kind.startswith("upload_"), t
            if t.upload is not None:
                latest = t.upload
            # 2. A clarifying question is always answered next, and the answer does the edit.
            if t.kind == "clarify":
                assert d.turns[i + 1].kind == "resolve"
                assert t.reply_text.startswith(f"Which {t.meta['cls']}, ")
            if t.kind == "resolve":
                assert d.turns[i - 1].kind == "clarify"
                assert t.meta["edit"]["target"]["cls"] == d.turns[i - 1].meta["cls"]
            # 3. Questions are answered about the latest image.
            if t.kind in ASK_KINDS or t.kind == "upload_describe":
                assert t.reply_text == answer_question(latest, t.meta["question"], t.meta["target"])
            # 4. Edits change exactly what they say.
            kind = t.meta["edit"]["kind"] if t.kind in ("resolve", "upload_edit") else t.kind
            if t.reply_scene is not None and kind in EDIT_KINDS:
                before, after = _slots(latest), _slots(t.reply_scene)
                changed = {s for s in set(before) | set(after) if before.get(s) != after.get(s)}
                target = t.meta["edit"]["target"]
                if kind == "replace":
                    assert changed == {(target["row"], target["col"])}
                    assert after[(target["row"], target["col"])] == t.meta["edit"]["new_cls"]
                if kind in ("add", "remove"):
                    assert len(changed) == 1 and len(after) == len(before) + (1 if kind == "add" else -1)
                if kind == "move":
                    assert changed == {(target["row"], target["col"]), tuple(t.meta["edit"]["to"])}
                assert (kind == "background") == (latest.background != t.reply_scene.background)
                if kind == "background":
                    assert changed == set()
            if t.kind == "draw":
                assert t.reply_text == "Here is " + describe(t.reply_scene)[len("There is "):]
            if t.kind == "out_of_world":
                assert t.reply_text.startswith("I can't")
            if t.reply_scene is not None:
                latest = t.reply_scene
        assert d.latest_scene() == latest
    # honest turns are sampled on their own (single turns, focus), so mixed dialogues keep their streams
    assert seen == set(KINDS) - set(HONEST_KINDS), set(KINDS) - seen


def test_add_without_place_uses_default_slot(dialogues):
    checked = 0
    for d in dialogues:
        latest = None
        for t in d.turns:
            if t.kind == "add" and not t.meta["explicit_place"]:
                target = t.meta["edit"]["target"]
                assert (target["row"], target["col"]) == latest.default_slot()
                checked += 1
            latest = t.reply_scene or t.upload or latest
    assert checked >= 10


def test_draw_defaults():
    rng = random.Random(0)
    unplaced = no_bg = 0
    for _ in range(300):
        t = generate_turn_of_kind(rng, "draw").turns[0]
        if not t.meta["explicit_background"]:
            assert t.reply_scene.background == DEFAULT_BACKGROUND
            no_bg += 1
        if not t.meta["explicit_places"]:
            # Objects fill center, left, right, top, bottom, ... in order.
            from chatgen.world import DEFAULT_SLOTS
            assert {o.slot for o in t.reply_scene.objects} == set(DEFAULT_SLOTS[: len(t.reply_scene.objects)])
            unplaced += 1
    assert unplaced > 30 and no_bg > 20


def test_class_names_stay_readable():
    rng = random.Random(1)
    for _ in range(300):
        d = generate_turn_of_kind(rng, "replace")
        t = d.turns[-1]
        text = t.user.lower()
        assert t.meta["edit"]["target"]["cls"] in text and t.meta["edit"]["new_cls"] in text, t.user
    for _ in range(200):
        assert typo(random.Random(_), "make the dog a cat please").count("dog") == 1


@pytest.mark.parametrize("kind", EDIT_KINDS + ("draw",) + ASK_KINDS)
def test_phrasing_variety(kind):
    rng = random.Random(7)
    texts = {generate_turn_of_kind(rng, kind).turns[-1].user for _ in range(200)}
    assert len(texts) >= 10, (kind, texts)


def test_replace_phrasings_cover_synonyms():
    rng = random.Random(8)
    texts = " | ".join(generate_turn_of_kind(rng, "replace").turns[-1].user.lower() for _ in range(400))
    for word in ("make the", "turn the", "swap the", "replace the", "change the", "can you", "please"):
        assert word in texts, word


@pytest.mark.parametrize("kind", KINDS)
def test_generate_turn_of_kind(kind):
    rng = random.Random(11)
    for _ in range(20):
        d = generate_turn_of_kind(rng, kind)
        kinds = [t.kind for t in d.turns]
        if kind in ("clarify", "resolve"):
            assert kinds == ["draw", "clarify", "resolve"]
        elif kind in ("draw", "upload_describe", "upload_edit", "out_of_world", "smalltalk"):
            assert kinds == [kind]
        else:
            assert kinds == ["draw", kind]


def test_turn_of_kind_on_a_given_scene():
    scene = Scene("snow", (Obj("dog", 1, 0), Obj("dog", 1, 2)))
    d = generate_turn_of_kind(random.Random(0), "replace", scene)
    assert d.turns[0].reply_scene == scene and d.turns[1].kind == "replace"
    assert "dog" in d.turns[1].user.lower()
    with pytest.raises(ValueError, match="not possible"):
        generate_turn_of_kind(random.Random(0), "remove", Scene("snow"))
    with pytest.raises(ValueError, match="kind='paint'"):
        generate_turn_of_kind(random.Random(0), "paint")


def test_out_of_world_refuses_without_image():
    rng = random.Random(5)
    names = set()
    for _ in range(100):
        d = generate_turn_of_kind(rng, "out_of_world", Scene("beach", (Obj("cat", 1, 1),)))
        t = d.turns[-1]
        assert t.reply_scene is None and t.reply_text.startswith("I can't")
        if t.meta["reason"] == "unknown_class":
            names.add(t.meta["cls"])
            assert t.meta["cls"] in t.user.lower()
            assert t.reply_text.endswith("I can draw: " + ", ".join(CLASSES) + ".")
    assert len(names) >= 15


def test_edit_chain():
    for seed in range(30):
        d = generate_edit_chain(random.Random(seed), n_edits=3)
        assert [t.kind in EDIT_KINDS for t in d.turns] == [False, True, True, True]
        d = generate_edit_chain(random.Random(seed), n_edits=3, allow_clarify=True)
        assert sum(t.kind in EDIT_KINDS or t.kind == "resolve" for t in d.turns) == 3


def test_next_turn_checks_state():
    with pytest.raises(ValueError, match="not possible"):
        next_turn(random.Random(0), State(), "replace")
    scene = Scene("grass", (Obj("cat", 0, 0), Obj("cat", 2, 2)))
    turn, state = next_turn(random.Random(0), State(scene), "clarify")
    assert turn.kind == "clarify" and state.pending is not None
    with pytest.raises(ValueError, match="resolve"):
        next_turn(random.Random(0), state, "add")
    turn, state = next_turn(random.Random(0), state, "resolve")
    assert turn.kind == "resolve" and state.pending is None and turn.reply_scene == state.scene


def test_user_text_style_mix():
    users = [t.user for seed in range(300) for t in generate_dialogue(random.Random(seed)).turns]
    assert any(u[:1].isupper() for u in users) and any(u[:1].islower() for u in users)
    assert any(u.isupper() for u in users if len(u) > 10)
    assert any(re.search(r"\bplease\b", u.lower()) for u in users)


def test_honest_turns_answer_in_words_and_keep_the_picture():
    """An edit of something absent, an edit the world cannot make, small talk: text, no picture."""
    from chatgen.world import HONEST_KINDS, generate_turn_of_kind

    for kind in HONEST_KINDS:
        for seed in range(40):
            d = generate_turn_of_kind(seed, kind)
            turn = d.turns[-1]
            assert turn.kind == kind and turn.reply_scene is None and turn.reply_text
            if kind == "absent_edit":
                scene = d.turns[0].reply_scene
                assert scene.count(turn.meta["cls"]) == 0 and turn.meta["cls"] in turn.reply_text
            if kind == "impossible_edit":
                assert "I can add, remove, replace or move things" in turn.reply_text


def test_people_text_keeps_the_request_and_the_generators_streams():
    import random

    from chatgen.train.data import sample_dialogue
    from chatgen.world.people_words import CLASS_WORDS, people_text

    rng = random.Random(0)
    seen = set()
    for _ in range(300):
        out = people_text(rng, "make the dog a cat and add two balloons", synonym_rate=0.6)
        seen.update(w for w in out.lower().replace(",", " ").split())
    assert {"doggo", "kitty"} & seen or set(CLASS_WORDS["dog"]) & seen  # other words appear
    assert any(w.startswith("balloon") for w in seen)
    # the mixture without people is what it was; with people, only user texts differ
    a = [sample_dialogue(random.Random(s)) for s in range(30)]
    b = [sample_dialogue(random.Random(s), people=0.0) for s in range(30)]
    assert [t.user for d in a for t in d.turns] == [t.user for d in b for t in d.turns]
