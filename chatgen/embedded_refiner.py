"""The embedded refiner: the world's 96 px decode in, a crisp 384 px picture out.

The embedded model's VQ-VAE is tile-local: each 16 px tile of a picture is one code, and a code
always decodes to the same 16 px tile. So the 384 px picture that best matches a decode, tile by
tile, is a 64 px tile per code: the mean of the clean 4x renders of every place that code stood
for in training (the least-squares answer, learned in closed form by `chatgen train --stage
refiner` over thousands of rendered scenes). The refiner is that dictionary:

- `keys`: (K, 16, 16, 3), each code's own 16 px decode;
- `values`: (K, 64, 64, 3), what the code looked like at 4x in the clean renders;

and refining a picture is, per 16 px tile: find the nearest key (squared error; a model's own
decode matches one exactly), paste its value. A tile far from every key (not a world tile: an
off-grid upload, a painted-over part) gets bicubic upscaling instead, so nothing is invented.

Why not a diffusion UNet (the design first tried): a diffusers `UNet2DModel` conditioned on the
decode, x0 prediction, one DDIM step, trained 1,000 steps (15 min, one CPU core), had learned
nothing beyond bicubic (PSNR gain -0.1 dB): it would have to discover this same per-tile lookup by
gradient descent. The dictionary is exact for the world, takes milliseconds instead of 0.2 s,
and its learned values are a picture anyone can open (`values.png`).

Files of a refiner folder (`EmbeddedRefinerPipeline.save_pretrained`): model_index.json (names
this class), keys.png and values.png (the tiles in a grid of `columns`), refiner.json (sizes,
the threshold, and how many training tiles each code saw).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import ChatgenError

FACTOR = 4  # output side / decode side
TILE = 16  # the VQ-VAE's tile side in the decode
DECODE_PX = 96  # the world's decode side
COLUMNS = 32  # tiles per row in keys.png / values.png
FAR = 200.0  # mean squared error (0..255 scale) above which a tile is not a world tile: bicubic instead


def tile_grid(arr: np.ndarray, tile: int) -> np.ndarray:
    """(H, W, 3) -> (H/t * W/t, t, t, 3), row by row."""
    h, w, c = arr.shape
    return arr.reshape(h // tile, tile, w // tile, tile, c).transpose(0, 2, 1, 3, 4).reshape(-1, tile, tile, c)


def untile(tiles: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(rows * cols, t, t, 3) -> (rows t, cols t, 3)."""
    t = tiles.shape[1]
    return tiles.reshape(rows, cols, t, t, -1).transpose(0, 2, 1, 3, 4).reshape(rows * t, cols * t, -1)


def _sheet(tiles: np.ndarray) -> Image.Image:
    rows = -(-len(tiles) // COLUMNS)
    pad = np.zeros((rows * COLUMNS - len(tiles),) + tiles.shape[1:], dtype=np.uint8)
    return Image.fromarray(untile(np.concatenate([tiles, pad]), rows, COLUMNS), "RGB")


def _unsheet(image: Image.Image, n: int, tile: int) -> np.ndarray:
    arr = np.asarray(image.convert("RGB"))
    return tile_grid(arr, tile)[:n].copy()


def bicubic_tiles(tiles: np.ndarray) -> np.ndarray:
    """(N, 16, 16, 3) -> (N, 64, 64, 3) uint8 by PIL's bicubic: the value of a code training never saw."""
    side = TILE * FACTOR
    out = [np.asarray(Image.fromarray(t).resize((side, side), Image.Resampling.BICUBIC)) for t in tiles]
    return np.stack(out) if out else np.zeros((0, side, side, 3), dtype=np.uint8)


@dataclass
class _Output:
    images: list


class EmbeddedRefinerPipeline:
    """96 px world decode -> 384 px picture by a learned per-tile dictionary (see the module doc)."""

    wants_original = True  # chatgen.refiner passes the decode as it is, not upscaled first
    refiner_defaults = {"steps": 1, "strength": 1.0}  # one pass; strength and steps change nothing here
    output_side = DECODE_PX * FACTOR  # the refined picture's side (Refiner.size reads it)

    def __init__(self, keys: np.ndarray, values: np.ndarray, seen: np.ndarray | None = None, far: float = FAR):
        if keys.shape[1:] != (TILE, TILE, 3) or values.shape[1:] != (TILE * FACTOR, TILE * FACTOR, 3) or len(keys) != len(values):
            raise ChatgenError(f"refiner tables do not fit: keys {keys.shape}, values {values.shape}")
        self.keys = keys.astype(np.uint8)  # (K, 16, 16, 3)
        self.values = values.astype(np.uint8)  # (K, 64, 64, 3)
        self.seen = seen if seen is not None else np.ones(len(keys), dtype=np.int64)  # training tiles per code
        self.far = far
        self._flat = torch.from_numpy(self.keys.reshape(len(keys), -1).astype(np.float32))  # (K, 768)
        self._norms = (self._flat**2).sum(1)  # (K,)

    # ---- files -------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, folder: str | Path, **_ignored) -> "EmbeddedRefinerPipeline":
        folder = Path(folder)
        try:
            meta = json.loads((folder / "refiner.json").read_text())
            n = int(meta["codes"])
            keys = _unsheet(Image.open(folder / "keys.png"), n, TILE)
            values = _unsheet(Image.open(folder / "values.png"), n, TILE * FACTOR)
        except (OSError, ValueError, KeyError) as e:
            raise ChatgenError(f"the embedded refiner at {folder} is incomplete or damaged ({type(e).__name__}: {e})") from None
        seen = np.asarray(meta.get("seen", [1] * n), dtype=np.int64)
        values[seen == 0] = bicubic_tiles(keys[seen == 0])  # stored blank (they compress to nothing)
        return cls(keys, values, seen, float(meta.get("far", FAR)))

    def save_pretrained(self, folder: str | Path, **_ignored) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        _sheet(self.keys).save(folder / "keys.png", optimize=True)
        _sheet(np.where(self.seen[:, None, None, None] > 0, self.values, 0).astype(np.uint8)).save(folder / "values.png", optimize=True)  # unseen codes: blank, rebuilt on load
        (folder / "refiner.json").write_text(json.dumps({"codes": len(self.keys), "tile": TILE, "factor": FACTOR, "far": self.far, "seen": [int(s) for s in self.seen]}) + "\n")
        (folder / "model_index.json").write_text(json.dumps({"_class_name": type(self).__name__, "_chatgen": "a learned 16 px -> 64 px tile dictionary; see chatgen/embedded_refiner.py"}, indent=1) + "\n")

    # ---- refining ----------------------------------------------------------------------------
    def to(self, device):  # the tables live on the CPU; a lookup is milliseconds
        return self

    def set_progress_bar_config(self, **_ignored) -> None:
        pass

    def refine_array(self, arr: np.ndarray) -> np.ndarray:
        """(96, 96, 3) uint8 -> (384, 384, 3) uint8."""
        tiles = tile_grid(arr, TILE)  # (36, 16, 16, 3)
        x = torch.from_numpy(tiles.reshape(len(tiles), -1).astype(np.float32))  # (36, 768)
        d = (x**2).sum(1, keepdim=True) - 2 * x @ self._flat.T + self._norms  # (36, K) squared distances
        best = d.argmin(1)  # (36,)
        mse = d.gather(1, best[:, None])[:, 0] / x.shape[1]  # (36,)
        out = self.values[best.numpy()].copy()  # (36, 64, 64, 3)
        far = (mse > self.far).numpy()
        if far.any():
            side = TILE * FACTOR
            up = np.asarray(Image.fromarray(arr).resize((arr.shape[1] * FACTOR, arr.shape[0] * FACTOR), Image.Resampling.BICUBIC))
            out[far] = tile_grid(up, side)[far]
        return untile(out, arr.shape[0] // TILE, arr.shape[1] // TILE)

    def __call__(self, image, prompt: str | None = None, num_inference_steps: int = 1, strength: float = 1.0, generator=None,
                 output_type: str = "pil", callback_on_step_end=None, callback_on_step_end_tensor_inputs=None, **_ignored):
        """chatgen.refiner.Refiner's img2img call: one pass, one step callback (with the result)."""
        images = image if isinstance(image, list) else [image]
        results = []
        for im in images:
            im = im.convert("RGB")
            if im.size != (DECODE_PX, DECODE_PX):
                im = im.resize((DECODE_PX, DECODE_PX), Image.Resampling.BOX)
            results.append(Image.fromarray(self.refine_array(np.asarray(im))))
        self.num_timesteps = 1
        if callback_on_step_end is not None:
            callback_on_step_end(self, 0, 0, {"latents": results[0]})
        return _Output(results if output_type == "pil" else [np.asarray(r) for r in results])

    @staticmethod
    def preview(latents, size: tuple[int, int]) -> Image.Image | None:
        """The step's picture (here the result itself)."""
        return latents.resize(size, Image.Resampling.BILINEAR) if isinstance(latents, Image.Image) else None
