"""Emu3 behind chatgen: a tiny random `Emu3ForConditionalGeneration` + `Emu3Processor`, saved with
save_pretrained and loaded through `load_backend`, through every front end."""

import json
import shutil

import pytest
import torch
from PIL import Image

from chatgen.assistant import Assistant
from chatgen.backends import load_backend
from chatgen.backends.emu3 import Emu3Backend
from chatgen.cli import main
from chatgen.conversation import Message, Session
from chatgen.errors import ChatgenError
from chatgen.params import GenerationParams
from family_checkpoints import make_emu3

GRID, PX = 4, 32  # the tiny checkpoint: 4 x 4 codes, 32 px


@pytest.fixture(scope="module")
def emu3_dir(tmp_path_factory):
    return make_emu3(tmp_path_factory.mktemp("emu3") / "Emu3-tiny", grid=GRID)


@pytest.fixture(scope="module")
def emu3(emu3_dir):
    return load_backend(emu3_dir)


def image_reply(assistant, session, text, seeds=range(20), **params):
    """The first seed whose reply holds an image (the random model sometimes answers in text)."""
    for seed in seeds:
        r = assistant.stream(session, text, {"seed": seed, "max_new_tokens": 60, **params})
        reply = list(r)[-1]
        if reply.image is not None:
            session.append(reply.turn)
            return reply
    raise AssertionError("no seed gave an image")


def assert_spans_exact(backend, ids):
    v = backend.vocab
    _, raw = v.raw_spans(ids)
    assert raw and all(v.span_ok(s) for s in raw)
    assert all(len(codes) == GRID * GRID for codes in v.split_spans(ids)[1])


def test_load_backend_picks_emu3_and_its_sizes(emu3):
    assert isinstance(emu3, Emu3Backend) and emu3.name.startswith("emu3:")
    v = emu3.vocab
    assert (v.grid_h, v.grid_w, v.codebook_size) == (GRID, GRID, 32)
    # <|image start|> "4*4" <|image token|> + 4 rows of (4 codes + <|extra_200|>) + <|extra_201|> <|image end|>
    layout = v.span_layout()
    assert len(layout) == len(v.header) + GRID * (GRID + 1) + 1 and layout.count(None) == GRID * GRID
    assert emu3.tokenizer.decode(list(v.header)) == "4*4<|image token|>"


def test_image_codes_round_trip(emu3):
    codes = torch.randint(0, 32, (GRID, GRID))
    img = emu3.decode_image(codes)
    assert img.size == (PX, PX) and img.mode == "RGB"
    assert emu3.encode_image(img).shape == (GRID, GRID)
    ids = emu3.vocab.codes_to_ids(codes)
    assert ids[0] == emu3.vocab.boi and ids[-1] == emu3.vocab.eoi
    assert torch.equal(emu3.vocab.ids_to_codes(emu3.vocab.split_spans(ids)[1][0]), codes)


def test_prompt_is_emu3s_chat_template(emu3):
    p = emu3.prompt(Session(system="You are a helpful assistant."), Message("draw a dog"))
    text = emu3.tokenizer.decode(p.ids)
    assert text == "<|extra_203|>You are a helpful assistant. USER: draw a dog ASSISTANT:"
    assert emu3.tokenizer.decode(p.uncond_ids).endswith("USER:  ASSISTANT:")


def test_draw_then_edit_turn_after_turn_with_cache(emu3):
    a, s = Assistant(emu3), Session()
    first = image_reply(a, s, "draw a dog")
    assert first.image.size == (PX, PX)
    assert_spans_exact(emu3, s.turns[first.turn_id].reply_ids)
    second = image_reply(a, s, "make the dog a cat", cfg_scale=3.0)
    assert_spans_exact(emu3, s.turns[second.turn_id].reply_ids)
    # the whole first turn came from the KV cache
    assert second.metadata["tokens"]["cached_tokens"] >= first.metadata["tokens"]["prompt_tokens"] + first.metadata["tokens"]["new_tokens"] - 1
    # the earlier image stays in context as its tokens
    prompt = emu3.prompt(s, Message("how many animals are there?"))
    span = emu3.vocab.raw_spans(s.turns[first.turn_id].reply_ids)[1][0]
    assert any(prompt.ids[i : i + len(span)] == span for i in range(len(prompt.ids)))


def test_cached_greedy_equals_uncached(emu3_dir):
    cached, fresh = Assistant(load_backend(emu3_dir)), Assistant(load_backend(emu3_dir))
    fresh.backend.pool.size = 0
    s1, s2 = Session(), Session()
    greedy = GenerationParams(temperature=0.0, max_new_tokens=40, seed=0)
    for text in ["draw a dog", "make the dog a cat", "how many animals are there?"]:
        r1, r2 = cached.respond(s1, text, greedy), fresh.respond(s2, text, greedy)
        assert s1.turns[r1.turn_id].reply_ids == s2.turns[r2.turn_id].reply_ids
    assert r1.metadata["tokens"]["cached_tokens"] > 0 and r2.metadata["tokens"]["cached_tokens"] == 0


def test_masked_edit_keeps_the_source_tokens_outside_the_mask(emu3):
    a, s = Assistant(emu3), Session()
    src = image_reply(a, s, "draw a dog")
    source = emu3.vocab.ids_to_codes(emu3.vocab.split_spans(s.turns[src.turn_id].reply_ids)[1][0])
    mask = Image.new("L", (PX, PX), 0)
    mask.paste(255, (0, 0, PX // 2, PX // 2))  # the top-left quarter may change
    keep = ~emu3.edit_cells(mask)
    assert int(keep.sum()) == GRID * GRID * 3 // 4
    changed = 0
    for seed in range(6):
        r = list(a.stream(s, Message("make the dog a cat", mask=mask), {"seed": seed, "max_new_tokens": 60, "temperature": 1.5}))[-1]
        if r.image is None:
            continue
        codes = emu3.vocab.ids_to_codes(emu3.vocab.split_spans(r.turn.reply_ids)[1][0])
        assert torch.equal(codes[keep], source[keep])
        changed += int((codes[~keep] != source[~keep]).sum())
    assert changed > 0  # inside the mask the model is free


def test_upload_is_encoded_by_emu3s_vq_and_read_in_context(emu3):
    img = Image.new("RGB", (50, 40), (200, 30, 30))
    p = emu3.prompt(Session(), Message("what is in the picture?", image=img))
    span = emu3.vocab.codes_to_ids(emu3.encode_image(img))
    assert any(p.user_ids[i : i + len(span)] == span for i in range(len(p.user_ids)))
    reply = Assistant(emu3).respond(Session(), Message("what is in the picture?", image=img), {"seed": 0, "max_new_tokens": 40})
    assert reply.turn is not None


def test_quantized_loading_on_cpu(emu3_dir):
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    for q, layer in (("4bit", bnb.nn.Linear4bit), ("8bit", bnb.nn.Linear8bitLt)):
        b = load_backend(emu3_dir, quantization=q)
        assert isinstance(b.model.model.text_model.layers[0].mlp.up_proj, layer)
        assert not isinstance(b.model.lm_head, layer)  # the head and the VQ stay in full precision
        assert not any(isinstance(m, layer) for m in b.vq.modules())
        s = Session()
        reply = image_reply(Assistant(b), s, "draw a dog", seeds=range(5))
        assert reply.image.size == (PX, PX)
        assert_spans_exact(b, s.turns[reply.turn_id].reply_ids)


def test_incomplete_folder_is_one_sentence(emu3_dir, tmp_path):
    broken = shutil.copytree(emu3_dir, tmp_path / "broken")
    (broken / "model.safetensors").unlink()
    with pytest.raises(ChatgenError, match=r"incomplete: no weight files"):
        load_backend(broken)


# ---- front ends: --model on the folder ---------------------------------------------------------
def test_cli_generate(emu3_dir, tmp_path, capsys):
    out = tmp_path / "dog.png"
    for seed in range(20):
        code = main(["generate", "draw a dog", "-o", str(out), "--model", str(emu3_dir), "--seed", str(seed), "--max-new-tokens", "60"])
        if code == 0:
            break
    assert code == 0 and Image.open(out).size == (PX, PX)


def test_cli_chat_draw_then_masked_edit(emu3_dir, tmp_path, monkeypatch, capsys, edits_kept):
    mask = tmp_path / "mask.png"
    m = Image.new("L", (PX, PX), 0)
    m.paste(255, (PX // 2, 0, PX, PX))
    m.save(mask)
    script = iter(["/seed 3", "draw a dog", f"/mask {mask}", "make the dog a cat", "/history", "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(script))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert main(["chat", "--model", str(emu3_dir), "--out-dir", str(out_dir), "--max-new-tokens", "60"]) == 0
    text = capsys.readouterr().out
    assert text.count("you: ") == 2 and "error" not in text
    pngs = sorted(out_dir.glob("*.png"))
    assert len(pngs) == 2 and all(Image.open(png).size == (PX, PX) for png in pngs)


def test_cli_eval_one_dialogue(emu3_dir, tmp_path, capsys):
    suite = tmp_path / "suite.yaml"
    suite.write_text("id: emu3_draw\nturns:\n  - user: draw a dog on the grass\n    kind: draw\n    expect: {reply: image}\n  - user: make the dog a cat\n    kind: replace\n    expect: {reply: image}\n")
    code = main(["eval", str(suite), "--out", str(tmp_path / "report"), "--model", str(emu3_dir), "--seed", "0", "--max-new-tokens", "60", "--json"])
    assert code == 0
    rows = [json.loads(line) for line in (tmp_path / "report" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and not any(r["error"] for r in rows)
    for r in rows:  # the reply images the report saved are Emu3's size
        if r["correct"]:
            assert Image.open(tmp_path / "report" / r["image"]).size == (PX, PX)
    assert any(r["correct"] for r in rows)
    assert (tmp_path / "report" / "index.html").is_file()


def test_api_turn(emu3_dir, tmp_path):
    from chatgen.api import ChatAPI

    api = ChatAPI(Assistant(load_backend(emu3_dir)), folder=tmp_path / "api", capacity=2)
    sid = api.new_session()
    for seed in range(20):
        text, image, info = api.chat(sid, "draw a dog", None, None, seed)
        if image:
            break
        api.undo(sid)
    assert image and Image.open(image).size == (PX, PX)
