"""A masked edit's reply checked against what the painted part of the picture holds.

With a painted mask the person says where: "make this a dog" means the thing in the painted
cells, "add a balloon here" the painted empty place (`chatgen.world.masked_turns` writes the
training turns). A small model often misjudges what its painted cells hold: it says "There is
nothing in the part you painted" over a cat, or changes "the cat" when the painted cell holds
a rabbit. A `SceneReader` sees what the painted cells hold, so `check_masked` can say what the
reply should have been, as one of:

- `Say(text)`: one honest sentence the world uses ("There is nothing in the part you painted,
  so I changed nothing.", "The cat is not in the part you painted, ...", "The part you painted
  already holds the cat, ..."), kept with no picture;
- `Redo(text)`: the done text that fits the painted part ("Done: the rabbit is now a dog." for
  "make this a dog" answered "Done: the cat is now a dog."); the model draws again after it;
- `Redo(None)`: the model refused although the painted part allows the edit; it answers again,
  not allowed to start with a refusal;
- None: the reply fits the painted part, or is not one this module reads.
"""

from __future__ import annotations

import re

from .edit_claims import Claim, Redo, Say, done_text, parse_done
from .scene_reader import Reading

NOTHING_PAINTED = "There is nothing in the part you painted, so I changed nothing."


def outside_reply(cls: str) -> str:
    """An edit that names a thing the painted part does not hold."""
    return f"The {cls} is not in the part you painted, so I changed nothing."


def taken_reply(cls: str) -> str:
    """An add over a painted place that already holds a thing."""
    return f"The part you painted already holds the {cls}, so I changed nothing."


REFUSALS = (NOTHING_PAINTED, outside_reply("cat"), taken_reply("cat"))  # their first words are what a redo may not start with


def _named(user_text: str, cls: str) -> bool:
    """Whether the person's message names `cls` ("make the cat a dog") rather than "this"."""
    return re.search(rf"\b{re.escape(cls)}(s|es)?\b", user_text.lower()) is not None


def check_masked(text: str, user_text: str, painted: list[tuple[int, int]], before: Reading, classes, backgrounds) -> Say | Redo | None:
    """What the reply to a masked edit should have been, given what the painted cells of the picture
    it started from hold (see the module doc); None when the reply fits."""
    held = [before.labels[r][c] for r, c in painted if before.labels[r][c] is not None]  # things in the painted cells, reading order
    free = [(r, c) for r, c in painted if before.labels[r][c] is None]
    text = text.strip()
    # 1. An honest refusal must be true of the painted part.
    if text == NOTHING_PAINTED:
        return Redo(None) if held else None
    if m := re.fullmatch(r"The (\w+) is not in the part you painted, so I changed nothing\.", text):
        return Redo(None) if m.group(1) in held else None
    if m := re.fullmatch(r"The part you painted already holds the (\w+), so I changed nothing\.", text):
        if not held:
            return Redo(None)
        return None if m.group(1) in held else Say(taken_reply(held[0]))
    # 2. A done edit must change what the painted part holds.
    claims = parse_done(text, classes, backgrounds)
    if claims is None or len(claims) != 1:
        return None
    c = claims[0]
    if c.kind in ("replace", "remove"):
        if c.cls in held:
            return None
        if not held:
            return Say(NOTHING_PAINTED)
        if _named(user_text, c.cls):
            return Say(outside_reply(c.cls))
        return Redo(done_text([Claim(c.kind, held[0], new=c.new)]))
    if c.kind == "add":
        if c.slot in free:
            return None
        if not free:
            return Say(taken_reply(held[0]))
        return Redo(done_text([Claim("add", c.cls, slot=free[0])]))
    return None


