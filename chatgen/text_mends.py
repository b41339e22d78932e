"""Texts of the model mended to fit the message, where the mend is plain from the words alone.

`chatgen.reply_fit` finds what a reply's text shows that does not fit; some of those the
assistant can put right without asking the model again, and the model then draws after the
mended text (`replan.better_plan` tries a mend before it samples other texts):
- a drawing on another background than the one asked for ("Here is a house in the center, on
  grass." to "hosue in the middle at nite") is said on the asked one ("..., at night.");
- a done edit with a change nobody asked for ("Done: added a rabbit on the left and the
  background is now beach.") keeps only the changes asked for ("Done: added a rabbit on the left.");
- a refusal of a thing the model misnamed ("I can't draw a pimodax") names back the thing the
  person wrote ("I can't draw a snowman");
- an edit made for a request to write, a goodbye or a thank-you ("good night!" answered by making
  the picture night) is the world's sentence for it ("I can't write text. ...", "Goodbye!").
"""

from __future__ import annotations

import re

from .edit_claims import Claim, done_text, parse_done
from .reply_fit import PLACE_WORDS, SMALLTALK_TALK, WRITING, Words, read_message
from .scene_text import BG_PHRASE, BYE_REPLY, THANKS_REPLY, article, impossible_reply


NOT_THINGS = frozenset((
    "lot", "bit", "little", "big", "nice", "lovely", "picture", "pic", "drawing", "image", "photo", "card", "friend", "pet", "few", "couple",
    "kid", "day", "new", "one", "good", "great", "beautiful", "cute", "small", "tiny", "huge", "large", "second", "third", "first", "worksheet",
    "poster", "story", "present", "gift", "minute", "moment", "question", "favour", "favor", "look", "go", "try", "thing", "scene", "background",
    "bunch", "pair", "sec", "while", "sky", "sea", "snow", "beach", "grass", "night", "way", "place", "spot", "corner", "side", "row", "lot",
))


def name_back(text: str, message: str, words: Words) -> str | None:
    """A refusal to draw a thing the model named wrongly ("I can't draw a pimodax; ..." to "add a snowman
    next to the house") with the thing the message asks for named back as the person wrote it
    ("I can't draw a snowman; ..."), when the message names exactly one thing the reader does not
    know after "a" / "an" / "some"; else None."""
    m = re.match(r"I can't draw an? ([a-z ]+)(;.*)$", text, re.S)
    if m is None or m.group(1) in message.lower():
        return None
    unknown = []
    for found in re.finditer(r"\b(?:a|an|some|any|the)\s+([a-z]+)(?:\s+([a-z]+))?", message.lower()):
        word = found.group(2) if found.group(1) in NOT_THINGS and found.group(2) else found.group(1)  # "a big dragon": the dragon
        if len(word) > 2 and word not in NOT_THINGS and not words.named(word) and word not in PLACE_WORDS and word not in unknown:
            unknown.append(word)
    if len(unknown) != 1:
        return None
    thing = unknown[0]
    return f"I can't draw {article(thing)} {thing}{m.group(2)}"


def mend_text(text: str, message: str, words: Words, before: str = "") -> str | None:
    """`text` mended to fit `message` (see the module doc), or None when no mend applies (whether
    the mend fits better is the caller's to judge: `replan.better_plan`)."""
    if text.startswith("Here is "):
        mended = _drawn_background(text, message, words)
    elif text.startswith("Done: "):
        mended = _asked_changes(text, message, words, before) or _no_change(message, words, before)
    else:
        mended = name_back(text, message, words)
    return mended if mended != text else None


def _drawn_background(text: str, message: str, words: Words) -> str | None:
    """A drawing said on the one background the message asks for."""
    asked = words.backgrounds_in(message)
    head, _, last = text.rstrip(".").rpartition(", ")
    if len(asked) != 1 or not head or last not in BG_PHRASE.values():
        return None
    return f"{head}, {BG_PHRASE[next(iter(asked))]}."


def _asked_changes(text: str, message: str, words: Words, before: str) -> str | None:
    """A done edit with only the changes the message asks for: an added thing it never named and a
    background it never asked for are left out; a background other than the one asked is the asked one."""
    claims = parse_done(text, words.classes, words.backgrounds)
    if claims is None:
        return None
    asked = read_message(message, words, before)
    backgrounds = sorted(asked.backgrounds)
    kept = []
    for c in claims:
        if c.kind == "add" and c.cls not in asked.went_on and not asked.general:
            continue
        if c.kind == "background" and not backgrounds and not asked.has("background", "backdrop", "setting", "scene"):
            continue
        kept.append(Claim("background", new=backgrounds[0]) if c.kind == "background" and len(backgrounds) == 1 else c)
    if not kept or kept == claims:
        return None
    return done_text(kept)


def _no_change(message: str, words: Words, before: str) -> str | None:
    """The world's sentence for a message that asks for no edit the model made anyway: a request to
    write ("I can't write text. ..."), a goodbye or a thank-you that names no change."""
    asked = read_message(message, words, before)
    if asked.said & WRITING:
        return impossible_reply("write text")
    for reply, talk in ((BYE_REPLY, SMALLTALK_TALK["Goodbye"]), (THANKS_REPLY, SMALLTALK_TALK["You're welcome"])):
        if asked.has(*talk) and not asked.classes and not asked.backgrounds:
            return reply
    return None
