"""Chameleon format behind chatgen: tiny random `ChameleonForConditionalGeneration` checkpoints
(one with the VQ decoder, as Anole converted; one without, as facebook/chameleon-7b), saved with
save_pretrained and loaded through `load_backend`, through every front end."""

import json

import pytest
import torch
from family_checkpoints import image_reply as shared_image_reply
from family_checkpoints import make_chameleon
from PIL import Image

from chatgen.assistant import Assistant
from chatgen.backends import load_backend
from chatgen.backends.chameleon import ChameleonBackend
from chatgen.cli import main
from chatgen.conversation import Message, Session
from chatgen.errors import ChatgenError
from chatgen.params import GenerationParams
from chatgen.sampling import ImageSpanConstraint, SpanTracker

GRID, PX, CODES = 4, 32, 32  # the tiny checkpoints: 4 x 4 codes of 32, 32 px


@pytest.fixture(scope="module")
def draw_dir(tmp_path_factory):
    return make_chameleon(tmp_path_factory.mktemp("chameleon") / "Anole-tiny", grid=GRID, codebook=CODES)


@pytest.fixture(scope="module")
def read_dir(tmp_path_factory):
    return make_chameleon(tmp_path_factory.mktemp("chameleon") / "Chameleon-tiny", grid=GRID, codebook=CODES, draw=False)


@pytest.fixture(scope="module")
def drawer(draw_dir):
    return load_backend(draw_dir, draw=True)


@pytest.fixture
def draw_env(monkeypatch):
    monkeypatch.setenv("CHATGEN_CHAMELEON_DRAW", "1")


def image_reply(assistant, session, text, seeds=range(20), **params):
    return shared_image_reply(assistant, session, text, seeds, max_new_tokens=40, **params)


def assert_spans_exact(backend, ids):
    v = backend.vocab
    _, spans = v.raw_spans(ids)
    assert spans and all(len(s) == GRID * GRID and all(map(v.is_image, s)) for s in spans)


def test_load_backend_picks_chameleon_and_its_sizes(drawer):
    assert isinstance(drawer, ChameleonBackend) and drawer.name.startswith("chameleon:") and drawer.draws
    v = drawer.vocab
    assert (v.grid_h, v.grid_w, v.codebook_size, drawer.pixels) == (GRID, GRID, CODES, (PX, PX))
    assert v.span_layout() == (None,) * (GRID * GRID)  # <racm3:break> 16 codes <eoss>, as the processor writes it
    assert drawer.tokenizer.convert_ids_to_tokens([v.boi, v.eoi, v.image_offset, v.image_offset + 10]) == ["<racm3:break>", "<eoss>", "IMGIMGAZ", "IMGIMGBAZ"]
    # text ids are neither codes nor markers, though Chameleon's codes are not at the end of the vocabulary
    mask = v.text_mask()
    assert not mask[v.image_offset : v.image_offset + CODES].any() and not mask[[v.boi, v.eoi, v.eot]].any() and mask.sum() > 100


def test_image_codes_round_trip(drawer):
    codes = torch.randint(0, CODES, (GRID, GRID))
    img = drawer.decode_image(codes)
    assert img.size == (PX, PX) and img.mode == "RGB"
    assert drawer.encode_image(img).shape == (GRID, GRID)
    ids = drawer.vocab.codes_to_ids(codes)
    assert len(ids) == GRID * GRID + 2 and ids[0] == drawer.vocab.boi and ids[-1] == drawer.vocab.eoi
    assert torch.equal(drawer.vocab.ids_to_codes(drawer.vocab.split_spans(ids)[1][0]), codes)


def test_prompt_and_upload_in_the_chat_template(drawer):
    img = Image.new("RGB", (50, 40), (200, 30, 30))
    p = drawer.prompt(Session(), Message("what is in the picture?", image=img))
    span = drawer.vocab.codes_to_ids(drawer.encode_image(img))
    text, _ = drawer.vocab.raw_spans(p.ids)
    assert p.ids[0] == drawer.tokenizer.bos_token_id and drawer.tokenizer.decode(text) == "USER: what is in the picture? ASSISTANT:"
    assert any(p.user_ids[i : i + len(span)] == span for i in range(len(p.user_ids)))


def test_outside_a_span_codes_are_never_allowed(drawer):
    v = drawer.vocab
    rule = ImageSpanConstraint(SpanTracker(v, 1), max_new_tokens=100)
    scores = rule(torch.tensor([[v.eot]]), torch.zeros(1, v.size))
    allowed = torch.isfinite(scores[0])
    assert allowed[v.boi] and allowed[v.eot] and not allowed[v.image_offset : v.image_offset + CODES].any()


def test_draw_then_edit_turn_after_turn_with_cache(drawer):
    a, s = Assistant(drawer), Session()
    first = image_reply(a, s, "draw a dog")
    assert first.image.size == (PX, PX)
    assert_spans_exact(drawer, s.turns[first.turn_id].reply_ids)
    second = image_reply(a, s, "make the dog a cat", cfg_scale=3.0)
    assert_spans_exact(drawer, s.turns[second.turn_id].reply_ids)
    assert second.metadata["tokens"]["cached_tokens"] >= first.metadata["tokens"]["prompt_tokens"] + first.metadata["tokens"]["new_tokens"] - 1
    span = drawer.vocab.raw_spans(s.turns[first.turn_id].reply_ids)[1][0]
    prompt = drawer.prompt(s, Message("how many animals are there?"))
    assert any(prompt.ids[i : i + len(span)] == span for i in range(len(prompt.ids)))


def test_cached_greedy_equals_uncached(draw_dir):
    cached, fresh = Assistant(load_backend(draw_dir, draw=True)), Assistant(load_backend(draw_dir, draw=True))
    fresh.backend.pool.size = 0
    s1, s2 = Session(), Session()
    greedy = GenerationParams(temperature=0.0, max_new_tokens=30, seed=0)
    for text in ["draw a dog", "make the dog a cat"]:
        r1, r2 = cached.respond(s1, text, greedy), fresh.respond(s2, text, greedy)
        assert s1.turns[r1.turn_id].reply_ids == s2.turns[r2.turn_id].reply_ids
    assert r1.metadata["tokens"]["cached_tokens"] > 0 and r2.metadata["tokens"]["cached_tokens"] == 0


def test_words_only_checkpoint_reads_uploads_and_never_draws(read_dir):
    b = load_backend(read_dir)
    assert isinstance(b, ChameleonBackend) and not b.draws
    img = Image.new("RGB", (40, 40), (20, 200, 30))
    a, s = Assistant(b), Session()
    for seed in range(8):  # the tiny model is steered to open pictures: the mask must stop every one
        r = a.respond(s, Message("what is in the picture?", image=img), {"seed": seed, "max_new_tokens": 30, "temperature": 1.5})
        assert r.image is None and b.vocab.boi not in r.turn.reply_ids
        assert not any(b.vocab.is_image(t) for t in r.turn.reply_ids)
    with pytest.raises(ChatgenError, match="loaded to answer in words"):
        b.decode_image(torch.zeros(GRID, GRID, dtype=torch.long))


def test_draw_switch_needs_the_vq_decoder(read_dir, draw_dir, draw_env):
    with pytest.raises(ChatgenError, match=r"no VQ decoder weights \(model.vqmodel.decoder.\*\), so it cannot draw"):
        load_backend(read_dir)  # CHATGEN_CHAMELEON_DRAW=1 asks to draw
    assert load_backend(draw_dir).draws and not load_backend(draw_dir, draw=False).draws


def test_quantized_loading_on_cpu(draw_dir):
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    for q, layer in (("4bit", bnb.nn.Linear4bit), ("8bit", bnb.nn.Linear8bitLt)):
        b = load_backend(draw_dir, quantization=q, draw=True)
        assert isinstance(b.model.model.layers[0].mlp.up_proj, layer)
        assert not isinstance(b.model.lm_head, layer)  # the head and the VQ (with its decoder) stay in full precision
        assert not any(isinstance(m, layer) for m in b.vq.modules())
        s = Session()
        reply = image_reply(Assistant(b), s, "draw a dog", seeds=range(6))
        assert reply.image.size == (PX, PX)
        assert_spans_exact(b, s.turns[reply.turn_id].reply_ids)


# ---- front ends: --model on the folder, drawing switched on by the environment ----------------
def test_cli_generate(draw_dir, tmp_path, draw_env, capsys):
    out = tmp_path / "dog.png"
    for seed in range(20):
        code = main(["generate", "draw a dog", "-o", str(out), "--model", str(draw_dir), "--seed", str(seed), "--max-new-tokens", "40"])
        if code == 0:
            break
    assert code == 0 and Image.open(out).size == (PX, PX)


def test_cli_chat_draw_then_edit(draw_dir, tmp_path, draw_env, monkeypatch, capsys):
    script = iter(["/seed 3", "draw a dog", "make the dog a cat", "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(script))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert main(["chat", "--model", str(draw_dir), "--out-dir", str(out_dir), "--max-new-tokens", "40"]) == 0
    text = capsys.readouterr().out
    assert text.count("[image saved to") == 2 and "error" not in text
    pngs = sorted(out_dir.glob("*.png"))
    assert len(pngs) == 2 and all(Image.open(png).size == (PX, PX) for png in pngs)


def test_cli_eval_one_dialogue(draw_dir, tmp_path, draw_env, capsys):
    suite = tmp_path / "suite.yaml"
    suite.write_text("id: chameleon_draw\nturns:\n  - user: draw a dog on the grass\n    kind: draw\n    expect: {reply: image}\n  - user: make the dog a cat\n    kind: replace\n    expect: {reply: image}\n")
    code = main(["eval", str(suite), "--out", str(tmp_path / "report"), "--model", str(draw_dir), "--seed", "3", "--max-new-tokens", "40", "--json"])
    assert code == 0
    rows = [json.loads(line) for line in (tmp_path / "report" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and not any(r["error"] for r in rows)
    for r in rows:
        if r["correct"]:
            assert Image.open(tmp_path / "report" / r["image"]).size == (PX, PX)
    assert any(r["correct"] for r in rows)


def test_api_turn(draw_dir, tmp_path):
    from chatgen.api import ChatAPI

    api = ChatAPI(Assistant(load_backend(draw_dir, draw=True)), folder=tmp_path / "api", capacity=2)
    sid = api.new_session()
    for seed in range(20):
        _, image, _ = api.chat(sid, "draw a dog", None, None, seed)
        if image:
            break
        api.undo(sid)
    assert image and Image.open(image).size == (PX, PX)
