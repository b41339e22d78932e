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

The format is the dataclasses below, one per YAML mapping, validated by pydantic (unknown keys
are errors); a malformed file raises SuiteError, one line naming the file, the turn and the key.
"""

from __future__ import annotations

import dataclasses
import glob
import typing
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Callable

import yaml
from PIL import Image
from pydantic import BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.dataclasses import dataclass

from chatgen.errors import ChatgenError
from chatgen.images import read_image
from chatgen.world import BACKGROUNDS, CLASSES, Obj, Scene, slots_of

from .grid import ALL_SLOTS, Slot

MODES = ("iterative", "independent")
REPLY_KINDS = ("image", "text", "clarify")
UNDO_TEXT = "/undo"

# Every mapping of the format: unknown keys are errors; uploads are PIL images.
FORMAT = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class SuiteError(ChatgenError):
    """A malformed dialogue file: one line naming the file and the problem."""


# ---- values: each check raises ValueError with the sentence a person reads -----------------------
def _text(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"expected non-empty text, got {v!r}")
    return v


def _listed(v: Any) -> Any:
    """One text stands for a list of one."""
    return [v] if isinstance(v, str) else v


def _integer(lo: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise ValueError(f"expected an integer >= {lo}, got {v!r}")
        return v

    return check


def _limit(v: Any) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
        raise ValueError(f"expected a number >= 0, got {v!r}")
    return float(v)


def _cosine(v: Any) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not -1 <= v <= 1:
        raise ValueError(f"expected a cosine similarity between -1 and 1, got {v!r}")
    return float(v)


def _flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {v!r}")
    return v


def _one_of(options: tuple[str, ...], what: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in options:
            raise ValueError(f"{v!r} is not {what}; use one of {', '.join(options)}")
        return v

    return check


def _position(v: Any) -> str:
    position = _text(v).strip().lower()
    try:
        slots_of(position)
    except ValueError:
        raise ValueError(f"{position!r} is not a position; use left, center, right, top, middle, bottom or a pair such as 'top left'") from None
    return position


def _optional(check: Callable[[Any], Any]) -> BeforeValidator:
    """`check` for a key that may be left out (None in Python; a null in a file is refused later)."""
    return BeforeValidator(lambda v: None if v is None else check(v))


def _no_count(v: Any) -> Any:
    """An exclude entry has no count: the class must not be there at all."""
    if isinstance(v, dict) and "count" in v:
        raise ValueError("unknown key 'count' (allowed: class, position)")
    return v


def _some_of(spec: Any, *keys: str) -> Any:
    """`spec` when at least one of `keys` is set: a mapping of bounds with none in it is a slip."""
    if all(getattr(spec, k) is None for k in keys):
        raise ValueError(f"give {' and/or '.join(keys)}")
    return spec


Text = Annotated[str, BeforeValidator(_text)]
OptionalText = Annotated[str | None, _optional(_text)]
Texts = Annotated[tuple[Text, ...], BeforeValidator(_listed)]
Flag = Annotated[bool, BeforeValidator(_flag)]


# ---- the format: one dataclass per YAML mapping, validated by pydantic ----------------------------
@dataclass(frozen=True, config=FORMAT)
class ObjSpec:
    """One include or exclude entry."""

    cls: Annotated[str, BeforeValidator(_one_of(CLASSES, "a world class"))] = Field(alias="class")  # one of chatgen.world.CLASSES
    count: Annotated[int, BeforeValidator(_integer(1))] = 1  # include: exactly this many within `position`; exclude: unused
    position: Annotated[str | None, _optional(_position)] = None  # a column/row word or a "row col" pair; None: anywhere

    @property
    def slots(self) -> tuple[Slot, ...]:
        return ALL_SLOTS if self.position is None else tuple(slots_of(self.position))

    @property
    def where(self) -> str:
        """" at left", " at top left", or "" for anywhere (for messages)."""
        return "" if self.position is None else f" at {self.position}"


@dataclass(frozen=True, config=FORMAT)
class SceneSpec:
    """Checks on a reply image, in world terms."""

    background: Annotated[str | None, _optional(_one_of(BACKGROUNDS, "a world background"))] = None  # expected background; None: not checked
    include: tuple[ObjSpec, ...] = ()  # objects that must be there, counted exactly
    exclude: tuple[Annotated[ObjSpec, BeforeValidator(_no_count)], ...] = ()  # classes that must not be there
    exact: Flag = False  # nothing but the included objects

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


@dataclass(frozen=True, config=FORMAT)
class Limits:
    """Upper bounds on pixel change (0..1 scale); None = not checked."""

    max_l1: Annotated[float | None, _optional(_limit)] = None  # mean absolute difference
    max_l2: Annotated[float | None, _optional(_limit)] = None  # mean squared difference

    @model_validator(mode="after")
    def _some_limit(self) -> "Limits":
        return _some_of(self, "max_l1", "max_l2")


@dataclass(frozen=True, config=FORMAT)
class ClipSpec:
    """Lower bounds on CLIP similarities; scored only when the run loads a CLIP model."""

    min_t: Annotated[float | None, _optional(_cosine)] = None  # CLIP-T: reply image vs the expected caption
    min_i: Annotated[float | None, _optional(_cosine)] = None  # CLIP-I: reply image vs the expected (pinned) picture

    @model_validator(mode="after")
    def _some_bound(self) -> "ClipSpec":
        return _some_of(self, "min_t", "min_i")


@dataclass(frozen=True, config=FORMAT)
class Expect:
    """What a turn's reply must satisfy; every field is optional."""

    reply: Annotated[str | None, _optional(_one_of(REPLY_KINDS, "a reply kind"))] = None  # image | text | clarify; None: not checked
    scene: SceneSpec | None = None  # checks on the reply image
    answer_any: Texts = ()  # the reply text contains one of these
    answer_all: Texts = ()  # ... all of these
    answer_none: Texts = ()  # ... none of these
    preserve: Limits | None = None  # change outside the edited region, vs the previous image
    drift: Limits | None = None  # change outside every edited region, vs the first image
    clip: ClipSpec | None = None  # CLIP-T / CLIP-I thresholds

    @model_validator(mode="after")
    def _image_checks_need_an_image(self) -> "Expect":
        if self.reply in ("text", "clarify"):
            for k in ("scene", "preserve", "drift", "clip"):
                if getattr(self, k) is not None:
                    raise ValueError(f"{k} checks an image, but reply is {self.reply}")
        return self

    @property
    def wants_image(self) -> bool:
        return self.reply == "image" or (self.reply is None and any(x is not None for x in (self.scene, self.preserve, self.drift)))


@dataclass(frozen=True, config=FORMAT)
class ScriptedTurn:
    """One scripted user turn (an undo turn has only `undo`)."""

    user: Text = ""  # the message text ("" for an undo)
    image_path: OptionalText = Field(None, alias="image")  # the upload's file, as written in the YAML (relative to it)
    undo: Flag = False  # step back one turn instead of sending a message
    kind: OptionalText = None  # turn kind for the per-kind pass rates
    expect: Expect | None = None  # None: the turn is run but not scored
    image: Image.Image | None = Field(None, init=False)  # the upload, loaded from `image_path`

    @model_validator(mode="before")
    @classmethod
    def _undo_or_message(cls, data: Any) -> Any:
        """`undo: true` or `user: /undo` alone is an undo turn; any other turn needs user text."""
        if not isinstance(data, dict):
            return data  # pydantic names the type
        user = data.get("user", UNDO_TEXT)
        if data.get("undo") is True or (isinstance(user, str) and user.strip() == UNDO_TEXT and "user" in data):
            extra = [k for k in data if k not in ("undo", "user")]
            if extra or not isinstance(user, str) or user.strip() != UNDO_TEXT:
                raise ValueError(f"an undo turn takes nothing else (found {', '.join(extra) or 'user text'})")
            return {"undo": True}
        if "user" not in data:
            raise ValueError("missing key 'user' (the message text; or `undo: true`)")
        return data

    @field_validator("image_path")
    @classmethod
    def _load_upload(cls, path: str | None, info: ValidationInfo) -> str | None:
        """Load the upload now (a missing file fails the suite early); `_keep_upload` stores it."""
        if path is None:
            return path  # `image: null`, reported by load_dialogue
        try:
            image = read_image(info.context["folder"] / path, "uploaded image")
        except ChatgenError as e:
            raise ValueError(str(e)) from None
        info.context["uploads"][path] = image
        return path

    @model_validator(mode="after")
    def _keep_upload(self, info: ValidationInfo) -> "ScriptedTurn":
        if self.image_path is not None:
            object.__setattr__(self, "image", info.context["uploads"].pop(self.image_path))
        return self

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


@dataclass(frozen=True, kw_only=True, config=FORMAT)
class EvalDialogue:
    """One scripted conversation (one file)."""

    id: Annotated[str, BeforeValidator(lambda v: _text(str(v)))]  # unique within a suite; default: the file name without .yaml
    seed: Annotated[int | None, _optional(_integer(0))] = None  # sampling seed; None: the suite's
    mode: Annotated[str | None, _optional(_one_of(MODES, "a mode"))] = None  # iterative | independent; None: the suite's (iterative)
    tags: Texts = ()  # labels for filtering and per-tag pass rates
    description: Any = None  # free text for people, ignored
    turns: tuple[ScriptedTurn, ...]  # in order
    path: Path = Field(Path(), init=False)  # the YAML file

    @model_validator(mode="before")
    @classmethod
    def _id_from_file_name(cls, data: Any, info: ValidationInfo) -> Any:
        return {"id": info.context["path"].stem, **data} if isinstance(data, dict) else data

    @field_validator("turns")
    @classmethod
    def _some_user_turn(cls, turns: tuple[ScriptedTurn, ...]) -> tuple[ScriptedTurn, ...]:
        if all(t.undo for t in turns):
            raise ValueError("a dialogue needs at least one user turn")
        return turns

    @model_validator(mode="after")
    def _keep_path(self, info: ValidationInfo) -> "EvalDialogue":
        object.__setattr__(self, "path", info.context["path"])
        return self


# ---- reading a file -----------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _dialogue_format() -> TypeAdapter:
    return TypeAdapter(EvalDialogue)


def _keys_at(loc: tuple) -> list[str]:
    """The YAML keys of the mapping at `loc` (a pydantic error location)."""
    found: Any = EvalDialogue
    for key in (k for k in loc if isinstance(k, str)):
        field = next(f for name, f in found.__pydantic_fields__.items() if (f.alias or name) == key)
        found = _dataclass_in(field.annotation)
    return [f.alias or name for name, f in found.__pydantic_fields__.items() if f.init is not False]


def _dataclass_in(annotation: Any) -> Any:
    """The format dataclass inside `X | None`, `tuple[X, ...]` or `Annotated[X, ...]`."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    return next((d for d in map(_dataclass_in, typing.get_args(annotation)) if d is not None), None)


def _place(loc: tuple) -> str:
    """("turns", 0, "expect", "scene", "include", 1) -> "turn 1.expect.scene.include[1]"."""
    place, rest = ("", loc) if len(loc) < 2 or loc[0] != "turns" else (f"turn {loc[1] + 1}", loc[2:])
    for key in rest:
        place += f"[{key}]" if isinstance(key, int) else (f".{key}" if place else key)
    return place


def _problem(error: dict) -> tuple[tuple, str]:
    """(where, the sentence) of a pydantic error."""
    loc, kind, value = error["loc"], error["type"], error["input"]
    if kind == "unexpected_keyword_argument":
        return loc[:-1], f"unknown key {loc[-1]!r} (allowed: {', '.join(_keys_at(loc[:-1]))})"
    if kind in ("missing", "missing_argument"):
        return loc[:-1], f"missing key {loc[-1]!r}"
    if kind in ("dataclass_type", "dataclass_args_type", "dict_type"):
        return loc, f"expected a mapping with keys {', '.join(_keys_at(loc))}, got {type(value).__name__}"
    if kind in ("tuple_type", "list_type"):
        return loc, f"expected a list, got {type(value).__name__}"
    if kind in ("value_error", "assertion_error"):
        return loc, str(error["ctx"]["error"])
    return loc, error["msg"]


def _null_at(data: Any, loc: tuple = ()) -> tuple | None:
    """Where the first key given as null (`key:` and nothing) is, description aside; None: nowhere.
    The format's optional keys are left out when not wanted: a null is a slip, not a default."""
    items = data.items() if isinstance(data, dict) else (enumerate(data) if isinstance(data, list) else ())
    for key, value in items:
        if value is None and loc + (key,) != ("description",):
            return loc + (key,)
        found = _null_at(value, loc + (key,))
        if found is not None:
            return found
    return None


def _fail(path: Path, loc: tuple, problem: str) -> SuiteError:
    place = _place(loc)
    return SuiteError(f"{path}: {place + ': ' if place else ''}{problem}")


def load_dialogue(path: str | Path) -> EvalDialogue:
    """Read and check one dialogue file; raises SuiteError naming the file and the key."""
    path = Path(path)
    # 1. Parse the YAML.
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise _fail(path, (), f"cannot read the file ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        raise _fail(path, (), f"{line}not valid YAML ({getattr(e, 'problem', None) or type(e).__name__})") from None
    # 2. Check it against the format (uploads are loaded on the way); the first problem is reported.
    try:
        dialogue = _dialogue_format().validate_python(data, context={"path": path, "folder": path.parent, "uploads": {}})
    except ValidationError as e:
        errors = sorted(e.errors(), key=lambda err: err["type"] != "unexpected_keyword_argument")  # unknown keys first
        raise _fail(path, *_problem(errors[0])) from None
    # 3. No optional key given as null.
    null = _null_at(data)
    if null is not None:
        raise _fail(path, null, "expected a value, got null (leave the key out instead)")
    return dialogue


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
