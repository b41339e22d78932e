"""Another plan when a reply's text does not fit the message: the model's own alternatives, read on their face.

A reply of the embedded model starts with text that states what it does ("Here is a cat in the
center, on the beach.", "Done: removed the car.", "There are two animals."), and only then
draws. When that text shows a fault against the message (`Backend.text_faults`: it draws a
star for "one cloud", it answers "Hello!" to "so there are three clouds now?", it edits the
picture for "what's right above the car?"), `better_plan` samples a few other texts from the
same model for the same prompt (up to their first image code, at temperature 1: the model's own
distribution) and returns the most frequent one that shows fewer faults; the assistant then
goes on after that text (`Assistant.run`); a text sampled only once is not trusted. None when no sampled text is better: the first
reply stands. Nothing here knows the world: the faults come from the backend.
"""

from __future__ import annotations

import collections
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from .events import ReplyDone, TextDelta
from .params import GenerationParams

PLANS = 24  # texts sampled when the first one shows a fault
AGREED = 2  # a text sampled once may be a slip of sampling ("There are no picture,."): one is kept only when it came this often


@dataclass(frozen=True)
class Plan:
    """The text a reply goes on after, and why the first one was not kept."""

    text: str  # the chosen text
    first: str  # the reply's first text
    faults: list[str]  # what the first text showed
    sampled: int  # how many texts were sampled (0: `first` was mended)
    count: int  # how many of them were this text


def sample_texts(backend, prompt, params: GenerationParams, n: int, cancel: threading.Event | None = None) -> collections.Counter:
    """`n` texts the model starts its reply to `prompt` with (seeded from `params.seed`), each cut at its
    first image code; the counter holds how often each came. They are sampled together (a backend
    that batches concurrent replies decodes them in one batch; a seeded reply is the same either way)."""
    base = params.seed if params.seed is not None else 0

    def one(i: int) -> str | None:
        stop = threading.Event()
        q = GenerationParams(seed=(base * 7919 + 104729 * (i + 1)) % 2**31, temperature=1.0, top_k=50, max_new_tokens=params.max_text_tokens + 2,
                             max_text_tokens=params.max_text_tokens, previews=False, jacobi=0, lookup=0).check()
        text, whole = [], False
        for ev in backend.stream(prompt, q, cancel=stop):
            if cancel is not None and cancel.is_set():
                stop.set()
            if isinstance(ev, TextDelta):
                text.append(ev.text)
            elif isinstance(ev, ReplyDone):
                whole = whole or not ev.cancelled
            else:  # the first image event: the text is whole
                whole = True
                stop.set()
        return "".join(text) if whole and "".join(text).strip() else None

    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="chatgen-plan") as pool:
        texts = list(pool.map(one, range(n)))
    return collections.Counter(t for t in texts if t is not None)


def better_plan(first: str, faults_of: Callable[[str], list[str]], backend, prompt, params: GenerationParams, cancel: threading.Event | None = None,
                n: int = PLANS, mend: Callable[[str], str | None] | None = None) -> Plan | None:
    """The text to go on after when `first` shows faults: `first` mended (`mend`: "I can't draw a
    pimodax" naming back the snowman asked for) when that fits, else the sampled text (the most
    frequent of those with the fewest faults, fewer than `first`'s); None when none is better."""
    faults = faults_of(first)
    if not faults:
        return None
    mended = mend(first) if mend is not None else None
    if mended is not None and len(faults_of(mended)) < len(faults):
        return Plan(mended, first, faults, 0, 0)
    found = sample_texts(backend, prompt, params, n, cancel)
    scored = sorted(((len(faults_of(t)), -count, t) for t, count in found.items() if count >= AGREED))
    if not scored or scored[0][0] >= len(faults):
        return None
    return Plan(scored[0][2], first, faults, n, -scored[0][1])
