"""Scenes of the synthetic world: a background and up to four objects on a 3x3 grid.

A `Scene` is pure data. It checks itself when built, keeps its objects in one canonical
order (reading order: top-left, top-center, ..., bottom-right) so that two scenes with the
same content compare equal, and offers the small queries and edits the dialogue generator
and the evals need. Rendering lives in `render.py`, recognition in `detect.py`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from chatgen.scene_text import COLS, ROWS, article, plural, slot_name, slot_phrase  # noqa: F401 (the world's words)

# The 24 object classes, in atlas order.
CLASSES: tuple[str, ...] = (
    "dog", "cat", "rabbit", "fox", "bear", "panda", "frog", "chicken", "bird", "fish",
    "tree", "cactus", "flower", "house", "car", "bicycle", "boat",
    "sun", "moon", "star", "cloud", "apple", "balloon", "ball",
)

# The 6 backgrounds.
BACKGROUNDS: tuple[str, ...] = ("grass", "sky", "beach", "snow", "night", "sea")

# Grid geometry: 3 rows x 3 columns of 32x32 px slots on a 96x96 canvas (the row and column
# words, plurals, articles and place phrases are chatgen.scene_text's).
GRID = 3
SLOT_PX = 32
CANVAS_PX = GRID * SLOT_PX

# Seeds from here on are held out: training never samples them; evals and bench-world do.
HELDOUT_SEED = 10_000_000

# Limits of one scene.
MAX_OBJECTS = 4
MAX_PER_CLASS = 3

# Where an object goes when nobody says where (draw without places, add without place):
# the first free slot in this order. Center first, then the edge middles, then corners.
DEFAULT_SLOTS: tuple[tuple[int, int], ...] = (
    (1, 1), (1, 0), (1, 2), (0, 1), (2, 1), (0, 0), (0, 2), (2, 0), (2, 2),
)

# Class groups that questions such as "how many animals are there?" may ask about.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "animals": ("dog", "cat", "rabbit", "fox", "bear", "panda", "frog", "chicken", "bird", "fish"),
    "plants": ("tree", "cactus", "flower"),
    "vehicles": ("car", "bicycle", "boat"),
    "objects": CLASSES,
}

def slots_of(position: str) -> list[tuple[int, int]]:
    """Slots named by a position word or slot name, in reading order.

    "left" -> the left column, "top" -> the top row, "center" -> the center column,
    "middle" -> the middle row, "top left" / "middle center" -> one slot.
    """
    words = position.strip().lower().split()
    if len(words) == 1 and words[0] in COLS:
        return [(r, COLS.index(words[0])) for r in range(GRID)]
    if len(words) == 1 and words[0] in ROWS:
        return [(ROWS.index(words[0]), c) for c in range(GRID)]
    if len(words) == 2 and words[0] in ROWS and words[1] in COLS:
        return [(ROWS.index(words[0]), COLS.index(words[1]))]
    raise ValueError(
        f"position={position!r} is not a position: use one of {ROWS + COLS} or '<row> <col>' "
        f"such as 'top left'"
    )


@dataclass(frozen=True)
class Obj:
    """One object in one slot."""

    cls: str  # one of CLASSES
    row: int  # 0 top, 1 middle, 2 bottom
    col: int  # 0 left, 1 center, 2 right

    def __post_init__(self) -> None:
        if self.cls not in CLASSES:
            raise ValueError(f"cls={self.cls!r} is not a class; use one of {CLASSES}")
        for name, value in (("row", self.row), ("col", self.col)):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < GRID:
                raise ValueError(f"{name}={value!r} must be an int in 0..{GRID - 1}")

    @property
    def slot(self) -> tuple[int, int]:
        """(row, col) of this object."""
        return (self.row, self.col)

    @property
    def name(self) -> str:
        """Full slot name, e.g. "top left"."""
        return slot_name(self.row, self.col)

    @property
    def phrase(self) -> str:
        """Canonical location phrase, e.g. "in the top left"."""
        return slot_phrase(self.row, self.col)

    def to_dict(self) -> dict:
        return {"cls": self.cls, "row": self.row, "col": self.col}

    @classmethod
    def from_dict(cls, d: dict) -> "Obj":
        return cls(d["cls"], d["row"], d["col"])


@dataclass(frozen=True)
class Scene:
    """A background and its objects. Objects are stored sorted in reading order."""

    background: str  # one of BACKGROUNDS
    objects: tuple[Obj, ...] = field(default=())  # at most MAX_OBJECTS, one per slot

    def __post_init__(self) -> None:
        # 1. Background.
        if self.background not in BACKGROUNDS:
            raise ValueError(f"background={self.background!r} is not a background; use one of {BACKGROUNDS}")
        # 2. Objects: type, count, one per slot, per-class limit.
        objs = tuple(self.objects)
        for o in objs:
            if not isinstance(o, Obj):
                raise ValueError(f"objects must hold Obj items, got {type(o).__name__}")
        if len(objs) > MAX_OBJECTS:
            raise ValueError(f"objects has {len(objs)} items; a scene holds at most {MAX_OBJECTS}")
        slots = [o.slot for o in objs]
        for s in set(slots):
            if slots.count(s) > 1:
                raise ValueError(f"objects has two objects in slot {slot_name(*s)!r}; one per slot")
        for c in {o.cls for o in objs}:
            n = sum(o.cls == c for o in objs)
            if n > MAX_PER_CLASS:
                raise ValueError(f"objects has {n} of {c!r}; at most {MAX_PER_CLASS} of one class")
        # 3. Canonical order.
        object.__setattr__(self, "objects", tuple(sorted(objs, key=lambda o: o.slot)))

    # ---- queries -------------------------------------------------------------------------

    def count(self, cls: str) -> int:
        """Number of objects of a class, or of a category in CATEGORIES ("animals")."""
        if cls in CATEGORIES:
            return sum(o.cls in CATEGORIES[cls] for o in self.objects)
        if cls not in CLASSES:
            raise ValueError(f"cls={cls!r} is not a class or category")
        return sum(o.cls == cls for o in self.objects)

    def find(self, cls: str) -> tuple[Obj, ...]:
        """Objects of one class, in reading order."""
        return tuple(o for o in self.objects if o.cls == cls)

    def at(self, row: int, col: int) -> Obj | None:
        """The object in a slot, or None."""
        for o in self.objects:
            if o.slot == (row, col):
                return o
        return None

    def objects_at(self, position: str) -> tuple[Obj, ...]:
        """Objects in a column/row ("left", "top") or one slot ("top left"), see `slots_of`."""
        slots = set(slots_of(position))
        return tuple(o for o in self.objects if o.slot in slots)

    def free_slots(self) -> list[tuple[int, int]]:
        """Empty slots in reading order."""
        used = {o.slot for o in self.objects}
        return [(r, c) for r in range(GRID) for c in range(GRID) if (r, c) not in used]

    def default_slot(self) -> tuple[int, int] | None:
        """Where an object goes when no place is given: first free slot of DEFAULT_SLOTS."""
        used = {o.slot for o in self.objects}
        return next((s for s in DEFAULT_SLOTS if s not in used), None)

    def can_add(self, cls: str) -> bool:
        """True when one more `cls` fits the scene limits."""
        return len(self.objects) < MAX_OBJECTS and self.count(cls) < MAX_PER_CLASS

    # ---- edits (each returns a new Scene) ------------------------------------------------

    def with_background(self, background: str) -> "Scene":
        return replace(self, background=background)

    def with_object(self, obj: Obj) -> "Scene":
        if self.at(*obj.slot) is not None:
            raise ValueError(f"slot {obj.name!r} is taken by a {self.at(*obj.slot).cls}")
        return Scene(self.background, self.objects + (obj,))

    def without(self, row: int, col: int) -> "Scene":
        if self.at(row, col) is None:
            raise ValueError(f"slot {slot_name(row, col)!r} is empty")
        return Scene(self.background, tuple(o for o in self.objects if o.slot != (row, col)))

    def replaced(self, row: int, col: int, cls: str) -> "Scene":
        """The object in (row, col) becomes a `cls`."""
        return self.without(row, col).with_object(Obj(cls, row, col))

    def moved(self, row: int, col: int, to_row: int, to_col: int) -> "Scene":
        """The object in (row, col) moves to the empty slot (to_row, to_col)."""
        obj = self.at(row, col)
        if obj is None:
            raise ValueError(f"slot {slot_name(row, col)!r} is empty")
        return self.without(row, col).with_object(Obj(obj.cls, to_row, to_col))

    # ---- serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {"background": self.background, "objects": [o.to_dict() for o in self.objects]}

    @classmethod
    def from_dict(cls, d: dict) -> "Scene":
        if not isinstance(d, dict) or "background" not in d:
            raise ValueError("scene dict needs a 'background' key and an 'objects' list")
        return cls(d["background"], tuple(Obj.from_dict(o) for o in d.get("objects", [])))


def random_scene(
    rng: random.Random,
    n_objects: int | None = None,
    background: str | None = None,
    repeat_prob: float = 0.25,
) -> Scene:
    """Sample a scene: `n_objects` (default 1..4, small counts likelier) in random slots.

    Each object after the first repeats an earlier class with probability `repeat_prob`
    (so scenes with two dogs, which need a clarifying question, are common enough).
    """
    if n_objects is None:
        n_objects = rng.choices([1, 2, 3, 4], weights=[35, 30, 20, 15])[0]
    if not 0 <= n_objects <= MAX_OBJECTS:
        raise ValueError(f"n_objects={n_objects} must be in 0..{MAX_OBJECTS}")
    bg = background if background is not None else rng.choice(BACKGROUNDS)
    classes = random_classes(rng, n_objects, repeat_prob)
    slots = rng.sample([(r, c) for r in range(GRID) for c in range(GRID)], n_objects)
    return Scene(bg, tuple(Obj(c, r, k) for c, (r, k) in zip(classes, slots)))


def random_classes(rng: random.Random, n: int, repeat_prob: float = 0.25) -> list[str]:
    """`n` class names where later ones repeat an earlier one with `repeat_prob`, never
    more than MAX_PER_CLASS of one."""
    out: list[str] = []
    for _ in range(n):
        repeatable = [c for c in dict.fromkeys(out) if out.count(c) < MAX_PER_CLASS]
        if repeatable and rng.random() < repeat_prob:
            out.append(rng.choice(repeatable))
        else:
            out.append(rng.choice([c for c in CLASSES if c not in out]))
    return out
