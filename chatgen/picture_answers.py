"""What a text answer says about the picture, checked against what a `SceneReader` sees in it.

A model trained on the scene world answers questions in the canonical wording of
`chatgen.scene_text` ("There are two dogs.", "The cat is in the top left.", "No, the cat is on
the left.", "There is a dog on the left, on grass."). A small model often gets the facts of its
own picture wrong after a few edits ("There is one animal." next to two). `check_answer` reads
such an answer (`parse_answer`), says the same thing about what the reader sees (same kind of
answer, same thing asked about), and returns that sentence when it differs:

1. counts, places, the background and descriptions are said again from the reading (a whole
   description given to "what is in the top left?" becomes what is in the top left);
2. a yes/no answer ("Yes, ..." / "No, ...") gets its fact from the reading, and its verdict from
   comparing that fact with what the question asked (`asked_place`, `asked_number`,
   `asked_background`, "gone"/"removed" questions); when the question names nothing the
   verdict can be checked against, a right fact keeps the model's verdict and a wrong one is
   said alone, without a verdict, rather than guessed;
3. anything else (a refusal, small talk, a clarifying question, an answer about a thing the
   reader does not know) is left alone: None.

Only pictures the reader can vouch for are used (`fits`: every slot matched closely, colours
as the world draws them): an answer about a photo is never "corrected" from a poor match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from . import scene_text as st
from .scene_reader import Reading

_NUM = {w: i for i, w in enumerate(st.NUMBERS)} | {"0": 0, "zero": 0, "1": 1, "2": 2, "3": 3, "4": 4, "single": 1}
_PLACE = r"(?:in|on|at) the (?:top|middle|bottom|left|center|right)(?: (?:left|center|right))?"
_GONE = re.compile(r"\b(gone|disappeared|go away|went away|removed|deleted|missing|vanished)\b")
_RELATIVE = re.compile(r"\b((left|right|side|top|bottom) of(?! the (picture|image|pic|drawing|screen|page|canvas|frame)\b)|next to|beside|above|below|under|underneath|over (the|a|an|it|him|her)|between|near|behind|by the)\b")
_BG_WORDS = {"grass": ("grass", "grassy"), "sky": ("sky",), "beach": ("beach", "sand", "sandy"), "snow": ("snow", "snowy"),
             "night": ("night", "nighttime", "night time", "dark"), "sea": ("sea", "water", "ocean")}
# A picture is vouched for when every slot matched its label within MAX_SLOT_ERROR (mean squared
# error, pixels in [0, 1]) and its colours drifted from the canvas by at most MAX_DRIFT. Measured
# with the shipped reader: slot errors at most 8.1e-5 and drift at most 0.004 over 298 pictures
# the model drew for the hand-written suites, their uploads and 200 VQ round trips of renders;
# on 40 noise and gradient pictures, slot errors from 1.8e-4 (noise, read as flat grass) and
# drift from 0.12.
MAX_SLOT_ERROR = 5e-4
MAX_DRIFT = 0.05

Kind = Literal["count", "where", "background", "describe", "at"]


@dataclass(frozen=True)
class Answer:
    """What one answer text states."""

    kind: Kind
    target: str | None = None  # count: a class or category; where: a class
    verdict: bool | None = None  # a yes/no answer's Yes (True) or No (False); None for other answers
    absent_form: bool = False  # "there is no X" rather than "there are no Xs" (the model's wording, kept when true)


class Names:
    """The class, category and background names a reader knows, with plurals."""

    def __init__(self, classes, backgrounds, categories):
        self.classes, self.backgrounds, self.categories = tuple(classes), tuple(backgrounds), dict(categories)
        self.noun = st.class_nouns(self.classes)
        self.noun |= {c: c for c in self.categories} | {s: c for c, s in st.CATEGORY_SINGULAR.items() if c in self.categories}

    def thing(self, word: str) -> str | None:
        """A class or category named by a noun ("dogs" -> "dog", "animal" -> "animals")."""
        return self.noun.get(word)


def _fact(text: str, names: Names, verdict: bool = False) -> Answer | None:
    """The statement of a sentence (after a Yes/No when `verdict`; capitalised, with its full stop)."""
    if m := re.fullmatch(r"The background is (\w+)\.", text):
        return Answer("background") if m.group(1) in names.backgrounds else None
    if m := re.fullmatch(r"There are no objects, only the (\w+) background\.", text):
        return Answer("describe") if m.group(1) in names.backgrounds else None
    if m := re.fullmatch(r"There is one (\w+)\.|There are (no|two|three|four|\d) (\w+)\.", text):
        what = names.thing(m.group(1) or m.group(3))
        return Answer("count", what) if what is not None else None
    if m := re.fullmatch(r"There is no (\w+)\.", text):
        return Answer("where", m.group(1), absent_form=True) if m.group(1) in names.classes else None
    if (m := re.fullmatch(rf"The (\w+) is {_PLACE}\.", text)) or (verdict and (m := re.fullmatch(rf"There is an? (\w+) {_PLACE}\.", text))):
        cls = m.group(1)
        return Answer("where", cls) if cls in names.classes else None
    if m := re.fullmatch(rf"There are (\w+) {_PLACE}(?:(?:, | and ){_PLACE})+\.", text):
        cls = names.thing(m.group(1))
        return Answer("where", cls) if cls in names.classes else None
    items = rf"an? \w+ {_PLACE}"
    if m := re.fullmatch(rf"There is ({items}(?:(?:, | and ){items})*), (.+)\.", text):
        return Answer("describe") if m.group(2) in st.BG_PHRASE.values() else None
    if re.fullmatch(rf"There is nothing {_PLACE}\.|There is {items}(?:(?:, | and ){items})*\.", text):
        return Answer("at")  # "what's in the top right?"
    return None


def parse_answer(text: str, names: Names) -> Answer | None:
    """What a canonical answer text states, or None when it is not one (see the module doc)."""
    text = text.strip()
    if m := re.fullmatch(r"(Yes|No), (.+)", text):
        rest = m.group(2)
        fact = _fact(rest[0].upper() + rest[1:], names, verdict=True)
        if fact is None or fact.kind in ("describe", "at"):
            return None
        return Answer(fact.kind, fact.target, m.group(1) == "Yes", fact.absent_form)
    return _fact(text, names)


# ---- what a question asks ---------------------------------------------------------------------

# "right" that is not a side: a tag ("..., right?"), "am i right", "right now", "right above".
_NOT_A_SIDE = re.compile(r",\s*right\s*\??\s*$|\bam i right\b|\b(?<!the )(?<!lower )(?<!upper )(?<!top )(?<!bottom )(?<!middle )right (?=now\b|away\b|above\b|below\b|under\b|next\b|over\b|by\b|beside\b|there\b)")


_PLACE_WORDS = ("top", "upper", "bottom", "lower", "left", "right", "middle", "center", "central")


def _words(question: str) -> str:
    """The question in lower case, place words' slips mended, "right" that is not a side left out,
    punctuation as spaces: " is the cat on the right "."""
    text = st.mend(question.lower().replace("centre", "center").replace("-", " "), _PLACE_WORDS)
    text = _NOT_A_SIDE.sub(" ", text.strip())
    return " " + " ".join(re.sub(r"[^a-z0-9 ]+", " ", text).split()) + " "


def asked_place(question: str) -> set[tuple[int, int]] | None:
    """The slots a yes/no question asks about, as people mean them: "on the right" is the right
    side (any row), "top left" / "middle right" one slot, "in the middle" the center; None when it
    names no place, or a place relative to something else ("left of the dog"), or two."""
    w = _words(question)
    if _RELATIVE.search(w):
        return None
    rows = {r for r, pat in ((0, r" (top|upper) "), (2, r" (bottom|lower) ")) if re.search(pat, w)}
    cols = {c for c, pat in ((0, r" left "), (2, r" right ")) if re.search(pat, w)}
    middle = re.search(r" (middle|center|central|mid) ", w) is not None
    if len(rows) > 1 or len(cols) > 1:
        return None
    if rows and cols:
        return {(rows.pop(), cols.pop())}
    if cols:
        return {(1, next(iter(cols)))} if middle else {(r, next(iter(cols))) for r in range(3)}
    if rows:
        return {(next(iter(rows)), 1)} if middle else {(next(iter(rows)), c) for c in range(3)}
    return {(1, 1)} if middle else None


def asked_number(question: str, target: str, names: Names) -> int | None:
    """The number a yes/no question asks about ("are there two dogs", "just 1 cat?", "a single
    cloud"), when it stands right before a word for `target`; else None."""
    w = _words(question).split()
    found = {_NUM[a] for a, b in zip(w, w[1:]) if a in _NUM and names.thing(b) == target}
    return found.pop() if len(found) == 1 else None


def asked_background(question: str) -> str | None:
    """The one background a question names ("is it snowy", "is this at night"), else None."""
    w = _words(question)
    named = {bg for bg, words in _BG_WORDS.items() if any(f" {x} " in w for x in words)}
    return named.pop() if len(named) == 1 else None


# ---- the check ---------------------------------------------------------------------------------

def fits(reading: Reading) -> bool:
    """Whether every slot of `reading` matched its label well enough to be vouched for."""
    return max(e for row in reading.errors for e in row) <= MAX_SLOT_ERROR and reading.drift <= MAX_DRIFT


def things_of(reading: Reading) -> list[st.Thing]:
    """The labelled slots of a reading, in reading order."""
    return [st.Thing(cls, r, c) for r, row in enumerate(reading.labels) for c, cls in enumerate(row) if cls is not None]


def check_answer(text: str, question: str, reading: Reading, names: Names) -> str | None:
    """The answer the picture supports when it differs from `text` (see the module doc), else None."""
    answer = parse_answer(text, names)
    if answer is None or not fits(reading):
        return None
    things = things_of(reading)
    if answer.verdict is None:
        true = _statement(answer, things, reading.background, names, question)
    else:
        true = _yes_no(answer, text, question, things, reading.background, names)
    return true if true is not None and true != text.strip() else None


def _statement(answer: Answer, things: list[st.Thing], background: str, names: Names, question: str) -> str | None:
    if answer.kind == "at":
        area = asked_place(question)
        return None if area is None else st.answer_at(things, area, _named(area))
    if answer.kind == "background":
        return st.answer_background(background)
    if answer.kind == "describe":
        area = asked_place(question) if _WHAT.search(question.lower()) else None
        if area is not None and len(area) < 9:  # "what is in the top left?" answered with the whole picture: the asked place
            return st.answer_at(things, area, _named(area))
        return st.describe(things, background)
    if answer.kind == "count":
        return st.answer_count(things, answer.target, names.categories)
    return st.answer_where(things, answer.target)


_WHAT = re.compile(r"\b(what|whats|what's|anything|which)\b")


def _named(area: set[tuple[int, int]]) -> tuple[int, int]:
    """The slot whose phrase names an asked place: the slot itself, or the middle of a side."""
    if len(area) == 1:
        return next(iter(area))
    rows, cols = {r for r, _ in area}, {c for _, c in area}
    return (1, cols.pop()) if len(cols) == 1 else (rows.pop(), 1)


def _yes_no(answer: Answer, text: str, question: str, things: list[st.Thing], background: str, names: Names) -> str | None:
    """A yes/no answer said from the picture: its fact, and the verdict of the question against it."""
    target = answer.target
    if answer.kind == "background":
        asked = asked_background(question)
        fact = st.answer_background(background)
        verdict = None if asked is None else asked == background
    elif answer.kind == "count" and not (target in names.classes and asked_number(question, target, names) is None and asked_place(question)):
        n = st.count_of(things, target, names.categories)
        asked = asked_number(question, target, names)
        fact = st.answer_count(things, target, names.categories)
        if asked is not None:
            verdict = n == asked
        elif _GONE.search(question.lower()):  # "is the cat gone?"
            verdict = n == 0
        elif _said(text) == fact:  # "is the cat still there?", or a question read here as neither: a right fact keeps the model's verdict
            return None
        else:
            verdict = n > 0
    else:  # a place question ("is the cat on the right?"), or "is there a cat?" answered "No, there is no cat."
        found = [t for t in things if t.cls == target]
        area = asked_place(question)
        if not found:
            fact, verdict = f"There is no {target}.", bool(_GONE.search(question.lower()))
        elif area is None and answer.absent_form:
            fact, verdict = st.answer_count(things, target, {}), True
        elif area is None:
            fact, verdict = st.answer_where(things, target), None
        else:
            hit = [t for t in found if (t.row, t.col) in area]
            verdict = bool(hit)
            if hit and len(found) > 1:
                fact = f"There is {st.with_article(target)} {st.slot_phrase(hit[0].row, hit[0].col)}."
            else:
                fact = st.answer_where(things, target)
    if verdict is None:  # the question names nothing to check the verdict against
        return None if _said(text) == fact else fact
    return st.yes_no(verdict, fact)


def _said(text: str) -> str:
    """The fact of a yes/no answer: "No, there are two dogs." -> "There are two dogs."."""
    said = text.strip().split(", ", 1)[1]
    return said[0].upper() + said[1:]
