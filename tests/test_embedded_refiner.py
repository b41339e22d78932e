"""The embedded refiner (`chatgen.embedded_refiner`): the world's 96 px decode to a 384 px
picture by a learned per-tile dictionary. Dictionaries are learned here from a few scenes with
the shipped model's VQ-VAE; the shipped refiner's held-out figures come from
`chatgen bench-refiner` (in the README)."""

import json
import random

import numpy as np
import pytest
from PIL import Image

from chatgen import world
from chatgen.assistant import Assistant
from chatgen.cli import main
from chatgen.conversation import Session
from chatgen.defaults import SHIPPED
from chatgen.events import RefineStep
from chatgen.evals.refiner import measure_refiner
from chatgen.refiner import load_refiner
from chatgen.train.refiner import RefinerTrainConfig, train_refiner


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """A dictionary learned from 300 training scenes: (folder, the VQ image tokenizer)."""
    folder = tmp_path_factory.mktemp("embedded") / "refiner"
    tokenizer = train_refiner(SHIPPED, folder, RefinerTrainConfig(scenes=300), log=lambda m: None)
    return folder, tokenizer


def scene_picture(seed):
    rng = random.Random(seed)
    scene = world.random_scene(rng, n_objects=rng.randint(1, world.MAX_OBJECTS))
    return scene, world.render(scene)


def refine_steps(refiner, picture, **kw):
    steps, events = refiner.stream(picture, "a scene", **kw), []
    while True:
        try:
            events.append(next(steps))
        except StopIteration as stop:
            return events, stop.value


def test_held_out_decodes_become_their_clean_4x_renders(learned):
    """The figures bench-refiner prints, on scenes the dictionary never saw: sharper than bicubic
    by far, the same scene for the detector, and fast."""
    folder, tokenizer = learned
    figures = measure_refiner(load_refiner(str(folder)).refine, tokenizer, n=12)
    assert figures["psnr_gain_db"] >= 3 and figures["psnr_refined_db"] > figures["psnr_bicubic_db"]
    assert figures["detector_same_as_decode"] == 1.0 and figures["detector_same_as_scene"] == 1.0
    assert figures["seconds_median"] < 1.0


def test_a_saved_dictionary_loads_by_folder_runs_one_step_and_previews_it(learned):
    folder, _ = learned
    refiner = load_refiner(str(folder))
    assert type(refiner.pipe).__name__ == "EmbeddedRefinerPipeline" and refiner.size == 384
    assert (refiner.config.steps, refiner.config.strength) == (1, 1.0)
    events, picture = refine_steps(refiner, scene_picture(3)[1])
    assert [(e.step, e.steps) for e in events] == [(0, 1)] and isinstance(events[0], RefineStep)
    assert events[0].preview.size == (384, 384) and picture.size == (384, 384)
    assert np.array_equal(np.asarray(events[0].preview), np.asarray(picture))


def test_tiles_that_are_not_world_tiles_get_bicubic_not_invented_detail(learned):
    folder, _ = learned
    refiner = load_refiner(str(folder))
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8))
    refined = np.asarray(refiner.refine(noise)).astype(int)
    bicubic = np.asarray(noise.resize((384, 384), Image.Resampling.BICUBIC)).astype(int)
    assert np.array_equal(refined, bicubic)


def test_codes_never_seen_in_training_fall_back_to_their_bicubic_upscale(learned):
    folder, _ = learned
    meta = json.loads((folder / "refiner.json").read_text())
    pipe = load_refiner(str(folder)).pipe
    unseen = [k for k, n in enumerate(meta["seen"]) if n == 0]
    assert unseen and 0 < meta["codes"] - len(unseen) < meta["codes"]
    k = unseen[0]
    expected = np.asarray(Image.fromarray(pipe.keys[k]).resize((64, 64), Image.Resampling.BICUBIC))
    assert np.array_equal(pipe.values[k], expected)


def test_the_clean_4x_render_is_the_same_scene():
    rng = random.Random(5)
    for _ in range(20):
        scene = world.random_scene(rng, n_objects=rng.randint(0, world.MAX_OBJECTS))
        big = world.render(scene, scale=4)
        assert big.size == (384, 384) and world.detect(big) == scene
    with pytest.raises(ValueError, match="scale must be 1 or 4"):
        world.render(scene, scale=3)


def test_a_chat_turn_on_the_embedded_model_shows_the_refined_picture_and_keeps_its_codes(learned):
    from chatgen.backends import load_backend

    folder, _ = learned
    backend = load_backend(SHIPPED)
    plain, refined = Assistant(backend), Assistant(backend, load_refiner(str(folder)))
    off = plain.respond(Session(), "draw a cat on the left on the beach", {"seed": 0})
    on = refined.respond(Session(), "draw a cat on the left on the beach", {"seed": 0})
    assert off.image.size == (96, 96) and on.image.size == (384, 384)
    assert on.turn.reply_ids == off.turn.reply_ids  # the conversation keeps the model's own codes
    assert world.detect(on.image) == world.detect(off.image)


def test_bench_refiner_prints_the_figures_and_a_sheet(learned, tmp_path, capsys):
    folder, _ = learned
    code = main(["bench-refiner", "--refiner", str(folder), "--n", "3", "--json", str(tmp_path / "f.json"), "--sheet", str(tmp_path / "sheet.png")])
    out = capsys.readouterr().out
    assert code == 0 and json.loads(out) == json.loads((tmp_path / "f.json").read_text())
    assert json.loads(out)["scenes"] == 3
    assert Image.open(tmp_path / "sheet.png").size == (4 * 384 + 3 * 8, 384)


def test_bad_training_and_bench_flags_are_one_sentence(tmp_path, capsys):
    assert main(["train", "--stage", "refiner", "--out", str(tmp_path / "r"), "--minutes", "-1"]) == 2
    assert main(["bench-refiner", "--refiner", "off"]) == 2
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model_index.json").write_text('{"_class_name": "EmbeddedRefinerPipeline"}')
    assert main(["bench-refiner", "--refiner", str(tmp_path / "broken"), "--n", "2"]) == 2
    err = capsys.readouterr().err
    assert "--minutes must be above 0" in err and "--refiner is off" in err and "incomplete or damaged" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_the_shipped_refiner_is_embedded_and_on_by_default_for_the_embedded_model_only(tmp_path, capsys, monkeypatch, tiny_dir):
    import chatgen.ui
    from chatgen.space import space_demo

    out = tmp_path / "cat.png"
    assert main(["generate", "a cat on the left on the beach", "-o", str(out), "--seed", "0", "--refiner", "embedded"]) == 0
    png = Image.open(out)
    assert png.size == (384, 384) and json.loads(png.text["chatgen"])["refiner"]["steps"] == 1
    assert world.detect(png) == world.Scene("beach", (world.Obj("cat", 1, 0),))
    built = []
    monkeypatch.setattr(chatgen.ui, "build_demo", lambda models, **kw: built.append(models.get()) or "demo")
    space_demo()  # the Space on the embedded model: refined pictures unless told otherwise
    space_demo(refiner="off")
    space_demo(tiny_dir)  # another model: the world's refiner would not fit it
    on, off, other = built
    assert type(on.refiner.pipe).__name__ == "EmbeddedRefinerPipeline" and off.refiner is None and other.refiner is None


def test_the_ui_builds_with_the_embedded_refiner_and_hides_the_strength_it_does_not_use(learned):
    from chatgen.backends import load_backend
    from chatgen.ui import build_demo

    folder, _ = learned
    demo = build_demo(Assistant(load_backend(SHIPPED), load_refiner(str(folder))))
    by_id = {getattr(b, "elem_id", None): b for b in demo.blocks.values()}
    assert by_id["cg-refine"].visible and by_id["cg-refine"].value is True and "384 px" in by_id["cg-refine"].label
    assert by_id["cg-refine-strength"].visible is False
