"""How a user's message looks: casing, end punctuation and the occasional typo.

`style` is applied to every user wording of `user_phrasing.py` after it is picked, so the
model sees "Can you draw a dog?", "draw a dog!" and "DRAW A DOG" alike. A typo never
touches a word the model must read exactly (a class, background or category name).
"""

from __future__ import annotations

import contextlib
import random

from chatgen.world.scene import BACKGROUNDS, CATEGORIES, CLASSES, plural
from chatgen.world.user_phrasing import BG_SCENE_WORDS, OUT_OF_WORLD

# Words a typo never touches.
PROTECTED: frozenset[str] = frozenset(
    list(CLASSES) + [plural(c) for c in CLASSES] + list(OUT_OF_WORLD) + list(BACKGROUNDS)
    + [w for ws in BG_SCENE_WORDS.values() for w in ws] + list(CATEGORIES) + ["things"]
)


def typo(rng: random.Random, text: str) -> str:
    """One human typo (swap two letters, drop or double a letter) in one word of 4+ letters
    that is not a class, background or category name; the first letter is never touched."""
    words = text.split(" ")
    cands = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha() and w.lower() not in PROTECTED]
    if not cands:
        return text
    i = rng.choice(cands)
    w = words[i]
    k = rng.randrange(1, len(w) - 1)
    op = rng.choice(["swap", "drop", "double"])
    if op == "swap":
        w = w[:k] + w[k + 1] + w[k] + w[k + 2 :]
    elif op == "drop":
        w = w[:k] + w[k + 1 :]
    else:
        w = w[:k] + w[k] + w[k:]
    words[i] = w
    return " ".join(words)


_TYPOS = [True]  # off inside `without_typos()`


@contextlib.contextmanager
def without_typos():
    """Messages without `style`'s typos (the same random draws otherwise): the world's words as spelled."""
    _TYPOS[0] = False
    try:
        yield
    finally:
        _TYPOS[0] = True


def style(rng: random.Random, text: str, question: bool = False, typo_rate: float = 0.05) -> str:
    """Casing, end punctuation and the occasional typo of a user message."""
    # 1. Typo.
    if rng.random() < typo_rate and _TYPOS[0]:
        text = typo(rng, text)
    # 2. End punctuation ("can you ...?" already has its own).
    if not text.endswith("?"):
        if question:
            text += rng.choices(["?", "", " ?"], weights=[75, 22, 3])[0]
        else:
            text += rng.choices(["", ".", "!"], weights=[55, 33, 12])[0]
    # 3. Casing.
    roll = rng.random()
    if roll < 0.25:
        text = " ".join("I" if w == "i" else ("I" + w[1:] if w.startswith("i'") else w) for w in text.split(" "))
        text = text[0].upper() + text[1:]
    elif roll < 0.27:
        text = text.upper()
    return text
