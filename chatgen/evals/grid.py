"""What is where in a picture: a background and a 3x3 grid of class names (or None).

Checks and change regions compare pictures slot by slot. A `Grid` comes either from an
expected `Scene` or from what the world detector saw in an image. Unlike `Scene`, a grid may
break the scene limits (five objects, four dogs): a model can draw anything, and the checks
must see all of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from chatgen.world import GRID, Scene, detect_slots

Slot = tuple[int, int]  # (row, col), 0-based
ALL_SLOTS: tuple[Slot, ...] = tuple((r, c) for r in range(GRID) for c in range(GRID))


@dataclass(frozen=True)
class Grid:
    """A background and the label of every slot."""

    background: str  # one of chatgen.world.BACKGROUNDS
    labels: tuple[tuple[str | None, ...], ...]  # GRID x GRID: class name or None (empty)

    @classmethod
    def of_scene(cls, scene: Scene) -> "Grid":
        labels = [[None] * GRID for _ in range(GRID)]
        for o in scene.objects:
            labels[o.row][o.col] = o.cls
        return cls(scene.background, tuple(tuple(r) for r in labels))

    @classmethod
    def of_image(cls, image: Image.Image) -> "Grid":
        """What the world detector sees in an image (any size; it is resized to 96x96)."""
        d = detect_slots(image)
        return cls(d.background, d.labels)

    def at(self, slot: Slot) -> str | None:
        return self.labels[slot[0]][slot[1]]

    def differing_slots(self, other: "Grid") -> list[Slot]:
        """The slots whose label (class or empty) differs from `other`'s, in reading order."""
        return [s for s in ALL_SLOTS if self.at(s) != other.at(s)]

    def objects(self) -> list[tuple[Slot, str]]:
        """(slot, class) of every object, in reading order."""
        return [(s, self.at(s)) for s in ALL_SLOTS if self.at(s) is not None]

    def to_dict(self) -> dict:
        return {"background": self.background, "objects": [{"cls": c, "row": s[0], "col": s[1]} for s, c in self.objects()]}
