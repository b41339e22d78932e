"""Server-side conversations by id, for the API: the least recently used are dropped beyond capacity.

With a `SessionFolder` (`--data-dir`) every session is also kept on disk: `new` and `save`
write it, and `get` reads back one that is no longer in memory (dropped, or the server restarted).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable

from .autosave import SessionFolder, new_session_id
from .conversation import Session
from .errors import ChatgenError


class SessionStore:
    """API sessions by id; beyond `capacity` the least recently used one is dropped from memory."""

    def __init__(self, capacity: int = 256, on_drop: Callable[[str], None] | None = None, saved: SessionFolder | None = None):
        if capacity < 1:
            raise ChatgenError(f"session capacity must be at least 1, got {capacity}")
        self.capacity = capacity  # how many sessions are kept in memory
        self.on_drop = on_drop  # called with the id of a dropped session (e.g. to delete its files)
        self.saved = saved  # where sessions are kept on disk (None: nowhere, a dropped session is gone)
        self._items: OrderedDict[str, tuple[Session, threading.Lock]] = OrderedDict()  # id -> (session, its lock), oldest use first
        self._lock = threading.Lock()  # guards _items

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, sid: str) -> bool:
        return sid in self._items

    def new(self, session: Session | None = None) -> str:
        """Keep `session` (default: a new empty one) under a new unguessable id and return the id."""
        sid = new_session_id()
        session = session or Session()
        if self.saved is not None:
            self.saved.save(sid, session)
        self._put(sid, session)
        return sid

    def save(self, sid: str, session: Session) -> None:
        """Write a session to disk after a completed change (hold its lock); nothing without a data folder."""
        if self.saved is not None:
            self.saved.save(sid, session)

    def get(self, sid: str) -> tuple[Session, threading.Lock]:
        """The session and its lock (hold the lock while changing the session)."""
        with self._lock:
            if isinstance(sid, str) and sid in self._items:
                self._items.move_to_end(sid)
                return self._items[sid]
            session = self.saved.load(sid) if self.saved is not None else None  # checked like an upload
            if session is None:
                raise ChatgenError(f"unknown session id {sid!r}: call /new_session first (the server keeps the {self.capacity} most recent sessions)")
        return self._put(sid, session)

    def _put(self, sid: str, session: Session) -> tuple[Session, threading.Lock]:
        dropped = []
        with self._lock:
            item = self._items.setdefault(sid, (session, threading.Lock()))  # a concurrent get may have put it first
            self._items.move_to_end(sid)
            while len(self._items) > self.capacity:
                dropped.append(self._items.popitem(last=False)[0])
        for d in dropped:
            if self.on_drop:
                self.on_drop(d)
        return item
