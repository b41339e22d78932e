"""An edit of a group, checked against a done reply that changed only part of it (chatgen.group_edits)."""

import random

import pytest

from chatgen import world
from chatgen.defaults import SHIPPED
from chatgen.edit_claims import Redo
from chatgen.group_edits import check_group, group_members
from chatgen.world import Obj, Scene
from chatgen.world.people_turns import quantifier_turn

WORDS = (world.CLASSES, world.BACKGROUNDS)
READER = world.world_reader()


def reading(scene: Scene):
    return READER.read(world.render(scene))


def test_the_world_s_group_edits_fit_and_a_partial_one_is_redone():
    """Every group edit the world writes ("remove both cats", "make every animal a frog"), replied as
    the world replies, is left alone; the same edit done to one member only is redone for all."""
    rng = random.Random(6)
    redone = 0
    for _ in range(800):
        scene = world.random_scene(rng)
        t = quantifier_turn(rng, scene)
        if t is None:
            continue
        r = reading(scene)
        assert check_group(t.reply_text, t.user, r, reading(t.reply_scene), *WORDS, world.CATEGORIES) is None, (t.user, t.reply_text, scene)
        op, group = t.meta.get("op"), t.meta.get("group")
        if op not in ("remove", "replace") or group in (None, "them") or "every" not in t.user and "all" not in t.user and "both" not in t.user and "each" not in t.user:
            continue
        members = [o for o in scene.objects if o.cls == group or o.cls in world.CATEGORIES.get(group, ())]
        one = members[0]
        edit = world.Edit("remove", one) if op == "remove" else world.Edit("replace", one, new_cls=t.meta["new_cls"])
        if len(members) > 1:  # the edit done to one of them only
            assert check_group(edit.reply(), t.user, r, reading(edit.apply(scene)), *WORDS, world.CATEGORIES) == Redo(t.reply_text), (t.user, edit.reply(), scene)
            redone += 1
    assert redone > 40


def test_what_a_group_names():
    scene = Scene("grass", (Obj("dog", 0, 0), Obj("bird", 0, 2), Obj("fish", 1, 1), Obj("tree", 2, 1)))
    r = reading(scene)
    assert group_members("turn every animal into a frog lol", r, world.CLASSES, world.CATEGORIES) == [(0, 0), (0, 2), (1, 1)]
    bird_frog = reading(Scene("grass", (Obj("dog", 0, 0), Obj("frog", 0, 2), Obj("fish", 1, 1), Obj("tree", 2, 1))))
    assert check_group("Done: the bird is now a frog.", "turn every animal into a frog lol", r, bird_frog, *WORDS, world.CATEGORIES) == Redo("Done: the dog, the bird and the fish are now frogs.")
    no_tree = reading(Scene("grass", scene.objects[:3]))
    assert check_group("Done: removed the tree.", "remove all the trees", r, no_tree, *WORDS, world.CATEGORIES) is None  # one tree: nothing more to do
    no_dog = reading(Scene("grass", scene.objects[1:]))
    assert check_group("Done: removed the dog.", "remove the dog", r, no_dog, *WORDS, world.CATEGORIES) is None
    assert check_group("Done: removed the dog.", "remove all the animals", r, no_dog, *WORDS, world.CATEGORIES) == Redo("Done: removed the dog, the bird and the fish.")
    fish = Scene("sea", (Obj("fish", 1, 0), Obj("fish", 1, 2)))
    one_left = reading(Scene("sea", (Obj("fish", 1, 2),)))
    assert check_group("Done: removed the fish.", "remove both fish", reading(fish), one_left, *WORDS, world.CATEGORIES) == Redo("Done: removed everything.")
    assert check_group("Done: removed the fish.", "remove both fish", reading(fish), reading(Scene("sea")), *WORDS, world.CATEGORIES) is None


@pytest.mark.skipif(not (SHIPPED / "reader.npz").is_file(), reason="no trained model shipped in chatgen/weights/default")
def test_a_group_edit_done_to_one_member_is_done_to_all_on_the_shipped_model():
    """evals/fresh: "turn every animal into a frog lol" turned only the bird into a frog (temperature 0)."""
    from chatgen.assistant import Assistant
    from chatgen.backends import load_backend
    from chatgen.conversation import Session

    a = Assistant(load_backend(SHIPPED))
    p = {"temperature": 0.0, "seed": 0}
    s = Session()
    a.respond(s, "a dog top left, a bird top right and a tree at the bottom, on grass", p)
    assert world.detect(s.last_image()) == Scene("grass", (Obj("dog", 0, 0), Obj("bird", 0, 2), Obj("tree", 2, 1)))
    r = a.respond(s, "turn every animal into a frog lol", p)
    assert r.metadata.get("first_reply") == "Done: the bird is now a frog."
    assert r.text == "Done: the dog and the bird are now frogs."
    assert world.detect(r.image) == Scene("grass", (Obj("frog", 0, 0), Obj("frog", 0, 2), Obj("tree", 2, 1)))
