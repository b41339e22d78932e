"""Inputs a hostile visitor might send, shared by test_images, test_session_files and test_fuzz."""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib

from PIL import Image

from chatgen.errors import MAX_ERROR_CHARS, ChatgenError

# (mode, formats that store it) for the odd-mode cases; a PIL image itself is tried too
MODES = {"1": ("PNG", "TIFF", "BMP"), "L": ("PNG", "JPEG", "GIF", "TIFF"), "LA": ("PNG", "TIFF"), "P": ("PNG", "GIF", "BMP", "TIFF"), "RGB": ("PNG", "JPEG", "WEBP", "TIFF"), "RGBA": ("PNG", "WEBP", "TIFF"), "CMYK": ("JPEG", "TIFF"), "I;16": ("PNG", "TIFF"), "I": ("TIFF",), "F": ("TIFF",), "YCbCr": ("JPEG",), "La": (), "PA": (), "RGBa": (), "LAB": ("TIFF",), "HSV": ()}
ODD_SIZES = [(1, 1), (10000, 1), (1, 10000), (2, 3), (17, 5), (33, 32)]


def one_sentence(e: ChatgenError) -> str:
    """The refusal's message, checked: one non-empty line of bounded length."""
    msg = str(e)
    assert msg and "\n" not in msg and len(msg) <= MAX_ERROR_CHARS and "Traceback" not in msg, repr(msg)
    return msg


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def odd_image(mode: str, size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A `mode` image of `size` with some content (a gradient, a transparent corner)."""
    img = Image.linear_gradient("L").resize(size).convert("RGBA")
    img.putpixel((0, 0), (255, 0, 0, seed % 256))
    try:
        return img.convert(mode)
    except ValueError:
        return Image.new(mode, size)


def animated(fmt: str, frames: int = 3) -> bytes:
    """An animated GIF, WebP or APNG whose first frame is red."""
    ims = [Image.new("RGB", (12, 10), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)][:frames]]
    return encode(ims[0], fmt, save_all=True, append_images=ims[1:], duration=50, loop=0)


def png_header_bomb(w: int = 100_000, h: int = 100_000) -> bytes:
    """A tiny PNG whose header claims w x h pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def zip_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


def zip_members(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def declare_size(data: bytes, index: int, size: int) -> bytes:
    """The archive with member `index`'s declared unpacked size set to `size` (local and central headers)."""
    out = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        infos, pos = z.infolist(), z.start_dir
    info = infos[index % len(infos)]
    struct.pack_into("<I", out, info.header_offset + 22, size)
    for i in range(len(infos)):
        assert out[pos : pos + 4] == b"PK\x01\x02"
        if i == index % len(infos):
            struct.pack_into("<I", out, pos + 24, size)
        n, m, k = struct.unpack_from("<HHH", out, pos + 28)
        pos += 46 + n + m + k
    return bytes(out)


def with_json(data: bytes, change) -> bytes:
    """The archive with session.json replaced by `change(dict)` (a dict, or text/bytes as is)."""
    members = []
    for name, raw in zip_members(data):
        if name == "session.json":
            new = change(json.loads(raw))
            raw = new if isinstance(new, bytes) else (new if isinstance(new, str) else json.dumps(new)).encode("utf-8", "surrogatepass")
        members.append((name, raw))
    return zip_bytes(members)
