"""The language of a conversation under way (`world.people_turns`): every turn's expected
picture or answer follows from the picture before it, the way a person means the words."""

import random
import re

import pytest

from chatgen.world import PEOPLE_KINDS, Edit, Obj, Scene, generate_people_dialogue
from chatgen.world.people_talk import PRAISE_REPLY, yesno_turn
from chatgen.world.people_turns import generate_people_turn, multi_edit_turn, pronoun_turn, quantifier_turn, relative_turn
from chatgen.world.scene import CLASSES, random_scene


def _edit(meta: dict) -> Edit:
    return Edit.from_meta(meta)


def test_dialogues_are_seeded_and_every_picture_follows_from_the_one_before():
    assert generate_people_dialogue(random.Random(5)).to_dict() == generate_people_dialogue(random.Random(5)).to_dict()
    kinds = set()
    for s in range(400):
        d = generate_people_dialogue(random.Random(s))
        scene = None
        for turn in d.turns:
            kinds.add(turn.kind)
            before = turn.upload or scene
            if turn.kind == "multi_edit":
                expected = before
                for m in turn.meta["edits"]:
                    expected = _edit(m).apply(expected)
                assert turn.reply_scene == expected, turn.user
                assert turn.reply_text.startswith("Done: ") and " and " in turn.reply_text
            if turn.kind in ("pronoun_edit", "relative_edit"):
                assert turn.reply_scene == _edit(turn.meta["edit"]).apply(before), turn.user
            if turn.reply_scene is None and turn.kind not in ("clarify",):
                assert turn.upload is None or turn.kind == "upload_describe"
            if turn.reply_scene is not None:
                scene = turn.reply_scene
            elif turn.upload is not None:
                scene = turn.upload
    assert set(PEOPLE_KINDS) <= kinds


def test_it_means_the_object_the_last_turn_touched():
    scene = Scene("grass", (Obj("dog", 1, 1), Obj("cat", 0, 0)))
    rng = random.Random(0)
    for _ in range(50):
        turn = pronoun_turn(rng, scene, Obj("dog", 1, 1))
        e = turn.meta["edit"]
        assert e["target"] == {"cls": "dog", "row": 1, "col": 1}, turn.user
        assert "dog" in turn.reply_text and "cat" not in turn.reply_text.split("now")[0]
    assert pronoun_turn(rng, scene, None) is None  # nothing to point at
    assert pronoun_turn(rng, scene, Obj("fox", 2, 2)) is None  # the object is gone


def test_all_both_every_and_numbers():
    two_dogs = Scene("snow", (Obj("dog", 1, 0), Obj("dog", 1, 2), Obj("tree", 0, 1)))
    seen = set()
    for s in range(400):
        turn = quantifier_turn(random.Random(s), two_dogs if s % 2 else Scene("snow", (Obj("dog", 1, 0), Obj("tree", 0, 1))))
        if turn is None:
            continue
        op, got = turn.meta["op"], turn.reply_scene
        seen.add(op)
        if op == "remove" and turn.meta["group"] == "dog" and s % 2:
            assert got == Scene("snow", (Obj("tree", 0, 1),)) and turn.reply_text == "Done: removed the dogs."
        if op == "remove" and turn.meta["group"] == "them":
            assert not got.objects and turn.reply_text == "Done: removed everything."
        if op == "replace" and turn.meta["group"] == "dog" and s % 2:
            new = turn.meta["new_cls"]
            assert got.count(new) >= 2 and got.count("dog") == 0 and got.at(0, 1) == Obj("tree", 0, 1)
        if op == "clear":
            assert not got.objects and turn.reply_text == "Done: removed everything."
        if op == "add":
            assert len(got.objects) == 2 + turn.meta["n"] and turn.reply_text.count(" and ") == turn.meta["n"] - 1
    assert {"add", "remove", "replace", "clear"} <= seen


def test_relative_places_land_next_to_the_thing_named():
    house = Scene("grass", (Obj("house", 1, 1),))
    found = set()
    for s in range(200):
        turn = relative_turn(random.Random(s), house)
        if turn is None or turn.meta["edit"]["kind"] != "add":
            continue
        slot = tuple(turn.reply_scene.objects[0].slot if turn.reply_scene.objects[0].cls != "house" else turn.reply_scene.objects[1].slot)
        words = re.search(r"(above|over|below|under|beneath|underneath|left of|right of)", turn.user.lower())
        if words:
            want = {"above": (0, 1), "over": (0, 1), "below": (2, 1), "under": (2, 1), "beneath": (2, 1), "underneath": (2, 1),
                    "left of": (1, 0), "right of": (1, 2)}[words.group(1)]
            assert slot == want, turn.user
            found.add(words.group(1))
    assert {"above", "left of"} & found


def test_yes_no_answers_start_with_the_truth():
    scene = Scene("beach", (Obj("cat", 1, 2), Obj("cat", 0, 0), Obj("sun", 0, 2)))
    for s in range(300):
        turn = yesno_turn(random.Random(s), scene, None)
        q, target = turn.meta["question"], turn.meta["target"]
        yes = turn.reply_text.startswith("Yes, ")
        assert yes or turn.reply_text.startswith("No, "), turn.reply_text
        if q == "count" and target == "cat" and re.search(r"\btwo\b|\b2\b", turn.user):
            assert yes, (turn.user, turn.reply_text)
        if q in ("still",) and target in CLASSES:
            assert yes == (scene.count(target) > 0)
        if q == "gone":
            assert yes == (scene.count(target) == 0)
        if q == "background":
            assert yes == ("beach" in turn.user.lower())
        if q == "unknown":
            assert not yes and target in turn.user.lower()


def test_two_edits_in_one_message_are_both_done_in_order():
    scene = Scene("grass", (Obj("dog", 1, 1), Obj("car", 2, 0)))
    made = [t for t in (multi_edit_turn(random.Random(s), scene) for s in range(100)) if t is not None]
    assert len(made) > 80
    for turn in made:
        assert len(turn.meta["edits"]) >= 2
        touched = [(m["target"]["row"], m["target"]["col"]) for m in turn.meta["edits"] if m["kind"] in ("replace", "remove", "move")]
        assert len(touched) == len(set(touched)), turn.user  # never the same object twice


@pytest.mark.parametrize("kind", PEOPLE_KINDS)
def test_bench_probes_end_with_their_kind(kind):
    for s in range(20):
        d = generate_people_turn(random.Random(s), kind)
        assert d.turns[-1].kind == kind and d.turns[0].kind == "draw"
        if kind == "praise":
            assert d.turns[-1].reply_text == PRAISE_REPLY and d.turns[-1].reply_scene is None


def test_random_scenes_never_break_the_makers():
    rng = random.Random(1)
    for _ in range(3000):
        scene = random_scene(rng, repeat_prob=0.6)
        last = rng.choice(scene.objects) if scene.objects else None
        for maker in (lambda: pronoun_turn(rng, scene, last), lambda: multi_edit_turn(rng, scene), lambda: quantifier_turn(rng, scene),
                      lambda: relative_turn(rng, scene), lambda: yesno_turn(rng, scene, last)):
            turn = maker()
            if turn is not None and turn.reply_scene is not None:
                assert turn.reply_scene != scene or turn.kind == "quantifier_edit", turn.user
