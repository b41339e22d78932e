"""Loading and checking images at the public boundary (uploads, masks, CLI paths)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from .errors import ChatgenError

MAX_PIXELS = 50_000_000  # the largest upload we accept (50 megapixels)


def check_image(image: Image.Image, what: str = "image") -> Image.Image:
    """Check an in-memory image's size and return it as RGB."""
    if not isinstance(image, Image.Image):
        raise ChatgenError(f"{what} must be a PIL image, got {type(image).__name__}")
    w, h = image.size
    if w * h > MAX_PIXELS:
        raise ChatgenError(f"{what} is {w}x{h} = {w * h / 1e6:.1f} megapixels; the limit is {MAX_PIXELS / 1e6:.0f} megapixels")
    if w == 0 or h == 0:
        raise ChatgenError(f"{what} is empty ({w}x{h})")
    return image if image.mode == "RGB" else image.convert("RGB")


def load_image(path: str | os.PathLike | BinaryIO, what: str = "image") -> Image.Image:
    """Open an image file (or an open binary file) fully, with one clear error for each way it can be bad."""
    if hasattr(path, "read"):
        p = what  # in memory: errors name what it is
    else:
        p = Path(path)
        if not p.exists():
            raise ChatgenError(f"{what} file not found: {p}")
        if p.is_dir():
            raise ChatgenError(f"{what} path is a folder, not an image file: {p}")
    # 1. Identify the format from the header; the pixel count is known before decoding.
    try:
        img = Image.open(path if hasattr(path, "read") else p)
    except UnidentifiedImageError:
        raise ChatgenError(f"{p} is not an image (unrecognised file format)") from None
    except Image.DecompressionBombError:
        raise ChatgenError(f"{p} is too large; the limit is {MAX_PIXELS / 1e6:.0f} megapixels") from None
    except OSError as e:
        raise ChatgenError(f"cannot read {what} {p}: {e}") from None
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ChatgenError(f"{p} is {w}x{h} = {w * h / 1e6:.1f} megapixels; the limit is {MAX_PIXELS / 1e6:.0f} megapixels")
    # 2. Decode the pixels: truncated or corrupt data fails here.
    try:
        img.load()
    except Image.DecompressionBombError:
        raise ChatgenError(f"{p} is too large; the limit is {MAX_PIXELS / 1e6:.0f} megapixels") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ChatgenError(f"{p} is truncated or corrupt ({e})") from None
    return img


def load_mask(path: str | os.PathLike) -> Image.Image:
    """A mask is any image; painted (non-black, or opaque where it has alpha) pixels mark what may change."""
    return mask_from_image(load_image(path, what="mask"))


def mask_from_image(img: Image.Image) -> Image.Image:
    """Normalise a painted layer to an 'L' mask: 255 = may change, 0 = keep."""
    if "A" in img.getbands():
        alpha = img.getchannel("A")
        if alpha.getextrema()[0] < 255:  # a transparent layer: the paint is where it is opaque
            return alpha.point(lambda v: 255 if v > 0 else 0)
    return img.convert("L").point(lambda v: 255 if v > 0 else 0)


def png_bytes(image: Image.Image, text: dict[str, str] | None = None) -> bytes:
    """Encode as PNG, with optional tEXt chunks (e.g. the generation parameters)."""
    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_text(k, v)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def save_png(image: Image.Image, path: str | os.PathLike, text: dict[str, str] | None = None) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(png_bytes(image, text))
    return p
