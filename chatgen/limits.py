"""The server's limits: upload size, queue size and turns per minute per visitor.

`Limits` holds the numbers (`chatgen ui --max-upload-bytes --queue-size --turns-per-minute`;
concurrent generations are `--concurrency`). Each refusal is one friendly `ChatgenError` sentence,
raised before anything changes, so the conversation (and, in the UI, the typed message) is kept:

- an upload larger than `max_upload_bytes` is refused from its size on disk, before it is opened;
- a visitor (the gradio session hash of a browser tab, or an API session id) may start at most
  `turns_per_minute` turns in any 60 seconds (`TurnLimiter`, a sliding window); the refusal says
  how many seconds to wait;
- beyond `queue_size` waiting requests gradio itself answers "the queue is full, try again".
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import ChatgenError

WINDOW_S = 60.0  # the turns-per-minute window, in seconds
SWEEP_EVERY = 1024  # forget idle visitors after this many admitted turns (bounds the memory)


@dataclass
class Limits:
    """What one server allows; the defaults are far above what one person does."""

    max_upload_bytes: int = 50 * 2**20  # the largest uploaded file (an image, a mask, a session .zip), in bytes
    queue_size: int = 256  # requests that may wait in gradio's queue; one more is told to try again
    turns_per_minute: int = 60  # turns one visitor may start in any 60 s (0 = no limit)

    def __post_init__(self):
        for name, low in (("max_upload_bytes", 1), ("queue_size", 1), ("turns_per_minute", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ChatgenError(f"{name} must be a whole number of at least {low}, got {value!r}")


def check_upload_size(path: str | os.PathLike, limit: int, what: str = "the upload") -> None:
    """Refuse a file over `limit` bytes from its size alone (nothing is read); errors name the file, not its folder."""
    if not isinstance(path, (str, os.PathLike)):
        return  # not a file name: whoever opens it says so
    try:
        size = os.stat(path).st_size
    except (OSError, ValueError):
        return  # a missing file is reported by whoever opens it
    if size > limit:
        name = Path(path).name or what
        raise ChatgenError(f"{name} is {_size(size)}, over the upload limit of {_size(limit)}: please send a smaller file")


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.1f} KB" if n >= 2**10 else f"{n} bytes"


class TurnLimiter:
    """At most `per_minute` turns per visitor in any 60 s window; thread-safe.

    `take(visitor)` admits a turn (and counts it) or raises a ChatgenError saying how many seconds
    to wait. A visitor of None (a direct call, no browser or API session) is never limited."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute  # turns per visitor per window (0 = no limit)
        self.clock = clock  # seconds, monotonic (tests pass a fake one)
        self._starts: dict[str, deque[float]] = {}  # visitor -> start times of its recent turns, oldest first
        self._taken = 0  # admitted turns since the last sweep
        self._lock = threading.Lock()  # guards _starts and _taken

    def take(self, visitor: str | None) -> None:
        if not self.per_minute or visitor is None:
            return
        now = self.clock()
        with self._lock:
            starts = self._starts.setdefault(visitor, deque(maxlen=self.per_minute))
            while starts and now - starts[0] >= WINDOW_S:
                starts.popleft()
            if len(starts) >= self.per_minute:
                wait = max(1, math.ceil(WINDOW_S - (now - starts[0])))
                raise ChatgenError(f"you are sending messages faster than {self.per_minute} a minute: please wait {wait} second{'s' * (wait != 1)} and send it again")
            starts.append(now)
            self._taken += 1
            if self._taken >= SWEEP_EVERY:
                self._sweep(now)

    def _sweep(self, now: float) -> None:
        """Forget visitors with no turn in the window (hold the lock)."""
        self._taken = 0
        for v in [v for v, s in self._starts.items() if not s or now - s[-1] >= WINDOW_S]:
            del self._starts[v]

    def __len__(self) -> int:
        return len(self._starts)
