"""Sessions kept on disk (`chatgen ui --data-dir DIR`): one zip per session, replaced atomically.

A `SessionFolder` holds `<id>.zip` files written by `Session.write_zip`. The front ends call
`save` after a change is complete (a turn's reply appended, an undo, an import), never while a
reply streams, so the file always holds whole turns:

1. `save` writes the archive to a temporary file in the same folder, flushes it to disk
   (`os.fsync`), renames it over `<id>.zip` (`os.replace`, atomic) and syncs the folder, so a
   crash at any point leaves either the old archive or the new one, never a mix.
2. `load` reads an archive back through `Session.read_zip` (checked like any upload:
   `session_files`), only for a well-formed id, so an id never names a path outside the folder.
3. Temporary files left by a crash between steps are removed when the folder is opened.

Ids are unguessable (`new_session_id`): a saved session is reachable only by its id.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import threading
from pathlib import Path

from .conversation import Session
from .errors import ChatgenError

SESSION_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")  # what an id may look like (it becomes a file name)
TEMP_SUFFIX = ".partial"  # a temporary archive not yet renamed into place


def new_session_id() -> str:
    """An unguessable session id (128 random bits, 32 hex digits)."""
    return secrets.token_hex(16)


def valid_id(sid: object) -> bool:
    return isinstance(sid, str) and SESSION_ID.fullmatch(sid) is not None


class SessionFolder:
    """Saved sessions by id, one zip archive each (see the module docstring)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)  # holds <id>.zip
        if self.folder.exists() and not self.folder.is_dir():
            raise ChatgenError(f"the data folder {self.folder} is a file; give a folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # one write at a time: the last save of a session wins
        for leftover in self.folder.glob(f".*{TEMP_SUFFIX}"):  # 3. a crash before the rename
            leftover.unlink(missing_ok=True)

    def path(self, sid: str) -> Path:
        if not valid_id(sid):
            raise ChatgenError(f"bad session id {sid!r}")
        return self.folder / f"{sid}.zip"

    def __contains__(self, sid: object) -> bool:
        return valid_id(sid) and self.path(sid).is_file()

    def save(self, sid: str, session: Session) -> Path:
        """1. Replace `<sid>.zip` by `session`, atomically and durably."""
        final = self.path(sid)
        with self._lock:
            fd, tmp = tempfile.mkstemp(prefix=f".{sid}.", suffix=TEMP_SUFFIX, dir=self.folder)
            os.close(fd)
            try:
                session.write_zip(tmp)
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
                os.replace(tmp, final)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            _sync_folder(self.folder)
        return final

    def load(self, sid: object) -> Session | None:
        """2. The saved session `sid`, or None when there is none (or the id is malformed)."""
        if sid not in self:
            return None
        return Session.read_zip(self.path(sid))


def browser_secret(data_dir: str | Path) -> str:
    """The key gradio encrypts the browser's copy of the session id with, kept in
    `<data_dir>/browser_secret` (made once, owner-only): gradio's default key is new at every
    start, so after a restart the browser's id could not be read and the tab lost its session."""
    path = Path(data_dir) / "browser_secret"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".browser_secret.", suffix=TEMP_SUFFIX, dir=path.parent)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)  # first writer wins when two servers start at once
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX; elsewhere the rename is all we can do)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
