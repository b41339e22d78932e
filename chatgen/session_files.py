"""Reading a saved session back from a folder or a zip archive that anyone may have made.

A session file is untrusted input. `read_zip` and `read_folder` hand `build` a `SavedFiles`
whose two readers check everything on the way in:

1. The archive: a zip file of at most `MAX_ARCHIVE_BYTES`, at most `MAX_MEMBERS` members whose
   declared sizes stay within `MAX_MEMBER_BYTES` each and `MAX_TOTAL_BYTES` together; no
   encrypted member.
2. Member names: relative, no "..", no drive letter, no duplicates (nothing is ever extracted;
   members are read in memory).
3. Every read is capped at its limit whatever the header declares (a zip bomb stops there).
4. `meta()`: session.json parses as JSON and has the shape `Session.to_dict` writes: typed
   fields, turn ids "t<n>", parents that exist and form no cycle, image names that are plain
   file names, text cleaned like a message.
5. `image()`: a PNG by its signature, decoded through `read_image`, the session's pixels within
   `MAX_SESSION_PIXELS` together.

Every refusal is a one-sentence `ChatgenError`.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable, TypeVar

from PIL import Image

from .errors import ChatgenError
from .images import read_image
from .text import clean_text

FORMAT_VERSION = 1  # the session.json layout version
MAX_ARCHIVE_BYTES = 512 << 20  # the largest archive file we open (512 MiB)
MAX_MEMBERS = 10_000  # the most files a session archive may hold
MAX_MEMBER_BYTES = 64 << 20  # the largest file inside (64 MiB unpacked)
MAX_TOTAL_BYTES = 512 << 20  # all files inside together, unpacked (512 MiB)
MAX_JSON_BYTES = 16 << 20  # session.json (16 MiB)
MAX_SESSION_PIXELS = 250_000_000  # every image of one session together (250 megapixels)
MAX_TURNS = 5_000  # the most turns one session may hold
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMAGE_KEYS = ("user_image", "user_mask", "assistant_image")  # Turn fields stored as PNG files
_TURN_ID = re.compile(r"t[1-9][0-9]{0,8}")
_FILE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}\.png")
_TYPES = {"id": str, "parent": (str, type(None)), "user_text": str, "assistant_text": str, "user_ids": list, "reply_ids": list, "token_model": str, "params": dict, "created": (int, float), **{k: (str, type(None)) for k in IMAGE_KEYS}}
T = TypeVar("T")


class SavedFiles:
    """The files of one saved session, read with caps (see the module docstring)."""

    def __init__(self, read: Callable[[str, int], bytes], where: str):
        self._read = read  # (file name, byte cap) -> its bytes; a ChatgenError when missing or over the cap
        self.where = where  # names the session in errors, e.g. "session.zip"
        self._pixels = 0  # pixels decoded so far

    def meta(self) -> dict:
        """session.json, parsed and checked."""
        where = f"session.json in {self.where}"
        try:
            d = json.loads(self._read("session.json", MAX_JSON_BYTES).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise ChatgenError(f"{where} is not a valid chatgen session (it is not JSON: {e})") from None
        check_session_dict(d, where)
        return d

    def image(self, name: str, what: str, mask: bool = False) -> Image.Image:
        """The PNG `name` (a mask as an 'L' mask)."""
        data = self._read(name, MAX_MEMBER_BYTES)
        if not data.startswith(PNG_SIGNATURE):
            raise ChatgenError(f"{name} in {self.where} is not a PNG file, though session.json names it as the {what}")
        img = read_image(data, what=f"{name} in {self.where}", mask=mask)
        self._pixels += img.width * img.height
        if self._pixels > MAX_SESSION_PIXELS:
            raise ChatgenError(f"the images in {self.where} add up to more than {MAX_SESSION_PIXELS / 1e6:.0f} megapixels")
        return img


def read_folder(folder: str | Path, build: Callable[[SavedFiles], T]) -> T:
    """`build(files)` over a session folder written by `Session.save`."""
    folder = Path(folder)
    if not (folder / "session.json").is_file():
        raise ChatgenError(f"no saved session in {folder.name or folder} (session.json is missing)")

    def read(name: str, cap: int) -> bytes:
        p = folder / name  # names are plain file names (checked in session.json)
        if not p.is_file():
            raise ChatgenError(f"{folder.name} is missing {name}, which session.json names")
        with open(p, "rb") as f:
            data = f.read(cap + 1)
        if len(data) > cap:
            raise ChatgenError(f"{name} in {folder.name} is over the {cap >> 20} MiB limit of a session file")
        return data

    return build(SavedFiles(read, folder.name))


def read_zip(path: str | Path, build: Callable[[SavedFiles], T]) -> T:
    """`build(files)` over a session archive (from `Session.write_zip`, or a zip of a session folder)."""
    # 1. The archive itself.
    p = Path(path)
    where = p.name
    if not p.is_file():
        raise ChatgenError(f"session archive not found: {where}")
    if p.stat().st_size > MAX_ARCHIVE_BYTES:
        raise ChatgenError(f"{where} is over the {MAX_ARCHIVE_BYTES >> 20} MiB limit of a session archive")
    if not zipfile.is_zipfile(p):
        raise ChatgenError(f"{where} is not a zip archive; export a session first and upload that file")
    try:
        with zipfile.ZipFile(p) as z:
            members = _check_members(z.infolist(), where)
            # 2. session.json (the shallowest one) and the files next to it.
            metas = sorted((n for n in members if PurePosixPath(n).name == "session.json"), key=lambda n: n.count("/"))
            if not metas:
                raise ChatgenError(f"{where} holds no chatgen session (session.json is missing)")
            root = str(PurePosixPath(metas[0]).parent)

            def read(name: str, cap: int) -> bytes:
                info = members.get(name if root == "." else f"{root}/{name}")
                if info is None:
                    raise ChatgenError(f"{where} is missing {name}, which session.json names")
                if info.file_size > cap:
                    raise ChatgenError(f"{name} in {where} is over the {cap >> 20} MiB limit of a session file")
                with z.open(info) as f:  # 3. capped, whatever the header says
                    data = f.read(cap + 1)
                if len(data) > cap:
                    raise ChatgenError(f"{name} in {where} unpacks to more than {cap >> 20} MiB")
                return data

            return build(SavedFiles(read, where))
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError) as e:
        raise ChatgenError(f"{where} is a damaged zip archive ({type(e).__name__}: {e})") from None


def _check_members(infos: list[zipfile.ZipInfo], where: str) -> dict[str, zipfile.ZipInfo]:
    """Members by name, refused when too many, too large, encrypted or leaving their folder."""
    if len(infos) > MAX_MEMBERS:
        raise ChatgenError(f"{where} holds {len(infos):,} files; a session archive holds at most {MAX_MEMBERS:,}")
    total, members = 0, {}
    for info in infos:
        raw = info.filename
        name = PurePosixPath(raw.replace("\\", "/"))
        if name.is_absolute() or ".." in name.parts or re.match(r"[A-Za-z]:", raw) or "\0" in raw:
            raise ChatgenError(f"{where} holds an unsafe path ({raw!r}) that leaves its folder")
        if info.flag_bits & 0x1:
            raise ChatgenError(f"{where} holds an encrypted file ({raw!r}); export the session again without a password")
        if info.file_size > MAX_MEMBER_BYTES:
            raise ChatgenError(f"{raw!r} in {where} is over the {MAX_MEMBER_BYTES >> 20} MiB limit of a session file")
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise ChatgenError(f"{where} unpacks to more than {MAX_TOTAL_BYTES >> 20} MiB, the limit of a session archive")
        if raw in members:
            raise ChatgenError(f"{where} holds two files named {raw!r}")
        members[raw] = info
    return members


def check_session_dict(d: object, where: str) -> None:
    """Refuse a session.json whose shape is not what `Session.to_dict` writes; cleans its text in place."""

    def bad(why: str) -> ChatgenError:
        return ChatgenError(f"{where} is not a valid chatgen session ({why})")

    # 1. The top level.
    if not isinstance(d, dict):
        raise bad(f"it holds a {type(d).__name__}, not an object")
    if d.get("format", FORMAT_VERSION) != FORMAT_VERSION:
        raise bad(f"format {d.get('format')!r}; this chatgen reads format {FORMAT_VERSION}")
    for key, kind in (("turns", list), ("head", (str, type(None))), ("redo", list), ("next", int), ("system", str)):
        if key not in d and key != "system":
            raise bad(f"{key!r} is missing")
        if key in d and (not isinstance(d[key], kind) or isinstance(d[key], bool)):
            raise bad(f"{key!r} has the wrong type")
    d["system"] = clean_text(d.get("system", ""), "the system prompt", None)
    if len(d["turns"]) > MAX_TURNS:
        raise bad(f"{len(d['turns']):,} turns; the limit is {MAX_TURNS:,}")
    # 2. Every turn: typed fields, a fresh id, plain image file names.
    ids: dict[str, object] = {}
    for i, t in enumerate(d["turns"], 1):
        if not isinstance(t, dict):
            raise bad(f"turn {i} is not an object")
        for key in ("id", "parent", "user_text"):
            if key not in t:
                raise bad(f"turn {i} has no {key!r}")
        for key, value in t.items():
            if key not in _TYPES:
                raise bad(f"turn {i} has an unknown field {key!r}")
            if not isinstance(value, _TYPES[key]) or isinstance(value, bool):
                raise bad(f"turn {i}'s {key!r} has the wrong type")
        if not _TURN_ID.fullmatch(t["id"]) or t["id"] in ids:
            raise bad(f"turn {i} has a bad or repeated id {t['id']!r}")
        for key in ("user_ids", "reply_ids"):
            if not all(type(x) is int and 0 <= x < 2**31 for x in t.get(key, [])):
                raise bad(f"turn {i}'s {key!r} are not token ids")
        for key in IMAGE_KEYS:
            if t.get(key) is not None and not _FILE_NAME.fullmatch(t[key]):
                raise bad(f"turn {i}'s {key!r} is not a plain .png file name")
        if "created" in t and not math.isfinite(t["created"]):
            raise bad(f"turn {i}'s 'created' is not a time")
        for key in ("user_text", "assistant_text"):
            if key in t:
                t[key] = clean_text(t[key], f"turn {i}'s text", None)
        ids[t["id"]] = t["parent"]
    # 3. The tree: parents exist and lead back to the start; head and redo name turns.
    rooted: set = {None}  # turns known to lead back to the start
    for tid in ids:
        path, cur = [], tid
        while cur not in rooted:
            if cur not in ids:
                raise bad(f"turn {tid}'s parent {cur!r} is not in the session")
            if cur in path:
                raise bad(f"turn {tid}'s parents form a cycle")
            path.append(cur)
            cur = ids[cur]
        rooted.update(path)
    for tid in [d["head"], *d["redo"]]:
        if tid is not None and (not isinstance(tid, str) or tid not in ids):
            raise bad(f"it names a turn {tid!r} that it does not hold")
    d["next"] = max([d["next"], 1, *(int(t[1:]) + 1 for t in ids)])
