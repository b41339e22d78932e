"""Scene model, renderer and detector of the synthetic world."""

import io
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from chatgen.world import (
    BACKGROUNDS, CLASSES, DEFAULT_SLOTS, OUT_OF_WORLD, Obj, Scene, background_tile, detect,
    detect_slots, random_scene, render, render_array, slot_accuracy, slot_name, slot_phrase, slots_of,
)
from chatgen.world.render import ASSETS

# ---- scene -------------------------------------------------------------------------------


def test_classes_and_backgrounds():
    assert len(CLASSES) == 24 and len(set(CLASSES)) == 24
    assert set(BACKGROUNDS) == {"grass", "sky", "beach", "snow", "night", "sea"}
    assert len(OUT_OF_WORLD) >= 20 and not set(OUT_OF_WORLD) & set(CLASSES)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Scene("space"), "background='space'"),
        (lambda: Obj("giraffe", 0, 0), "cls='giraffe'"),
        (lambda: Obj("dog", 3, 0), "row=3"),
        (lambda: Obj("dog", 0, -1), "col=-1"),
        (lambda: Scene("grass", (Obj("dog", 0, 0), Obj("cat", 0, 0))), "two objects in slot 'top left'"),
        (lambda: Scene("grass", tuple(Obj("dog", 0, c) for c in range(3)) + (Obj("cat", 1, 0), Obj("cat", 1, 1))), "at most 4"),
        (lambda: Scene("grass", (Obj("dog", 0, 0), Obj("dog", 0, 1), Obj("dog", 0, 2), Obj("dog", 1, 0))), "4 of 'dog'"),
        (lambda: Scene("grass", ("dog",)), "Obj items"),
        (lambda: Scene.from_dict({"objects": []}), "'background'"),
        (lambda: slots_of("upstairs"), "position='upstairs'"),
    ],
)
def test_scene_validation_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_scene_canonical_order_and_queries():
    a = Scene("sea", (Obj("cat", 2, 2), Obj("dog", 0, 1), Obj("dog", 1, 0)))
    b = Scene("sea", (Obj("dog", 1, 0), Obj("cat", 2, 2), Obj("dog", 0, 1)))
    assert a == b and a.objects == (Obj("dog", 0, 1), Obj("dog", 1, 0), Obj("cat", 2, 2))
    assert a.count("dog") == 2 and a.count("cat") == 1 and a.count("fox") == 0
    assert a.count("animals") == 3 and a.count("objects") == 3 and a.count("plants") == 0
    assert a.objects_at("left") == (Obj("dog", 1, 0),)
    assert a.objects_at("top") == (Obj("dog", 0, 1),)
    assert a.objects_at("bottom right") == (Obj("cat", 2, 2),)
    assert a.objects_at("center") == (Obj("dog", 0, 1),)
    assert a.at(2, 2) == Obj("cat", 2, 2) and a.at(1, 1) is None
    assert a.default_slot() == (1, 1) and DEFAULT_SLOTS[0] == (1, 1)
    assert Scene.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    assert slot_name(1, 1) == "middle center" and slot_name(0, 2) == "top right"
    assert [slot_phrase(*s) for s in [(1, 1), (1, 0), (0, 1), (2, 2)]] == [
        "in the center", "on the left", "at the top", "in the bottom right"]
    assert a.replaced(1, 0, "fox").count("fox") == 1
    assert a.moved(1, 0, 2, 0).at(2, 0) == Obj("dog", 2, 0)
    with pytest.raises(ValueError, match="taken"):
        a.with_object(Obj("fox", 2, 2))


def test_random_scene_is_valid_and_seeded():
    scenes = [random_scene(random.Random(i)) for i in range(200)]
    assert scenes == [random_scene(random.Random(i)) for i in range(200)]
    assert {len(s.objects) for s in scenes} == {1, 2, 3, 4}
    assert any(max(s.count(c) for c in CLASSES) > 1 for s in scenes)  # repeats happen


# ---- render ------------------------------------------------------------------------------


def test_render_is_deterministic_rgb_96():
    scene = Scene("night", (Obj("moon", 0, 2), Obj("house", 2, 0), Obj("cat", 1, 1)))
    a, b = render(scene), render(Scene.from_dict(scene.to_dict()))
    assert a.size == (96, 96) and a.mode == "RGB"
    assert a.tobytes() == b.tobytes()
    assert render(Scene("night")).tobytes() != a.tobytes()


def test_backgrounds_are_16px_periodic_and_distinct():
    means = []
    for bg in BACKGROUNDS:
        arr = render_array(Scene(bg)).astype(int)
        assert (arr[16:] == arr[:-16]).all() and (arr[:, 16:] == arr[:, :-16]).all()
        assert (arr[:16, :16] == background_tile(bg)).all()
        means.append(arr.reshape(-1, 3).mean(0))
    for i in range(len(means)):
        for j in range(i):
            assert np.abs(means[i] - means[j]).max() > 40, (BACKGROUNDS[i], BACKGROUNDS[j])


def test_same_sprite_looks_the_same_in_every_slot():
    for cls in ("dog", "balloon"):
        crops = [render_array(Scene("grass", (Obj(cls, r, c),)))[32 * r : 32 * r + 32, 32 * c : 32 * c + 32]
                 for r in range(3) for c in range(3)]
        assert all((crop == crops[0]).all() for crop in crops)


def test_sprites_are_distinct_on_every_background():
    for bg in BACKGROUNDS:
        crops = {c: render_array(Scene(bg, (Obj(c, 1, 1),)))[32:64, 32:64].astype(float) / 255 for c in CLASSES}
        crops["<empty>"] = render_array(Scene(bg))[32:64, 32:64].astype(float) / 255
        names = list(crops)
        for i, a in enumerate(names):
            for b in names[:i]:
                mse = ((crops[a] - crops[b]) ** 2).mean()
                assert mse > 0.01, (bg, a, b, mse)


def test_atlas_is_committed_small_and_licensed():
    png = ASSETS / "sprites.png"
    assert png.stat().st_size < 100_000
    assert Image.open(png).size == (6 * 30, 4 * 30)
    assert json.loads((ASSETS / "sprites.json").read_text())["classes"] == list(CLASSES)
    assert "Open Font License" in (ASSETS / "LICENSE-noto-emoji.txt").read_text()


def test_world_does_not_import_torch():
    # Import chatgen.world without running chatgen/__init__.py (which loads the model stack).
    root = Path(__file__).resolve().parents[1]
    code = (
        "import sys, types; pkg = types.ModuleType('chatgen'); "
        f"pkg.__path__ = [{str(root / 'chatgen')!r}]; sys.modules['chatgen'] = pkg; "
        "import chatgen.world, chatgen.world.make_atlas; "
        "assert 'torch' not in sys.modules, 'chatgen.world imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


# ---- detect ------------------------------------------------------------------------------


def degrade(img: Image.Image, rng: random.Random) -> Image.Image:
    """A stand-in for a VQ-VAE reconstruction: blur, JPEG, noise and a colour shift."""
    img = img.filter(ImageFilter.GaussianBlur(1))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=70)
    arr = np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32) / 255  # (96, 96, 3)
    arr = arr + np.random.default_rng(rng.randrange(2**32)).normal(0, 0.03, arr.shape)
    arr = arr * rng.uniform(0.96, 1.04) + np.array([rng.uniform(-0.03, 0.03) for _ in range(3)])
    return Image.fromarray((np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8))


def test_detector_accuracy_clean_and_degraded():
    rng = random.Random(1234)
    n, clean, degraded, bg_clean, bg_degraded = 300, 0.0, 0.0, 0, 0
    for _ in range(n):
        scene = random_scene(rng, n_objects=rng.randint(0, 4))
        img = render(scene)
        got = detect(img)
        clean += slot_accuracy(scene, got)
        bg_clean += got.background == scene.background
        got = detect(degrade(img, rng))
        degraded += slot_accuracy(scene, got)
        bg_degraded += got.background == scene.background
    print(f"\ndetector slot accuracy over {n} scenes: clean {clean / n:.4f}, degraded {degraded / n:.4f}; "
          f"background: clean {bg_clean / n:.4f}, degraded {bg_degraded / n:.4f}")
    assert clean / n >= 0.995 and bg_clean == n
    assert degraded / n >= 0.99 and bg_degraded / n >= 0.99


def test_detector_exact_on_every_class_and_background():
    for bg in BACKGROUNDS:
        for i in range(0, len(CLASSES), 4):
            scene = Scene(bg, tuple(Obj(c, *s) for c, s in zip(CLASSES[i : i + 4], [(0, 0), (1, 1), (2, 2), (0, 2)])))
            assert detect(render(scene)) == scene


def test_detector_resizes_other_sizes():
    scene = Scene("beach", (Obj("fox", 0, 0), Obj("boat", 2, 1)))
    img = render(scene)
    for size in (192, 128, 80):
        assert detect(img.resize((size, size), Image.BICUBIC)) == scene
    assert detect(img.convert("RGBA")) == scene


def test_detection_keeps_scene_limits():
    det = detect_slots(render(Scene("sky", (Obj("cloud", 0, 0), Obj("cloud", 0, 1), Obj("cloud", 0, 2)))))
    assert det.labels[0] == ("cloud", "cloud", "cloud") and det.labels[1] == (None, None, None)
    assert det.margins[0][0] > 0
    with pytest.raises(ValueError, match="PIL.Image"):
        detect(np.zeros((96, 96, 3)))
