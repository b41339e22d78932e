"""The diffusion refiner: tiny random diffusers img2img pipelines built here from their parts,
saved with save_pretrained and loaded back as `--refiner PATH` (nothing is downloaded).

Each test checks one promise: previews stream per denoising step; the turn shows and saves the
refined picture and keeps the model's own ids, so the next prompt is the same with the refiner
on or off; the UI, the API, the CLI and ModelSet pass the switch and the strength through; a
bad `--refiner` is one sentence."""

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image

from chatgen.api import ChatAPI, make_refine
from chatgen.assistant import Assistant, Reply
from chatgen.cli import main
from chatgen.conversation import Message, Session
from chatgen.errors import ChatgenError
from chatgen.events import ImageDone, RefineStep, ReplyDone
from chatgen.models import ModelSet
from chatgen.refiner import Refiner, RefinerConfig, load_refiner
from chatgen.ui import VIEW, ChatUI, UIState

SIZE = 48  # the refined picture's side (the tiny model draws 32 px): a refined turn is visibly another size
CONFIG = RefinerConfig(strength=0.5, steps=4, guidance=2.0, size=SIZE)  # int(4 x 0.5) = 2 denoising steps


# ---- tiny pipelines, built offline ---------------------------------------------------------------
def byte_chars() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes (what a CLIP vocabulary is made of)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def tiny_clip(folder, projection: bool):
    """A CLIPTokenizer over a byte vocabulary written to vocab.json / merges.txt, and a tiny text encoder."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    chars = byte_chars()
    vocab = {c: i for i, c in enumerate(chars)} | {c + "</w>": 256 + i for i, c in enumerate(chars)}
    vocab |= {"<|startoftext|>": 512, "<|endoftext|>": 513}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"), model_max_length=32)
    config = CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=1, max_position_embeddings=32, projection_dim=16, bos_token_id=512, eos_token_id=513, pad_token_id=513)
    return tokenizer, (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def tiny_unet_and_vae(**unet_extra):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    unet = UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4, **unet_extra)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4, sample_size=32)
    return unet, vae


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    """A tiny random Stable Diffusion img2img pipeline, saved (safetensors)."""
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("sd")
    tokenizer, text_encoder = tiny_clip(root / "vocab", projection=False)
    unet, vae = tiny_unet_and_vae()
    pipe = StableDiffusionImg2ImgPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=DDIMScheduler(steps_offset=1, clip_sample=False), safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(root / "pipe", safe_serialization=True)
    return root / "pipe"


@pytest.fixture(scope="module")
def sdxl_dir(tmp_path_factory):
    """A tiny random SDXL refiner: text_encoder_2 only, an aesthetic score in its time ids."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("sdxl")
    tokenizer, text_encoder = tiny_clip(root / "vocab", projection=True)
    # the refiner's added condition: 5 time ids (size, crop, aesthetic score) x 4, plus the pooled text (16)
    unet, vae = tiny_unet_and_vae(addition_embed_type="text_time", addition_time_embed_dim=4, projection_class_embeddings_input_dim=5 * 4 + 16)
    pipe = StableDiffusionXLImg2ImgPipeline(vae=vae, text_encoder=None, tokenizer=None, text_encoder_2=text_encoder, tokenizer_2=tokenizer, unet=unet, scheduler=EulerDiscreteScheduler(), requires_aesthetics_score=True)
    pipe.save_pretrained(root / "pipe", safe_serialization=True)
    return root / "pipe"


@pytest.fixture(scope="module")
def sd(sd_dir):
    return load_refiner(str(sd_dir), CONFIG)


# ---- helpers ---------------------------------------------------------------------------------
def image_seed(assistant, session, text, start=0):
    """A seed whose reply holds a picture (the tiny random model sometimes answers in words)."""
    for seed in range(start, start + 40):
        if assistant.respond(copy.deepcopy(session), text, {"seed": seed, "max_new_tokens": 40}).image is not None:
            return seed
    raise AssertionError("no seed gave an image")


def turn_events(assistant, session, text, seed, cancel=None):
    items = list(assistant.stream(session, text, {"seed": seed, "max_new_tokens": 40}, cancel=cancel))
    assert isinstance(items[-1], Reply)
    return items[:-1], items[-1]


def refines_a_chat_turn(backend, refiner, pipe_class):
    """One image turn with and without `refiner`: previews stream, the refined picture is the
    turn's, its ids are the model's, and the next prompt is the same either way."""
    plain, refined = Assistant(backend), Assistant(backend, refiner)
    seed = image_seed(plain, Session(), "draw a dog on the grass")
    s_off, s_on = Session(), Session()
    _, off = turn_events(plain, s_off, "draw a dog on the grass", seed)
    events, on = turn_events(refined, s_on, "draw a dog on the grass", seed)
    s_off.append(off.turn)
    s_on.append(on.turn)
    assert type(refiner.pipe).__name__ == pipe_class
    # 1. The events: the model's picture, then one RefineStep per denoising step with a preview, then ReplyDone.
    kinds = [type(e) for e in events]
    steps = [e for e in events if isinstance(e, RefineStep)]
    assert [e.step for e in steps] == [0, 1] and {e.steps for e in steps} == {2}
    assert all(isinstance(e.preview, Image.Image) and e.preview.size == (SIZE, SIZE) for e in steps)
    assert kinds.index(ImageDone) < kinds.index(RefineStep) and kinds[-1] is ReplyDone
    model_picture = next(e for e in events if isinstance(e, ImageDone)).image
    assert model_picture.size == off.image.size == (32, 32)
    assert np.array_equal(np.asarray(model_picture), np.asarray(off.image))  # the same draw underneath
    # 2. The refined picture is what the reply, ReplyDone and the stored turn hold.
    assert on.image.size == (SIZE, SIZE) and events[-1].image is on.image and on.turn.assistant_image is on.image
    assert on.metadata["refiner"]["name"] == refiner.name and on.metadata["refiner"]["strength"] == CONFIG.strength
    assert json.loads(on.turn.png_text()["chatgen"])["refiner"]["size"] == SIZE  # saved with the PNG's parameters
    assert on.metadata["timings"]["refine_s"] > 0 and "refiner" not in off.metadata
    # 3. The conversation keeps the model's own tokens: the same ids, the same next prompt.
    assert on.turn.reply_ids == off.turn.reply_ids and on.turn.user_ids == off.turn.user_ids
    nxt = Message("make the dog a cat")
    assert backend.prompt(s_on, nxt).ids == backend.prompt(s_off, nxt).ids
    # 4. The next turn goes on from the larger picture: a mask painted on it fits, and its codes come from the ids.
    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, (0, 0, SIZE // 2, SIZE // 2))
    _, second = turn_events(refined, s_on, Message("make it red", mask=mask), seed)
    assert second.turn is not None and second.turn.user_mask.size == (SIZE, SIZE)
    return on


# ---- the refiner in a chat turn ---------------------------------------------------------------
def test_a_saved_sd_pipeline_refines_a_chat_turn_with_previews(backend, sd_dir, sd):
    refines_a_chat_turn(backend, sd, "StableDiffusionImg2ImgPipeline")
    # the same seed, the same refined picture; another seed, another one
    source = Image.new("RGB", (32, 32), (200, 40, 40))
    a, b, c = (sd.refine(source, "a dog", seed=s) for s in (1, 1, 2))
    assert np.array_equal(np.asarray(a), np.asarray(b)) and not np.array_equal(np.asarray(a), np.asarray(c))


def test_a_saved_sdxl_refiner_pipeline_refines_a_chat_turn_with_previews(backend, sdxl_dir):
    refiner = load_refiner(str(sdxl_dir), CONFIG)
    assert refiner.pipe.text_encoder is None and refiner.pipe.config.requires_aesthetics_score
    refines_a_chat_turn(backend, refiner, "StableDiffusionXLImg2ImgPipeline")


def test_previews_by_vae_or_off_and_a_wide_picture_keeps_its_shape(sd):
    wide = Image.new("RGB", (96, 64), (30, 160, 30))
    vae_steps = list(sd.with_config(preview="vae").stream(wide, "grass", seed=0))
    assert len(vae_steps) == 2 and all(s.preview.size == (SIZE, 32) for s in vae_steps)
    off_steps = list(sd.with_config(preview="off").stream(wide, "grass", seed=0))
    assert len(off_steps) == 2 and all(s.preview is None for s in off_steps)
    assert sd.refine(wide, "grass", seed=0).size == (SIZE, 32)


def test_stop_while_refining_cancels_the_turn(backend, sd):
    class StopsAtRefining:  # the person presses Stop as the refiner starts
        def __init__(self, cancel):
            self.cancel = cancel

        def stream(self, image, prompt, seed=None, cancel=None, previews=True):
            self.cancel.set()
            return (yield from sd.stream(image, prompt, seed=seed, cancel=cancel, previews=previews))

    import threading

    cancel = threading.Event()
    assistant = Assistant(backend, StopsAtRefining(cancel))
    seed = image_seed(Assistant(backend), Session(), "draw a cat")
    session = Session()
    events, reply = turn_events(assistant, session, "draw a cat", seed, cancel=cancel)
    assert reply.cancelled and reply.turn is None and not any(isinstance(e, RefineStep) for e in events)
    assert events[-1].cancelled
    assert sd.refine(Image.new("RGB", (32, 32)), "x", seed=0, cancel=cancel) is None


# ---- front ends ------------------------------------------------------------------------------
def test_model_set_passes_the_switch_and_the_strength(backend, sd):
    models = ModelSet(Assistant(backend, sd))
    assert models.get().refiner is sd and models.get(refine=False).refiner is None
    weaker = models.get(refine=0.25)
    assert weaker.refiner.config.strength == 0.25 and weaker.refiner.pipe is sd.pipe and models.get(refine=0.25) is weaker
    for bad, match in ((1.5, "at most 1"), (0.1, "steps x strength")):
        with pytest.raises(ChatgenError, match=match):
            models.get(refine=bad)
    assert make_refine(True, -1) is True and make_refine(False, 0.3) is False and make_refine("true", 0.3) == 0.3
    with pytest.raises(ChatgenError, match="refine_strength"):
        make_refine(True, "lots")


def test_ui_shows_refining_steps_and_the_refined_picture(backend, sd, tmp_path, monkeypatch):
    monkeypatch.setattr("chatgen.ui.state.FILES_ROOT", tmp_path / "ui-files")
    assistant = Assistant(backend, sd)
    seed = image_seed(Assistant(backend), Session(), "draw a dog")
    st = UIState()
    frames = [dict(zip(VIEW, o)) for o in ChatUI(assistant).send(st, {"text": "draw a dog", "files": []}, None, None, seed, None, None, None, True, 0.5)]
    progress = [f["progress"] for f in frames]
    assert any("Refining… 1 of 2 steps" in p for p in progress) and any("Refining… 2 of 2 steps" in p for p in progress)
    assert Image.open(frames[-1]["image"]).size == (SIZE, SIZE)  # the current picture is the refined one
    off = UIState()
    last = [dict(zip(VIEW, o)) for o in ChatUI(assistant).send(off, {"text": "draw a dog", "files": []}, None, None, seed, None, None, None, False, 0.5)][-1]
    assert Image.open(last["image"]).size == (32, 32) and off.session.path()[-1].reply_ids == st.session.path()[-1].reply_ids


def test_api_chat_refines_unless_told_not_to(backend, sd, tmp_path):
    api = ChatAPI(Assistant(backend, sd), folder=tmp_path)
    seed = image_seed(Assistant(backend), Session(), "draw a dog")
    _, path, info = api.chat(api.new_session(), "draw a dog", seed=seed)
    assert Image.open(path).size == (SIZE, SIZE) and info["metadata"]["refiner"]["strength"] == CONFIG.strength
    _, path, info = api.chat(api.new_session(), "draw a dog", seed=seed, refine_strength=0.75)
    assert info["metadata"]["refiner"]["strength"] == 0.75
    _, path, info = api.chat(api.new_session(), "draw a dog", seed=seed, refine=False)
    assert Image.open(path).size == (32, 32) and "refiner" not in info["metadata"]


def test_cli_generate_with_a_refiner_folder(capsys, tiny_dir, sd_dir, tmp_path):
    out = tmp_path / "out.png"
    for seed in range(20):
        code = main(["generate", "a dog on the grass", "-o", str(out), "--model", str(tiny_dir), "--seed", str(seed), "--max-new-tokens", "40", "--refiner", str(sd_dir), "--refiner-size", str(SIZE), "--refiner-steps", "2", "--refiner-strength", "0.5"])
        capsys.readouterr()
        if code == 0:
            break
    assert code == 0
    png = Image.open(out)
    meta = json.loads(png.text["chatgen"])
    assert png.size == (SIZE, SIZE) and meta["refiner"] == {"name": str(sd_dir), "strength": 0.5, "steps": 2, "guidance": None, "size": SIZE}


@pytest.mark.parametrize("flags, says", [
    (["--refiner", "{missing}"], "the folder does not exist"),
    (["--refiner", "{empty}"], "model_index.json is missing"),
    (["--refiner", "{file}"], "is a file"),
    (["--refiner-strength", "0.3"], "--refiner-strength needs --refiner"),
    (["--refiner", "{empty}", "--refiner-strength", "0.1"], "steps x strength must be at least 1"),
])
def test_a_bad_refiner_is_one_sentence(capsys, tiny_dir, tmp_path, flags, says):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("not a pipeline")
    places = {"missing": tmp_path / "nowhere" / "pipe", "empty": tmp_path / "empty", "file": tmp_path / "file.txt"}
    argv = ["generate", "a dog", "-o", str(tmp_path / "out.png"), "--model", str(tiny_dir), *(f.format(**places) for f in flags)]
    code = main(argv)
    err = capsys.readouterr().err
    lines = [l for l in err.strip().splitlines() if l.startswith("chatgen: error:")]
    assert code == 2 and "Traceback" not in err and len(lines) == 1 and says in lines[0], err
    assert not (tmp_path / "out.png").exists()


def test_a_config_checks_its_fields():
    for bad, field in ((dict(strength=0), "strength"), (dict(steps=0), "steps"), (dict(guidance=-1.0), "guidance"), (dict(size=8), "size"), (dict(preview="gif"), "preview")):
        with pytest.raises(ChatgenError, match=field):
            RefinerConfig(**bad).check()
    with pytest.raises(ChatgenError, match="dtype"):
        Refiner.from_pretrained("stabilityai/sd-turbo", dtype="float8")


def test_cli_eval_scores_refined_pictures_and_names_the_refiner(capsys, tiny_dir, sd_dir, tmp_path):
    suite = tmp_path / "draw.yaml"
    suite.write_text("id: draw\nturns:\n  - user: draw a dog on the left, on grass\n    expect: {reply: image}\n")
    for seed in range(20):  # a seed whose reply holds a picture (the tiny random model sometimes answers in words)
        code = main(["eval", str(suite), "--out", str(tmp_path / "report"), "--model", str(tiny_dir), "--max-new-tokens", "40", "--seed", str(seed), "--refiner", str(sd_dir), "--refiner-size", str(SIZE)])
        capsys.readouterr()
        results = [json.loads(line) for line in (tmp_path / "report" / "results.jsonl").read_text().splitlines()]
        pictures = [tmp_path / "report" / r["image"] for r in results if r.get("image")]
        if pictures:
            break
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert code == 0 and summary["refiner"]["name"] == str(sd_dir) and summary["refiner"]["size"] == SIZE
    assert pictures and all(Image.open(p).size == (SIZE, SIZE) for p in pictures)  # the scored picture is the refined one
