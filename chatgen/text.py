"""Text a person sends, checked: `clean_text` is the boundary for every message and system prompt."""

from __future__ import annotations

import unicodedata

from .errors import ChatgenError

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
