"""Prompt-lookup drafts for text tokens (`chatgen.lookup`): greedy replies are token for token those
of plain decoding (text, text + image, the text cap, cancellation, alone and in a batch), sampling
keeps the model's distribution, and a reply that copies its prompt takes fewer forward passes."""

import threading

import pytest
import torch
from transformers import DynamicCache, LogitsProcessorList

from chatgen.assistant import Assistant
from chatgen.backends.native import NativeBackend
from chatgen.conversation import Message, Session
from chatgen.events import ReplyDone
from chatgen.generation import _sampling_processors, decode_loop
from chatgen.lookup import PromptLookup
from chatgen.params import GenerationParams
from chatgen.sampling import ImageSpanConstraint, SpanTracker
from chatgen.tiny import TinySpec, build_tiny


class CopyLM(torch.nn.Module):
    """A tiny LM with an induction bias: after token a, the token that followed a's latest earlier
    occurrence gets `bias` more logit, so its replies copy the prompt (a deterministic function of
    each position's prefix, whether the position is read alone or with drafts). One row at a time."""

    def __init__(self, lm, bias: float):
        super().__init__()
        self.lm, self.bias, self.seen, self.passes = lm, bias, [], 0

    @property
    def device(self):
        return self.lm.device

    def forward(self, input_ids, attention_mask=None, cache=None, use_cache=True, **kw):
        n = cache.get_seq_length() if cache is not None else 0  # tokens read before this pass
        out = self.lm(input_ids=input_ids, attention_mask=attention_mask, cache=cache, use_cache=use_cache, **kw)
        self.seen = self.seen[:n] + input_ids[0].tolist()
        self.passes += 1
        logits = out.logits.clone()  # (1, L, V)
        for j in range(input_ids.shape[1]):
            pos = n + j
            for i in range(pos - 1, -1, -1):
                if self.seen[i] == self.seen[pos]:
                    logits[0, j, self.seen[i + 1]] += self.bias
                    break
        out.logits = logits
        return out


def _lookup(v, width=8):
    return PromptLookup(lambda t: v.is_text(t) and t not in (v.eot, v.boi), width=width)


@pytest.fixture(scope="module")
def text_model():
    return build_tiny(TinySpec(seed=1, steer_images=False))


_PROMPTS: dict = {}


def _prompt_ids(b, text, history):
    """The prompt of `text` after `history` replayed greedily (kept: the sampled test reads it 800 times)."""
    key = (id(b), text, history)
    if key not in _PROMPTS:
        s = Session()
        for h in history:
            Assistant(b).respond(s, Message(h), GenerationParams(temperature=0.0, seed=0, max_new_tokens=30))
        _PROMPTS[key] = b.prompt(s, Message(text)).ids
    return _PROMPTS[key]


def _decode(b, model, text, width, params, cancel_after=None, history=()):
    """One reply to `text` by decode_loop (lookup `width`, 0 = off): tokens, the cache length, passes, the lookup."""
    v = b.vocab
    ids = _prompt_ids(b, text, tuple(history))
    p = GenerationParams(**params)
    config = p.generation_config(None, eos_token_id=v.eot, pad_token_id=v.pad)
    rules = LogitsProcessorList([ImageSpanConstraint(SpanTracker(v, len(ids)), p.max_new_tokens, max_text_tokens=p.max_text_tokens)])
    cancel, got = threading.Event(), []

    def put(t):
        got.append(t)
        if cancel_after is not None and len(got) >= cancel_after:
            cancel.set()
    lookup = _lookup(v, width) if width else None
    model.passes = 0
    g = torch.Generator().manual_seed(p.seed)
    seq, cache = decode_loop(model, ids, DynamicCache(), 0, rules, _sampling_processors(config), config.do_sample, p.max_new_tokens,
                             v.eot, cancel, put, generator=g, lookup=lookup)
    assert seq[len(ids):] == got
    assert cache.get_seq_length() == len(seq) - 1  # every token but the last, also after a cancel
    return got, model.passes, lookup


def test_drafts_follow_the_latest_longest_ngram():
    la = PromptLookup(lambda t: t < 100, width=4)
    # the 3-gram (1, 2, 3) occurs once, earlier; the 1-gram (3,) more recently: the longer n-gram wins
    assert la.drafts([1, 2, 3, 7, 8, 9, 10, 11, 5, 3, 6, 1, 2, 3], 10) == [7, 8, 9, 10]
    # the most recent occurrence of the same n-gram; room caps the drafts
    assert la.drafts([4, 5, 6, 4, 5, 7, 4, 5], 10) == [7, 4, 5]
    assert la.drafts([4, 5, 6, 4, 5, 7, 4, 5], 1) == [7]
    # drafts stop before a token that may not be drafted (<boi>, <eot>, codes ...); none: no drafts
    assert la.drafts([1, 2, 500, 9, 1, 2], 10) == []
    assert la.drafts([1, 2, 3, 500, 1, 2], 10) == [3]
    assert la.drafts([1, 2, 3], 10) == [] and la.drafts([1], 10) == [] and la.drafts([1, 2, 1], 0) == []


def test_a_draft_holds_with_its_probability_and_a_rejection_draws_from_the_rest():
    """Sampled verification on a toy distribution p: the draft x holds with probability p(x); on a
    rejection the token follows p with x removed, renormalised; and with the same generator the token
    is the one plain sampling draws (one draw per token)."""
    probs = torch.tensor([0.5, 0.2, 0.2, 0.1, 0.0])
    out = probs.log().expand(2, 5)  # (1+k, V): the pending token's prediction, then the draft's
    none = LogitsProcessorList()
    seq = torch.tensor([[3, 1]])
    n = 4000
    for draft in range(5):
        la = PromptLookup(lambda t: True)
        held, rest = 0, torch.zeros(5)
        for seed in range(n):
            got = la.verify(seq, out, [draft], none, none, True, torch.Generator().manual_seed(seed))
            plain = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(seed))
            assert got[0] == int(plain)  # coupled: the plain draw
            if len(got) == 2:
                assert got[0] == draft
                held += 1
            else:
                rest[got[0]] += 1
        assert abs(held / n - float(probs[draft])) < 0.03, draft
        if held < n:
            expected = probs.clone()
            expected[draft] = 0.0
            assert rest[draft] == 0 and float((rest / rest.sum() - expected / expected.sum()).abs().max()) < 0.03, (draft, rest)
        assert la.drafted == n and la.accepted == held
    greedy = PromptLookup(lambda t: True)
    assert greedy.verify(seq, out, [0], none, none, False) == [0, 0] and greedy.verify(seq, out, [2], none, none, False) == [0]


@pytest.mark.parametrize("params", [dict(max_new_tokens=60, max_text_tokens=40), dict(max_new_tokens=25, max_text_tokens=128),
                                    dict(max_new_tokens=60, max_text_tokens=7)])
def test_greedy_lookup_equals_plain_greedy_and_copies_in_fewer_passes(text_model, params):
    """A model that copies its prompt: the same greedy tokens with fewer forward passes (length cap and text cap hit too)."""
    model = CopyLM(text_model.lm, bias=30.0)
    saved = 0
    for text in ("draw a dog on the grass", "make the dog a cat, make the dog a cat", "how many animals are there?"):
        for history in ((), ("there is a cat on the left and a tree on the right",)):
            p = dict(temperature=0.0, seed=0, **params)
            plain, plain_passes, _ = _decode(text_model, model, text, 0, p, history=history)
            for width in (1, 3, 8):
                got, passes, la = _decode(text_model, model, text, width, p, history=history)
                assert got == plain, (text, history, width)
                assert passes <= plain_passes
                saved += plain_passes - passes
            assert plain[-1] == text_model.vocab.eot or len(plain) == params["max_new_tokens"]
    assert saved > 0


def test_a_copied_reply_takes_far_fewer_passes(text_model):
    model = CopyLM(text_model.lm, bias=30.0)
    p = dict(temperature=0.0, seed=0, max_new_tokens=40, max_text_tokens=40)
    plain, plain_passes, _ = _decode(text_model, model, "move the sun to the top right, please", 0, p)
    got, passes, la = _decode(text_model, model, "move the sun to the top right, please", 8, p)
    assert got == plain and len(plain) >= 30
    assert passes * 2 < plain_passes, (passes, plain_passes)
    assert la.accepted > 0.5 * la.drafted


@pytest.mark.parametrize("after", [1, 2, 5, 9])
def test_a_cancel_stops_at_the_same_token(text_model, after):
    model = CopyLM(text_model.lm, bias=30.0)
    p = dict(temperature=0.0, seed=0, max_new_tokens=40, max_text_tokens=40)
    plain, _, _ = _decode(text_model, model, "draw a dog on the grass", 0, p, cancel_after=after)
    got, _, _ = _decode(text_model, model, "draw a dog on the grass", 8, p, cancel_after=after)
    assert got == plain and len(got) == after


def test_sampled_lookup_draws_the_tokens_of_plain_sampling(text_model):
    """A mild copy bias (the drafts, from the earlier reply, are often but not always right): with the
    same seed, sampling with drafts gives token for token the reply of plain sampling, so it keeps the
    model's distribution; over the seeds the replies differ (the comparison means something)."""
    model = CopyLM(text_model.lm, bias=6.0)
    accepted, rejected, replies = 0, 0, set()
    for params in (dict(temperature=1.0, top_k=0), dict(temperature=0.7, top_k=20, top_p=0.9)):
        for seed in range(60):
            p = dict(max_new_tokens=12, max_text_tokens=10, seed=seed, **params)
            plain, _, _ = _decode(text_model, model, "draw a dog", 0, p, history=("draw a dog",))
            got, _, la = _decode(text_model, model, "draw a dog", 4, p, history=("draw a dog",))
            assert got == plain, (params, seed)
            accepted += la.accepted
            rejected += la.drafted - la.accepted
            replies.add(tuple(got))
    assert accepted > 50 and rejected > 50 and len(replies) > 30


def _replies(folder, texts, params, batching):
    b = NativeBackend.from_pretrained(folder)
    if not batching:
        b.batcher = None
    a, s, out = Assistant(b), Session(), []
    for text in texts:
        r = a.respond(s, Message(text), GenerationParams(**params))
        out.append(s.turns[r.turn_id].reply_ids)
    return out


@pytest.mark.parametrize("seed,steer,cfg", [(0, False, 1.0), (2, False, 1.0), (3, True, 1.0), (4, True, 1.0), (5, True, 3.0), (6, False, 3.0)])
def test_greedy_conversations_equal_plain_alone_and_in_a_batch(tmp_path, seed, steer, cfg):
    """Text-only and text + image conversations of random tiny models (with guidance too, whose
    unconditional stream reads every token): lookup on or off, alone or through the batch decoder,
    the same greedy replies turn after turn."""
    folder = build_tiny(TinySpec(seed=seed, steer_images=steer)).save_pretrained(tmp_path / "m")
    texts = ["draw a dog", "make the dog a cat", "how many animals are there?", "make the dog a cat", "add a tree"]
    base = dict(temperature=0.0, seed=0, max_new_tokens=40, max_text_tokens=24, cfg_scale=cfg)
    plain = _replies(folder, texts, {**base, "lookup": 0}, batching=False)
    for batching in (False, True):
        assert _replies(folder, texts, {**base, "lookup": 8}, batching) == plain, batching


@pytest.mark.parametrize("lookup_rows", [1, 16])
def test_batched_replies_with_lookup_equal_the_replies_alone(tmp_path, lookup_rows):
    """Concurrent replies (greedy and seeded sampling) decoded together are token for token those
    they get alone with lookup drafts, whether the batch gives a lone text row its full drafts and
    several rows a shared budget (the default) or every row full drafts (different widths, padding
    and rejected drafts as holes)."""
    folder = build_tiny(TinySpec(seed=2, steer_images=False)).save_pretrained(tmp_path / "m")
    alone = NativeBackend.from_pretrained(folder)
    alone.batcher = None
    jobs = []
    for i, (text, params) in enumerate([("draw a dog", dict(temperature=0.0)), ("make the dog a cat", dict(temperature=1.0, seed=3)),
                                        ("how many animals are there?", dict(temperature=0.8, seed=5, top_k=10)), ("hello there", dict(temperature=0.0))]):
        s = Session()
        Assistant(alone).respond(s, Message("there is a cat on the left"), GenerationParams(temperature=0.0, seed=0, max_new_tokens=30))
        jobs.append((alone.prompt(s, Message(text)), GenerationParams(**{"max_new_tokens": 40, "max_text_tokens": 30, "seed": i, **params})))
    single = [[e for e in alone.stream(*j) if isinstance(e, ReplyDone)][-1] for j in jobs]
    assert sum((r.stats["lookup_drafts"] or [0])[0] for r in single) > 0
    b = NativeBackend.from_pretrained(folder)
    b.batcher.gather_s, b.batcher.lookup_rows, b.batcher.max_holes = 0.05, lookup_rows, 8
    out = [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def run(i):
        start.wait()
        out[i] = [e for e in b.stream(*jobs[i]) if isinstance(e, ReplyDone)][-1]
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.reply_ids for r in out] == [r.reply_ids for r in single]
    assert [r.text for r in out] == [r.text for r in single]
    if lookup_rows > 1:
        assert sum((r.stats["lookup_drafts"] or [0])[0] for r in out) > 0


def test_lookup_is_checked():
    from chatgen.errors import ChatgenError

    with pytest.raises(ChatgenError, match="lookup"):
        GenerationParams(lookup=-1).check()
    assert GenerationParams(lookup=0).check().lookup == 0
