"""The second hand-written held-out suite `evals/fresh/`: it loads, it is big enough, every dialogue
and turn is tagged with the people suite's kinds (so the two compare), no message in it is one the
training generators or the people suite write, and a perfect model passes every turn."""

from collections import Counter
from pathlib import Path

import pytest
from held_out import assert_a_perfect_model_passes, generated_messages, normal

from chatgen.evals import load_suite

EVALS = Path(__file__).parent.parent / "evals"
FRESH = EVALS / "fresh"

# The people suite's kinds (tests/test_evals_people.py), uploads left out: each is a dialogue tag
# and the kind of the turns that show it.
KINDS = (
    "people-synonym", "people-pronoun", "people-typo", "people-multi-edit", "people-quantifier",
    "people-relative-place", "people-yesno", "people-smalltalk", "people-verbose", "people-honesty-absent",
    "people-honesty-impossible", "people-out-of-world", "people-ask-after-edits", "people-draw-full",
)
PLAIN = ("people-draw", "people-edit", "people-ask")  # turns around them: set-up, ordinary edits and questions
TEXT_ONLY = ("people-honesty-absent", "people-honesty-impossible", "people-out-of-world", "people-smalltalk", "people-yesno")



@pytest.fixture(scope="module")
def fresh():
    return load_suite([str(FRESH)])


def test_the_suite_loads_and_is_big_enough(fresh):
    assert len(fresh) >= 35
    turns = [t for d in fresh for t in d.turns if not t.undo]
    assert len(turns) >= 180
    for d in fresh:
        user_turns = [t for t in d.turns if not t.undo]
        assert 3 <= len(user_turns) <= 8, d.id
        assert all(t.expect is not None for t in user_turns), d.id  # every turn is scored
        assert d.id.startswith("fresh_") and d.path.name == f"{d.id}.yaml", d.id


def test_every_dialogue_and_turn_is_tagged_by_kind(fresh):
    for d in fresh:
        assert d.tags and set(d.tags) <= set(KINDS), (d.id, d.tags)
        kinds = {t.kind for t in d.turns if not t.undo}
        assert kinds <= set(KINDS) | set(PLAIN), (d.id, kinds - set(KINDS) - set(PLAIN))
        assert kinds & set(KINDS) == set(d.tags), (d.id, "tags must be the kinds its turns show")
    turns = Counter(t.kind for d in fresh for t in d.turns if not t.undo)
    for kind in KINDS:
        assert turns[kind] >= 8, (kind, turns[kind])


def test_every_turn_checks_enough_to_fail_a_wrong_reply(fresh):
    for d in fresh:
        for t in d.turns:
            e = t.expect
            if e.reply == "image":  # the whole picture, slot by slot
                assert e.scene is not None and e.scene.pinned() is not None, (d.id, t.user)
            else:
                assert e.reply == "text" and e.scene is None, (d.id, t.user)
                assert e.answer_any or e.answer_all or e.answer_none, (d.id, t.user)
            if t.kind in TEXT_ONLY:
                assert e.reply == "text", (d.id, t.user)
            if t.kind in ("people-yesno", "people-ask", "people-ask-after-edits", "people-typo") and e.reply == "text":
                assert (e.answer_any or e.answer_all) and e.answer_none, (d.id, t.user)
            assert not set(map(normal, e.answer_any + e.answer_all)) & set(map(normal, e.answer_none)), (d.id, t.user)


def test_no_message_is_one_the_generators_or_the_people_suite_write(fresh):
    ours = {normal(t.user): (d.id, t.user) for d in fresh for t in d.turns if not t.undo}
    assert len(ours) >= 180
    other = {normal(t.user) for folder in ("suite", "people") for d in load_suite([str(EVALS / folder)]) for t in d.turns if not t.undo}
    other |= generated_messages()
    same = sorted(v for k, v in ours.items() if k in other)
    assert not same, same


@pytest.mark.parametrize("mode", ["iterative", "independent"])
def test_a_perfect_model_passes_every_turn(fresh, mode):
    assert_a_perfect_model_passes(fresh, mode)
