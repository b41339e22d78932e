"""The plain decode loop gives exactly the tokens of stock `generate` with the same rules and
sampling settings, greedy and sampled, with and without a reused cache."""

import threading

import pytest
import torch
from transformers import DynamicCache, LogitsProcessorList

from chatgen.backends.native import NativeBackend
from chatgen.conversation import Message, Session
from chatgen.generation import _sampling_processors, decode_loop
from chatgen.params import GenerationParams
from chatgen.sampling import ImageSpanConstraint, SpanTracker


@pytest.mark.parametrize("params", [dict(temperature=0.0), dict(temperature=1.0), dict(temperature=1.0, top_k=0), dict(temperature=0.7, top_k=20, top_p=0.9)])
def test_decode_loop_equals_stock_generate(tiny_dir, params):
    b = NativeBackend.from_pretrained(tiny_dir)
    v = b.vocab
    for text in ("draw a dog", "how many animals are there?", "make the dog a cat"):
        ids = b.prompt(Session(), Message(text)).ids
        for seed in range(4):
            p = GenerationParams(seed=seed, max_new_tokens=30, **params)
            config = p.generation_config(b.lm.generation_config, eos_token_id=v.eot, pad_token_id=v.pad)
            rules = lambda: LogitsProcessorList([ImageSpanConstraint(SpanTracker(v, len(ids)), p.max_new_tokens)])
            torch.manual_seed(seed)
            x = torch.tensor([ids])
            stock = b.lm.generate(input_ids=x, attention_mask=torch.ones_like(x), generation_config=config, logits_processor=rules()).sequences[0].tolist()
            torch.manual_seed(seed)
            got = []
            seq, cache = decode_loop(b.lm, ids, DynamicCache(), 0, rules(), _sampling_processors(config), config.do_sample, p.max_new_tokens, v.eot, threading.Event(), got.append)
            assert seq == stock, (text, seed, params)
            assert got == stock[len(ids):]
            assert cache.get_seq_length() == len(seq) - 1  # every token but the last was read


def test_decode_loop_reads_only_what_the_cache_lacks(tiny_dir):
    b = NativeBackend.from_pretrained(tiny_dir)
    v = b.vocab
    ids = b.prompt(Session(), Message("draw a dog")).ids
    seen = []
    b.lm.register_forward_hook(lambda m, args, kwargs, out: seen.append(kwargs["input_ids"].shape[1]), with_kwargs=True)
    cache = DynamicCache()
    b.lm(input_ids=torch.tensor([ids[:-3]]), cache=cache, use_cache=True)
    seen.clear()
    rules = LogitsProcessorList([ImageSpanConstraint(SpanTracker(v, len(ids)), 5)])
    decode_loop(b.lm, ids, cache, len(ids) - 3, rules, LogitsProcessorList(), False, 5, v.eot, threading.Event(), lambda t: None)
    assert seen[0] == 3 and all(n == 1 for n in seen[1:])


def _greedy_turns(backend, jacobi, texts, mask=None):
    from chatgen.assistant import Assistant

    a, s, out = Assistant(backend), Session(), []
    for i, text in enumerate(texts):
        msg = Message(text, mask=mask) if (mask is not None and i > 0) else Message(text)
        r = a.respond(s, msg, GenerationParams(temperature=0.0, seed=0, max_new_tokens=40, jacobi=jacobi))
        out.append((s.turns[r.turn_id].reply_ids, r.metadata["tokens"].get("image_passes")))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_greedy_jacobi_decoding_equals_plain_greedy_decoding(tmp_path, seed):
    from PIL import Image

    from chatgen.tiny import TinySpec, build_tiny

    folder = build_tiny(TinySpec(seed=seed)).save_pretrained(tmp_path / "m")
    texts = ["draw a dog", "make the dog a cat", "how many animals are there?", "move the cat left", "add a tree"]
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (0, 0, 16, 32))
    for m in (None, mask):
        plain = _greedy_turns(NativeBackend.from_pretrained(folder), 0, texts, m)
        for window in (3, 16):
            jac = _greedy_turns(NativeBackend.from_pretrained(folder), window, texts, m)
            assert [ids for ids, _ in jac] == [ids for ids, _ in plain]
            assert all(p is None for _, p in plain)
            spans = [p for ids, p in jac if p is not None]
            assert spans and all(1 <= p <= 17 for p in spans)  # never more passes than plain decoding (16 codes + 1)


class _OpenWithImage:
    """The reply starts with `<boi>` (so every draw samples the image span)."""

    def __init__(self, boi, prompt_len):
        self.boi, self.prompt_len = boi, prompt_len

    def __call__(self, input_ids, scores):
        if input_ids.shape[1] == self.prompt_len:
            forced = torch.full_like(scores, float("-inf"))
            forced[:, self.boi] = 0.0
            return forced
        return scores


def _first_image(backend, jacobi, seed, params):
    v = backend.vocab
    ids = backend.prompt(Session(), Message("draw a dog")).ids
    p = GenerationParams(seed=seed, max_new_tokens=v.image_tokens + 3, jacobi=jacobi, **params)
    config = p.generation_config(backend.lm.generation_config, eos_token_id=v.eot, pad_token_id=v.pad)
    rules = LogitsProcessorList([_OpenWithImage(v.boi, len(ids)), ImageSpanConstraint(SpanTracker(v, len(ids)), p.max_new_tokens)])
    from chatgen.generation import JacobiSpan

    span = JacobiSpan(n=v.image_tokens, lo=v.image_offset, hi=v.image_offset + v.codebook_size, window=jacobi) if jacobi else None
    torch.manual_seed(seed)
    seq, _ = decode_loop(backend.lm, ids, DynamicCache(), 0, rules, _sampling_processors(config), True, p.max_new_tokens, v.eot, threading.Event(), lambda t: None, jacobi=span, boi=v.boi)
    spans = v.split_spans(seq[len(ids):])[1]
    return tuple(spans[0]) if spans else None


def test_sampled_jacobi_decoding_keeps_the_model_distribution(tmp_path):
    """Speculative sampling: the codes drawn with Jacobi drafts follow the same distribution as
    plain sampling (a 2x2 grid of 4 codes, 400 draws each: every code's frequency at every
    position within a few points)."""
    from chatgen.tiny import TinySpec, build_tiny

    b = build_tiny(TinySpec(image_size=16, grid=2, codebook=4, seed=3))
    for params in (dict(temperature=1.0, top_k=0), dict(temperature=0.8, top_k=3)):
        freq = {}
        for window in (0, 4):
            counts = torch.zeros(4, 4)
            for seed in range(400):
                codes = _first_image(b, window, seed, params)
                assert codes is not None and len(codes) == 4
                for pos, c in enumerate(codes):
                    counts[pos, c - b.vocab.image_offset] += 1
            freq[window] = counts / 400
        assert float((freq[0] - freq[4]).abs().max()) < 0.1, (params, freq)
        assert float(freq[0].max()) < 0.9  # not a degenerate distribution: the comparison means something
