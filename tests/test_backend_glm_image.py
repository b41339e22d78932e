"""GLM-Image behind chatgen: a tiny random `GlmImagePipeline` (autoregressive model + diffusion
decoder), saved with save_pretrained and loaded through `load_backend`, through the front ends."""

import json

import pytest
import torch
from family_checkpoints import make_glm_image
from PIL import Image

from chatgen.assistant import Assistant
from chatgen.backends import load_backend
from chatgen.backends.checkpoint import read_config
from chatgen.backends.glm_image import (
    CANNOT_ANSWER,
    NO_MASK,
    NO_PICTURE,
    GlmImageBackend,
    GlmPrompt,
)
from chatgen.cli import main
from chatgen.conversation import Message, Session
from chatgen.errors import ChatgenError

GRID, PREVIEW, PX, CODES = 4, 16, 128, 32  # the tiny pipeline: a 4x4 large grid, a 16x16 preview, 128 px, 32 codes


@pytest.fixture(scope="module")
def glm_dir(tmp_path_factory):
    return make_glm_image(tmp_path_factory.mktemp("glm") / "GLM-Image-tiny", grid=GRID, codebook=CODES)


@pytest.fixture(scope="module")
def glm(glm_dir):
    return load_backend(glm_dir, steps=2)


def assert_reply_ids(backend, ids, preview):
    """A picture's stored ids: the preview grid (drawing only), the large grid, the image end."""
    v = backend.vocab
    assert len(ids) == preview + GRID * GRID + 1 and ids[-1] == v.eot
    assert all(v.is_image(i) for i in ids[:-1])
    assert [len(s) for s in v.split_spans(ids)[1]] == [GRID * GRID]


def test_a_pipeline_folder_loads_as_glm_image(glm_dir, glm):
    assert not (glm_dir / "config.json").exists() and (glm_dir / "model_index.json").is_file()
    assert read_config(glm_dir)["model_type"] == "glm_image"
    assert isinstance(glm, GlmImageBackend) and glm.name.startswith("glm_image:")
    v = glm.vocab
    assert (v.grid_h, v.grid_w, v.prev_h, v.prev_w, v.codebook_size, v.boi, v.eot) == (GRID, GRID, PREVIEW, PREVIEW, CODES, CODES, CODES + 1)
    assert glm.pixels == (PX, PX)


def test_prompt_ends_with_the_grids_and_the_image_start(glm):
    p = glm.prompt(Session(), Message("draw a dog"))
    assert isinstance(p, GlmPrompt) and p.kind == "draw" and p.ids == p.user_ids
    text = glm.tokenizer.decode(p.ids)
    assert text == f"draw a dog<sop>{GRID} {GRID}<eop><sop>{PREVIEW} {PREVIEW}<eop><|dit_token_{CODES}|>"


def test_draw_streams_rows_then_a_picture(glm):
    a, s = Assistant(glm), Session()
    events = list(a.stream(s, "draw a dog", {"seed": 0}))
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "ImageStart" and kinds.count("ImageRow") == GRID and "ImageDone" in kinds
    reply = events[-1]
    assert reply.image.size == (PX, PX) and reply.text == ""
    assert_reply_ids(glm, reply.turn.reply_ids, PREVIEW * PREVIEW)
    assert reply.metadata["tokens"]["new_tokens"] == PREVIEW * PREVIEW + GRID * GRID + 1


def test_edit_of_the_previous_picture_and_of_an_upload(glm):
    a, s = Assistant(glm), Session()
    a.respond(s, "draw a dog", {"seed": 0})
    # the previous reply is the source: it is in the prompt as the model's image placeholders
    p = glm.prompt(s, Message("make the dog a cat"))
    assert p.kind == "edit" and p.source.size == (PX, PX)
    assert p.ids.count(glm.processor.image_token_id) == GRID * GRID
    edit = a.respond(s, "make the dog a cat", {"seed": 1})
    assert edit.image.size == (PX, PX)
    assert_reply_ids(glm, s.turns[edit.turn_id].reply_ids, 0)  # an edit has no preview grid
    # an upload of another size, with a bare caption: the upload is redrawn
    upload = Image.new("RGB", (50, 40), (200, 30, 30))
    reply = a.respond(Session(), Message("snowy and bright", image=upload), {"seed": 2})
    assert reply.image.size == (PX, PX)


def test_the_workaround_tokenizes_the_source_per_image(glm):
    """diffusers 0.42.1 + transformers 5.24: get_image_tokens needs the list of (C, h, w) features."""
    img = Image.new("RGB", (PX, PX), (20, 120, 40))
    codes = glm.encode_image(img)
    assert codes.shape == (GRID, GRID) and int(codes.max()) < CODES
    assert torch.equal(codes, glm.encode_image(img))
    assert glm.decode_image(codes).size == (PX, PX)


def test_question_mask_and_nothing_to_edit_are_one_honest_sentence(glm):
    a, s = Assistant(glm), Session()
    r = a.respond(s, "how many animals are there?", {"seed": 0})
    assert r.text == CANNOT_ANSWER and r.image is None and s.turns[r.turn_id].reply_ids[-1] == glm.vocab.eot
    r = a.respond(s, "make the dog a cat", {"seed": 0})
    assert r.text == NO_PICTURE and r.image is None
    a.respond(s, "draw a dog", {"seed": 0})
    mask = Image.new("L", (PX, PX), 0)
    mask.paste(255, (0, 0, PX // 2, PX // 2))
    r = a.respond(s, Message("make the dog a cat", mask=mask), {"seed": 0})
    assert r.text == NO_MASK and r.image is None


def test_seeded_turns_repeat(glm):
    a = Assistant(glm)
    r1, r2 = (a.respond(Session(), "draw a dog", {"seed": 5}) for _ in range(2))
    assert r1.turn.reply_ids == r2.turn.reply_ids
    assert r1.image.tobytes() == r2.image.tobytes()


def test_session_round_trip_keeps_the_stored_ids(glm, tmp_path):
    a, s = Assistant(glm), Session()
    r = a.respond(s, "draw a dog", {"seed": 0})
    back = Session.load(s.save(tmp_path / "session"))
    turn = back.turns[r.turn_id]
    assert turn.reply_ids == s.turns[r.turn_id].reply_ids
    assert glm.stored_ids_ok(turn) and glm.turn_ids(turn) == [*turn.user_ids, *turn.reply_ids]


def test_incomplete_folder_is_one_sentence(glm_dir, tmp_path):
    import shutil

    broken = shutil.copytree(glm_dir, tmp_path / "broken")
    shutil.rmtree(broken / "transformer")
    with pytest.raises(ChatgenError, match=r"incomplete: transformer missing"):
        load_backend(broken)


@pytest.fixture(scope="module")
def glm_wide_dir(tmp_path_factory):
    """The tiny pipeline with a GLM 64 wide: bitsandbytes' 4-bit CPU kernel quantizes in blocks of 64 inputs."""
    return make_glm_image(tmp_path_factory.mktemp("glm64") / "GLM-Image-tiny-64", grid=GRID, codebook=CODES, hidden=64)


@pytest.mark.parametrize("quantize", ["4bit", "8bit"])
def test_quantized_loading_on_cpu(glm_wide_dir, quantize, tmp_path):
    bnb = pytest.importorskip("bitsandbytes")
    layer = bnb.nn.Linear4bit if quantize == "4bit" else bnb.nn.Linear8bitLt
    b = load_backend(glm_wide_dir, quantization=quantize, steps=2)
    inner = b.model.model  # the GLM layers are quantized; the vision encoder, the VQ, the head and the decoder are not
    assert isinstance(inner.language_model.layers[0].mlp.gate_up_proj, layer)
    for part in (b.model.lm_head, inner.visual, inner.vqmodel, b.pipe.transformer, b.pipe.text_encoder, b.pipe.vae):
        assert not any(isinstance(m, layer) for m in part.modules())
    a, s = Assistant(b), Session()
    reply = a.respond(s, "draw a dog", {"seed": 0})
    assert reply.image.size == (PX, PX)
    assert_reply_ids(b, s.turns[reply.turn_id].reply_ids, PREVIEW * PREVIEW)
    assert a.respond(s, "make the dog a cat", {"seed": 1}).image.size == (PX, PX)  # an edit reads the picture through the unquantized VQ
    out = tmp_path / "dog.png"
    assert main(["generate", "draw a dog", "-o", str(out), "--model", str(glm_wide_dir), "--seed", "0", "--quantize", quantize]) == 0
    assert Image.open(out).size == (PX, PX)


def test_offload_is_cuda_only_and_short_memory_is_one_sentence(glm_dir, monkeypatch, capsys):
    from chatgen.backends import checkpoint

    b = load_backend(glm_dir, offload="on", steps=2)  # on the CPU: a note, and the pipeline loads whole
    assert "offloaded on CUDA only" in capsys.readouterr().err and isinstance(b, GlmImageBackend)
    monkeypatch.setattr(checkpoint, "available_bytes", lambda device: 1024)
    with pytest.raises(ChatgenError, match=r"^the model's weights need about .* but only 1 KB of memory is free; try --quantize 4bit") as e:
        load_backend(glm_dir)  # --offload auto has no disk tier for a pipeline on the CPU: the refusal, without naming --offload
    assert "--offload" not in str(e.value)


# ---- front ends: --model on the folder ---------------------------------------------------------
def test_cli_generate(glm_dir, tmp_path, capsys):
    out = tmp_path / "dog.png"
    assert main(["generate", "draw a dog", "-o", str(out), "--model", str(glm_dir), "--seed", "0"]) == 0
    assert Image.open(out).size == (PX, PX)


def test_cli_chat_draw_then_edit(glm_dir, tmp_path, monkeypatch, capsys):
    script = iter(["/seed 3", "draw a dog", "make the dog a cat", "what is in the picture?", "/history", "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(script))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert main(["chat", "--model", str(glm_dir), "--out-dir", str(out_dir)]) == 0
    text = capsys.readouterr().out
    assert text.count("you: ") == 3 and "error" not in text.lower() and CANNOT_ANSWER in text
    pngs = sorted(out_dir.glob("*.png"))
    assert len(pngs) == 2 and all(Image.open(png).size == (PX, PX) for png in pngs)


def test_cli_eval_one_dialogue(glm_dir, tmp_path, capsys):
    suite = tmp_path / "suite.yaml"
    suite.write_text("id: glm_draw\nturns:\n  - user: draw a dog on the grass\n    kind: draw\n    expect: {reply: image}\n  - user: make the dog a cat\n    kind: replace\n    expect: {reply: image}\n")
    assert main(["eval", str(suite), "--out", str(tmp_path / "report"), "--model", str(glm_dir), "--seed", "0", "--json"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "report" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and not any(r["error"] for r in rows)
    assert any(r.get("image") for r in rows)
    assert all(Image.open(tmp_path / "report" / r["image"]).size == (PX, PX) for r in rows if r.get("image"))


def test_api_turn(glm_dir, tmp_path):
    from chatgen.api import ChatAPI

    api = ChatAPI(Assistant(load_backend(glm_dir, steps=2)), folder=tmp_path / "api", capacity=2)
    sid = api.new_session()
    text, image, info = api.chat(sid, "draw a dog", None, None, 0)
    assert image and Image.open(image).size == (PX, PX)
    text, image, info = api.chat(sid, "how many dogs are there?", None, None, 0)
    assert not image and CANNOT_ANSWER in str(text)


def test_cancel_stops_the_autoregressive_step(glm):
    import threading

    cancel = threading.Event()
    cancel.set()
    s = Session()
    reply = list(Assistant(glm).stream(s, "draw a dog", {"seed": 0}, cancel=cancel))[-1]
    assert reply.cancelled and reply.turn is None and reply.image is None and not s.turns


def test_diffusers_cpu_offload_replies_the_same_tokens(glm_dir):
    """The CUDA low-memory profile (diffusers' model CPU offload), run with the CPU as its device:
    the autoregressive model is moved in before `get_image_features` (not a forward) too."""
    from diffusers import GlmImagePipeline

    def turns(backend):
        a, s, out = Assistant(backend), Session(), []
        for m in ["draw a dog", "make the dog a cat", Message("snowy and bright", image=Image.new("RGB", (50, 40), (200, 30, 30)))]:
            r = a.respond(s, m, {"seed": 0})
            out.append((s.turns[r.turn_id].reply_ids, r.image.size))
        return out

    pipe = GlmImagePipeline.from_pretrained(glm_dir)
    pipe.set_progress_bar_config(disable=True)
    pipe.enable_model_cpu_offload(device="cpu")
    b = GlmImageBackend(pipe, steps=2)
    assert hasattr(b.model, "_hf_hook")
    assert turns(b) == turns(load_backend(glm_dir, steps=2))  # the pixels differ by float rounding (about 1e-5) only
