"""Build the sprite atlas `assets/sprites.png` from the Noto Color Emoji font.

Run once, by hand, and commit the result; nothing at run time needs the font:

    apt-get install -y fonts-noto-color-emoji
    python -m chatgen.world.make_atlas            # sprites.png, 30 px sprites
    python -m chatgen.world.make_atlas --scale 4  # sprites_x4.png, 120 px (the refiner's clean renders)

Each class is one emoji, drawn at the font's bitmap size (109 px), cropped to its visible
pixels, scaled with LANCZOS so its longer side is EMOJI_PX, centred on a transparent
SPRITE_PX x SPRITE_PX square and given a 1 px dark outline (a sticker edge, so that green
sprites stay visible on grass and the white cloud on snow). The atlas is a grid of
ATLAS_COLUMNS squares in CLASSES order;
`assets/sprites.json` records the layout and the emoji used. The font is under the SIL Open
Font License 1.1 (`assets/LICENSE-noto-emoji.txt`).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from chatgen.world.scene import CLASSES

ASSETS = Path(__file__).parent / "assets"
FONT_PATH = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
FONT_LICENSE = "/usr/share/doc/fonts-noto-color-emoji/copyright"
FONT_SIZE = 109  # the only size the colour bitmap font renders at
EMOJI_PX = 28  # longer side of the scaled emoji
SPRITE_PX = 30  # side of one sprite: the emoji plus its outline; a slot is 32 px
OUTLINE_RGB = (40, 40, 48)  # colour of the 1 px outline
ATLAS_COLUMNS = 6

# One emoji per class.
EMOJI: dict[str, str] = {
    "dog": "\U0001F436", "cat": "\U0001F431", "rabbit": "\U0001F430", "fox": "\U0001F98A",
    "bear": "\U0001F43B", "panda": "\U0001F43C", "frog": "\U0001F438", "chicken": "\U0001F414",
    "bird": "\U0001F426", "fish": "\U0001F41F", "tree": "\U0001F333", "cactus": "\U0001F335",
    "flower": "\U0001F338", "house": "\U0001F3E0", "car": "\U0001F697", "bicycle": "\U0001F6B2",
    "boat": "\u26F5", "sun": "\u2600\uFE0F", "moon": "\U0001F319", "star": "\u2B50",
    "cloud": "\u2601\uFE0F", "apple": "\U0001F34E", "balloon": "\U0001F388", "ball": "\u26BD",
}

# Hue rotations (in 0..255 HSV units) that keep look-alike sprites apart: the red balloon
# would be a second red blob next to the apple and the car, so it turns purple.
HUE_SHIFT: dict[str, int] = {"balloon": 195}


def render_emoji(font: ImageFont.FreeTypeFont, char: str) -> Image.Image:
    """One emoji as a tightly cropped RGBA image at the font's native size."""
    canvas = Image.new("RGBA", (FONT_SIZE * 2, FONT_SIZE * 2), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((FONT_SIZE // 4, FONT_SIZE // 4), char, font=font, embedded_color=True)
    box = canvas.getbbox()
    if box is None:
        raise ValueError(f"the font drew nothing for {char!r}; is {FONT_PATH} the colour emoji font?")
    return canvas.crop(box)


def shift_hue(im: Image.Image, shift: int) -> Image.Image:
    """Rotate the hue of an RGBA image, keeping its alpha."""
    h, s, v = im.convert("RGB").convert("HSV").split()
    h = h.point(lambda x: (x + shift) % 256)
    out = Image.merge("HSV", (h, s, v)).convert("RGB")
    out.putalpha(im.getchannel("A"))
    return out


def fit(im: Image.Image, side: int) -> Image.Image:
    """Scale so the longer side is `side` and centre on a transparent square."""
    scale = side / max(im.size)
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    small = im.resize(size, Image.LANCZOS)  # Pillow premultiplies alpha for RGBA resizes
    out = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    out.alpha_composite(small, ((side - size[0]) // 2, (side - size[1]) // 2))
    return out


def outline(im: Image.Image, rgb: tuple[int, int, int] = OUTLINE_RGB, width: int = 1) -> Image.Image:
    """Put a `width` px outline of colour `rgb` around the visible pixels of an RGBA image."""
    edge = Image.new("RGBA", im.size, rgb + (0,))
    edge.putalpha(im.getchannel("A").filter(ImageFilter.MaxFilter(2 * width + 1)))  # alpha grown by `width` px
    edge.alpha_composite(im)
    return edge


def build_atlas(font_path: str = FONT_PATH, scale: int = 1) -> tuple[Image.Image, dict]:
    """The atlas image and its JSON index; `scale` 4 gives the same sprites 4x as large (the
    clean 384 px renders the embedded refiner learns from)."""
    font = ImageFont.truetype(font_path, FONT_SIZE)
    rows = -(-len(CLASSES) // ATLAS_COLUMNS)
    sprite_px, emoji_px = SPRITE_PX * scale, EMOJI_PX * scale
    atlas = Image.new("RGBA", (ATLAS_COLUMNS * sprite_px, rows * sprite_px), (0, 0, 0, 0))
    for i, cls in enumerate(CLASSES):
        im = render_emoji(font, EMOJI[cls])
        if cls in HUE_SHIFT:
            im = shift_hue(im, HUE_SHIFT[cls])
        cell = Image.new("RGBA", (sprite_px, sprite_px), (0, 0, 0, 0))
        cell.alpha_composite(fit(im, emoji_px), ((sprite_px - emoji_px) // 2,) * 2)
        atlas.alpha_composite(outline(cell, width=scale), ((i % ATLAS_COLUMNS) * sprite_px, (i // ATLAS_COLUMNS) * sprite_px))
    index = {
        "sprite_px": sprite_px,
        "columns": ATLAS_COLUMNS,
        "classes": list(CLASSES),
        "emoji": {c: " ".join(f"U+{ord(ch):04X}" for ch in EMOJI[c]) for c in CLASSES},
        "hue_shift": HUE_SHIFT,
        "outline_rgb": list(OUTLINE_RGB),
        "source": "Noto Color Emoji (fonts-noto-color-emoji), SIL Open Font License 1.1",
    }
    return atlas, index


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--font", default=FONT_PATH, help="path to NotoColorEmoji.ttf")
    parser.add_argument("--out", default=str(ASSETS), help="folder for sprites.png and sprites.json")
    parser.add_argument("--scale", type=int, default=1, help="sprite size factor; 4 writes sprites_x4.png/.json (the refiner's clean renders)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atlas, index = build_atlas(args.font, args.scale)
    stem = "sprites" if args.scale == 1 else f"sprites_x{args.scale}"
    atlas.save(out / f"{stem}.png", optimize=True)
    (out / f"{stem}.json").write_text(json.dumps(index, indent=1) + "\n")
    if Path(FONT_LICENSE).exists():
        shutil.copyfile(FONT_LICENSE, out / "LICENSE-noto-emoji.txt")
    print(f"wrote {out / (stem + '.png')} ({atlas.width}x{atlas.height}, {len(CLASSES)} sprites)")


if __name__ == "__main__":
    main()
