"""The words a grid picture is talked about in: places, plurals, counts and the canonical answers.

A model trained on the scene world answers questions in one fixed wording ("There are two
dogs.", "The cat is in the top left.", "Yes, there is one fox.", "There is a dog on the left,
on grass."). This module owns that wording, over anything with `.cls`, `.row` and `.col`
(the world's `Obj`, or a `Thing` read back from a picture), so the world's generator and the
request path's answer check (`chatgen.picture_answers`) write the same sentences.

Places: a single word names the middle of an edge ("left" is the middle left slot, "top" the
top center slot), "center" the middle slot, two words a corner ("top left").
"""

from __future__ import annotations

from dataclasses import dataclass
import re
from collections.abc import Iterable, Sequence
from typing import Protocol

ROWS: tuple[str, ...] = ("top", "middle", "bottom")
COLS: tuple[str, ...] = ("left", "center", "right")
NUMBERS = ("no", "one", "two", "three", "four")  # counts 0..4 (a picture holds at most 4 things)

# The background phrase after an object list: "..., on grass."
BG_PHRASE: dict[str, str] = {
    "grass": "on grass", "sky": "in the sky", "beach": "on the beach",
    "snow": "in the snow", "night": "at night", "sea": "at sea",
}
CATEGORY_SINGULAR = {"animals": "animal", "plants": "plant", "vehicles": "vehicle", "objects": "object"}
_PLURALS = {"fox": "foxes", "fish": "fish", "cactus": "cacti"}


class Placed(Protocol):
    cls: str
    row: int
    col: int


@dataclass(frozen=True)
class Thing:
    """One thing in one slot of a picture."""

    cls: str
    row: int
    col: int


def plural(cls: str) -> str:
    """English plural of a class name ("fox" -> "foxes", "fish" -> "fish")."""
    return _PLURALS.get(cls, cls + "s")


def class_nouns(classes: Iterable[str]) -> dict[str, str]:
    """Each class and its plural -> the class: {"dog": "dog", "dogs": "dog", "cacti": "cactus", ...}."""
    return {c: c for c in classes} | {plural(c): c for c in classes}


def article(noun: str) -> str:
    """Indefinite article for a noun ("an apple", "a unicorn", "a dog")."""
    return "an" if noun[0] in "aeio" or (noun[0] == "u" and not noun.startswith("uni")) else "a"


def with_article(noun: str) -> str:
    """"a dog", "an apple"."""
    return f"{article(noun)} {noun}"


def join(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def slot_name(row: int, col: int) -> str:
    """Full grid name of a slot: "top left", "middle center", "bottom right"."""
    return f"{ROWS[row]} {COLS[col]}"


def slot_phrase(row: int, col: int) -> str:
    """Canonical location phrase: "on the left", "in the top right", "at the top", "in the center"."""
    if (row, col) == (1, 1):
        return "in the center"
    if row == 1:
        return f"on the {COLS[col]}"
    if col == 1:
        return f"at the {ROWS[row]}"
    return f"in the {slot_name(row, col)}"


def number_word(n: int) -> str:
    """"no", "one", ... "four", then digits (a picture read back may hold more than the world draws)."""
    return NUMBERS[n] if n < len(NUMBERS) else str(n)


def counted_noun(what: str, n: int) -> str:
    """A class or category word for `n` of them: "dog" / "dogs", "animal" / "animals"."""
    if what in CATEGORY_SINGULAR:
        return what if n != 1 else CATEGORY_SINGULAR[what]
    return what if n == 1 else plural(what)


def count_of(things: Iterable[Placed], what: str, categories: dict[str, Sequence[str]]) -> int:
    """How many of a class, or of a category ("animals": any of `categories["animals"]`)."""
    members = set(categories[what]) if what in categories else {what}
    return sum(t.cls in members for t in things)


def the_group(classes: Sequence[str]) -> str:
    """"the dogs and the fox": things (their classes, in reading order) grouped by class."""
    return join([f"the {plural(c) if classes.count(c) > 1 else c}" for c in dict.fromkeys(classes)])


def object_phrase(thing: Placed) -> str:
    """"a dog on the left"."""
    return f"{with_article(thing.cls)} {slot_phrase(thing.row, thing.col)}"


def describe(things: Sequence[Placed], background: str) -> str:
    """"There is a dog on the left and a tree in the top right, on grass." (things in reading
    order); "There are no objects, only the grass background." for an empty picture."""
    if not things:
        return f"There are no objects, only the {background} background."
    return f"There is {join([object_phrase(t) for t in things])}, {BG_PHRASE[background]}."


def answer_count(things: Sequence[Placed], what: str, categories: dict[str, Sequence[str]]) -> str:
    """"There are two dogs." / "There is one animal." / "There are no cats."."""
    n = count_of(things, what, categories)
    return f"There is one {counted_noun(what, 1)}." if n == 1 else f"There are {number_word(n)} {counted_noun(what, n)}."


def answer_where(things: Sequence[Placed], cls: str) -> str:
    """"The dog is on the left." / "There are dogs on the left and at the top." / "There is no dog."."""
    found = [t for t in things if t.cls == cls]
    if not found:
        return f"There is no {cls}."
    if len(found) == 1:
        return f"The {cls} is {slot_phrase(found[0].row, found[0].col)}."
    return f"There are {plural(cls)} {join([slot_phrase(t.row, t.col) for t in found])}."


def answer_at(things: Sequence[Placed], area: set[tuple[int, int]], named: tuple[int, int]) -> str:
    """"What's in the top right?": "There is a tree in the top right." / "There is a dog on the
    left and a cat in the bottom left." (what is in `area`, each at its own place) / "There is
    nothing at the top." (`named`: the slot whose phrase names the asked place)."""
    inside = [t for t in things if (t.row, t.col) in area]
    if not inside:
        return f"There is nothing {slot_phrase(*named)}."
    return f"There is {join([object_phrase(t) for t in inside])}."


def yes_no(yes: bool, answer: str) -> str:
    """"Yes, there are two dogs." from "There are two dogs."."""
    return f"{'Yes' if yes else 'No'}, {answer[0].lower()}{answer[1:]}"


def answer_is_there(things: Sequence[Placed], cls: str) -> str:
    """"Yes, there is one dog." / "Yes, there are two dogs." / "No, there is no dog."."""
    if not any(t.cls == cls for t in things):
        return f"No, there is no {cls}."
    return yes_no(True, answer_count(things, cls, {}))


def answer_background(background: str) -> str:
    """"The background is grass."."""
    return f"The background is {background}."


CAN_DO = "I can add, remove, replace or move things and change the background."  # every edit the world has
GREETING_REPLY = "Hello! Ask me to draw a picture, for example a dog on the grass."
THANKS_REPLY = "You're welcome!"
BYE_REPLY = "Goodbye!"


def impossible_reply(change: str) -> str:
    """An edit the world cannot make: "I can't make things bigger. I can add, remove, ..."."""
    return f"I can't {change}. {CAN_DO}"


def limit_reply(cls: str, reason: str) -> str:
    """Refusal of an add that breaks a scene limit (`reason`: "too_many_objects" or "too_many_of_class")."""
    if reason == "too_many_objects":
        return f"I can't add {with_article(cls)}: a picture holds at most 4 objects."
    return f"I can't add another {cls}: a picture holds at most 3 of one kind."


def _one_slip(a: str, b: str) -> bool:
    """Whether `a` is `b` with one letter added, dropped, changed, or two neighbours swapped."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
    return a[i + 1:] == b[i + 1:] or a[i:] == b[i + 1:] or a[i + 1:] == b[i:] or (a[i:i + 2] == b[i:i + 2][::-1] and a[i + 2:] == b[i + 2:])


_NOT_MENDED = frozenset(("let", "lets", "lots", "too", "two", "tip"))  # words one slip from a place word that are words of their own


def mend(text: str, words: Sequence[str]) -> str:
    """Lower-case `text` with each word typed one slip away from one of `words` (4+ letters, same
    first letter) written as that word: "the lfet of the fish" -> "the left of the fish". Others
    stay as they are: "flower" is not "lower", "light" not "right", "too" not "top"."""
    def one(m: re.Match) -> str:
        token = m.group()
        if len(token) < 3 or token in words or token in _NOT_MENDED:
            return token
        return next((w for w in words if w[0] == token[0] and len(w) > 3 and _one_slip(token, w)), token)

    return re.sub(r"[a-z]+", one, text.lower())
