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
