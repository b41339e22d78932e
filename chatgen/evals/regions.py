"""Changed regions and pixel change outside them: preservation, drift and the report's heat map.

The changed region of an edit is a set of grid slots, or `None` for the whole picture (the
background changed). How it is found:

1. the previous scene is the pinned expected scene of the image the turn starts from when
   there is one, else what the detector sees in that image;
2. when this turn's scene check is pinned, the region is every slot whose content differs
   between the previous scene and the pinned one (the whole picture if the background
   differs);
3. otherwise the region is every slot whose detected content differs between the previous
   scene and the reply image *and* involves a class the check names (include or exclude):
   the edit may change the things it talks about, nothing else. If the check names a
   background other than the previous one, the whole picture changes;
4. a turn with no scene check changes nothing (everything must stay).

Pixel change is measured as MagicBrush does: the generated image is resized (bicubic) to the
reference's size, both are scaled to 0..1, and L1 is the mean absolute difference, L2 the
mean squared difference, here over the pixels outside the changed region only.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from chatgen.world import GRID

from .grid import Grid, Slot
from .suite import SceneSpec

Region = frozenset[Slot] | None  # changed slots; None = the whole picture


def changed_region(prev: Grid, spec: SceneSpec | None, reply: Grid | None) -> Region:
    """The slots an edit may change (see the module doc); `reply` is needed when `spec` is not pinned."""
    if spec is None:
        return frozenset()
    pinned = spec.pinned()
    if pinned is not None:
        return changed_slots(prev, Grid.of_scene(pinned))
    if spec.background is not None and spec.background != prev.background:
        return None
    if reply is None:
        return frozenset()
    named = spec.named_classes()
    return frozenset(s for s in prev.differing_slots(reply) if reply.at(s) in named or prev.at(s) in named)


def changed_slots(before: Grid, after: Grid) -> Region:
    """Every slot whose content differs between two pictures; None when the background differs."""
    if after.background != before.background:
        return None
    return frozenset(before.differing_slots(after))


def union(a: Region, b: Region) -> Region:
    return None if a is None or b is None else a | b


def region_mask(region: Region, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool, True inside the changed slots of a picture of `size` = (W, H)."""
    w, h = size
    mask = np.zeros((h, w), dtype=bool)  # (H, W)
    if region is None:
        mask[:] = True
        return mask
    for r, c in region:
        mask[r * h // GRID : (r + 1) * h // GRID, c * w // GRID : (c + 1) * w // GRID] = True
    return mask


def _pair(image: Image.Image, reference: Image.Image, dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Both as (H, W, 3) `dtype` in 0..1 at the reference's size (the generated one resized)."""
    ref = reference.convert("RGB")
    img = image.convert("RGB")
    if img.size != ref.size:
        img = img.resize(ref.size, Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=dtype) / 255.0, np.asarray(ref, dtype=dtype) / 255.0


def distance_outside(image: Image.Image, reference: Image.Image, region: Region, dtype: type = np.float64) -> tuple[float, float] | None:
    """(L1, L2) over the pixels outside `region`; None when nothing is outside it. `dtype` is
    the arithmetic's precision (bench-world's figures are float32, the eval report's float64)."""
    a, b = _pair(image, reference, dtype)  # (H, W, 3) each
    keep = ~region_mask(region, reference.size)  # (H, W)
    if not keep.any():
        return None
    d = (a - b)[keep]  # (N, 3)
    return float(np.abs(d).mean()), float((d**2).mean())


def heat_map(image: Image.Image, reference: Image.Image, region: Region, full_scale: float = 0.25) -> Image.Image:
    """Pixel change outside `region` at the reference's size: black = unchanged, through red to
    yellow = a mean change of `full_scale` or more; the changed region itself is dark blue."""
    a, b = _pair(image, reference)
    v = np.clip(np.abs(a - b).mean(axis=2) / full_scale, 0.0, 1.0)  # (H, W) in 0..1
    rgb = np.stack([np.clip(2 * v, 0, 1), np.clip(2 * v - 1, 0, 1), np.zeros_like(v)], axis=2)  # (H, W, 3)
    rgb[region_mask(region, reference.size)] = (0.12, 0.14, 0.35)
    return Image.fromarray((rgb * 255).round().astype(np.uint8), "RGB")
