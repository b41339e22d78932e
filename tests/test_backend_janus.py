"""Janus behind chatgen: a tiny random `JanusForConditionalGeneration` + `JanusProcessor`, saved with
save_pretrained and loaded through `load_backend`, through every front end."""

import json
import shutil
import threading

import pytest
import torch
from family_checkpoints import make_janus
from PIL import Image

from chatgen.assistant import Assistant
from chatgen.backends import load_backend
from chatgen.backends.janus import JanusBackend, route
from chatgen.cli import main
from chatgen.conversation import Message, Session
from chatgen.errors import ChatgenError
from chatgen.events import ImageRow, ImageStart
from chatgen.params import GenerationParams

GRID, PX, CODES = 4, 32, 32  # the tiny checkpoint: 4 x 4 codes of 32, 32 px


@pytest.fixture(scope="module")
def janus_dir(tmp_path_factory):
    return make_janus(tmp_path_factory.mktemp("janus") / "Janus-tiny", grid=GRID, codebook=CODES)


@pytest.fixture(scope="module")
def janus(janus_dir):
    return load_backend(janus_dir)


def codes_of(backend, turn) -> torch.Tensor:
    """The (H, W) codes of a turn's reply picture."""
    spans = backend.vocab.split_spans(turn.reply_ids)[1]
    assert len(spans) == 1
    return backend.vocab.ids_to_codes(spans[0])


def assert_spans_exact(backend, ids):
    v = backend.vocab
    _, spans = v.raw_spans(ids)
    assert spans and all(len(s) == GRID * GRID and all(map(v.is_image, s)) for s in spans)


def test_load_backend_picks_janus_and_its_sizes(janus):
    assert isinstance(janus, JanusBackend) and janus.name.startswith("janus:")
    v = janus.vocab
    assert (v.grid_h, v.grid_w, v.codebook_size, janus.pixels) == (GRID, GRID, CODES, PX)
    assert v.image_offset == janus.model.config.text_config.vocab_size  # the codes follow the text ids
    assert janus.gen_prompt == "\n\n<|Assistant|>:"


def test_image_codes_round_trip(janus):
    codes = torch.randint(0, CODES, (GRID, GRID))
    img = janus.decode_image(codes)
    assert img.size == (PX, PX) and img.mode == "RGB"
    assert janus.encode_image(img).shape == (GRID, GRID)
    ids = janus.vocab.codes_to_ids(codes)
    assert ids[0] == janus.vocab.boi and ids[-1] == janus.vocab.eoi and len(ids) == GRID * GRID + 2
    assert torch.equal(janus.vocab.ids_to_codes(ids[1:-1]), codes)


@pytest.mark.parametrize("text, mask, picture, kind", [
    ("draw a dog on the grass", False, False, "draw"),
    ("Please paint a red boat", False, True, "draw"),
    ("can you make a picture of a cat?", False, True, "draw"),
    ("a red fox in the snow", False, False, "draw"),  # a bare caption, nothing drawn yet
    ("a red fox in the snow", False, True, "answer"),
    ("make the dog a cat", False, True, "edit"),
    ("now remove the boat", False, True, "edit"),
    ("make the dog a cat", True, True, "edit"),
    ("the sky blue please", True, True, "edit"),  # a mask always edits
    ("how many animals are there?", False, True, "answer"),
    ("what is in the picture", False, True, "answer"),
    ("ask: draw me a story in words", False, True, "answer"),
    ("draw: make the dog a cat", False, True, "draw"),
    ("EDIT: the sky", False, True, "edit"),
])
def test_route(text, mask, picture, kind):
    got, said = route(text, mask, picture)
    assert got == kind
    assert not said.lower().startswith(("draw:", "edit:", "ask:"))


def test_prompt_is_janus_chat_template(janus):
    p = janus.prompt(Session(system="You are a helpful assistant."), Message("draw: a dog"))
    assert janus.tokenizer.decode(p.ids) == "<｜begin▁of▁sentence｜>You are a helpful assistant.\n\n<|User|>: a dog\n\n<|Assistant|>:"
    v = janus.vocab
    assert p.mode == "image" and len(p.uncond_ids) == len(p.ids)  # Janus's unconditional row: pads but <bos>
    assert p.uncond_ids[0] == v.bos and set(p.uncond_ids[1:]) == {v.pad}
    q = janus.prompt(Session(), Message("how many animals are there?"))
    assert q.mode == "text" and q.uncond_ids is None


def test_draw_then_edit_then_question_with_cache(janus):
    a, s = Assistant(janus), Session()
    first = a.respond(s, "draw a dog", {"seed": 0})
    assert first.image.size == (PX, PX) and first.text == ""
    assert_spans_exact(janus, s.turns[first.turn_id].reply_ids)
    second = a.respond(s, "make the dog a cat", {"seed": 1, "cfg_scale": 5.0})
    assert second.image.size == (PX, PX)
    assert_spans_exact(janus, s.turns[second.turn_id].reply_ids)
    # the first turn's prompt and <begin_of_image> came from the KV cache (CFG's row read alone up to it)
    assert second.metadata["tokens"]["cached_tokens"] == first.metadata["tokens"]["prompt_tokens"] + 1
    # the earlier pictures stay in context as their code spans; a question is answered in words
    prompt = janus.prompt(s, Message("how many animals are there?"))
    span = s.turns[second.turn_id].reply_ids[:-1]
    assert any(prompt.ids[i : i + len(span)] == span for i in range(len(prompt.ids)))
    third = a.respond(s, "how many animals are there?", {"seed": 0, "max_new_tokens": 12})
    assert third.image is None and janus.vocab.split_spans(s.turns[third.turn_id].reply_ids)[1] == []
    assert third.metadata["tokens"]["cached_tokens"] == second.metadata["tokens"]["prompt_tokens"] + 1


def test_cached_greedy_equals_uncached(janus_dir):
    cached, fresh = Assistant(load_backend(janus_dir)), Assistant(load_backend(janus_dir))
    fresh.backend.pool.size = fresh.backend.uncond_pool.size = 0
    s1, s2 = Session(), Session()
    greedy = GenerationParams(temperature=0.0, max_new_tokens=30, seed=0, cfg_scale=3.0)
    for text in ["draw a dog", "how many animals are there?", "make the dog a cat", "what is it?"]:
        r1, r2 = cached.respond(s1, text, greedy), fresh.respond(s2, text, greedy)
        assert s1.turns[r1.turn_id].reply_ids == s2.turns[r2.turn_id].reply_ids
        assert r2.metadata["tokens"]["cached_tokens"] == 0
    assert r1.metadata["tokens"]["cached_tokens"] > 0


def test_drawing_equals_janus_generate_with_cfg(janus_dir):
    """chatgen's drawing loop (both rows in one batch, CFG, sampling) gives the codes of
    `JanusForConditionalGeneration.generate(generation_mode="image")` for the same seed."""
    b = load_backend(janus_dir)
    with torch.no_grad():
        b.model.model.generation_head.vision_head.weight.mul_(40)  # peaked logits: CFG changes the codes
    ids = b.prompt(Session(), Message("draw a dog")).ids + [b.vocab.boi]
    x = torch.tensor([ids])
    b.model.generation_config.generation_kwargs = {"boi_token_id": b.vocab.boi}
    for seed in (7, 8):
        torch.manual_seed(seed)
        want = b.model.generate(x, attention_mask=torch.ones_like(x), generation_mode="image", do_sample=True, guidance_scale=5.0)[0].tolist()
        got = {cfg: [t - b.vocab.image_offset for t in Assistant(b).respond(Session(), "draw a dog", {"seed": seed, "cfg_scale": cfg, "top_k": 0}).turn.reply_ids[1:-2]] for cfg in (5.0, 1.0)}
        assert got[5.0] == want and got[1.0] != want


def test_pictures_in_the_prompt_are_read_through_siglip(janus):
    img = Image.new("RGB", (50, 40), (200, 30, 30))
    p = janus.prompt(Session(), Message("what is in the picture?", image=img))
    v = janus.vocab
    start = p.ids.index(v.boi) + 1
    assert all(map(v.is_image, p.ids[start : start + GRID * GRID]))
    # the codes' embeddings are SigLIP's features of the upload itself, as JanusProcessor + JanusModel embed it
    pixels = janus.processor(text="<image_placeholder>", images=img, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        want = janus.model.model.get_image_features(pixels).pooler_output[0]
        got = janus._embed(p.ids)[0, start : start + GRID * GRID]
    assert torch.allclose(got, want, atol=1e-5)
    reply = Assistant(janus).respond(Session(), Message("what is in the picture?", image=img), {"seed": 0, "max_new_tokens": 10})
    assert reply.turn is not None and reply.image is None


def test_masked_edit_keeps_the_source_tokens_outside_the_mask(janus, edits_kept):
    a, s = Assistant(janus), Session()
    src = a.respond(s, "draw a dog", {"seed": 0})
    source = codes_of(janus, s.turns[src.turn_id])
    mask = Image.new("L", (PX, PX), 0)
    mask.paste(255, (0, 0, PX // 2, PX // 2))  # the top-left quarter may change
    keep = ~janus.edit_cells(mask)
    assert int(keep.sum()) == GRID * GRID * 3 // 4
    changed = 0
    for seed in range(4):
        r = list(a.stream(s, Message("make the dog a cat", mask=mask), {"seed": seed, "temperature": 1.5, "cfg_scale": 3.0}))[-1]
        codes = codes_of(janus, r.turn)
        assert torch.equal(codes[keep], source[keep])
        changed += int((codes[~keep] != source[~keep]).sum())
    assert changed > 0  # inside the mask the model is free


def test_automatic_region_changes_fewer_codes_than_an_unlocked_edit(janus, edits_kept):
    a, s = Assistant(janus), Session()
    src = a.respond(s, "draw a dog on the grass", {"seed": 0})
    source = codes_of(janus, s.turns[src.turn_id])
    p = janus.prompt(s, Message("make the dog a cat"))
    assert p.mode == "image" and p.locate is not None and torch.equal(p.source_codes, source)
    keep = janus.locate(p.source_codes, *p.locate)
    assert int((~keep).sum()) == round(janus.edit_share * GRID * GRID)
    assert torch.equal(janus.locate(p.source_codes, *p.locate), keep)  # deterministic
    auto = unlocked = 0
    for seed in range(4):
        params = {"seed": seed, "temperature": 1.5}
        r = list(a.stream(s, "make the dog a cat", params))[-1]
        codes = codes_of(janus, r.turn)
        assert torch.equal(codes[keep], source[keep]) and r.metadata["tokens"]["new_tokens"] == GRID * GRID + 3
        auto += int((codes != source).sum())
        free = list(a.stream(s, "draw: make the dog a cat", params))[-1]  # the override: a new picture, no lock
        unlocked += int((codes_of(janus, free.turn) != source).sum())
    assert 0 < auto <= 4 * round(janus.edit_share * GRID * GRID) < unlocked


def test_cancel_stops_a_drawing_and_stores_nothing(janus):
    cancel = threading.Event()
    events = []
    for ev in Assistant(janus).stream(Session(), "draw a dog", {"seed": 0}, cancel=cancel):
        events.append(ev)
        if isinstance(ev, ImageStart):
            cancel.set()
    reply = events[-1]
    assert reply.cancelled and reply.turn is None and reply.image is None
    assert not any(isinstance(e, ImageRow) for e in events)  # stopped within one code


def test_previews_come_row_by_row(janus):
    rows = [e for e in Assistant(janus).stream(Session(), "draw a dog", {"seed": 0}) if isinstance(e, ImageRow)]
    assert [e.row for e in rows] == list(range(GRID))
    assert rows[0].preview is not None and rows[0].preview.size == (PX, PX)


def test_too_few_new_tokens_for_a_picture_is_one_sentence(janus):
    with pytest.raises(ChatgenError, match=r"takes 18 new tokens; raise max_new_tokens"):
        list(Assistant(janus).stream(Session(), "draw a dog", {"max_new_tokens": 10}))


def test_quantized_loading_on_cpu(janus_dir):
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    for q, layer in (("4bit", bnb.nn.Linear4bit), ("8bit", bnb.nn.Linear8bitLt)):
        b = load_backend(janus_dir, quantization=q)
        assert isinstance(b.lm.layers[0].mlp.up_proj, layer)
        inner = b.model.model  # SigLIP, the VQ, the generation parts and the text head stay in full precision
        for part in (b.model.lm_head, inner.generation_head, inner.generation_aligner, inner.vqmodel, inner.vision_model, inner.aligner):
            assert not any(isinstance(m, layer) for m in part.modules())
        s = Session()
        reply = Assistant(b).respond(s, "draw a dog", {"seed": 0, "cfg_scale": 3.0})
        assert reply.image.size == (PX, PX)
        assert_spans_exact(b, s.turns[reply.turn_id].reply_ids)


def test_incomplete_folder_is_one_sentence(janus_dir, tmp_path):
    broken = shutil.copytree(janus_dir, tmp_path / "broken")
    (broken / "model.safetensors").unlink()
    with pytest.raises(ChatgenError, match=r"Janus model at .* is incomplete: no weight files"):
        load_backend(broken)


# ---- front ends: --model on the folder ---------------------------------------------------------
def test_cli_generate(janus_dir, tmp_path, capsys):
    out = tmp_path / "fox.png"
    code = main(["generate", "a red fox in the snow", "-o", str(out), "--model", str(janus_dir), "--seed", "0", "--cfg", "5"])
    assert code == 0 and Image.open(out).size == (PX, PX)


def test_cli_chat_draw_then_edit(janus_dir, tmp_path, monkeypatch, capsys, edits_kept):
    script = iter(["/seed 3", "draw a dog", "make the dog a cat", "how many animals are there?", "/history", "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(script))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert main(["chat", "--model", str(janus_dir), "--out-dir", str(out_dir), "--max-new-tokens", "30"]) == 0
    text = capsys.readouterr().out
    assert text.count("you: ") == 3 and "error" not in text
    pngs = sorted(out_dir.glob("*.png"))
    assert len(pngs) == 2 and all(Image.open(png).size == (PX, PX) for png in pngs)


def test_cli_eval_one_dialogue(janus_dir, tmp_path, capsys):
    suite = tmp_path / "suite.yaml"
    suite.write_text("id: janus_draw\nturns:\n  - user: draw a dog on the grass\n    kind: draw\n    expect: {reply: image}\n  - user: make the dog a cat\n    kind: replace\n    expect: {reply: image}\n")
    code = main(["eval", str(suite), "--out", str(tmp_path / "report"), "--model", str(janus_dir), "--seed", "0", "--json"])
    assert code == 0
    rows = [json.loads(line) for line in (tmp_path / "report" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and not any(r["error"] for r in rows) and all(r["correct"] for r in rows)
    assert all(Image.open(tmp_path / "report" / r["image"]).size == (PX, PX) for r in rows)


def test_api_turn(janus_dir, tmp_path):
    from chatgen.api import ChatAPI

    api = ChatAPI(Assistant(load_backend(janus_dir)), folder=tmp_path / "api", capacity=2)
    sid = api.new_session()
    _, image, info = api.chat(sid, "draw a dog", None, None, 0)
    assert image and Image.open(image).size == (PX, PX) and info["model"].startswith("janus:")
    _text, image, info = api.chat(sid, "how many animals are there?", None, None, 0)
    assert image is None and info["turn_id"]
