"""The "what I can draw" card and the example prompts, for models trained on chatgen's world.

The embedded model knows one small world: 24 kinds of things, 6 backgrounds, a 3x3 grid of
places, at most 4 things in a picture. A visitor should read that before typing, not learn it
from a refusal, so the UI shows it next to the chat, with the world's own sprites as icons and
a few prompts to click that the shipped model gets right.

The request path may not import `chatgen.world` (an import-linter contract keeps the synthetic
world and training out of it), so the few facts are written down here and the icons are the
world atlas' sprites, one PNG data URI per class, in `world_sprites.py`. Both are checked
against `chatgen.world` by `tests/test_ui_card.py`, which also runs every example through the
shipped model at the UI's default settings and writes `world_sprites.py` again when asked
(`CHATGEN_WRITE_SPRITES=1 python -m pytest tests/test_ui_card.py`).

The card is shown only for a model of this world (its config's `model_name` is
`chatgen-world`, as `chatgen train` writes it): a real checkpoint can draw far more.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from .world_sprites import SPRITES

WORLD_MODEL_NAME = "chatgen-world"  # the config `model_name` of models trained on the world

# The 24 classes in the world atlas' order (chatgen.world.scene.CLASSES).
CLASSES: tuple[str, ...] = (
    "dog", "cat", "rabbit", "fox", "bear", "panda", "frog", "chicken", "bird", "fish",
    "tree", "cactus", "flower", "house", "car", "bicycle", "boat",
    "sun", "moon", "star", "cloud", "apple", "balloon", "ball",
)
BACKGROUNDS: tuple[str, ...] = ("grass", "sky", "beach", "snow", "night", "sea")  # chatgen.world.scene.BACKGROUNDS
ROWS: tuple[str, ...] = ("top", "middle", "bottom")  # the grid's rows, as the model words them
COLS: tuple[str, ...] = ("left", "center", "right")  # the grid's columns
MAX_OBJECTS = 4  # things in one picture (chatgen.world.scene.MAX_OBJECTS)
ICON_PX = 24  # CSS pixels per icon on the card (the sprites are 30 px)


@dataclass(frozen=True)
class Example:
    """A prompt to click: sent as the next message."""

    text: str  # the message
    follow_up: bool  # an edit or a question about the current picture (needs one)


# Checked by tests/test_ui_card.py on the shipped model: each drawing on its own, each follow-up
# after each drawing. Kinds the model is weakest at (counts, "where is", clarifications) are left out.
EXAMPLES: tuple[Example, ...] = (
    Example("draw a dog on the grass", False),
    Example("draw a cat on the left and a tree on the right, on the beach", False),
    Example("draw a house in the center and a sun top right, at night", False),
    Example("add a balloon", True),
    Example("add a bird top left", True),
    Example("what's in the picture?", True),
)


def is_world_model(backend_name: str) -> bool:
    """True for a native model trained on the world (backend names read `native:<model_name>:<digest>`)."""
    parts = str(backend_name).split(":")
    return len(parts) >= 2 and parts[1] == WORLD_MODEL_NAME


def card_html() -> str:
    """The card: icons of the 24 classes (named on hover), the backgrounds, the places, the limit."""
    icons = "".join(f'<img class="cg-icon" src="{SPRITES[c]}" alt="{c}" title="{c}" width="{ICON_PX}" height="{ICON_PX}">' for c in CLASSES)
    return (
        '<div class="cg-card">'
        '<div class="cg-card-title">What I can draw</div>'
        f'<div class="cg-icons" aria-label="{html.escape(", ".join(CLASSES))}">{icons}</div>'
        f'<div class="cg-card-line"><b>on</b> {", ".join(BACKGROUNDS)}</div>'
        f'<div class="cg-card-line"><b>where</b> {" / ".join(ROWS)} × {" / ".join(COLS)} (a 3x3 grid)</div>'
        f'<div class="cg-card-line"><b>up to</b> {MAX_OBJECTS} things per picture; then edit them or ask about them</div>'
        '<div class="cg-card-title cg-try">Try</div>'
        "</div>"
    )
