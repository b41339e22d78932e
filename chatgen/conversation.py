"""Conversations as a version tree of turns: undo, redo, branches, and a folder round trip.

A `Session` holds every turn ever made. Each turn points to its parent, so the turns form a
tree; `head` is the turn the conversation currently continues from. Undo moves the head to the
parent, redo moves it back, and sending a message after an undo (or after `branch`) starts a
new branch next to the old one, which stays available.

A session is saved as `session.json` plus one PNG per image, in a folder (`save` / `load`) or in
a zip archive (`write_zip` / `read_zip`, members read and written in memory).
"""

from __future__ import annotations

import json
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from . import session_files
from .errors import ChatgenError
from .images import png_bytes
from .session_files import FORMAT_VERSION


@dataclass
class Message:
    """What a person sends in one turn."""

    text: str = ""  # the request or question
    image: Image.Image | None = None  # an optional upload
    mask: Image.Image | None = None  # optional 'L' mask over the current image: 255 = may change


@dataclass
class Turn:
    """One exchange: the user's message and the assistant's reply."""

    id: str  # unique within the session, e.g. "t3"
    parent: str | None  # the turn this one continues from; None for the first turn
    user_text: str  # what the user typed
    user_image: Image.Image | None = None  # the user's upload, if any
    user_mask: Image.Image | None = None  # the user's edit mask, if any
    assistant_text: str = ""  # the reply's text part
    assistant_image: Image.Image | None = None  # the reply's image, if any
    user_ids: list[int] = field(default_factory=list)  # token ids of the user part (role marker .. <eot>)
    reply_ids: list[int] = field(default_factory=list)  # token ids of the reply (after <assistant>, incl. <eot>)
    token_model: str = ""  # which backend/vocabulary the ids belong to; ids are rebuilt when it differs
    params: dict = field(default_factory=dict)  # generation parameters (seed, temperature, ...)
    created: float = field(default_factory=time.time)  # unix time

    _IMAGES = session_files.IMAGE_KEYS  # the fields saved as PNG files

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("id", "parent", "user_text", "assistant_text", "user_ids", "reply_ids", "token_model", "params", "created")}
        for k in self._IMAGES:
            d[k] = f"{self.id}_{k}.png" if getattr(self, k) is not None else None
        return d

    def png_text(self) -> dict[str, str]:
        """PNG text chunks of the reply image that let anyone reproduce it (model, seed, parameters)."""
        meta = self.params.get("metadata")
        return {"chatgen": json.dumps(meta, sort_keys=True)} if meta else {}


class Session:
    """A branchable conversation history."""

    def __init__(self, system: str = ""):
        self.system = system  # an optional system prompt
        self.turns: dict[str, Turn] = {}  # every turn ever made, by id
        self.head: str | None = None  # the turn the conversation continues from (None: empty)
        self._redo: list[str] = []  # turns undone, most recent last
        self._next = 1  # next turn number

    # ---- reading ----------------------------------------------------------------------------
    def path(self, head: str | None = "current") -> list[Turn]:
        """The turns from the first one to `head` (default: the current head)."""
        tid = self.head if head == "current" else head
        out = []
        while tid is not None:
            t = self.turns[tid]
            out.append(t)
            tid = t.parent
        return out[::-1]

    def __len__(self) -> int:
        return len(self.path())

    def children(self, turn_id: str | None) -> list[Turn]:
        return [t for t in self.turns.values() if t.parent == turn_id]

    def branches(self) -> list[list[Turn]]:
        """Every branch as the path from the first turn to a leaf, oldest leaf first."""
        leaves = [t for t in self.turns.values() if not self.children(t.id)]
        return [self.path(t.id) for t in sorted(leaves, key=lambda t: int(t.id[1:]))]

    def latest_image(self) -> tuple[Turn, str] | tuple[None, None]:
        """(turn, "assistant_image" or "user_image") of the newest image in the current branch."""
        for t in reversed(self.path()):
            for kind in ("assistant_image", "user_image"):  # a reply image is newer than its turn's upload
                if getattr(t, kind) is not None:
                    return t, kind
        return None, None

    def last_image(self) -> Image.Image | None:
        """The most recent image in the current branch (assistant's or an upload)."""
        turn, kind = self.latest_image()
        return getattr(turn, kind) if turn is not None else None

    def images(self) -> list[tuple[str, Image.Image]]:
        """(turn id, image) for every assistant image of the current branch, oldest first."""
        return [(t.id, t.assistant_image) for t in self.path() if t.assistant_image is not None]

    # ---- changing ---------------------------------------------------------------------------
    def new_turn_id(self) -> str:
        return f"t{self._next}"

    def append(self, turn: Turn) -> Turn:
        """Add a finished turn after the head; it becomes the head. Clears redo."""
        if turn.id in self.turns:
            raise ValueError(f"turn id {turn.id} already exists")
        turn.parent = self.head
        self.turns[turn.id] = turn
        self._next = max(self._next, int(turn.id[1:]) + 1)
        self.head = turn.id
        self._redo.clear()
        return turn

    def undo(self) -> Turn:
        """Step back one turn; returns the undone turn."""
        if self.head is None:
            raise ChatgenError("nothing to undo")
        t = self.turns[self.head]
        self._redo.append(t.id)
        self.head = t.parent
        return t

    def redo(self) -> Turn:
        """Step forward again along the turns undone last."""
        if not self._redo:
            raise ChatgenError("nothing to redo")
        t = self.turns[self._redo.pop()]
        self.head = t.id
        return t

    @property
    def can_undo(self) -> bool:
        return self.head is not None

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def branch(self, n: int) -> None:
        """Continue from after turn `n` (1-based, in the current branch; 0 = from the start).

        The turns after `n` stay in the tree (and `redo` walks back to them); the next message
        starts a new branch.
        """
        path = self.path()
        if not 0 <= n <= len(path):
            raise ChatgenError(f"branch point must be between 0 and {len(path)}, got {n}")
        if n == len(path):
            return
        self._redo = [t.id for t in reversed(path[n:])]
        self.head = path[n - 1].id if n > 0 else None

    def checkout(self, turn_id: str | None) -> None:
        """Make any turn the head (e.g. a click on an older image continues from it)."""
        if turn_id is not None and turn_id not in self.turns:
            raise ChatgenError(f"no turn {turn_id!r} in this session")
        old = self.path()
        self.head = turn_id
        new_ids = {t.id for t in self.path()}
        # redo can walk back down the old branch when the new head is on it
        self._redo = [t.id for t in reversed(old) if t.id not in new_ids] if self.head in {t.id for t in old} or self.head is None else []

    # ---- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": FORMAT_VERSION,
            "system": self.system,
            "head": self.head,
            "redo": list(self._redo),
            "next": self._next,
            "turns": [t.to_dict() for t in self.turns.values()],
        }

    def save(self, folder: str | Path) -> Path:
        """Write `session.json` and one PNG per image into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in self._files():
            (folder / name).write_bytes(data)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "Session":
        """Read a folder written by `save` (checked like an archive: see `session_files`)."""
        return session_files.read_folder(folder, cls._from_files)

    def write_zip(self, path: str | Path) -> Path:
        """Save the session as a zip archive (session.json + one PNG per image)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in self._files():
                z.writestr(name, data)
        return path

    @classmethod
    def read_zip(cls, path: str | Path) -> "Session":
        """Read an archive written by `write_zip` (or a zip of a saved session folder), in memory.

        Refused in one sentence (`session_files`): archives too large or with too many members,
        member paths that leave their folder, zip bombs, and members that are not what they
        claim (a .png that is not a PNG, a session.json of the wrong shape)."""
        return session_files.read_zip(path, cls._from_files)

    # ---- the files of a saved session ----------------------------------------------------------
    def _files(self):
        """(file name, bytes) of every image, then session.json."""
        for t in self.turns.values():
            for k in Turn._IMAGES:
                img = getattr(t, k)
                if img is not None:
                    yield f"{t.id}_{k}.png", png_bytes(img)
        yield "session.json", json.dumps(self.to_dict(), indent=1).encode()

    @classmethod
    def _from_files(cls, files: session_files.SavedFiles) -> "Session":
        """A session from checked saved files: session.json's shape is checked before any image is read."""
        d = files.meta()
        s = cls(system=d["system"])
        for td in d["turns"]:
            images = {k: (files.image(td[k], k.replace("_", " "), mask=k == "user_mask") if td.get(k) else None) for k in Turn._IMAGES}
            t = Turn(**{k: v for k, v in td.items() if k not in Turn._IMAGES}, **images)
            s.turns[t.id] = t
        s.head, s._redo, s._next = d["head"], list(d["redo"]), d["next"]
        return s
