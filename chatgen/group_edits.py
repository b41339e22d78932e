"""An edit of a group ("remove both fish", "turn every animal into a frog"), checked against a done reply.

A small model often changes one of the group and says so ("Done: the bird is now a frog." with
a dog there too). With a `SceneReader`'s view of the picture the edit started from,
`check_group` finds the things the group names (a class said with both / all / every / each /
"the three", a plural "the cats", or a class group such as "animals") and, when a done reply that removes or replaces one of
them left others as they were in its picture, returns the done text for all of them, in the
world's wording (`Redo`): the model draws again after it. Anything else is left alone (None):
no group words, a group of fewer than two things, a reply that is not one remove or one
replace of a member.
"""

from __future__ import annotations

import re

from .edit_claims import Redo, parse_done
from .scene_reader import Reading
from .scene_text import class_nouns, plural, the_group

GROUP = re.compile(r"\b(?:(?:both|all|every|each)\s+(?:of\s+)?(?:the\s+)?(?:two\s+|three\s+|four\s+)?|the\s+(?:two|three|four)\s+)(?P<noun>[a-z]+)")


def names_a_group(text: str) -> bool:
    """Whether a message may edit a group (the check may then redo the reply)."""
    return GROUP.search(text.lower()) is not None or re.search(r"\bthe\s+[a-z]+s\b", text.lower()) is not None


def group_members(user_text: str, before: Reading, classes, categories) -> list[tuple[int, int]] | None:
    """The slots, in reading order, of the things of the group the message names, or None."""
    nouns = {word: (c,) for word, c in class_nouns(classes).items()}
    for name, members in categories.items():
        if name != "objects":
            nouns[name] = nouns[name.removesuffix("s")] = tuple(members)
    text = user_text.lower()
    found = {nouns[m.group("noun")] for m in GROUP.finditer(text) if m.group("noun") in nouns}
    many = {plural(c): (c,) for c in classes if plural(c) != c} | {name: tuple(m) for name, m in categories.items() if name != "objects"}
    found |= {many[m.group(1)] for m in re.finditer(r"\bthe\s+([a-z]+)", text) if m.group(1) in many}  # "the cats", "the animals"
    if len(found) != 1:
        return None
    group = set(found.pop())
    return [(r, c) for r, row in enumerate(before.labels) for c, label in enumerate(row) if label in group]


def check_group(text: str, user_text: str, before: Reading, after: Reading, classes, backgrounds, categories) -> Redo | None:
    """The done text for the whole group, when the reply `text` (one remove or one replace of a member)
    left some of it as it was in the picture it made, `after`; else None."""
    claims = parse_done(text, classes, backgrounds)
    if claims is None or len(claims) != 1 or claims[0].kind not in ("remove", "replace"):
        return None
    slots = group_members(user_text, before, classes, categories)
    c = claims[0]
    if slots is None or len(slots) < 2 or c.cls not in {before.labels[r][k] for r, k in slots}:
        return None
    if all(after.labels[r][k] != before.labels[r][k] for r, k in slots):
        return None  # every member changed
    members = [before.labels[r][k] for r, k in slots]
    if c.kind == "remove":
        everything = len(members) == sum(label is not None for row in before.labels for label in row)
        return Redo("Done: removed everything." if everything else f"Done: removed {the_group(members)}.")
    return Redo(f"Done: {the_group(members)} are now {plural(c.new)}.")
