"""Train the embedded refiner (`chatgen.embedded_refiner`): a 16 px -> 64 px tile dictionary.

1. Keys: every code of the checkpoint's VQ-VAE decoded alone, a 16 px tile each.
2. Values: random world scenes (training seeds, below `world.HELDOUT_SEED`) are rendered at 96 px,
   encoded by the VQ-VAE, and rendered clean at 384 px from the 4x sprite atlas
   (`world.render(scene, scale=4)`); each 16 px tile's code collects the 64 px clean tile at the
   same place. A code's value is the mean of what it collected: the least-squares 4x tile for
   that code (the closed form of what a per-code decoder trained with a squared loss converges
   to). Codes never seen in training keep the bicubic upscale of their own key.
3. Save (`EmbeddedRefinerPipeline.save_pretrained`); `chatgen train --stage refiner` then
   measures it on held-out scenes (`chatgen.evals.refiner.measure_refiner`, the figures
   `chatgen bench-refiner` prints) and writes them to figures.json.

`train_refiner(checkpoint, out, cfg)` is `chatgen train --stage refiner`; the result loads with
`--refiner PATH` (or `embedded` once copied to chatgen/weights/refiner).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from .. import world
from ..embedded_refiner import FACTOR, TILE, EmbeddedRefinerPipeline, bicubic_tiles, tile_grid


@dataclass
class RefinerTrainConfig:
    """How many scenes the dictionary is learned from."""

    scenes: int = 5000  # training scenes (each gives 36 tiles; 2,000 already show every tile the world has)
    minutes: float = 20.0  # wall-time budget (the scenes usually end it first: about 15-30 a second)
    seed: int = 0  # data seed


def scene_pairs(image_tokenizer, n: int, seed: int) -> tuple[list, np.ndarray, np.ndarray]:
    """`n` random scenes from `seed`: (scenes, decodes (n, 96, 96, 3) uint8, clean (n, 384, 384, 3) uint8)."""
    rng = random.Random(seed)
    scenes, decodes, clean = [], [], []
    for _ in range(n):
        scene = world.random_scene(rng, n_objects=rng.randint(0, world.MAX_OBJECTS))
        scenes.append(scene)
        decodes.append(np.asarray(image_tokenizer.decode(image_tokenizer.encode(world.render(scene))).convert("RGB")))
        clean.append(world.render_array(scene, scale=FACTOR))
    return scenes, np.stack(decodes), np.stack(clean)


def code_keys(image_tokenizer) -> np.ndarray:
    """(K, 16, 16, 3) uint8: each code of the VQ-VAE decoded alone (a grid of one code, first tile)."""
    k = image_tokenizer.vq.config.num_vq_embeddings
    keys = []
    for code in range(k):
        grid = torch.full((image_tokenizer.grid_h, image_tokenizer.grid_w), code, dtype=torch.long)
        keys.append(np.asarray(image_tokenizer.decode(grid).convert("RGB"))[:TILE, :TILE])
    return np.stack(keys)


def train_refiner(checkpoint: str | Path, out: str | Path, cfg: RefinerTrainConfig = RefinerTrainConfig(), log=print):
    """Learn the dictionary for `checkpoint`'s VQ-VAE and save it to `out`; returns the VQ image
    tokenizer it was learned for (what `chatgen.evals.refiner.measure_refiner` measures with)."""
    from ..backends.native import NativeBackend

    tokenizer = NativeBackend.from_pretrained(checkpoint).image_tokenizer
    start = time.time()
    # 1. Keys.
    keys = code_keys(tokenizer)
    side = TILE * FACTOR
    sums = np.zeros((len(keys), side, side, 3), dtype=np.float64)
    seen = np.zeros(len(keys), dtype=np.int64)
    # 2. Values: the clean 4x tiles each code stood for.
    rng = random.Random(cfg.seed)
    done = 0
    while done < cfg.scenes and time.time() - start < cfg.minutes * 60:
        scene = world.random_scene(rng, n_objects=rng.randint(0, world.MAX_OBJECTS))
        codes = tokenizer.encode(world.render(scene)).reshape(-1).numpy()  # (36,) row by row, as tile_grid
        big = tile_grid(world.render_array(scene, scale=FACTOR), side)  # (36, 64, 64, 3)
        np.add.at(sums, codes, big)
        np.add.at(seen, codes, 1)
        done += 1
        if done % 2000 == 0:
            log(f"refiner: {done} scenes, {int((seen > 0).sum())} of {len(keys)} codes seen, {time.time() - start:.0f} s")
    values = np.clip(np.rint(sums / np.maximum(seen, 1)[:, None, None, None]), 0, 255).astype(np.uint8)  # (K, 64, 64, 3)
    values[seen == 0] = bicubic_tiles(keys[seen == 0])
    log(f"refiner: {done} scenes, {int((seen > 0).sum())} of {len(keys)} codes seen, {time.time() - start:.0f} s")
    # 3. Save.
    EmbeddedRefinerPipeline(keys, values, seen).save_pretrained(out)
    recipe = asdict(cfg) | {"scenes_done": done, "codes_seen": int((seen > 0).sum()), "seconds": round(time.time() - start, 1), "checkpoint": str(checkpoint)}
    (Path(out) / "recipe.json").write_text(json.dumps(recipe, indent=1) + "\n")
    return tokenizer
