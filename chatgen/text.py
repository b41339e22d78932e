"""Text a person sends, checked: `clean_text` is the boundary for every message and system prompt."""

from __future__ import annotations

import re
import string
import unicodedata

from .errors import ChatgenError

_WORD = re.compile(r"[A-Za-z]+")  # a word `Lexicon.correct` may repair
MAX_MESSAGE_CHARS = 4000  # the longest message (or system prompt) read at all; the model's token limit is checked too


def clean_text(text: object, what: str = "the message", limit: int | None = MAX_MESSAGE_CHARS, strip: bool = True) -> str:
    """`text` without control characters (line breaks and tabs stay) or unpaired surrogates,
    stripped (unless strip=False); refused in one sentence when it is not text or longer than `limit` characters."""
    if text is None:
        return ""
    if not isinstance(text, str):
        raise ChatgenError(f"{what} must be text, got {type(text).__name__}")
    if limit is not None and len(text) > limit:  # before any work on a pasted novel
        raise ChatgenError(f"{what} is {len(text):,} characters long; the limit is {limit:,} characters, so shorten it")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.isprintable():
        text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c) not in ("Cc", "Cs"))
    return text.strip() if strip else text


class Lexicon:
    """Typo repair for a model with a closed vocabulary (the embedded world's).

    A word the model never saw (not in `known`) is read as the one word of `targets` that a
    single human slip turns into it: two neighbouring letters swapped ("pnada"), one letter after
    the first left out ("tre", "rabit", "hw"), or one letter doubled ("carr"). Never a changed
    letter or a lost first one: "mouse" is not read as "house", nor "hat" as "cat" or "what", so a
    thing the world lacks is still named back as typed. When no target, or more than one, fits, the word stays as it is. `known` also holds
    words that are no targets (things outside the world: "cow" must not become "crow")."""

    def __init__(self, targets, known=()):
        self.targets = frozenset(w.lower() for w in targets)
        self.known = self.targets | frozenset(w.lower() for w in known)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Lexicon | None":
        return cls(d.get("targets", ()), d.get("known", ())) if d else None

    def slips_of(self, word: str) -> set[str]:
        """The targets that one slip turns into `word` (lower case): the candidates of `repair`."""
        swapped = {word[:i] + word[i + 1] + word[i] + word[i + 2:] for i in range(len(word) - 1)}
        missing = {word[:i] + c + word[i:] for i in range(1, len(word) + 1) for c in string.ascii_lowercase}  # never before the first letter: "hat" is not "what"
        doubled = {word[:i] + word[i + 1:] for i in range(1, len(word)) if word[i] == word[i - 1]}
        return ((swapped | missing | doubled) - {word}) & self.targets

    def repair(self, word: str) -> str | None:
        """The target `word` (lower case) is a slip of, or None."""
        if len(word) < 2 or word in self.known:
            return None
        found = self.slips_of(word)
        return next(iter(found)) if len(found) == 1 else None

    def correct(self, text: str) -> str:
        """`text` with each repairable word repaired (its case kept where it was capitalised)."""
        def fix(m: re.Match) -> str:
            w = m.group(0)
            better = self.repair(w.lower())
            if better is None:
                return w
            return better.upper() if w.isupper() and len(w) > 1 else better.capitalize() if w[0].isupper() else better

        return _WORD.sub(fix, text)
