"""The one checked way a picture enters chatgen, and PNG encoding on the way out.

`read_image` is the boundary for every image a person (or a file) hands us: UI uploads and mask
layers, API files, imported sessions, LangChain image blocks, eval suites, the CLI and, once
more, `Assistant.prepare`. It takes a path, bytes, an open binary file or a PIL image and
returns a fresh 8-bit image built from decoded pixels only:

1. Open: files are identified from their header among `FORMATS`; nothing else is parsed.
2. Size: the pixel count is read from the header and checked against `MAX_PIXELS` before a
   single pixel is decoded (a decompression bomb is refused here).
3. Decode the first frame (animated GIF / WebP / APNG, multi-page TIFF); truncated or corrupt
   data is refused here.
4. Convert any mode: to RGB (transparency composited on white, 16-bit and 32-bit grey scaled
   to 8 bits, CMYK, palette, ...) or, for a mask, to 'L' with 255 where painted.
5. Re-encode: a new image from the pixels (the EXIF orientation applied), so no file handle,
   metadata, ICC profile or lazy decoder travels further.

Every refusal is a one-sentence `ChatgenError` naming the file or `what`.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from .errors import ChatgenError

MAX_PIXELS = 50_000_000  # the largest picture we accept (50 megapixels)
FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")  # the file formats we decode; anything else is refused unread
_LIMIT = f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels"


def read_image(source: Image.Image | bytes | BinaryIO | str | os.PathLike, what: str = "image", *, mask: bool = False) -> Image.Image:
    """A checked, re-encoded picture: RGB, or with mask=True an 'L' mask (255 = may change).

    `what` names the picture in errors ("uploaded image", "mask"); a file is named by its file
    name (never its folder, which may be a server's temporary path)."""
    # 1. Open (a file: identify its format from the header).
    img, label = _open(source, what)
    # 2. Size, from the header: nothing is decoded yet.
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ChatgenError(f"{label} is {w}x{h} = {w * h / 1e6:.1f} megapixels; {_LIMIT}")
    if w == 0 or h == 0:
        raise ChatgenError(f"{label} is empty ({w}x{h} pixels)")
    # 3. Decode the first frame.
    try:
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)
        img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ChatgenError(f"{label} is too large; {_LIMIT}") from None
    except Exception as e:  # noqa: BLE001 - a decoder meets hostile bytes: any failure is a corrupt file
        raise ChatgenError(f"{label} is truncated or corrupt ({type(e).__name__}: {e})") from None
    # 4 + 5. Convert and re-encode from the pixels, upright.
    try:
        if not isinstance(source, Image.Image):
            img = ImageOps.exif_transpose(img) or img
    except Exception:  # noqa: BLE001 - a broken EXIF block leaves the picture as stored
        pass
    try:
        return mask_from_image(img) if mask else to_rgb(img)
    except (ValueError, OSError) as e:
        raise ChatgenError(f"{label} has a colour mode chatgen cannot convert ({img.mode}: {e})") from None


def _open(source, what: str) -> tuple[Image.Image, str]:
    """(image, how errors name it); a file is opened lazily: only its header is read."""
    if isinstance(source, Image.Image):
        return source, what
    if isinstance(source, (bytes, bytearray, memoryview)):
        source, label = io.BytesIO(bytes(source)), what
    elif hasattr(source, "read"):
        label = what
    elif isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if not p.exists():
            raise ChatgenError(f"{what} file not found: {p.name}")
        if p.is_dir():
            raise ChatgenError(f"{what} path is a folder, not an image file: {p.name}")
        source, label = p, p.name
    else:
        raise ChatgenError(f"{what} must be a PIL image, image bytes or a file path, got {type(source).__name__}")
    try:
        return Image.open(source, formats=FORMATS), label
    except UnidentifiedImageError:
        raise ChatgenError(f"{label} is not an image (chatgen reads PNG, JPEG, GIF, WebP, BMP and TIFF files)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # Pillow's own limits are above ours
        raise ChatgenError(f"{label} is too large; {_LIMIT}") from None
    except Exception as e:  # noqa: BLE001 - a header parser meets hostile bytes
        raise ChatgenError(f"{label} is truncated or corrupt ({type(e).__name__}: {e})") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Any mode -> a new 8-bit RGB image; transparency is composited on white."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        img = Image.fromarray(_grey8(img), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode == "La":  # premultiplied grey: Pillow converts it to LA only
        img = img.convert("LA")
    if img.mode in ("PA", "LA", "RGBa", "RGBA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    rgb = img.convert("RGB")
    return Image.frombytes("RGB", rgb.size, rgb.tobytes())


def _grey8(img: Image.Image) -> np.ndarray:
    """16-bit, 32-bit integer or float grey -> uint8 (H, W), scaled by the range the values use."""
    a = np.nan_to_num(np.asarray(img, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)  # (H, W)
    a = a - min(a.min(), 0.0)
    top = a.max()
    if top > 255 or (img.mode == "F" and 0 < top <= 1):
        a = a * (255.0 / top)
    return np.clip(a, 0, 255).astype(np.uint8)


def mask_from_image(img: Image.Image) -> Image.Image:
    """A painted layer -> a new 'L' mask: 255 = may change, 0 = keep. Paint is where the layer
    is opaque (when it has transparency), else where it is not black."""
    if img.mode in ("P", "PA", "La", "RGBa"):  # palette and premultiplied modes: to plain RGB(A) / LA first
        img = img.convert({"La": "LA", "RGBa": "RGBA"}.get(img.mode, "RGBA" if img.mode == "PA" or "transparency" in img.info else "RGB"))
    if "A" in img.getbands():
        alpha = img.getchannel("A")
        if alpha.getextrema()[0] < 255:  # a transparent layer: the paint is where it is opaque
            return alpha.point(lambda v: 255 if v > 0 else 0).convert("L")
    grey = Image.fromarray(_grey8(img), "L") if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F") else img.convert("L")
    return grey.point(lambda v: 255 if v > 0 else 0)


def check_mask_fits(mask: Image.Image, size: tuple[int, int]) -> None:
    """A mask must cover the image it edits: the same size, or the same shape scaled (to a pixel)."""
    (mw, mh), (iw, ih) = mask.size, size
    if abs(mh * iw / mw - ih) > max(1.0, 0.01 * ih) or abs(mw * ih / mh - iw) > max(1.0, 0.01 * iw):
        raise ChatgenError(f"the mask is {mw}x{mh} but the image it edits is {iw}x{ih}; paint a mask of the image's shape")


REGION_ROWS = ("top", "middle", "bottom")  # names of a 3x3 split's rows, top to bottom
REGION_COLS = ("left", "center", "right")  # and of its columns, left to right


def painted_cells(mask: Image.Image, rows: int, cols: int) -> np.ndarray:
    """(rows, cols) bool: True where any painted pixel falls in that cell."""
    m = np.asarray(mask.convert("L").resize((cols * 8, rows * 8), Image.Resampling.BOX)) > 0  # (8R, 8C)
    return m.reshape(rows, 8, cols, 8).any(axis=(1, 3))  # (R, C)


def mask_regions(mask: Image.Image, min_share: float = 0.25) -> list[tuple[int, int]]:
    """The cells of a 3x3 split of the picture that a mask paints, in reading order: every cell
    at least `min_share` painted, else the one painted most (none for an empty mask). A person
    paints roughly; a stroke over part of a thing still names the thing's cell."""
    n = len(REGION_ROWS)
    m = np.asarray(mask.convert("L").resize((n * 16, n * 16), Image.Resampling.BOX), dtype=np.float32) / 255.0  # (16n, 16n)
    share = m.reshape(n, 16, n, 16).mean(axis=(1, 3))  # (n, n) painted share of each cell
    if share.max() <= 0:
        return []
    cells = [(r, c) for r in range(n) for c in range(n) if share[r, c] >= min_share]
    return cells or [tuple(int(i) for i in np.unravel_index(int(share.argmax()), share.shape))]


def region_text(cells: list[tuple[int, int]]) -> str:
    """Cells of a 3x3 split as words: [(0, 0), (1, 2)] -> "top left, middle right"."""
    return ", ".join(f"{REGION_ROWS[r]} {REGION_COLS[c]}" for r, c in cells)


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
