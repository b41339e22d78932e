"""Read a grid picture back: its background and the thing (or nothing) in each slot.

Template matching, exact on clean renders and robust to the blur, ringing, noise and colour
drift of a VQ-VAE reconstruction. A `SceneReader` holds what it compares against (one blurred
empty canvas per background, and per background the features of every class alone in a slot),
so it needs no renderer: the scene world builds one from its sprites (`world/detect.py`, the
evals' judge), and a native checkpoint trained on that world carries the same arrays in
`reader.npz`, with which the assistant checks what an edit's reply claims and what an
answer says about the picture (the file also names the class groups answers count, such as
"animals").

Reading an image:

1. resize to the canvas size and blur slightly (the templates were blurred the same way);
2. background: the canvas with the smallest `bg_percentile`-th percentile pixel error (most of
   a canvas is background, so objects do not sway the percentile);
3. colour drift: subtract the median per-channel offset between image and background;
4. each slot: compare its inner part, box-downsampled, with every template of that background
   (row 0 the empty slot) by mean squared error; the smallest error wins, "empty" like any other.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from .errors import ChatgenError
from .reply_fit import Words


@dataclass(frozen=True)
class Reading:
    """What a `SceneReader` saw in an image."""

    background: str  # the chosen background
    labels: tuple[tuple[str | None, ...], ...]  # grid x grid: class name or None (empty)
    margins: tuple[tuple[float, ...], ...]  # grid x grid: error of "empty" minus error of the label (0 when empty)
    errors: tuple[tuple[float, ...], ...]  # grid x grid: mean squared error of the chosen label
    drift: float = 0.0  # largest per-channel colour offset removed in step 3 (0..1; near 0 for the world's own pictures)

    def count(self, cls: str) -> int:
        """How many slots hold `cls`."""
        return sum(label == cls for row in self.labels for label in row)


@dataclass
class SceneReader:
    """Template matcher of grid pictures (see the module doc)."""

    classes: tuple[str, ...]  # class names, in template order (template 1 + i is classes[i])
    canvases: dict[str, np.ndarray]  # background -> (px, px, 3) float32 blurred empty canvas in [0, 1]
    templates: dict[str, np.ndarray]  # background -> (1 + len(classes), D) slot features; row 0 the empty slot
    grid: int = 3  # slots per side
    slot_px: int = 32  # pixel side of a slot
    inner: int = 1  # px of each slot border left out of the comparison
    pool: int = 2  # box downsampling factor of the slot comparison
    blur: float = 1.0  # gaussian blur radius applied to image and templates alike
    bg_percentile: float = 40  # percentile of per-pixel error used to pick the background
    categories: dict[str, tuple[str, ...]] = field(default_factory=dict)  # group word -> its classes ("animals": dog, cat, ...), for answers about groups
    limits: tuple[int, int] | None = None  # (most things in a picture, most of one kind) the world draws; None: not known
    aliases: dict[str, str] = field(default_factory=dict)  # other words people use -> the class or background they name ("kitty" -> "cat")
    remembered: int = 64  # readings kept by image content (an edit's picture is read again as the next edit's start)
    _memo: OrderedDict = field(default_factory=OrderedDict, repr=False, compare=False)  # digest of the pixels -> Reading
    _guard: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)  # readers on several threads

    @functools.cached_property
    def words(self) -> Words:
        """The names this reader's pictures hold, for reading texts against messages (`chatgen.reply_fit`)."""
        return Words(self.classes, tuple(self.canvases), tuple(self.categories), self.aliases)

    @property
    def canvas_px(self) -> int:
        return self.grid * self.slot_px

    # ---- features ------------------------------------------------------------------------------
    def blurred(self, img: Image.Image) -> np.ndarray:
        """(px, px, 3) float32 in [0, 1] after the reader's blur."""
        return np.asarray(img.filter(ImageFilter.GaussianBlur(self.blur)), dtype=np.float32) / 255.0

    def slot_features(self, arr: np.ndarray, row: int, col: int) -> np.ndarray:
        """Inner part of one slot, box-downsampled: (side/pool * side/pool * 3,) float32."""
        y, x = row * self.slot_px + self.inner, col * self.slot_px + self.inner
        side = self.slot_px - 2 * self.inner
        crop = arr[y : y + side, x : x + side]  # (side, side, 3)
        pooled = crop.reshape(side // self.pool, self.pool, side // self.pool, self.pool, 3).mean(axis=(1, 3))  # (side/pool, side/pool, 3)
        return pooled.reshape(-1)

    # ---- reading -------------------------------------------------------------------------------
    def read(self, image: Image.Image) -> Reading:
        """Background and per-slot labels of `image` (any size), with confidences; the same pixels
        read again come from memory."""
        if not isinstance(image, Image.Image):
            raise ValueError(f"image must be a PIL.Image, got {type(image).__name__}")
        img = image.convert("RGB")
        key = hashlib.blake2b(img.tobytes() + repr(img.size).encode(), digest_size=16).digest()
        with self._guard:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        reading = self._read(img)
        with self._guard:
            self._memo[key] = reading
            while len(self._memo) > self.remembered:
                self._memo.popitem(last=False)
        return reading

    def _read(self, img: Image.Image) -> Reading:
        """The steps of the module doc on an RGB image."""
        # 1. Resize and blur.
        if img.size != (self.canvas_px, self.canvas_px):
            img = img.resize((self.canvas_px, self.canvas_px), Image.BICUBIC)
        arr = self.blurred(img)  # (px, px, 3)
        # 2. Background: the canvas that matches most pixels well.
        pixel_err = {bg: ((arr - canvas) ** 2).sum(axis=2) for bg, canvas in self.canvases.items()}
        background = min(pixel_err, key=lambda bg: np.percentile(pixel_err[bg], self.bg_percentile))
        # 3. Colour drift: median offset over the pixels that look like background.
        err = pixel_err[background]
        bg_pixels = err <= np.percentile(err, self.bg_percentile)  # (px, px)
        offset = np.median((arr - self.canvases[background])[bg_pixels], axis=0)  # (3,)
        arr = arr - offset
        # 4. Each slot against the templates of that background.
        templates = self.templates[background]  # (1 + classes, D)
        labels, margins, errors = [], [], []
        for r in range(self.grid):
            row_l, row_m, row_e = [], [], []
            for c in range(self.grid):
                mse = ((templates - self.slot_features(arr, r, c)) ** 2).mean(axis=1)  # (1 + classes,)
                best = int(np.argmin(mse))
                row_l.append(None if best == 0 else self.classes[best - 1])
                row_m.append(float(mse[0] - mse[best]))
                row_e.append(float(mse[best]))
            labels.append(tuple(row_l))
            margins.append(tuple(row_m))
            errors.append(tuple(row_e))
        return Reading(background, tuple(labels), tuple(margins), tuple(errors), float(np.abs(offset).max()))

    # ---- files ---------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the reader as one `.npz` (arrays and settings, no pickled objects)."""
        path = Path(path)
        backgrounds = list(self.canvases)
        np.savez_compressed(
            path, classes=np.array(self.classes), backgrounds=np.array(backgrounds),
            canvases=np.stack([self.canvases[b] for b in backgrounds]), templates=np.stack([self.templates[b] for b in backgrounds]),
            settings=np.array([self.grid, self.slot_px, self.inner, self.pool, self.blur, self.bg_percentile], dtype=np.float64),
            categories=np.array([f"{name}:{','.join(members)}" for name, members in self.categories.items()], dtype=str),
            **({"limits": np.array(self.limits, dtype=np.int64)} if self.limits is not None else {}),
            aliases=np.array([f"{word}:{name}" for word, name in self.aliases.items()], dtype=str),
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SceneReader":
        """A reader written by `save`; a damaged file is refused in one sentence."""
        try:
            with np.load(path, allow_pickle=False) as f:
                backgrounds = [str(b) for b in f["backgrounds"]]
                grid, slot_px, inner, pool, blur, pct = (float(x) for x in f["settings"])
                groups = dict(str(g).split(":", 1) for g in f["categories"]) if "categories" in f.files else {}  # older files have none
                return cls(tuple(str(c) for c in f["classes"]), dict(zip(backgrounds, f["canvases"].astype(np.float32))),
                           dict(zip(backgrounds, f["templates"].astype(np.float32))), int(grid), int(slot_px), int(inner), int(pool), blur, pct,
                           {name: tuple(members.split(",")) for name, members in groups.items()},
                           tuple(int(x) for x in f["limits"]) if "limits" in f.files else None,
                           dict(str(a).split(":", 1) for a in f["aliases"]) if "aliases" in f.files else {})
        except (OSError, KeyError, ValueError) as e:
            raise ChatgenError(f"the scene reader {path} cannot be read ({e}); delete it or copy it again from the checkpoint") from e
