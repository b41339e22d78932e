"""Render a `Scene` to a 96x96 RGB image.

Backgrounds are a 16x16 tile repeated over the canvas (flat colour plus a light texture).
The period matches the VQ-VAE's downsample factor of 16 and the 32 px slots, so a sprite
on a background looks the same, pixel for pixel, in every slot. Sprites come from the
committed atlas `assets/sprites.png` (built by `make_atlas.py`), each 30x30 RGBA (a 28 px
emoji with a 1 px outline), centred
in its 32x32 slot and alpha-composited in integer arithmetic, so rendering is exact and
byte-identical across runs and machines.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from chatgen.world.scene import BACKGROUNDS, CANVAS_PX, CLASSES, SLOT_PX, Scene

ASSETS = Path(__file__).parent / "assets"
TILE_PX = 16  # background period in both directions

# Base colour of each background and its texture marks (colour, list of (y, x) in the tile).
_BASE: dict[str, tuple[int, int, int]] = {
    "grass": (92, 158, 70),
    "sky": (118, 182, 238),
    "beach": (234, 210, 152),
    "snow": (204, 216, 232),
    "night": (26, 30, 70),
    "sea": (34, 98, 164),
}
_MARKS: dict[str, tuple[tuple[int, int, int], list[tuple[int, int]]]] = {
    # short dark blades of grass
    "grass": ((70, 130, 54), [(2, 3), (3, 3), (4, 4), (9, 11), (10, 11), (11, 12), (12, 6), (13, 6)]),
    # no texture: a clear sky
    "sky": ((118, 182, 238), []),
    # darker grains of sand
    "beach": ((208, 180, 120), [(3, 5), (7, 12), (11, 2), (13, 9)]),
    # white snowflakes
    "snow": ((250, 252, 255), [(2, 10), (6, 3), (7, 3), (11, 12), (12, 12), (13, 5)]),
    # faint stars
    "night": ((120, 124, 160), [(4, 12), (10, 4)]),
    # lighter wave crests
    "sea": ((64, 136, 196), [(4, 2), (3, 3), (3, 4), (4, 5), (12, 10), (11, 11), (11, 12), (12, 13)]),
}


def background_tile(name: str) -> np.ndarray:
    """The 16x16x3 uint8 tile of a background."""
    if name not in BACKGROUNDS:
        raise ValueError(f"background={name!r} is not a background; use one of {BACKGROUNDS}")
    tile = np.empty((TILE_PX, TILE_PX, 3), dtype=np.uint8)  # (16, 16, 3)
    tile[:] = _BASE[name]
    colour, marks = _MARKS[name]
    for y, x in marks:
        tile[y, x] = colour
    return tile


@lru_cache(maxsize=None)
def _background_canvas(name: str, scale: int = 1) -> np.ndarray:
    reps = CANVAS_PX // TILE_PX
    tile = background_tile(name).repeat(scale, axis=0).repeat(scale, axis=1)  # (16s, 16s, 3): each texel a s x s block
    canvas = np.tile(tile, (reps, reps, 1))  # (96s, 96s, 3)
    canvas.setflags(write=False)
    return canvas


@lru_cache(maxsize=2)
def _atlas(scale: int = 1) -> dict[str, np.ndarray]:
    """Class name -> (30s, 30s, 4) uint8 RGBA sprite, read from the committed atlas of that scale."""
    stem = "sprites" if scale == 1 else f"sprites_x{scale}"
    index_path, png_path = ASSETS / f"{stem}.json", ASSETS / f"{stem}.png"
    if not png_path.exists():
        raise FileNotFoundError(f"{png_path} is missing; build it with `python -m chatgen.world.make_atlas --scale {scale}`")
    index = json.loads(index_path.read_text())
    if tuple(index["classes"]) != CLASSES:
        raise ValueError(f"{index_path} lists other classes than chatgen.world.CLASSES; rebuild the atlas")
    px, cols = index["sprite_px"], index["columns"]
    atlas = np.asarray(Image.open(png_path).convert("RGBA"))  # (rows*px, cols*px, 4)
    sprites = {}
    for i, cls in enumerate(CLASSES):
        y, x = (i // cols) * px, (i % cols) * px
        sprites[cls] = atlas[y : y + px, x : x + px].copy()  # (px, px, 4)
    return sprites


def composite(base: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    """Alpha-composite an RGBA uint8 patch over an RGB uint8 patch of the same size (exact
    integer arithmetic with rounding)."""
    a = rgba[..., 3:4].astype(np.uint32)  # (h, w, 1)
    out = (rgba[..., :3].astype(np.uint32) * a + base.astype(np.uint32) * (255 - a) + 127) // 255
    return out.astype(np.uint8)  # (h, w, 3)


def render_array(scene: Scene, scale: int = 1) -> np.ndarray:
    """The scene as a (96s, 96s, 3) uint8 array; `scale` 4 is the clean 384 px render (sprites
    drawn from the 4x atlas, the background texture in 4x4 blocks) that the embedded refiner
    learns to produce."""
    if not isinstance(scene, Scene):
        raise ValueError(f"scene must be a Scene, got {type(scene).__name__}")
    if scale not in (1, 4):
        raise ValueError(f"scale must be 1 or 4 (the atlases shipped), got {scale!r}")
    canvas = _background_canvas(scene.background, scale).copy()  # (96s, 96s, 3)
    sprites = _atlas(scale)
    slot = SLOT_PX * scale
    for obj in scene.objects:
        spr = sprites[obj.cls]  # (30s, 30s, 4)
        pad = (slot - spr.shape[0]) // 2
        y, x = obj.row * slot + pad, obj.col * slot + pad
        h, w = spr.shape[:2]
        canvas[y : y + h, x : x + w] = composite(canvas[y : y + h, x : x + w], spr)
    return canvas


def render(scene: Scene, scale: int = 1) -> Image.Image:
    """The scene as a 96x96 RGB PIL image (384x384 with `scale` 4). The same scene always gives the same bytes."""
    return Image.fromarray(render_array(scene, scale), "RGB")
