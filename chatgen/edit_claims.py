"""What a done edit's reply claims, checked against the pictures before and after it.

A model trained on the scene world says what it changed in one fixed wording ("Done: removed
the dog.", "Done: the cat is now a fox and added a tree on the left."). `parse_done` reads
such a text into `Claim`s; `check_claims` compares them with what a `SceneReader` saw in the
picture the edit started from and in the picture it made:

1. a claim about a thing the first picture did not have ("removed the fish", "the fish is now
   a cat" with no fish) is false (a move is read as where the thing is now: "the sun is now at
   the top" holds when a sun is there, whether it was moved or drawn anew: people ask for a new
   thing that way too, "and the sun, up in the top right"): the reply is `absent_reply(cls)`, the sentence the world uses for such edits (or
   `NO_PICTURE` when there was no picture at all);
2. an add that takes the new picture past the world's limits (a fifth thing, a fourth of one
   kind) gets the world's refusal ("I can't add a dog: a picture holds at most 4 objects.");
3. a claim the new picture does not show ("added a cat on the left" with no new cat there,
   "the background is now snow" on grass) is false: the reply is `MISSED`;
4. otherwise (every claim holds, or the text is not one this module can read) nothing is said.

The assistant then keeps that one sentence and no picture (the person's picture stays as it
was), so a reply never claims a change its picture does not show.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .scene_reader import Reading
from .scene_text import COLS, ROWS, join, limit_reply, slot_phrase, with_article

MISSED = "That did not work: the picture I made did not show the change, so I kept the picture as it was."
NO_PICTURE = "There is no picture to change yet. Ask me to draw one, for example a dog on the grass."


@dataclass(frozen=True)
class Say:
    """A reply to replace with this honest sentence, and no picture."""

    text: str


@dataclass(frozen=True)
class Redo:
    """A reply to answer again: after this done text (None: any answer but a refusal)."""

    text: str | None


def absent_reply(cls: str) -> str:
    """The world's sentence for an edit of something that is not there."""
    return f"There is no {cls} in the picture, so I changed nothing."


def slot_of(phrase: str) -> tuple[int, int] | None:
    """The slot of a canonical place phrase ("on the left", "at the top", "in the top right",
    "in the center"), or None."""
    words = phrase.split()
    if len(words) < 3 or words[:2] not in (["in", "the"], ["on", "the"], ["at", "the"]):
        return None
    rest = words[2:]
    if rest == ["center"]:
        return (1, 1)
    if len(rest) == 1 and rest[0] in COLS and words[0] == "on":
        return (1, COLS.index(rest[0]))
    if len(rest) == 1 and rest[0] in ROWS and words[0] == "at":
        return (ROWS.index(rest[0]), 1)
    if len(rest) == 2 and rest[0] in ROWS and rest[1] in COLS:
        return (ROWS.index(rest[0]), COLS.index(rest[1]))
    return None


@dataclass(frozen=True)
class Claim:
    """One change a reply says it made."""

    kind: str  # "add", "remove", "replace", "move", "background" or "clear"
    cls: str | None = None  # the thing added, removed, replaced or moved
    new: str | None = None  # replace: what it became; background: the new background
    slot: tuple[int, int] | None = None  # add / move: where it is now

    def clause(self) -> str:
        """The claim in the world's words, as `parse_done` reads it: "added a cat on the left"."""
        if self.kind == "add":
            return f"added {with_article(self.cls)} {slot_phrase(*self.slot)}"
        if self.kind == "remove":
            return f"removed the {self.cls}"
        if self.kind == "replace":
            return f"the {self.cls} is now {with_article(self.new)}"
        if self.kind == "move":
            return f"the {self.cls} is now {slot_phrase(*self.slot)}"
        if self.kind == "background":
            return f"the background is now {self.new}"
        return "removed everything"


def done_text(claims: list[Claim]) -> str:
    """The canonical done text of these changes: "Done: removed the dog and added a cat on the left."."""
    return "Done: " + join([c.clause() for c in claims]) + "."


class _Words:
    """The class and background names a reader knows, with their plurals."""

    def __init__(self, classes, backgrounds):
        self.backgrounds = set(backgrounds)
        self.singular = {c: c for c in classes}
        for c in classes:
            self.singular.setdefault(c + "s", c)
            self.singular.setdefault(c + "es", c)
        if "cactus" in self.singular:
            self.singular["cacti"] = "cactus"

    def thing(self, text: str) -> str | None:
        """"a dog" / "an apple" / "the dogs" / "dog" -> "dog"; None for anything else."""
        words = text.split()
        if len(words) == 2 and words[0] in ("a", "an", "the"):
            words = words[1:]
        return self.singular.get(words[0]) if len(words) == 1 else None


_ADDED = re.compile(r"^(?:added )?(an?) (\w+) ((?:in|on|at) the [a-z ]+)$")


def parse_done(text: str, classes, backgrounds) -> list[Claim] | None:
    """The claims of a canonical done text, or None when `text` is not one (or not read whole)."""
    if not text.startswith("Done: ") or not text.endswith("."):
        return None
    words = _Words(classes, backgrounds)
    body = text[len("Done: ") : -1]
    clauses = [c.strip() for part in body.split(", ") for c in part.split(" and ")]
    claims: list[Claim] = []
    verb = None  # "added" / "removed" carries to a clause that leaves it out ("added a cat on the left and a dog on the right")
    for clause in clauses:
        if clause == "removed everything":
            claims.append(Claim("clear"))
            verb = None
            continue
        m = re.fullmatch(r"the background is now (\w+)", clause)
        if m and m.group(1) in words.backgrounds:
            claims.append(Claim("background", new=m.group(1)))
            verb = None
            continue
        m = re.fullmatch(r"the ([a-z ]+?) (?:is|are) now (.+)", clause)
        if m:
            cls, what = words.thing(m.group(1)), m.group(2)
            slot = slot_of(what)
            if cls is not None and slot is not None:
                claims.append(Claim("move", cls, slot=slot))
            elif cls is not None and words.thing(what) is not None:
                claims.append(Claim("replace", cls, new=words.thing(what)))
            else:
                return None
            verb = None
            continue
        if clause.startswith("removed ") or (verb == "removed" and clause.startswith("the ")):
            cls = words.thing(clause.removeprefix("removed "))
            if cls is None:
                return None
            claims.append(Claim("remove", cls))
            verb = "removed"
            continue
        m = _ADDED.fullmatch(clause)
        if m and (clause.startswith("added ") or verb == "added"):
            cls, slot = words.thing(m.group(2)), slot_of(m.group(3))
            if cls is None or slot is None:
                return None
            claims.append(Claim("add", cls, slot=slot))
            verb = "added"
            continue
        return None
    return claims or None


def check_claims(claims: list[Claim], before: Reading | None, after: Reading, limits: tuple[int, int] | None = None) -> str | None:
    """The sentence that replaces a reply whose claims the pictures contradict (see the module
    doc), or None when they hold. `before` is None when the edit had no picture to start from;
    `limits` (most things in a picture, most of one kind), when known, refuse an add past them."""
    def had(cls: str) -> int:
        return before.count(cls) if before is not None else 0

    # 1. A thing the first picture did not have (nor an earlier claim of the same reply made).
    made: set[str] = set()
    for c in claims:
        if c.kind in ("remove", "replace") and had(c.cls) == 0 and c.cls not in made:
            return absent_reply(c.cls) if before is not None else NO_PICTURE
        made.update([c.cls] if c.kind == "add" else [c.new] if c.kind == "replace" else [])
    # 2. An add past the world's limits ("add a dog too" to four things: a fifth drawn).
    if limits is not None:
        things = sum(label is not None for row in after.labels for label in row)
        for c in claims:
            if c.kind == "add" and things > limits[0]:
                return limit_reply(c.cls, "too_many_objects")
            if c.kind == "add" and after.count(c.cls) > limits[1]:
                return limit_reply(c.cls, "too_many_of_class")
    # 3. A change the new picture does not show.
    for c in claims:
        if c.kind == "background":
            ok = after.background == c.new
        elif c.kind == "clear":
            ok = all(label is None for row in after.labels for label in row)
        elif c.kind == "remove":
            ok = after.count(c.cls) < had(c.cls) or c.cls in made
        elif c.kind == "replace":
            ok = c.new == c.cls or after.count(c.new) > had(c.new)
        elif c.kind == "move":
            ok = after.labels[c.slot[0]][c.slot[1]] == c.cls
        else:  # add: one more of it, unless the same reply also takes one away ("remove the fox and add a fox on the right")
            taken = any(o.kind in ("remove", "replace") and o.cls == c.cls for o in claims)
            ok = after.labels[c.slot[0]][c.slot[1]] == c.cls and (after.count(c.cls) > had(c.cls) or taken)
        if not ok:
            return MISSED
    return None
