"""`read_image`: the one checked way in for pictures (modes, frames, sizes, broken files, masks)."""

import io

import numpy as np
import pytest
from PIL import Image

from chatgen.errors import ChatgenError
from chatgen.images import MAX_PIXELS, check_mask_fits, read_image
from tests.helpers_fuzz import MODES, ODD_SIZES, animated, encode, odd_image, one_sentence, png_header_bomb


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_mode_becomes_rgb_and_a_mask(mode):
    for size in ODD_SIZES:
        img = odd_image(mode, size)
        sources = [img] + [encode(img, fmt) for fmt in MODES[mode]]
        for src in sources:
            rgb = read_image(src)
            assert rgb.mode == "RGB" and rgb.size == size and not rgb.info
            m = read_image(src, "mask", mask=True)
            assert m.mode == "L" and m.size == size and set(np.unique(np.asarray(m))) <= {0, 255}


def test_transparency_is_composited_on_white_and_is_the_mask():
    img = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    img.putpixel((1, 1), (10, 20, 30, 255))
    rgb = read_image(encode(img, "PNG"))
    assert rgb.getpixel((0, 0)) == (255, 255, 255) and rgb.getpixel((1, 1)) == (10, 20, 30)
    m = read_image(img, mask=True)
    assert m.getpixel((0, 0)) == 0 and m.getpixel((1, 1)) == 255
    pal = img.convert("P")  # a palette with a transparent index
    assert read_image(encode(pal, "PNG")).getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_grey_is_scaled_not_clipped():
    img = Image.new("I;16", (2, 1))
    img.putpixel((0, 0), 65535)
    img.putpixel((1, 0), 32768)
    rgb = read_image(encode(img, "PNG"))
    assert rgb.getpixel((0, 0)) == (255, 255, 255) and 120 < rgb.getpixel((1, 0))[0] < 135


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animations_give_their_first_frame(fmt):
    rgb = read_image(animated(fmt))
    r, g, b = rgb.getpixel((5, 5))
    assert r > 200 and g < 60 and b < 60


@pytest.mark.parametrize(
    "data, match",
    [
        (b"", "not an image"),
        (b"hello world", "not an image"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n", "not an image"),  # formats outside FORMATS are never parsed
        (png_header_bomb(), "megapixels"),
        (png_header_bomb(8000, 7000), "56.0 megapixels; the limit is 50 megapixels"),
        (encode(Image.new("RGB", (64, 64), "red"), "PNG")[:80], "truncated or corrupt"),
        (encode(Image.new("RGB", (64, 64), "red"), "JPEG")[:200], "not an image|truncated or corrupt"),
        (animated("GIF")[:60], "not an image|truncated or corrupt"),
    ],
    ids=["empty", "text", "eps", "header-bomb", "56MP", "cut-png", "cut-jpeg", "cut-gif"],
)
def test_bad_files_are_refused_in_one_sentence(data, match):
    with pytest.raises(ChatgenError, match=match) as e:
        read_image(data, "uploaded image")
    one_sentence(e.value)


def test_paths_name_the_file_only(tmp_path):
    bad = tmp_path / "sub" / "x.png"
    bad.parent.mkdir()
    bad.write_bytes(b"nope")
    with pytest.raises(ChatgenError, match="^x.png is not an image"):
        read_image(bad)
    with pytest.raises(ChatgenError, match="file not found: missing.png$"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ChatgenError, match="must be a PIL image"):
        read_image(3.5)
    assert read_image(io.BytesIO(encode(Image.new("L", (3, 3)), "BMP"))).size == (3, 3)


def test_pixel_limit_is_checked_before_decoding():
    huge = Image.new("1", (8000, 7000))
    assert 8000 * 7000 > MAX_PIXELS
    with pytest.raises(ChatgenError, match="limit is 50 megapixels"):
        read_image(encode(huge, "PNG"))


def test_mask_must_have_the_image_shape():
    check_mask_fits(Image.new("L", (96, 96)), (32, 32))
    check_mask_fits(Image.new("L", (101, 50)), (200, 100))  # off by rounding
    with pytest.raises(ChatgenError, match="the mask is 50x100 but the image it edits is 100x100"):
        check_mask_fits(Image.new("L", (50, 100)), (100, 100))
