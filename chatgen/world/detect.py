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
background serves every slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageFilter

from chatgen.world.render import render_array
from chatgen.world.scene import (
    BACKGROUNDS, CANVAS_PX, CLASSES, GRID, MAX_OBJECTS, MAX_PER_CLASS, SLOT_PX, Obj, Scene,
)

BLUR_RADIUS = 1.0  # gaussian blur applied to image and templates alike
INNER = 1  # px of each slot border left out of the comparison (sprites are 30x30 in 32x32)
POOL = 2  # box downsampling factor of the slot comparison
BG_PERCENTILE = 40  # percentile of per-pixel error used to pick the background


@dataclass(frozen=True)
class Detection:
    """What `detect_slots` saw in an image."""

    background: str  # the chosen background
    labels: tuple[tuple[str | None, ...], ...]  # 3x3 grid: class name or None (empty)
    margins: tuple[tuple[float, ...], ...]  # 3x3 grid: error of "empty" minus error of the label (0 when empty)
    errors: tuple[tuple[float, ...], ...]  # 3x3 grid: mean squared error of the chosen label

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


def _blur(img: Image.Image) -> np.ndarray:
    """(96, 96, 3) float32 in [0, 1] after the detector's blur."""
    return np.asarray(img.filter(ImageFilter.GaussianBlur(BLUR_RADIUS)), dtype=np.float32) / 255.0


def _slot_features(arr: np.ndarray, row: int, col: int) -> np.ndarray:
    """Inner part of one slot, box-downsampled: (15*15*3,) float32."""
    y, x = row * SLOT_PX + INNER, col * SLOT_PX + INNER
    side = SLOT_PX - 2 * INNER
    crop = arr[y : y + side, x : x + side]  # (30, 30, 3)
    pooled = crop.reshape(side // POOL, POOL, side // POOL, POOL, 3).mean(axis=(1, 3))  # (15, 15, 3)
    return pooled.reshape(-1)


@lru_cache(maxsize=None)
def _background_canvas(name: str) -> np.ndarray:
    """Blurred empty canvas of a background: (96, 96, 3) float32."""
    return _blur(Image.fromarray(render_array(Scene(name)), "RGB"))


@lru_cache(maxsize=None)
def _templates(background: str) -> np.ndarray:
    """(25, 15*15*3) slot features: row 0 the empty slot, row 1+i the i-th class, each
    rendered alone in the center slot of that background."""
    feats = [_slot_features(_background_canvas(background), 1, 1)]
    for cls in CLASSES:
        arr = _blur(Image.fromarray(render_array(Scene(background, (Obj(cls, 1, 1),))), "RGB"))
        feats.append(_slot_features(arr, 1, 1))
    return np.stack(feats)  # (25, D)


def _prepare(image: Image.Image) -> np.ndarray:
    if not isinstance(image, Image.Image):
        raise ValueError(f"image must be a PIL.Image, got {type(image).__name__}")
    img = image.convert("RGB")
    if img.size != (CANVAS_PX, CANVAS_PX):
        img = img.resize((CANVAS_PX, CANVAS_PX), Image.BICUBIC)
    return _blur(img)


def detect_slots(image: Image.Image) -> Detection:
    """Background and per-slot labels of an image, with confidences."""
    # 1. Resize and blur.
    arr = _prepare(image)  # (96, 96, 3)
    # 2. Background: the canvas that matches most pixels well.
    pixel_err = {bg: ((arr - _background_canvas(bg)) ** 2).sum(axis=2) for bg in BACKGROUNDS}
    background = min(BACKGROUNDS, key=lambda bg: np.percentile(pixel_err[bg], BG_PERCENTILE))
    # 3. Colour drift: median offset over the pixels that look like background.
    canvas = _background_canvas(background)
    err = pixel_err[background]
    bg_pixels = err <= np.percentile(err, BG_PERCENTILE)  # (96, 96)
    offset = np.median((arr - canvas)[bg_pixels], axis=0)  # (3,)
    arr = arr - offset
    # 4. Each slot against the 25 templates.
    templates = _templates(background)  # (25, D)
    labels, margins, errors = [], [], []
    for r in range(GRID):
        row_l, row_m, row_e = [], [], []
        for c in range(GRID):
            mse = ((templates - _slot_features(arr, r, c)) ** 2).mean(axis=1)  # (25,)
            best = int(np.argmin(mse))
            row_l.append(None if best == 0 else CLASSES[best - 1])
            row_m.append(float(mse[0] - mse[best]))
            row_e.append(float(mse[best]))
        labels.append(tuple(row_l))
        margins.append(tuple(row_m))
        errors.append(tuple(row_e))
    return Detection(background, tuple(labels), tuple(margins), tuple(errors))


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
