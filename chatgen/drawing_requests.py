"""A drawing request that names every thing and its place, checked against the drawing's reply.

"sky with 4 things: sun top right, cloud top left, bird in the middle, balloon bottom left": when
a message spells out each thing with its place, there is one scene it can mean. A small model
often draws a wrong set from such a long list, and says what it drew ("Here is a cloud in the
top left, a sun in the top right and a balloon in the bottom left, in the sky."). The model
draws what its reply says (the drawing's text matched its picture in every hand-written drawing
turn measured), so `check_drawing` reads the request (`requested_scene`) and, when the reply
states another scene, returns the reply that states the requested one (`Redo`): the model draws
again after it.

The request is read only when it is unambiguous: split at commas, "and", "with", it must name,
item by item, one thing and one place (at least two of them; each place once), and nothing
else a list of things cannot say plainly: no count words ("two", "both", "each"), no places
relative to another thing, no "it". Anything else is left to the model (None).
"""

from __future__ import annotations

import re

from .edit_claims import Redo
from .relative_places import RELATION
from .scene_text import BG_PHRASE, COLS, ROWS, join, mend, plural, slot_phrase, with_article

_PLACE_WORDS = ("top", "upper", "bottom", "lower", "left", "right", "middle", "center", "centre", "central")
_BACKGROUND_WORDS = {"grass": ("grass", "grassy", "meadow", "field"), "sky": ("sky",), "beach": ("beach", "sandy", "sand"),
                     "snow": ("snow", "snowy", "winter"), "night": ("night", "nighttime", "night time", "dark"), "sea": ("sea", "ocean", "water")}
_COUNTS = re.compile(r"\b(two|three|four|both|each|pair|couple|several|some|few|many|lots|more|another|every|all|2|3)\b")
_PRONOUNS = re.compile(r"\b(it|them|him|her|one|ones|this|that)\b")


def may_name_a_scene(text: str) -> bool:
    """Whether a message names at least two places (it may be a drawing request of that kind)."""
    return len(re.findall(r"\b(top|upper|bottom|lower|left|right|middle|center|centre)\b", mend(text, _PLACE_WORDS))) >= 2


def _place(item: str) -> tuple[int, int] | None | str:
    """The one slot an item's place words name ("top right", "in the middle", "left", "bottom
    middle"); None when it names none; "?" when they do not name one slot."""
    w = item.replace("centre", "center")
    rows = {r for r, pat in ((0, r"\b(top|upper)\b"), (2, r"\b(bottom|lower)\b")) if re.search(pat, w)}
    cols = {c for c, pat in ((0, r"\bleft\b"), (2, r"\bright\b")) if re.search(pat, w)}
    middle = re.search(r"\b(middle|center|central)\b", w) is not None
    if len(rows) > 1 or len(cols) > 1:
        return "?"
    if not rows and not cols:
        return (1, 1) if middle else None
    return (rows.pop() if rows else 1, cols.pop() if cols else 1)


def requested_scene(user_text: str, classes, backgrounds) -> tuple[list[tuple[str, tuple[int, int]]], str | None] | None:
    """(things with their slots in reading order, the background named or None) of a request that
    names each thing and its place (see the module doc), else None."""
    text = mend(user_text, _PLACE_WORDS).replace("-", " ")
    if RELATION.search(text) or _COUNTS.search(text):
        return None
    named_bg = {bg for bg, words in _BACKGROUND_WORDS.items() if bg in backgrounds and any(re.search(rf"\b{w}\b", text) for w in words)}
    if len(named_bg) > 1:
        return None
    nouns = {c: c for c in classes} | {plural(c): None for c in classes if plural(c) != c}  # a plural is a count: not read
    items = [i for i in re.split(r"[,;:]|\band\b|\bwith\b|\bplus\b|\bthen\b", text) if i.strip()]
    things: list[tuple[str, tuple[int, int]]] = []
    for item in items:
        found = [nouns[w] for w in re.findall(r"[a-z]+", item) if w in nouns]
        place = _place(item)
        if not found:
            if place is not None:
                return None  # a place with no thing: not a plain list
            continue
        if len(found) != 1 or found[0] is None or place is None or place == "?" or _PRONOUNS.search(item):
            return None
        things.append((found[0], place))
    slots = [s for _, s in things]
    if len(things) < 2 or len(set(slots)) != len(slots):
        return None
    return sorted(things, key=lambda t: t[1]), (named_bg.pop() if named_bg else None)


_ITEM = r"an? (\w+) ((?:in|on|at) the (?:top|middle|bottom|left|center|right)(?: (?:left|center|right))?)"
_SLOT = {slot_phrase(r, c): (r, c) for r in range(len(ROWS)) for c in range(len(COLS))}


def drawn_scene(text: str) -> tuple[list[tuple[str, tuple[int, int]]], str] | None:
    """(things with their slots, background) a drawing's canonical reply states, or None."""
    m = re.fullmatch(rf"Here is ({_ITEM}(?:(?:, | and ){_ITEM})*), (.+)\.", text.strip())
    bg = {phrase: bg for bg, phrase in BG_PHRASE.items()}.get(m.group(m.lastindex)) if m else None
    if bg is None:
        return None
    return [(cls, _SLOT[place]) for cls, place in re.findall(_ITEM, m.group(1))], bg


def check_drawing(text: str, user_text: str, classes, backgrounds) -> Redo | None:
    """The reply stating the requested scene, when the drawing's reply `text` states another one; else None."""
    drawn = drawn_scene(text)
    asked = requested_scene(user_text, classes, backgrounds)
    if drawn is None or asked is None:
        return None
    things, bg = asked
    if sorted(drawn[0], key=lambda t: t[1]) == things and bg in (None, drawn[1]):
        return None
    return Redo(f"Here is {join([f'{with_article(cls)} {slot_phrase(*slot)}' for cls, slot in things])}, {BG_PHRASE[bg or drawn[1]]}.")
