"""A place said relative to another thing ("add a bird above the house"), checked against a done reply.

People place things by other things: "put a ball next to the dog", "a cloud right under the
sun", "move the moon above the car", "a fish between the cat and the frog". The scene world
gives these one meaning (`chatgen.world.people_turns`): above / below / left of / right of is
the neighbouring slot on that side, next to / beside / by the one free neighbour, between two
things in a line the slot in the middle. A small model often puts the thing somewhere else
and says so truly ("Done: added a ball at the top."). With a `SceneReader`'s view of the picture
the edit started from, `check_relative` finds the slot the words mean and, when a done reply
that adds or moves one thing put it elsewhere, returns the done text that fits (`Redo`): the
model draws again after it.

Left alone (None): a message with no such words, a move whose destination is said outright
(the relative words then pick which thing moves), an anchor that is not there or is there more
than once, an anchor said with "it" or "them", a meant slot that is taken or off the grid, a
reply that is not one add or one move.
"""

from __future__ import annotations

import re
from dataclasses import replace

from .edit_claims import Redo, done_text, parse_done
from .scene_reader import Reading
from .scene_text import class_nouns, mend, slot_phrase, with_article

_STEPS = {"above": (-1, 0), "below": (1, 0), "left": (0, -1), "right": (0, 1)}
_WORDS = (  # longest first: "to the right of" before "right of"
    ("left", r"(?:to|on) the left (?:side )?of|left of"), ("right", r"(?:to|on) the right (?:side )?of|right of"),
    ("above", r"above|over|on top of"), ("below", r"below|under|underneath|beneath"),
    ("next", r"next to|beside|by|alongside"), ("between", r"in between|between"),
)
RELATION = re.compile(r"\b(" + "|".join(w for _, w in _WORDS) + r")\s+(?:the\s+)?([a-z]+)(?:\s+and\s+(?:the\s+)?([a-z]+))?")


_MENDED = ("left", "right", "above", "below", "under", "underneath", "beneath", "beside", "between", "next")


def _lower(text: str) -> str:
    """The message in lower case, relation words typed with one slip mended ("the lfet of")."""
    return mend(text, _MENDED)


def names_a_relation(text: str) -> bool:
    """Whether a message places something by another thing (the check may then redo the reply)."""
    return RELATION.search(_lower(text)) is not None


def _relation(word: str) -> str:
    return next(rel for rel, pattern in _WORDS if re.fullmatch(pattern, word))


def meant_slots(user_text: str, before: Reading, classes) -> list[tuple[int, int]]:
    """The free slots the message's relative place allows on `before`, the one to redo at first: one
    slot, or for "next to" every free neighbour beside it (right, left), else above or below; [] when none (see the
    module doc)."""
    nouns = class_nouns(classes)
    found = [m for m in RELATION.finditer(_lower(user_text)) if m.group(2) in nouns]
    if len(found) != 1:
        return []
    m = found[0]
    rel, anchor = _relation(m.group(1)), nouns[m.group(2)]
    where = [(r, c) for r, row in enumerate(before.labels) for c, label in enumerate(row) if label == anchor]
    if len(where) != 1:
        return []
    (ar, ac), grid = where[0], len(before.labels)

    def free(slot):
        return 0 <= slot[0] < grid and 0 <= slot[1] < grid and before.labels[slot[0]][slot[1]] is None

    if rel == "between":
        other = nouns.get(m.group(3) or "")
        there = [(r, c) for r, row in enumerate(before.labels) for c, label in enumerate(row) if label == other]
        if other is None or len(there) != 1:
            return []
        (br, bc) = there[0]
        mid = ((ar + br) // 2, (ac + bc) // 2)
        in_line = (ar == br or ac == bc) and abs(ar - br) + abs(ac - bc) == 2
        return [mid] if in_line and free(mid) else []
    steps = ("right", "left", "below", "above") if rel == "next" else (rel,)
    slots = [s for s in ((ar + _STEPS[k][0], ac + _STEPS[k][1]) for k in steps) if free(s)]
    beside = [s for s in slots if s[0] == ar]
    return beside or slots  # "next to" is beside it on its row when a side is free (people mean that), else above or below


def check_relative(text: str, user_text: str, before: Reading, classes, backgrounds) -> Redo | None:
    """The done text that puts the thing where the message's relative place means, when the reply
    `text` (one add or one move) put it elsewhere; else None."""
    claims = parse_done(text, classes, backgrounds)
    if claims is None or len(claims) != 1 or claims[0].kind not in ("add", "move"):
        return None
    slots = meant_slots(user_text, before, classes)
    c = claims[0]
    if not slots or c.slot in slots or (c.kind == "move" and _said_outright(user_text)):
        return None
    return Redo(done_text([replace(c, slot=slots[0])]))


_PLACE = re.compile(r"\b(left|right|top|bottom|middle|center|centre|corner|up|down)\b")


def _said_outright(user_text: str) -> bool:
    """Whether a move's destination is said without the relative words ("move the boat left of the
    balloon to the right": the relative words pick which boat)."""
    text = _lower(user_text)
    return _PLACE.search(RELATION.sub(" ", text)) is not None


_SAID = {"above": "above", "below": "below", "left": "to the left of", "right": "to the right of"}
_WHAT = re.compile(r"^(?:(?:and|so|ok|okay|now|hmm),?\s+)*(?:what's|whats|what is|what|which thing is|anything|is there anything|is anything)\b")
_IS = re.compile(r"^(?:(?:and|so|ok|okay|now|hmm),?\s+)*(?:is|are) (?:the\s+)?([a-z]+) (?:still |now |sitting |right |directly |just )*(" + "|".join(w for _, w in _WORDS[:4]) + r")\s+(?:the\s+)?([a-z]+)")


def answer_relative(question: str, before: Reading, classes, aliases: dict[str, str] | None = None) -> str | None:
    """The answer a picture gives to a question about a place relative to a thing: "what's right above
    the car?" -> "There is a moon above the car." / "There is nothing above the car."; "is the fox to
    the left of the dog?" -> "Yes, the fox is to the left of the dog." / "No, the fox is on the right
    and the dog is in the center." (above / below / left / right: higher, lower, further left or right
    on the grid; `aliases`: other words for the classes, "bunny" -> "rabbit"). None for anything
    else, or when a thing named is not there exactly once."""
    nouns, low = class_nouns(classes), _lower(question).strip()
    nouns |= {word: name for word, name in (aliases or {}).items() if name in classes and " " not in word and word not in nouns}  # "the bunny"
    where = {}
    for r, row in enumerate(before.labels):
        for c, label in enumerate(row):
            if label is not None:
                where.setdefault(label, []).append((r, c))

    def one(noun: str | None):
        cls = nouns.get(noun or "")
        return (cls, where[cls][0]) if cls is not None and len(where.get(cls, [])) == 1 else (None, None)

    m = _IS.match(low)
    if m:
        (thing, t), (anchor, a) = one(m.group(1)), one(m.group(3))
        if thing is None or anchor is None or thing == anchor:
            return None
        (tr, tc), (ar, ac) = t, a
        rel = _relation(m.group(2))
        yes = {"above": tr < ar, "below": tr > ar, "left": tc < ac, "right": tc > ac}[rel]
        if yes:
            return f"Yes, the {thing} is {_SAID[rel]} the {anchor}."
        return f"No, the {thing} is {slot_phrase(tr, tc)} and the {anchor} is {slot_phrase(ar, ac)}."
    if not _WHAT.match(low):
        return None
    found = [f for f in RELATION.finditer(low) if _relation(f.group(1)) in _SAID]
    if len(found) != 1:
        return None
    rel = _relation(found[0].group(1))
    anchor, at = one(found[0].group(2))
    if anchor is None:
        return None
    r, c = at[0] + _STEPS[rel][0], at[1] + _STEPS[rel][1]
    grid = len(before.labels)
    if not (0 <= r < grid and 0 <= c < grid):
        return f"There is nothing {_SAID[rel]} the {anchor}."
    label = before.labels[r][c]
    return f"There is {with_article(label)} {_SAID[rel]} the {anchor}." if label else f"There is nothing {_SAID[rel]} the {anchor}."
