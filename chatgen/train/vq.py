"""Train the diffusers `VQModel` on tiles of world renders.

The world draws everything on a 16 px lattice (backgrounds repeat every 16 px, sprites sit in
32 px slots), so the VQ-VAE reads and writes 16x16 tiles independently: one code per tile, a
6x6 code grid per 96x96 picture. Codes are then purely local: an edit that keeps a slot keeps
its codes and its pixels exactly.

Training sees the distinct tiles of many random renders (weighted by how often they occur),
and restarts dead codes from tiles that share a code, so every distinct tile can get its own.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .. import world
from ..image_tokenizer import to_tiles
from .device import pick_device


@dataclass
class VQTrainConfig:
    """Sizes and schedule of the tile VQ-VAE."""

    tile: int = 16  # pixels per tile side (one code per tile)
    codebook: int = 1024  # codes
    embed_dim: int = 32  # code vector size
    unshuffle: int = 4  # space-to-depth factor before the encoder (a 16 px tile becomes 4x4x48)
    channels: tuple[int, ...] = (64, 64, 64)  # one block per level; 3 levels = /4, so one code per tile
    scenes: int = 3000  # random renders the tiles are collected from
    warmup: int = 600  # steps as a plain autoencoder before the codebook is set from its encodings
    steps: int = 3000  # optimiser steps in all
    batch: int = 64  # tiles per step
    lr: float = 1e-3  # Adam learning rate
    restart_every: int = 100  # steps between dead-code restarts
    seed: int = 0  # data and init seed


def build_vq(cfg: VQTrainConfig):
    from diffusers import VQModel

    n = len(cfg.channels)
    assert 2 ** (n - 1) * cfg.unshuffle == cfg.tile, "the VQ must turn one tile into one code"
    return VQModel(
        in_channels=3 * cfg.unshuffle**2,
        out_channels=3 * cfg.unshuffle**2,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=cfg.channels,
        layers_per_block=1,
        latent_channels=cfg.embed_dim,
        num_vq_embeddings=cfg.codebook,
        vq_embed_dim=cfg.embed_dim,
        norm_num_groups=8,
        norm_type="spatial",  # the decoder's norms are modulated by the code (MoVQ): fast to fit on a CPU
        sample_size=cfg.tile // cfg.unshuffle,
        mid_block_add_attention=False,
    )


def render_tiles(img: np.ndarray, tile: int) -> np.ndarray:
    """(H, W, 3) render -> (N, t, t, 3) tiles in row-major order (`image_tokenizer.to_tiles` on the array)."""
    x = torch.from_numpy(img).permute(2, 0, 1)[None]  # (1, 3, H, W)
    return to_tiles(x, tile).permute(0, 2, 3, 1).contiguous().numpy()  # (N, t, t, 3)


def collect_tiles(n_scenes: int, seed: int, tile: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Distinct tiles of `n_scenes` random renders: (N, t, t, 3) uint8 and their counts (N,)."""
    rng = random.Random(seed)
    counts: dict[bytes, int] = {}  # tile bytes -> how often it occurs (first seen first)
    arrays: dict[bytes, np.ndarray] = {}  # tile bytes -> the tile
    for _ in range(n_scenes):
        for t in render_tiles(world.render_array(world.random_scene(rng)), tile):  # (36, t, t, 3)
            key = t.tobytes()
            counts[key] = counts.get(key, 0) + 1
            arrays.setdefault(key, t)
    keys = list(arrays)
    return np.stack([arrays[k] for k in keys]), np.array([counts[k] for k in keys])


def to_tensor(tiles: np.ndarray, unshuffle: int = 1) -> torch.Tensor:
    """(N, t, t, 3) uint8 tiles -> the VQ's input: [-1, 1], space-to-depth by `unshuffle`."""
    x = torch.from_numpy(tiles).float().div(127.5).sub(1.0).permute(0, 3, 1, 2).contiguous()  # (N, 3, t, t)
    return F.pixel_unshuffle(x, unshuffle)  # (N, 3u^2, t/u, t/u)


def codes_of(vq, x: torch.Tensor) -> torch.Tensor:
    """The code of each tile of the VQ's input x (N, 3u^2, t/u, t/u): (N,)."""
    h = vq.encode(x).latents  # (N, C, 1, 1)
    _, _, (_, _, idx) = vq.quantize(h)
    return idx.reshape(-1)


def train_vq(cfg: VQTrainConfig = VQTrainConfig(), device: str | None = None, log=print):
    """Train and return the VQModel (on the CPU, in eval mode) with a small report dict."""
    from transformers import get_cosine_schedule_with_warmup

    # 1. Data: the distinct tiles, each drawn equally often.
    dev = pick_device(device)
    torch.manual_seed(cfg.seed)
    tiles, _ = collect_tiles(cfg.scenes, cfg.seed, cfg.tile)
    x_all = to_tensor(tiles, cfg.unshuffle).to(dev)  # (N, 3u^2, t/u, t/u)
    weights = torch.ones(len(tiles))  # every distinct tile matters equally (backgrounds would dominate otherwise)
    log(f"vq: {len(tiles)} distinct {cfg.tile}px tiles from {cfg.scenes} renders")
    vq = build_vq(cfg).to(dev)
    opt = torch.optim.Adam(vq.parameters(), lr=cfg.lr)
    schedule = get_cosine_schedule_with_warmup(opt, num_warmup_steps=0, num_training_steps=cfg.steps)  # cosine from lr at the first step to 0 after the last
    t0 = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        # 2. One step: reconstruction (+ codebook/commitment loss once quantizing), then the next learning rate.
        idx = torch.multinomial(weights, cfg.batch, replacement=True).to(dev)
        x = x_all[idx]
        h = vq.encode(x).latents  # (B, C, 1, 1)
        quantize = step > cfg.warmup
        dec, vq_loss = vq.decode(h, force_not_quantize=not quantize, return_dict=False)
        loss = F.mse_loss(dec, x) + (vq_loss.mean() if quantize else 0.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        # 3. After the warm-up every distinct tile gets a code of its own: its encoding.
        if step == cfg.warmup:
            with torch.no_grad():
                h = vq.encode(x_all).latents.reshape(len(x_all), -1)  # (N, C)
                emb = vq.quantize.embedding.weight  # (K, C)
                fill = torch.randint(0, len(h), (emb.shape[0],))
                emb.copy_(h[fill] + 0.01 * h.std() * torch.randn_like(emb))
                emb[: len(h)] = h[: emb.shape[0]]
        # 4. Restart dead codes onto tiles that share a code with another tile.
        if quantize and (step % cfg.restart_every == 0 or step == cfg.steps):
            with torch.no_grad():
                vq.eval()
                codes = codes_of(vq, x_all)
                vq.train()
                distinct = len(set(codes.tolist()))
                if step < cfg.steps * 0.8 and distinct < len(x_all):
                    _restart_dead_codes(vq, x_all, codes)
                log(f"vq step {step}/{cfg.steps} loss {loss.item():.5f} distinct codes {distinct}/{len(x_all)} ({time.perf_counter() - t0:.0f}s)")
        elif step % cfg.restart_every == 0:
            log(f"vq step {step}/{cfg.steps} autoencoder loss {loss.item():.5f} ({time.perf_counter() - t0:.0f}s)")
    vq = vq.cpu().eval()
    return vq, {"tiles": len(tiles), "steps": cfg.steps}


@torch.no_grad()
def _restart_dead_codes(vq, x_all: torch.Tensor, codes: torch.Tensor) -> None:
    """Move unused codes onto the encodings of tiles whose code is shared."""
    emb = vq.quantize.embedding.weight  # (K, C)
    used = set(codes.tolist())
    dead = [k for k in range(emb.shape[0]) if k not in used]
    _, inverse, counts = torch.unique(codes, return_inverse=True, return_counts=True)
    shared = torch.nonzero(counts[inverse] > 1).reshape(-1)  # tiles in a collision
    if not len(shared) or not dead:
        return
    h = vq.encode(x_all[shared]).latents.reshape(len(shared), -1)
    for k, i in zip(dead, torch.randperm(len(shared)).tolist()):
        emb[k] = h[i]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio (dB) of two uint8 images; inf when they are equal."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)
