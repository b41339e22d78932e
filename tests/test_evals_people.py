"""The hand-written held-out suite `evals/people/` (issue 15): it loads, it is big enough and
tagged, no message in it is one the training generators write, and a perfect model passes it."""

from collections import Counter
from pathlib import Path

import pytest
from held_out import assert_a_perfect_model_passes, generated_messages, normal

from chatgen.evals import load_suite

EVALS = Path(__file__).parent.parent / "evals"
PEOPLE = EVALS / "people"

# The kinds of issue 15's list: each is a dialogue tag and the kind of the turns that show it.
KINDS = (
    "people-synonym", "people-pronoun", "people-typo", "people-multi-edit", "people-quantifier",
    "people-relative-place", "people-yesno", "people-smalltalk", "people-verbose", "people-honesty-absent",
    "people-honesty-impossible", "people-out-of-world", "people-ask-after-edits", "people-upload", "people-draw-full",
)
# Turn kinds of the plain turns around them (setting up a picture, an ordinary edit or question).
PLAIN = ("people-draw", "people-edit", "people-ask", "people-clarify")



@pytest.fixture(scope="module")
def people():
    return load_suite([str(PEOPLE)])


def test_the_suite_loads_and_is_big_enough(people):
    assert len(people) >= 80
    for d in people:
        user_turns = [t for t in d.turns if not t.undo]
        assert 3 <= len(user_turns) <= 10, d.id
        assert all(t.expect is not None for t in user_turns), d.id  # every turn is scored
        assert d.id.startswith("people_"), d.id  # no clash with the generated suite's ids


def test_every_dialogue_and_turn_is_tagged_by_kind(people):
    for d in people:
        assert d.tags and set(d.tags) <= set(KINDS), (d.id, d.tags)
        kinds = {t.kind for t in d.turns if not t.undo}
        assert kinds <= set(KINDS) | set(PLAIN), (d.id, kinds - set(KINDS) - set(PLAIN))
        assert kinds & set(KINDS) == set(d.tags), (d.id, "tags must be the kinds its turns show")
    tags = Counter(t for d in people for t in d.tags)
    turns = Counter(t.kind for d in people for t in d.turns if not t.undo)
    for kind in KINDS:
        assert tags[kind] >= 5 and turns[kind] >= 5, (kind, tags[kind], turns[kind])


def test_honest_replies_are_text_and_uploads_are_world_pictures(people):
    for d in people:
        for t in d.turns:
            if t.kind in ("people-honesty-absent", "people-honesty-impossible", "people-out-of-world", "people-smalltalk"):
                assert t.expect.reply == "text" and t.expect.scene is None, (d.id, t.user)
            if t.image is not None:
                assert t.image.size == (96, 96) and t.image_path.startswith("../images/"), (d.id, t.image_path)


def test_no_message_is_one_the_generators_write(people):
    ours = {normal(t.user): (d.id, t.user) for d in people for t in d.turns if not t.undo}
    assert len(ours) >= 300
    generated = {normal(t.user) for d in load_suite([str(EVALS / "suite")]) for t in d.turns if not t.undo}
    generated |= generated_messages()
    same = sorted(v for k, v in ours.items() if k in generated)
    assert not same, same


@pytest.mark.parametrize("mode", ["iterative", "independent"])
def test_a_perfect_model_passes_every_turn(people, mode):
    assert_a_perfect_model_passes(people, mode)
