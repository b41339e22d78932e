"""Server-side conversations by id, for the API: the least recently used are dropped beyond capacity."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from typing import Callable

from .conversation import Session
from .errors import ChatgenError


class SessionStore:
    """API sessions by id; beyond `capacity` the least recently used one is dropped."""

    def __init__(self, capacity: int = 256, on_drop: Callable[[str], None] | None = None):
        if capacity < 1:
            raise ChatgenError(f"session capacity must be at least 1, got {capacity}")
        self.capacity = capacity  # how many sessions are kept
        self.on_drop = on_drop  # called with the id of a dropped session (e.g. to delete its files)
        self._items: OrderedDict[str, tuple[Session, threading.Lock]] = OrderedDict()  # id -> (session, its lock), oldest use first
        self._lock = threading.Lock()  # guards _items

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, sid: str) -> bool:
        return sid in self._items

    def new(self, session: Session | None = None) -> str:
        """Keep `session` (default: a new empty one) under a new unguessable id and return the id."""
        sid = uuid.uuid4().hex
        dropped = []
        with self._lock:
            self._items[sid] = (session or Session(), threading.Lock())
            while len(self._items) > self.capacity:
                dropped.append(self._items.popitem(last=False)[0])
        for d in dropped:
            if self.on_drop:
                self.on_drop(d)
        return sid

    def get(self, sid: str) -> tuple[Session, threading.Lock]:
        """The session and its lock (hold the lock while changing the session)."""
        with self._lock:
            if not isinstance(sid, str) or sid not in self._items:
                raise ChatgenError(f"unknown session id {sid!r}: call /new_session first (the server keeps the {self.capacity} most recent sessions)")
            self._items.move_to_end(sid)
            return self._items[sid]
