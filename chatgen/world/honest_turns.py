"""Turns the assistant answers in words because a picture would be a lie: an edit of something
that is not there, an edit the world cannot make, and small talk that asks for no picture.

Each maker returns (turn, next state) like those in `turn_makers.py`; the latest image never
changes, so a question or an edit after it still reads the same picture.
"""

from __future__ import annotations

import random

from chatgen.world.dialogue import WorldTurn
from chatgen.world.message_style import style
from chatgen.world.replies import SMALLTALK_REPLIES, absent_reply, impossible_reply
from chatgen.world.scene import CLASSES, plural

# Edits the world cannot make: (what the assistant says it can't do, user wordings of the
# request with {x} for a present object's class).
IMPOSSIBLE_EDITS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("change the size of things", ("make the {x} bigger", "make the {x} smaller", "can you make the {x} huge", "shrink the {x}", "enlarge the {x} please", "make the {x} twice as big")),
    ("change colours", ("make the {x} red", "paint the {x} blue", "colour the {x} green", "make the {x} purple please", "can the {x} be yellow", "make the sky pink", "make the background orange")),
    ("dress things up", ("make the {x} wear a hat", "give the {x} sunglasses", "put a scarf on the {x}", "add a crown to the {x}", "give the {x} a bow tie")),
    ("turn or flip things", ("rotate the {x}", "flip the {x} upside down", "turn the {x} around", "mirror the {x}", "make the {x} face left")),
    ("change the style", ("make it look like a painting", "make the picture black and white", "draw it in anime style", "make it more realistic", "make it 3d", "make the {x} cartoonish")),
    ("write text", ("write my name on the {x}", "add the word hello", "put a sign that says hi next to the {x}")),
    ("make things move", ("make the {x} run", "make the {x} jump", "animate the {x}", "make the {x} fly away")),
)

ABSENT_WORDINGS: tuple[str, ...] = (
    "remove the {x}", "get rid of the {x}", "delete the {x}", "take away the {x}", "make the {x} a {y}",
    "turn the {x} into a {y}", "replace the {x} with a {y}", "move the {x} to the left", "move the {x} to the top right",
    "put the {x} in the center", "erase the {x}", "change the {x} to a {y}", "swap the {x} for a {y}",
)

SMALLTALK_WORDINGS: dict[str, tuple[str, ...]] = {
    "greeting": ("hi", "hello", "hey", "hi there", "hello!", "good morning", "hey, how are you?", "yo", "hiya"),
    "thanks": ("thanks", "thank you", "thanks!", "great, thanks", "cool thank you", "perfect, thanks a lot", "nice, thx", "awesome thanks"),
    "capabilities": ("what can you draw?", "what can you do?", "what do you know how to draw", "help", "how does this work?",
                     "which things can you draw", "what are you able to make?", "what can i ask you?", "what animals can you draw?"),
    "bye": ("bye", "goodbye", "see you", "bye bye", "that's all, bye"),
}


def absent_edit_turn(rng: random.Random, state) -> tuple[WorldTurn, object]:
    """An edit (remove, replace or move) of a class that is not in the latest image."""
    scene = state.scene
    missing = [c for c in CLASSES if scene.count(c) == 0]
    x = rng.choice(missing)
    y = rng.choice([c for c in CLASSES if c != x])
    user = style(rng, rng.choice(ABSENT_WORDINGS).format(x=x, y=y))
    meta = {"cls": x}
    return WorldTurn(user, None, absent_reply(x), None, "absent_edit", meta), state


def impossible_edit_turn(rng: random.Random, state) -> tuple[WorldTurn, object]:
    """An edit the world cannot make, of an object in the latest image (or of the picture)."""
    scene = state.scene
    change, wordings = rng.choice(IMPOSSIBLE_EDITS)
    x = rng.choice(scene.objects).cls if scene.objects else "picture"
    text = rng.choice(wordings).format(x=x)
    if rng.random() < 0.15 and scene.objects and "{x}" in text:
        text = text.replace(f"the {x}", f"all the {plural(x)}")
    user = style(rng, text)
    meta = {"change": change}
    return WorldTurn(user, None, impossible_reply(change), None, "impossible_edit", meta), state


def smalltalk_turn(rng: random.Random, state) -> tuple[WorldTurn, object]:
    """A greeting, thanks, a goodbye or "what can you draw?": a short text, never a picture."""
    topic = rng.choices(list(SMALLTALK_WORDINGS), weights=[3, 3, 4, 1])[0]
    user = style(rng, rng.choice(SMALLTALK_WORDINGS[topic]), question=topic == "capabilities")
    return WorldTurn(user, None, SMALLTALK_REPLIES[topic], None, "smalltalk", {"topic": topic}), state
