import threading
import time

import pytest
import torch
from PIL import Image

from chatgen.assistant import Assistant
from chatgen.generation import PREVIEW_EVERY_S
from chatgen.events import ImageDone, ImageRow, ImageStart, ReplyDone
from chatgen.params import GenerationParams
from chatgen.backends.native import NativeBackend
from chatgen.conversation import Message, Session
from chatgen.errors import ChatgenError
from chatgen.tiny import TinySpec, build_tiny


def test_from_pretrained_round_trip(tiny_dir, tmp_path):
    b = NativeBackend.from_pretrained(tiny_dir)
    again = NativeBackend.from_pretrained(b.save_pretrained(tmp_path / "copy"))
    assert again.name == b.name and again.vocab == b.vocab
    img = Image.new("RGB", (40, 30), (200, 50, 50))
    assert torch.equal(b.encode_image(img), again.encode_image(img))


def test_image_codes_round_trip_through_the_vq(backend):
    codes = torch.randint(0, backend.vocab.codebook_size, (backend.vocab.grid_h, backend.vocab.grid_w))
    img = backend.decode_image(codes)
    assert img.size == (backend.config.image_size,) * 2 and img.mode == "RGB"
    assert backend.encode_image(img).shape == codes.shape


@pytest.mark.parametrize("steer", [True, False])
def test_cached_greedy_equals_uncached_turn_after_turn(tmp_path, steer, edits_kept):
    folder = build_tiny(TinySpec(steer_images=steer, seed=5)).save_pretrained(tmp_path / "m")
    cached = Assistant(NativeBackend.from_pretrained(folder))
    fresh = Assistant(NativeBackend.from_pretrained(folder))
    fresh.backend.pool.size = 0  # never keep a cache: every turn reads the whole conversation
    s1, s2 = Session(), Session()
    greedy = GenerationParams(temperature=0.0, max_new_tokens=30, seed=0)
    prev = None
    for i, text in enumerate(["draw a dog", "make the dog a cat", "how many animals are there?", "move the cat left"]):
        a = cached.respond(s1, text, greedy)
        b = fresh.respond(s2, text, greedy)
        assert s1.turns[a.turn_id].reply_ids == s2.turns[b.turn_id].reply_ids, f"turn {i + 1} differs"
        assert b.metadata["tokens"]["cached_tokens"] == 0
        if prev is not None:  # the whole previous conversation (but its very last token) came from the cache
            assert a.metadata["tokens"]["cached_tokens"] == prev["prompt_tokens"] + prev["new_tokens"] - 1
        prev = a.metadata["tokens"]


def test_cache_follows_undo_and_branches(backend):
    a = Assistant(backend)
    s = Session()
    greedy = GenerationParams(temperature=0.0, max_new_tokens=25, seed=0)
    a.respond(s, "draw a dog", greedy)
    first = a.respond(s, "make it a cat", greedy)
    s.undo()
    again = a.respond(s, "make it a cat", greedy)
    assert again.metadata["tokens"]["cached_tokens"] > 0
    assert s.turns[first.turn_id].reply_ids == s.turns[again.turn_id].reply_ids


def test_same_seed_same_image_and_different_seed_differs(backend):
    prompt = backend.prompt(Session(), Message("draw a dog"))
    run = lambda seed: list(backend.stream(prompt, GenerationParams(seed=seed, max_new_tokens=40)))[-1]
    images = {}
    for seed in range(6):
        d1, d2 = run(seed), run(seed)
        assert d1.reply_ids == d2.reply_ids
        if d1.image is not None:
            assert d1.image.tobytes() == d2.image.tobytes()
            images[seed] = d1.image.tobytes()
    assert len(images) >= 2 and len(set(images.values())) >= 2


def test_events_stream_rows_with_previews(backend):
    prompt = backend.prompt(Session(), Message("draw a dog"))
    for seed in range(10):
        events = list(backend.stream(prompt, GenerationParams(seed=seed, max_new_tokens=40)))
        if any(isinstance(e, ImageDone) for e in events):
            break
    kinds = [type(e) for e in events]
    rows = [e for e in events if isinstance(e, ImageRow)]
    assert ImageStart in kinds and kinds[-1] is ReplyDone
    assert [r.row for r in rows] == list(range(backend.vocab.grid_h))
    assert rows[0].preview is not None  # the first row shows at once; later ones at most every PREVIEW_EVERY_S
    assert all(r.preview.size == (32, 32) for r in rows if r.preview is not None)
    assert rows[-1].preview is None  # the finished image follows right away
    assert kinds.index(ImageDone) > kinds.index(ImageStart)


def test_a_slow_model_previews_every_row(tiny_dir):
    b = NativeBackend.from_pretrained(tiny_dir)
    b.lm.register_forward_hook(lambda module, args, output: time.sleep(PREVIEW_EVERY_S / b.vocab.grid_w + 0.01))
    prompt = b.prompt(Session(), Message("draw a dog"))
    for seed in range(10):
        rows = [e for e in b.stream(prompt, GenerationParams(seed=seed, max_new_tokens=40, jacobi=0)) if isinstance(e, ImageRow)]  # row by row
        if rows:
            break
    assert rows and all(r.preview is not None for r in rows[:-1])


def test_cancel_from_another_thread_stops_within_one_step(tiny_dir):
    b = NativeBackend.from_pretrained(tiny_dir)
    steps = []

    def slow_step(module, args, output):  # every forward pass takes 30 ms and is counted
        steps.append(time.perf_counter())
        time.sleep(0.03)

    b.lm.register_forward_hook(slow_step)
    cancel = threading.Event()
    at = {}

    def canceller():
        while len(steps) < 5:
            time.sleep(0.001)
        at["steps"] = len(steps)
        cancel.set()

    threading.Thread(target=canceller).start()
    a = Assistant(b)
    s = Session()
    reply = a.respond(s, "draw a dog", GenerationParams(seed=1, max_new_tokens=400, temperature=1.0), cancel=cancel)
    assert reply.cancelled and reply.turn_id is None
    assert len(steps) <= at["steps"] + 1  # at most the step already under way
    assert len(s) == 0  # nothing stored


def test_closing_the_stream_cancels(backend):
    prompt = backend.prompt(Session(), Message("draw"))
    cancel = threading.Event()
    gen = backend.stream(prompt, GenerationParams(seed=1, max_new_tokens=400), cancel=cancel)
    next(gen)
    gen.close()
    assert cancel.is_set()


def test_cfg_keeps_spans_exact(backend):
    prompt = backend.prompt(Session(), Message("draw a dog"))
    seen = 0
    for seed in range(8):
        done = list(backend.stream(prompt, GenerationParams(seed=seed, cfg_scale=3.0, max_new_tokens=40)))[-1]
        text, spans = backend.vocab.split_spans(done.reply_ids)
        assert all(len(s) == backend.vocab.image_tokens for s in spans)
        seen += len(spans)
    assert seen > 0


def test_unknown_model_folders_are_clear_errors(tmp_path):
    with pytest.raises(ChatgenError, match="config.json is missing"):
        NativeBackend.from_pretrained(tmp_path)
    with pytest.raises(ChatgenError, match="does not exist"):
        NativeBackend.from_pretrained(tmp_path / "nope")
    (tmp_path / "config.json").write_text('{"format": "chatgen-native", "vocab": {"text_size": 10, "codebook_size": 4, "grid_h": 2, "grid_w": 2}, "image_size": 16}')
    with pytest.raises(ChatgenError, match="incomplete: tokenizer.model is missing"):
        NativeBackend.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("[]")
    with pytest.raises(ChatgenError, match="not a chatgen model config"):
        NativeBackend.from_pretrained(tmp_path)


def test_hub_id_offline_is_a_clear_error():
    with pytest.raises(ChatgenError, match="not available from the Hub"):
        NativeBackend.from_pretrained("someone/not-a-real-chatgen-model")


@pytest.mark.parametrize("bits", ["8bit", "4bit"])
def test_quantized_loading_generates_valid_replies(tmp_path, bits):
    pytest.importorskip("bitsandbytes")
    folder = build_tiny(TinySpec(hidden=64)).save_pretrained(tmp_path / "m")
    b = NativeBackend.from_pretrained(folder, quantization=bits)
    assert "bitsandbytes" in type(b.lm.model.layers[0].mlp.down_proj).__module__
    done = list(b.stream(b.prompt(Session(), Message("draw a dog")), GenerationParams(seed=1, max_new_tokens=30)))[-1]
    assert all(len(s) == b.vocab.image_tokens for s in b.vocab.split_spans(done.reply_ids)[1])


def test_unknown_quantization_is_named(tiny_dir):
    with pytest.raises(ChatgenError, match="quantization must be"):
        NativeBackend.from_pretrained(tiny_dir, quantization="3bit")
