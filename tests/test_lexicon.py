"""Typo repair (`chatgen.text.Lexicon`): the embedded model reads "pnada" as "panda", but never
turns a thing the world lacks into one it has ("mouse" stays a mouse, "cow" never a "crow")."""

import pytest

from chatgen.conversation import Message, Session
from chatgen.text import Lexicon

WORDS = ["panda", "tree", "the", "house", "car", "cat", "rabbit", "how", "draw", "make", "delete", "beach", "where", "many", "what", "background", "bird", "near", "bear", "crow"]


@pytest.fixture()
def lexicon():
    return Lexicon(WORDS, known=["cow", "mouse"])


@pytest.mark.parametrize("typed, read", [
    ("draw a pnada", "draw a panda"),  # swapped letters
    ("teh tre", "the tree"),  # swapped; a letter left out
    ("add a carr", "add a car"),  # a doubled letter
    ("hw mnay?", "how many?"),
    ("Pnada on the BAECH", "Panda on the BEACH"),  # case kept
    ("delte the hosue", "delete the house"),
])
def test_slips_are_repaired(lexicon, typed, read):
    assert lexicon.correct(typed) == read


@pytest.mark.parametrize("typed", [
    "draw a mouse",  # known, not a target: a changed letter is never repaired anyway
    "draw a cow",  # "crow" is one letter away, but cow is known
    "a hat",  # "what" would need a letter before the first
    "a glimzor",  # nothing near
    "the ear",  # "bear" and "near" both fit: ambiguous, left alone
    "dogs and cats 123",
])
def test_everything_else_is_read_as_typed(lexicon, typed):
    assert lexicon.correct(typed) == typed


def test_the_native_model_reads_the_repair_and_the_turn_keeps_what_was_typed(assistant):
    backend = assistant.backend
    backend.lexicon = Lexicon(["draw", "panda", "on", "the", "beach"])
    try:
        typed, clean = backend.encode_user(Message("drwa a pnada on teh baech")), backend.encode_user(Message("draw a panda on the beach"))
        assert typed == clean
        reply = assistant.respond(Session(), "drwa a pnada on teh baech", {"seed": 0, "max_new_tokens": 8})
        assert reply.turn.user_text == "drwa a pnada on teh baech"
    finally:
        backend.lexicon = None


def test_the_world_lexicon_has_the_world_without_its_deliberate_slips():
    from chatgen.train.lexicon import world_lexicon

    d = world_lexicon(n_dialogues=1500)
    targets, known = set(d["targets"]), set(d["known"])
    assert {"panda", "balloon", "cactus", "background", "remove", "where", "many", "kitty"} <= targets
    assert {"cow", "giraffe"} <= known and not known & targets
    assert not {"mkae", "waht", "teh"} & targets
    assert "three" in targets and Lexicon.from_dict(d).correct("three dogs, mnay cats") == "three dogs, many cats"  # "three" is no slip of "there"
