"""A done edit's words checked against its pictures (chatgen.edit_claims, chatgen.scene_reader)."""

import random
from dataclasses import replace as dc_replace

import numpy as np
import pytest

from chatgen import world
from chatgen.defaults import SHIPPED
from chatgen.edit_claims import MISSED, NO_PICTURE, Claim, absent_reply, check_claims, done_text, parse_done, slot_of
from chatgen.errors import ChatgenError
from chatgen.world.replies import limit_reply
from chatgen.scene_reader import SceneReader
from chatgen.world import Obj, Scene

WORDS = (world.CLASSES, world.BACKGROUNDS)


def reading(scene: Scene):
    return world.world_reader().read(world.render(scene))


def test_every_canonical_place_phrase_names_its_slot():
    """The request path keeps its own copy of the world's place words and absent-thing sentence
    (it may not import the world): they must say what the world says."""
    from chatgen.world.replies import absent_reply as world_absent_reply

    for r in range(3):
        for c in range(3):
            assert slot_of(world.slot_phrase(r, c)) == (r, c)
    assert all(absent_reply(c) == world_absent_reply(c) for c in world.CLASSES)
    assert slot_of("on the top") is None and slot_of("somewhere nice") is None


def test_the_world_s_done_texts_parse_to_their_edits():
    """Every single edit's canonical reply, over many random scenes, reads back as that edit."""
    rng = random.Random(0)
    for _ in range(300):
        scene = world.random_scene(rng, n_objects=rng.randint(1, 3))
        t = scene.objects[0]
        free = [(r, c) for r in range(3) for c in range(3) if scene.at(r, c) is None]
        new = rng.choice([c for c in world.CLASSES if c != t.cls])
        bg = rng.choice([b for b in world.BACKGROUNDS if b != scene.background])
        slot = rng.choice(free)
        cases = {
            world.Edit("remove", t): Claim("remove", t.cls),
            world.Edit("replace", t, new_cls=new): Claim("replace", t.cls, new=new),
            world.Edit("move", t, to=slot): Claim("move", t.cls, slot=slot),
            world.Edit("add", Obj(new, *slot)): Claim("add", new, slot=slot),
            world.Edit("background", background=bg): Claim("background", new=bg),
        }
        for edit, claim in cases.items():
            assert parse_done(edit.reply(), *WORDS) == [claim], edit.reply()
            assert done_text([claim]) == edit.reply()  # and the claim is written back in the world's words


def test_several_changes_in_one_reply_and_plurals():
    assert parse_done("Done: removed the fish and the bear.", *WORDS) == [Claim("remove", "fish"), Claim("remove", "bear")]
    assert parse_done("Done: added a cloud on the left and a cloud on the right.", *WORDS) == [Claim("add", "cloud", slot=(1, 0)), Claim("add", "cloud", slot=(1, 2))]
    assert parse_done("Done: the dog is now a fox and the cat is now at the top.", *WORDS) == [Claim("replace", "dog", new="fox"), Claim("move", "cat", slot=(0, 1))]
    assert parse_done("Done: the dogs are now foxes.", *WORDS) == [Claim("replace", "dog", new="fox")]
    assert parse_done("Done: removed the dog and added a cat on the left.", *WORDS) == [Claim("remove", "dog"), Claim("add", "cat", slot=(1, 0))]
    assert parse_done("Done: removed everything.", *WORDS) == [Claim("clear")]
    assert done_text([Claim("remove", "dog"), Claim("add", "cat", slot=(1, 0))]) == "Done: removed the dog and added a cat on the left."


@pytest.mark.parametrize("text", ["Here is a dog on the left, on grass.", "Done: the apple, the apple is now a tree.", "Done: made it nicer.",
                                  "Done: removed the unicorn.", "There is one dog.", "Done: added a cat."])
def test_texts_that_are_not_a_readable_done_edit_are_left_alone(text):
    assert parse_done(text, *WORDS) is None


def test_claims_against_the_pictures():
    dog_bear = reading(Scene("grass", (Obj("dog", 1, 0), Obj("bear", 1, 1))))
    bear = reading(Scene("grass", (Obj("bear", 1, 1),)))
    cat_bear = reading(Scene("grass", (Obj("cat", 1, 0), Obj("bear", 1, 1))))
    # 1. a thing that was not there: the world's sentence for it
    assert check_claims([Claim("remove", "fish"), Claim("remove", "dog")], dog_bear, bear) == absent_reply("fish")
    assert check_claims([Claim("replace", "bicycle", new="house")], dog_bear, bear) == absent_reply("bicycle")
    assert check_claims([Claim("remove", "dog")], None, bear) == NO_PICTURE  # "Done: the fox is now a frog." to a first drawing request
    # 2. a change the new picture does not show
    assert check_claims([Claim("add", "cat", slot=(1, 2))], dog_bear, cat_bear) == MISSED
    assert check_claims([Claim("background", new="snow")], dog_bear, bear) == MISSED
    assert check_claims([Claim("move", "dog", slot=(0, 0))], dog_bear, bear) == MISSED
    sun = reading(Scene("grass", (Obj("dog", 1, 0), Obj("bear", 1, 1), Obj("sun", 0, 1))))
    assert check_claims([Claim("move", "sun", slot=(0, 1))], dog_bear, sun) is None  # "the sun is now at the top": it is, drawn anew
    assert check_claims([Claim("move", "sun", slot=(0, 0))], dog_bear, sun) == MISSED
    assert check_claims([Claim("clear")], dog_bear, bear) == MISSED
    # 3. true claims pass, in the order they were made ("the dog is now a cat and the cat is now ...")
    assert check_claims([Claim("remove", "dog")], dog_bear, bear) is None
    assert check_claims([Claim("replace", "dog", new="cat")], dog_bear, cat_bear) is None
    moved = reading(Scene("grass", (Obj("cat", 0, 0), Obj("bear", 1, 1))))
    assert check_claims([Claim("replace", "dog", new="cat"), Claim("move", "cat", slot=(0, 0))], dog_bear, moved) is None
    # ... also when one reply takes a thing away and adds one of the same kind (seen in bench-world:
    # "place a cat and make the cat in the center into a cloud", "take away the fox ... add a fox ...")
    cat_center = reading(Scene("grass", (Obj("cat", 1, 1),)))
    cloud_cat = reading(Scene("grass", (Obj("cat", 1, 0), Obj("cloud", 1, 1))))
    assert check_claims([Claim("add", "cat", slot=(1, 0)), Claim("replace", "cat", new="cloud")], cat_center, cloud_cat) is None
    foxes = reading(Scene("snow", (Obj("fox", 0, 2), Obj("fox", 2, 1))))
    moved_foxes = reading(Scene("snow", (Obj("fox", 1, 1), Obj("fox", 2, 2))))
    assert check_claims([Claim("remove", "fox"), Claim("add", "fox", slot=(2, 2)), Claim("move", "fox", slot=(1, 1))], foxes, moved_foxes) is None
    assert check_claims([Claim("add", "fox", slot=(2, 2))], foxes, moved_foxes) == MISSED  # no more foxes than before: nothing was added
    # 4. an add past the world's limits: its refusal (seen on evals/fresh: "add a dog too" to four things drew a fifth)
    four = reading(Scene("grass", (Obj("sun", 0, 0), Obj("cloud", 0, 2), Obj("tree", 2, 0), Obj("house", 2, 2))))
    five = reading(Scene("grass", (Obj("sun", 0, 0), Obj("cloud", 0, 2), Obj("tree", 2, 0), Obj("house", 2, 2))))
    five = dc_replace(five, labels=(five.labels[0], (None, "dog", None), five.labels[2]))
    limits = world.world_reader().limits
    assert limits == (world.MAX_OBJECTS, world.MAX_PER_CLASS)
    assert check_claims([Claim("add", "dog", slot=(1, 1))], four, five, limits) == limit_reply("dog", "too_many_objects")
    assert check_claims([Claim("add", "dog", slot=(1, 1))], four, five) is None  # limits not known: not checked
    cats = reading(Scene("grass", (Obj("cat", 0, 0), Obj("cat", 0, 2), Obj("cat", 2, 0))))
    four_cats = dc_replace(cats, labels=(cats.labels[0], (None, "cat", None), cats.labels[2]))
    assert check_claims([Claim("add", "cat", slot=(1, 1))], cats, four_cats, limits) == limit_reply("cat", "too_many_of_class")


def test_the_reader_file_round_trips_and_reads_like_the_world_detector(tmp_path):
    path = world.world_reader().save(tmp_path / "reader.npz")
    back = SceneReader.load(path)
    rng = random.Random(1)
    for _ in range(20):
        scene = world.random_scene(rng, n_objects=rng.randint(0, 4))
        r = back.read(world.render(scene))
        assert world.Detection(r.background, r.labels, r.margins, r.errors, r.drift).scene() == world.detect(world.render(scene)) == scene
    img = world.render(Scene("snow", (Obj("fox", 0, 0),)))
    first = back.read(img)
    assert back.read(img.copy()) is first  # the same pixels: from memory
    img.putpixel((40, 40), (0, 0, 0))
    assert back.read(img) is not first  # other pixels: read anew
    (tmp_path / "bad.npz").write_bytes(b"not a numpy file")
    with pytest.raises(ChatgenError, match="bad.npz cannot be read"):
        SceneReader.load(tmp_path / "bad.npz")


@pytest.mark.skipif(not (SHIPPED / "reader.npz").is_file(), reason="no trained model shipped in chatgen/weights/default")
def test_a_done_reply_the_pictures_contradict_keeps_one_true_sentence_and_no_picture(monkeypatch):
    """The shipped model draws a dog; a reply "Done: removed the fish and the dog." over a picture
    without the dog (a real change) claims a fish that was never there: the turn keeps the
    world's sentence for it, no picture and no image tokens. The same picture with "Done:
    removed the dog." is true and kept; "Done: added a cat on the left." over it is not."""
    from chatgen.assistant import UNCHANGED, Assistant
    from chatgen.backends import load_backend
    from chatgen.conversation import Session
    from chatgen.events import ReplyDone

    a = Assistant(load_backend(SHIPPED))
    assert a.backend.reads_pictures
    s = Session()
    first = a.respond(s, "draw a dog on the left, on grass", {"temperature": 0.0, "seed": 0})
    assert world.detect(first.image) == Scene("grass", (Obj("dog", 1, 0),))
    v = a.backend.vocab
    empty = world.render(Scene("grass"))
    ids = [*a.backend.encode_text("x"), *v.codes_to_ids(a.backend.encode_image(empty)), v.eot]
    real_stream = a.backend.stream

    def saying(text):
        def stream(prompt, params, cancel=None):
            for ev in real_stream(prompt, params, cancel=cancel):
                yield dc_replace(ev, text=text, image=a.backend.decode_image(a.backend.encode_image(empty)), reply_ids=ids) if isinstance(ev, ReplyDone) else ev
        return stream

    monkeypatch.setattr(a.backend, "stream", saying("Done: removed the fish and the dog."))
    r = a.respond(s, "get rid of everything except the fish", {"temperature": 0.0, "seed": 0})
    t = s.turns[r.turn_id]
    assert r.text == "There is no fish in the picture, so I changed nothing." and r.image is None and t.assistant_image is None
    assert r.metadata["contradicted_claim"] == "Done: removed the fish and the dog." and not any(v.is_image(i) for i in t.reply_ids)
    assert s.last_image() is first.image  # the person's picture is the dog, as before
    monkeypatch.setattr(a.backend, "stream", saying("Done: added a cat on the left."))
    r = a.respond(s, "add a cat on the left", {"temperature": 0.0, "seed": 0})
    assert r.text == MISSED and r.image is None
    monkeypatch.setattr(a.backend, "stream", saying("Done: removed the dog."))
    r = a.respond(s, "remove the dog", {"temperature": 0.0, "seed": 0})
    assert r.text == "Done: removed the dog." and r.image is not None and "contradicted_claim" not in r.metadata
    assert np.asarray(r.image).shape[:2] == np.asarray(first.image).shape[:2]
    # the same picture again (nothing changed): a text about a thing that is not there says so; other texts get "Nothing changed"
    monkeypatch.setattr(a.backend, "stream", saying("Done: the bicycle is now a house."))
    r = a.respond(s, "make the bicycle a house", {"temperature": 0.0, "seed": 0})
    assert r.text == absent_reply("bicycle") and r.image is None and r.metadata["unchanged_picture"]
    monkeypatch.setattr(a.backend, "stream", saying("Done: added a cat on the left."))
    r = a.respond(s, "add a cat on the left", {"temperature": 0.0, "seed": 0})
    assert r.text == UNCHANGED and r.image is None
