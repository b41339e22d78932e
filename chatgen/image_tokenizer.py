"""The image side of a model: PIL image <-> (H, W) grid of discrete codes.

A model family brings its own image tokenizer; the backend is handed one and never looks
inside. The embedded model's is `VQImageTokenizer`: a diffusers `VQModel`, optionally reading
the picture as independent square tiles (one code per tile, so codes stay local) after a
space-to-depth step (`pixel_unshuffle`):

    image (S, S) --resize, to [-1, 1]--> (1, 3, S, S)
      --to_tiles--> (N, 3, t, t) --pixel_unshuffle(u)--> (N, 3u^2, t/u, t/u)
      --VQ encoder + nearest code--> (N, h, w) codes --from_tiles--> (H, W) codes

and back the same way through the codebook (`get_codebook_entry`) and the VQ decoder.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from diffusers.image_processor import VaeImageProcessor
from PIL import Image


class ImageTokenizer(Protocol):
    """What a backend needs of the image side of its model."""

    grid_h: int  # code rows of one image
    grid_w: int  # codes per row

    def encode(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> (grid_h, grid_w) long codes."""

    def decode(self, codes: torch.Tensor) -> Image.Image:
        """(grid_h, grid_w) codes -> PIL image."""


def to_tiles(x: torch.Tensor, t: int) -> torch.Tensor:
    """(1, C, H, W) -> (N, C, t, t) non-overlapping tiles in row-major order (t = 0: unchanged)."""
    if not t:
        return x
    _, c, h, w = x.shape
    x = x.reshape(c, h // t, t, w // t, t).permute(1, 3, 0, 2, 4)  # (H/t, W/t, C, t, t)
    return x.reshape(-1, c, t, t)  # (N, C, t, t)


def from_tiles(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(N, C, t, t) row-major tiles -> (1, C, h, w); the inverse of `to_tiles`."""
    n, c, t, _ = x.shape
    if n == 1 and t == h:
        return x
    x = x.reshape(h // t, w // t, c, t, t).permute(2, 0, 3, 1, 4)  # (C, H/t, t, W/t, t)
    return x.reshape(1, c, h, w)


class VQImageTokenizer:
    """A diffusers `VQModel` over whole pictures or over independent tiles, parts passed in."""

    def __init__(self, vq, image_size: int, grid_h: int, grid_w: int, tile: int = 0, unshuffle: int = 1):
        self.vq = vq.eval()  # diffusers VQModel
        self.image_size = image_size  # square pixel size the VQ-VAE reads and writes
        self.grid_h = grid_h  # code rows of one image
        self.grid_w = grid_w  # codes per row
        self.tile = tile  # >0: tile x tile pixel patches are encoded and decoded independently
        self.unshuffle = unshuffle  # space-to-depth factor before the encoder (undone after the decoder)
        self._tile_cache: dict[int, torch.Tensor] = {}  # code -> (3, t, t) decoded tile (one code per tile only)
        self.pixels = VaeImageProcessor(do_resize=True, vae_scale_factor=1, resample="lanczos")  # PIL <-> [-1, 1] tensors

    @torch.no_grad()
    def encode(self, image: Image.Image) -> torch.Tensor:
        s = self.image_size
        x = self.pixels.preprocess(image.convert("RGB"), height=s, width=s)  # (1, 3, S, S) in [-1, 1]
        x = to_tiles(x, self.tile)  # (N, 3, t, t), N = 1 without tiles
        x = F.pixel_unshuffle(x, self.unshuffle).to(self.vq.device, self.vq.dtype)  # (N, 3u^2, t/u, t/u)
        h = self.vq.encode(x).latents  # (N, C, h, w)
        _, _, (_, _, idx) = self.vq.quantize(h)
        codes = idx.reshape(h.shape[0], h.shape[2], h.shape[3])  # (N, h, w)
        return from_tiles(codes[:, None], self.grid_h, self.grid_w)[0, 0].cpu().long()  # (H, W)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> Image.Image:
        per_tile = self.grid_h * self.tile // self.image_size if self.tile else self.grid_h  # code rows per tile
        if self.tile and per_tile == 1:  # one code per tile: each tile is a function of its code alone, so decoded tiles are kept
            x = self._tiles_of(codes.reshape(-1).cpu())  # (N, 3, t, t)
        else:
            n = (self.grid_h // per_tile) * (self.grid_w // per_tile)  # tiles
            grid = to_tiles(codes.reshape(1, 1, self.grid_h, self.grid_w), per_tile if self.tile else 0)  # (N, 1, h, w)
            x = self._decode_codebook(grid.reshape(-1), (n, per_tile, grid.shape[-1], -1))  # (N, 3, t, t)
        x = from_tiles(x, self.image_size, self.image_size)  # (1, 3, S, S)
        return self.pixels.postprocess(x.cpu(), output_type="pil")[0]

    def _decode_codebook(self, flat: torch.Tensor, shape: tuple) -> torch.Tensor:
        """Codes (N*h*w,) -> (N, 3, t, t) pixels in [-1, 1] through the codebook and the VQ decoder."""
        q = self.vq.quantize.get_codebook_entry(flat.to(self.vq.device), shape)  # (N, C, h, w)
        x = self.vq.decode(q.to(self.vq.dtype), force_not_quantize=True).sample  # (N, 3u^2, t/u, t/u)
        return F.pixel_shuffle(x.float(), self.unshuffle).cpu()  # (N, 3, t, t)

    def _tiles_of(self, codes: torch.Tensor) -> torch.Tensor:
        """(N,) codes -> (N, 3, t, t) decoded tiles, each code through the VQ decoder once per
        tokenizer (the codes not decoded yet, in one batch); a picture, its previews and every
        later turn's pictures then cost a lookup instead of a decoder pass (about 40 ms on 2 cores)."""
        wanted = codes.tolist()
        missing = sorted({c for c in wanted if c not in self._tile_cache})
        if missing:
            tiles = self._decode_codebook(torch.tensor(missing), (len(missing), 1, 1, -1))  # (M, 3, t, t)
            self._tile_cache.update(zip(missing, tiles))
        return torch.stack([self._tile_cache[c] for c in wanted])  # (N, 3, t, t)

    def reconstruction_error(self, image: Image.Image) -> float:
        """Mean absolute difference (0..1) between `image` at the tokenizer's size and its round
        trip through the codes: small for pictures like the ones the VQ-VAE was trained on, large
        for anything else (a photo, noise, a flat colour)."""
        s = self.image_size
        x = self.pixels.preprocess(image.convert("RGB"), height=s, width=s)  # (1, 3, S, S) in [-1, 1]
        y = self.pixels.preprocess(self.decode(self.encode(image)), height=s, width=s)
        return float((x - y).abs().mean() / 2)
