"""Recognise a scene in an image: the background and the object (or nothing) in each slot.

This is the evals' judge: it reads back what a model drew. It is template matching, which
is exact on clean renders and robust to the blur, ringing, noise and colour drift of a
VQ-VAE reconstruction:

1. resize to 96x96 and blur slightly (the same blur is applied to every template);
2. background: the background canvas with the smallest 40th-percentile pixel error (at
   least 56% of a canvas is background, so objects do not sway the percentile);
3. colour drift: subtract the median per-channel offset between image and background;
4. each slot: compare the inner 30x30 of the slot, box-downsampled to 15x15, with every
   sprite composited on that background and with the empty background (mean squared
   error); the smallest error wins, and "empty" wins like any other candidate.

Backgrounds are 16 px periodic and slots are 32 px, so one set of 25 templates per
background serves every slot. The matching itself is `chatgen.scene_reader.SceneReader`
(`world_reader()` is the world's); a native checkpoint saves that reader as `reader.npz`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from chatgen.scene_reader import Reading, SceneReader
from chatgen.world.people_words import aliases
from chatgen.world.render import render_array
from chatgen.world.scene import (
    BACKGROUNDS, CATEGORIES, CLASSES, GRID, MAX_OBJECTS, MAX_PER_CLASS, SLOT_PX, Obj, Scene,
)

BLUR_RADIUS = 1.0  # gaussian blur applied to image and templates alike
INNER = 1  # px of each slot border left out of the comparison (sprites are 30x30 in 32x32)
POOL = 2  # box downsampling factor of the slot comparison
BG_PERCENTILE = 40  # percentile of per-pixel error used to pick the background


@dataclass(frozen=True)
class Detection(Reading):
    """What `detect_slots` saw in an image: a `Reading` (background, 3x3 labels, margins, errors)
    that can become a valid `Scene`."""

    def scene(self) -> Scene:
        """The detection as a valid Scene. When the detection breaks the scene limits (more
        than 4 objects, more than 3 of a class), the least confident objects are dropped."""
        found = [
            (self.margins[r][c], Obj(self.labels[r][c], r, c))
            for r in range(GRID) for c in range(GRID) if self.labels[r][c] is not None
        ]
        found.sort(key=lambda t: -t[0])  # most confident first
        kept: list[Obj] = []
        for _, obj in found:
            if len(kept) < MAX_OBJECTS and sum(o.cls == obj.cls for o in kept) < MAX_PER_CLASS:
                kept.append(obj)
        return Scene(self.background, tuple(kept))


@lru_cache(maxsize=None)
def world_reader() -> SceneReader:
    """The reader of world pictures: every background's blurred empty canvas and, per background,
    the slot features of the empty slot and of each class rendered alone in the center slot
    (`chatgen.scene_reader` holds the algorithm; a native checkpoint saves this reader)."""
    proto = SceneReader(CLASSES, {}, {}, GRID, SLOT_PX, INNER, POOL, BLUR_RADIUS, BG_PERCENTILE)
    canvases, templates = {}, {}
    for bg in BACKGROUNDS:
        canvases[bg] = proto.blurred(Image.fromarray(render_array(Scene(bg)), "RGB"))  # (96, 96, 3)
        feats = [proto.slot_features(canvases[bg], 1, 1)]
        for cls in CLASSES:
            feats.append(proto.slot_features(proto.blurred(Image.fromarray(render_array(Scene(bg, (Obj(cls, 1, 1),))), "RGB")), 1, 1))
        templates[bg] = np.stack(feats)  # (25, D)
    return SceneReader(CLASSES, canvases, templates, GRID, SLOT_PX, INNER, POOL, BLUR_RADIUS, BG_PERCENTILE, dict(CATEGORIES), (MAX_OBJECTS, MAX_PER_CLASS), aliases())


def detect_slots(image: Image.Image) -> Detection:
    """Background and per-slot labels of an image, with confidences."""
    r = world_reader().read(image)
    return Detection(r.background, r.labels, r.margins, r.errors, r.drift)


def detect(image: Image.Image) -> Scene:
    """The scene shown in an image (any size; it is resized to 96x96 first)."""
    return detect_slots(image).scene()


def slot_accuracy(expected: Scene, got: Scene) -> float:
    """Fraction of the 9 slots whose content (class or empty) matches."""
    hits = sum(
        (expected.at(r, c).cls if expected.at(r, c) else None) == (got.at(r, c).cls if got.at(r, c) else None)
        for r in range(GRID) for c in range(GRID)
    )
    return hits / (GRID * GRID)
