"""The "what I can draw" card: its facts and icons match the world, and its examples work on the shipped model."""

import base64
import copy
import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from chatgen.conversation import Message, Session
from chatgen.defaults import SHIPPED
from chatgen.ui import world_card
from chatgen.ui.handlers import RETRY_TEMPERATURE
from chatgen.world import detect, scene

ROOT = Path(__file__).resolve().parents[1]
ATLAS = ROOT / "chatgen" / "world" / "assets"
SPRITES_MODULE = ROOT / "chatgen" / "ui" / "world_sprites.py"


def atlas_sprites() -> dict[str, Image.Image]:
    """The world atlas cut into one RGBA sprite per class."""
    layout = json.loads((ATLAS / "sprites.json").read_text())
    atlas, px, cols = Image.open(ATLAS / "sprites.png").convert("RGBA"), layout["sprite_px"], layout["columns"]
    return {c: atlas.crop(((i % cols) * px, (i // cols) * px, (i % cols + 1) * px, (i // cols + 1) * px)) for i, c in enumerate(layout["classes"])}


def sprites_module_text() -> str:
    lines = ['"""The world atlas\' sprites as PNG data URIs, one per class (written by tests/test_ui_card.py; do not edit)."""', "", "SPRITES: dict[str, str] = {"]
    for c, im in atlas_sprites().items():
        buf = io.BytesIO()
        im.save(buf, "PNG", optimize=True)
        lines.append(f'    "{c}": "data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}",')
    return "\n".join(lines + ["}", ""])


def decode(uri: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGBA")


def test_card_facts_and_icons_match_the_world():
    if os.environ.get("CHATGEN_WRITE_SPRITES") == "1":
        SPRITES_MODULE.write_text(sprites_module_text(), encoding="utf-8")
    assert world_card.CLASSES == scene.CLASSES
    assert world_card.BACKGROUNDS == scene.BACKGROUNDS
    assert (world_card.ROWS, world_card.COLS, world_card.MAX_OBJECTS) == (scene.ROWS, scene.COLS, scene.MAX_OBJECTS)
    sprites = atlas_sprites()
    assert set(world_card.SPRITES) == set(sprites)
    for c, im in sprites.items():  # pixel for pixel (PNG bytes may differ between Pillow versions)
        assert ImageChops.difference(decode(world_card.SPRITES[c]), im).getbbox() is None, f"{c}: world_sprites.py is stale: CHATGEN_WRITE_SPRITES=1 python -m pytest {Path(__file__).name}"
    card = world_card.card_html()
    assert all(f'alt="{c}"' in card for c in scene.CLASSES) and all(b in card for b in scene.BACKGROUNDS)


def test_only_world_models_get_the_card():
    assert world_card.is_world_model("native:chatgen-world:dcdef4b4f3fe")
    assert not world_card.is_world_model("native:tiny-random:0123")
    assert not world_card.is_world_model("janus:deepseek-ai/Janus-Pro-1B")


@pytest.mark.skipif(not (SHIPPED / "config.json").is_file(), reason="no shipped model in this checkout")
def test_examples_are_right_on_the_shipped_model():
    """Every drawing example greedy (the UI's default for the world model) and sampled as Retry
    samples (temperature 0.7, a new seed); every follow-up after every greedy drawing, greedy."""
    from chatgen.assistant import Assistant
    from chatgen.backends import load_backend

    assistant = Assistant(load_backend(SHIPPED))
    assert world_card.is_world_model(assistant.backend.name)
    draws = [e.text for e in world_card.EXAMPLES if not e.follow_up]
    follow_ups = [e.text for e in world_card.EXAMPLES if e.follow_up]
    assert draws and follow_ups
    wrong = []
    for i, text in enumerate(draws):
        for seed, temperature in ((100 + i, 0.0), (200 + i, RETRY_TEMPERATURE)):
            session = Session()
            reply = assistant.respond(session, Message(text), {"seed": seed, "temperature": temperature})
            got = detect(reply.image) if reply.image is not None else None
            if got != expected_drawing(text):
                wrong.append(f"{text!r} seed {seed}: {reply.text!r}, detected {got}, expected {expected_drawing(text)}")
            if seed != 100 + i or got is None:
                continue
            for j, follow in enumerate(follow_ups):
                s = copy.deepcopy(session)
                reply = assistant.respond(s, Message(follow), {"seed": 300 + 10 * i + j, "temperature": 0.0})
                problem = check_follow_up(follow, got, reply)
                if problem:
                    wrong.append(f"{text!r} then {follow!r}: {problem}")
    assert not wrong, "\n".join(wrong)


def expected_drawing(text: str) -> scene.Scene:
    """The scene each drawing example asks for."""
    O = scene.Obj
    return {
        "draw a dog on the grass": scene.Scene("grass", (O("dog", 1, 1),)),
        "draw a cat on the left and a tree on the right, on the beach": scene.Scene("beach", (O("cat", 1, 0), O("tree", 1, 2))),
        "draw a house in the center and a sun top right, at night": scene.Scene("night", (O("house", 1, 1), O("sun", 0, 2))),
    }[text]


def check_follow_up(text: str, before: scene.Scene, reply) -> str | None:
    """None when the reply to a follow-up example is right, else what is wrong."""
    got = detect(reply.image) if reply.image is not None else None
    if text == "add a balloon":
        ok = got is not None and got.background == before.background and got.count("balloon") == 1 and all(got.at(o.row, o.col) == o for o in before.objects)
    elif text == "add a bird top left":
        ok = got is not None and got == before.with_object(scene.Obj("bird", 0, 0))
    elif text == "what's in the picture?":
        words = reply.text.lower()
        ok = reply.image is None and before.background in words and all(o.cls in words for o in before.objects)
    else:
        return f"no check written for {text!r}"
    return None if ok else f"{reply.text!r}, detected {got}"
