"""Scripted dialogues: the YAML format, checked when loaded, and suites of dialogue files.

One dialogue per file; a folder (searched recursively for *.yaml / *.yml) or a glob of files
is a suite.

```yaml
id: dog_to_cat_basic     # default: the file name without .yaml; unique within a suite
seed: 7                  # optional sampling seed; default: the suite's (--seed, else 0)
mode: iterative          # iterative (default) | independent, see runner.py
tags: [replace]          # for --tags and the per-tag pass rates
description: free text   # optional, ignored
turns:
  - user: "draw a dog on the left and a tree on the right, on grass"
    image: start.png     # optional upload, relative to this file
    kind: draw           # optional turn kind for the per-kind pass rates (default: from expect)
    expect:
      reply: image       # image | text | clarify (a text reply without image ending in "?")
      scene:             # checks on the reply image, read back by chatgen.world.detect
        background: grass
        include: [{class: dog, count: 1, position: left}, {class: tree, position: right}]
        exclude: [{class: cat}]
        exact: true      # nothing else in the picture
      answer_any: [cat]  # the reply text holds at least one of these (whole words, any case)
      answer_all: [cat]  # ... all of these
      answer_none: [dog] # ... none of these
      preserve: {max_l1: 0.03, max_l2: 0.01}  # outside the changed region, vs the previous image
      drift: {max_l1: 0.05}                   # outside every region changed so far, vs the first image
      clip: {min_t: 0.2, min_i: 0.8}          # only scored when the run has --clip
  - undo: true           # or `user: /undo`: session.undo(), no model call, nothing scored
```

Positions in checks: a single word is a whole column (left, center, right) or row (top,
middle, bottom); a row-column pair ("top left", "middle center") is one slot. `count` (default
1) is the exact number of objects of that class within the position (anywhere when no
position). An exclude entry fails when the class is there at all (within its position, if any).

A scene check is *pinned* when `exact` is true, `background` is given and every include entry
names one slot with count 1: exactly one picture passes it, and the runner uses that picture
(rendered) as the reference of independent mode, the expected column of the report and the
previous scene of the next turn's changed region.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

from chatgen.errors import ChatgenError
from chatgen.images import load_image
from chatgen.world import BACKGROUNDS, CLASSES, Obj, Scene, slots_of

from .grid import ALL_SLOTS, Slot

MODES = ("iterative", "independent")
REPLY_KINDS = ("image", "text", "clarify")
UNDO_TEXT = "/undo"


class SuiteError(ChatgenError):
    """A malformed dialogue file: one line naming the file and the problem."""


# ---- the format as dataclasses ------------------------------------------------------------------
@dataclass(frozen=True)
class ObjSpec:
    """One include or exclude entry."""

    cls: str  # one of chatgen.world.CLASSES
    count: int = 1  # include: exactly this many within `position`; exclude: unused
    position: str | None = None  # a column/row word or a "row col" pair; None: anywhere

    @property
    def slots(self) -> tuple[Slot, ...]:
        return ALL_SLOTS if self.position is None else tuple(slots_of(self.position))

    @property
    def where(self) -> str:
        """" at left", " at top left", or "" for anywhere (for messages)."""
        return "" if self.position is None else f" at {self.position}"


@dataclass(frozen=True)
class SceneSpec:
    """Checks on a reply image, in world terms."""

    background: str | None = None  # expected background; None: not checked
    include: tuple[ObjSpec, ...] = ()  # objects that must be there, counted exactly
    exclude: tuple[ObjSpec, ...] = ()  # classes that must not be there
    exact: bool = False  # nothing but the included objects

    def pinned(self) -> Scene | None:
        """The only scene that passes, when the spec pins one (see the module doc); else None."""
        if not self.exact or self.background is None:
            return None
        if any(o.count != 1 or len(o.slots) != 1 for o in self.include):
            return None
        try:
            return Scene(self.background, tuple(Obj(o.cls, *o.slots[0]) for o in self.include))
        except ValueError:  # two objects in one slot, too many objects: nothing can pass
            return None

    def named_classes(self) -> set[str]:
        return {o.cls for o in self.include + self.exclude}


@dataclass(frozen=True)
class Limits:
    """Upper bounds on pixel change (0..1 scale); None = not checked."""

    max_l1: float | None = None  # mean absolute difference
    max_l2: float | None = None  # mean squared difference


@dataclass(frozen=True)
class ClipSpec:
    """Lower bounds on CLIP similarities; scored only when the run loads a CLIP model."""

    min_t: float | None = None  # CLIP-T: reply image vs the expected caption
    min_i: float | None = None  # CLIP-I: reply image vs the expected (pinned) picture


@dataclass(frozen=True)
class Expect:
    """What a turn's reply must satisfy; every field is optional."""

    reply: str | None = None  # image | text | clarify; None: not checked
    scene: SceneSpec | None = None  # checks on the reply image
    answer_any: tuple[str, ...] = ()  # the reply text contains one of these
    answer_all: tuple[str, ...] = ()  # ... all of these
    answer_none: tuple[str, ...] = ()  # ... none of these
    preserve: Limits | None = None  # change outside the edited region, vs the previous image
    drift: Limits | None = None  # change outside every edited region, vs the first image
    clip: ClipSpec | None = None  # CLIP-T / CLIP-I thresholds

    @property
    def wants_image(self) -> bool:
        return self.reply == "image" or (self.reply is None and any(x is not None for x in (self.scene, self.preserve, self.drift)))


@dataclass(frozen=True)
class EvalTurn:
    """One scripted user turn."""

    user: str  # the message text ("" for an undo)
    image: Image.Image | None = None  # the upload, loaded from the file next to the dialogue
    image_path: str | None = None  # that file, as written in the YAML
    undo: bool = False  # step back one turn instead of sending a message
    kind: str | None = None  # turn kind for the per-kind pass rates
    expect: Expect | None = None  # None: the turn is run but not scored

    @property
    def kind_name(self) -> str:
        """The kind reported: the explicit one, else from the expected reply."""
        if self.undo:
            return "undo"
        if self.kind:
            return self.kind
        if self.expect is not None and self.expect.reply:
            return self.expect.reply
        return "image" if self.expect is not None and self.expect.wants_image else "other"


@dataclass(frozen=True)
class EvalDialogue:
    """One scripted conversation."""

    id: str  # unique within a suite
    path: Path  # the YAML file
    turns: tuple[EvalTurn, ...]  # in order
    seed: int | None = None  # sampling seed; None: the suite's
    mode: str | None = None  # iterative | independent; None: the suite's (iterative)
    tags: tuple[str, ...] = ()  # labels for filtering and per-tag pass rates


# ---- parsing ------------------------------------------------------------------------------------
class _Where:
    """The file and the key path of the value being parsed, for error messages."""

    def __init__(self, path: Path, key: str = ""):
        self.path, self.key = path, key

    def __truediv__(self, key: str | int) -> "_Where":
        k = f"[{key}]" if isinstance(key, int) else (f".{key}" if self.key else key)
        return _Where(self.path, self.key + k)

    def fail(self, problem: str) -> SuiteError:
        return SuiteError(f"{self.path}: {self.key + ': ' if self.key else ''}{problem}")


def _mapping(v: Any, at: _Where, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(v, dict):
        raise at.fail(f"expected a mapping with keys {', '.join(allowed)}, got {type(v).__name__}")
    for k in v:
        if k not in allowed:
            raise at.fail(f"unknown key {k!r} (allowed: {', '.join(allowed)})")
    for k in required:
        if k not in v:
            raise at.fail(f"missing key {k!r}")
    return v


def _list(v: Any, at: _Where) -> list:
    if not isinstance(v, list):
        raise at.fail(f"expected a list, got {type(v).__name__}")
    return v


def _str(v: Any, at: _Where) -> str:
    if not isinstance(v, str) or not v.strip():
        raise at.fail(f"expected non-empty text, got {v!r}")
    return v


def _strings(v: Any, at: _Where) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    return tuple(_str(x, at / i) for i, x in enumerate(_list(v, at)))


def _int(v: Any, at: _Where, lo: int = 0) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise at.fail(f"expected an integer >= {lo}, got {v!r}")
    return v


def _number(v: Any, at: _Where) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
        raise at.fail(f"expected a number >= 0, got {v!r}")
    return float(v)


def _bool(v: Any, at: _Where) -> bool:
    if not isinstance(v, bool):
        raise at.fail(f"expected true or false, got {v!r}")
    return v


def _choice(v: Any, at: _Where, options: tuple[str, ...], what: str) -> str:
    if v not in options:
        raise at.fail(f"{v!r} is not {what}; use one of {', '.join(options)}")
    return v


def _obj_spec(v: Any, at: _Where, include: bool) -> ObjSpec:
    keys = ("class", "count", "position") if include else ("class", "position")
    d = _mapping(v, at, keys, required=("class",))
    cls = _choice(d["class"], at / "class", CLASSES, "a world class")
    count = _int(d["count"], at / "count", lo=1) if "count" in d else 1
    position = None
    if "position" in d:
        position = _str(d["position"], at / "position").strip().lower()
        try:
            slots_of(position)
        except ValueError:
            raise (at / "position").fail(f"{position!r} is not a position; use left, center, right, top, middle, bottom or a pair such as 'top left'") from None
    return ObjSpec(cls, count, position)


def _scene_spec(v: Any, at: _Where) -> SceneSpec:
    d = _mapping(v, at, ("background", "include", "exclude", "exact"))
    bg = _choice(d["background"], at / "background", BACKGROUNDS, "a world background") if "background" in d else None
    inc = tuple(_obj_spec(x, at / "include" / i, True) for i, x in enumerate(_list(d.get("include", []), at / "include")))
    exc = tuple(_obj_spec(x, at / "exclude" / i, False) for i, x in enumerate(_list(d.get("exclude", []), at / "exclude")))
    return SceneSpec(bg, inc, exc, _bool(d.get("exact", False), at / "exact"))


def _limits(v: Any, at: _Where) -> Limits:
    d = _mapping(v, at, ("max_l1", "max_l2"))
    if not d:
        raise at.fail("give max_l1 and/or max_l2")
    return Limits(*(_number(d[k], at / k) if k in d else None for k in ("max_l1", "max_l2")))


def _clip_spec(v: Any, at: _Where) -> ClipSpec:
    d = _mapping(v, at, ("min_t", "min_i"))
    if not d:
        raise at.fail("give min_t and/or min_i")
    for k in d:
        if not isinstance(d[k], (int, float)) or isinstance(d[k], bool) or not -1 <= d[k] <= 1:
            raise (at / k).fail(f"expected a cosine similarity between -1 and 1, got {d[k]!r}")
    return ClipSpec(*(float(d[k]) if k in d else None for k in ("min_t", "min_i")))


def _expect(v: Any, at: _Where) -> Expect:
    keys = ("reply", "scene", "answer_any", "answer_all", "answer_none", "preserve", "drift", "clip")
    d = _mapping(v, at, keys)
    e = Expect(
        reply=_choice(d["reply"], at / "reply", REPLY_KINDS, "a reply kind") if "reply" in d else None,
        scene=_scene_spec(d["scene"], at / "scene") if "scene" in d else None,
        answer_any=_strings(d["answer_any"], at / "answer_any") if "answer_any" in d else (),
        answer_all=_strings(d["answer_all"], at / "answer_all") if "answer_all" in d else (),
        answer_none=_strings(d["answer_none"], at / "answer_none") if "answer_none" in d else (),
        preserve=_limits(d["preserve"], at / "preserve") if "preserve" in d else None,
        drift=_limits(d["drift"], at / "drift") if "drift" in d else None,
        clip=_clip_spec(d["clip"], at / "clip") if "clip" in d else None,
    )
    if e.reply in ("text", "clarify"):
        for k in ("scene", "preserve", "drift", "clip"):
            if k in d:
                raise at.fail(f"{k} checks an image, but reply is {e.reply}")
    return e


def _turn(v: Any, at: _Where, folder: Path) -> EvalTurn:
    d = _mapping(v, at, ("user", "image", "undo", "kind", "expect"))
    undo = _bool(d.get("undo", False), at / "undo") or (isinstance(d.get("user"), str) and d["user"].strip() == UNDO_TEXT)
    if undo:
        extra = [k for k in d if k not in ("undo", "user")]
        if extra or d.get("user", UNDO_TEXT).strip() != UNDO_TEXT:
            raise at.fail(f"an undo turn takes nothing else (found {', '.join(extra) or 'user text'})")
        return EvalTurn(user="", undo=True)
    if "user" not in d:
        raise at.fail("missing key 'user' (the message text; or `undo: true`)")
    user = _str(d["user"], at / "user")
    image, image_path = None, None
    if "image" in d:
        image_path = _str(d["image"], at / "image")
        try:
            image = load_image(folder / image_path, what="uploaded image").convert("RGB")
        except ChatgenError as e:
            raise (at / "image").fail(str(e)) from None
    kind = _str(d["kind"], at / "kind") if "kind" in d else None
    expect = _expect(d["expect"], at / "expect") if "expect" in d else None
    return EvalTurn(user, image, image_path, False, kind, expect)


def load_dialogue(path: str | Path) -> EvalDialogue:
    """Read and check one dialogue file; raises SuiteError naming the file and the key."""
    path = Path(path)
    at = _Where(path)
    # 1. Parse the YAML.
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise at.fail(f"cannot read the file ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        raise at.fail(f"{line}not valid YAML ({getattr(e, 'problem', None) or type(e).__name__})") from None
    # 2. Check the top level, then every turn.
    d = _mapping(data, at, ("id", "seed", "mode", "tags", "description", "turns"), required=("turns",))
    turns = tuple(_turn(t, _Where(path, f"turn {i + 1}"), path.parent) for i, t in enumerate(_list(d["turns"], at / "turns")))
    if not any(not t.undo for t in turns):
        raise (at / "turns").fail("a dialogue needs at least one user turn")
    return EvalDialogue(
        id=_str(str(d["id"]) if "id" in d else path.stem, at / "id"),
        path=path,
        turns=turns,
        seed=_int(d["seed"], at / "seed") if "seed" in d else None,
        mode=_choice(d["mode"], at / "mode", MODES, "a mode") if "mode" in d else None,
        tags=_strings(d["tags"], at / "tags") if "tags" in d else (),
    )


def find_files(paths: list[str]) -> list[Path]:
    """Dialogue files named by files, folders (recursive) and globs, sorted, without duplicates."""
    files: list[Path] = []
    for p in paths:
        q = Path(p)
        if q.is_dir():
            found = sorted(f for f in q.rglob("*") if f.suffix in (".yaml", ".yml") and f.is_file())
        elif q.is_file():
            found = [q]
        else:
            found = sorted(Path(f) for f in glob.glob(p, recursive=True) if Path(f).suffix in (".yaml", ".yml"))
        if not found:
            raise SuiteError(f"{p}: no dialogue files (*.yaml) found")
        files += found
    return list(dict.fromkeys(files))


def load_suite(paths: list[str], tags: list[str] | None = None, limit: int | None = None) -> list[EvalDialogue]:
    """Every dialogue under `paths` (all checked), then those with any of `tags`, then the first `limit`."""
    # 1. Load and check every file, even those the filters drop: a broken suite fails early.
    dialogues = [load_dialogue(f) for f in find_files(paths)]
    seen: dict[str, Path] = {}
    for dlg in dialogues:
        if dlg.id in seen:
            raise SuiteError(f"{dlg.path}: id {dlg.id!r} is already used by {seen[dlg.id]}")
        seen[dlg.id] = dlg.path
    # 2. Filter.
    if tags:
        dialogues = [d for d in dialogues if set(d.tags) & set(tags)]
    if limit is not None:
        dialogues = dialogues[:limit]
    if not dialogues:
        raise SuiteError(f"no dialogues left after the filters (--tags {','.join(tags or [])})")
    return dialogues
