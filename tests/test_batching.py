"""Batched decoding of concurrent replies (chatgen/batching.py): a reply decoded in a batch is the
reply it gets alone, token for token, with the same seed."""

import threading

import pytest
import torch
from PIL import Image

from chatgen.assistant import Assistant
from chatgen.backends.native import NativeBackend
from chatgen.batching import BatchDecoder
from chatgen.conversation import Message, Session
from chatgen.events import ReplyDone
from chatgen.params import GenerationParams
from chatgen.tiny import TinySpec, build_tiny

# (history to replay first, the request, sampling): draws, edits and questions; greedy and seeded sampling.
CASES = [
    ((), "draw a dog", dict(temperature=0.0)),
    ((), "draw a cat on the grass", dict(temperature=1.0, seed=3)),
    (("draw a dog",), "make the dog a cat", dict(temperature=0.0)),
    (("draw a tree",), "how many trees are there?", dict(temperature=0.9, seed=11)),
    (("draw a dog", "make it a fox"), "where is the fox?", dict(temperature=0.0)),
    ((), "hello", dict(temperature=1.0, seed=7, top_k=5)),
    (("draw a balloon",), "add a sun at the top", dict(temperature=0.8, seed=5, top_p=0.9)),
    ((), "draw a tree and a dog at night", dict(temperature=0.0, max_new_tokens=9)),  # a short cap: rows end at different steps
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_tiny(TinySpec(seed=5, hidden=48)).save_pretrained(tmp_path_factory.mktemp("batch") / "m")


def _prompts(backend):
    """The prompt of each case: its history replayed greedily (alone), then the request."""
    a = Assistant(backend)
    out = []
    for history, text, params in CASES:
        s = Session()
        for h in history:
            a.respond(s, h, GenerationParams(temperature=0.0, max_new_tokens=30, seed=0))
        out.append((backend.prompt(s, Message(text)), GenerationParams(**{"max_new_tokens": 30, **params})))
    return out


def _reply(backend, prompt, params, cancel=None):
    return [e for e in backend.stream(prompt, params, cancel) if isinstance(e, ReplyDone)][-1]


def _together(backend, jobs, gather_s=0.05):
    """Run every (prompt, params) from its own thread, all started together; replies in job order."""
    backend.batcher.gather_s = gather_s
    out = [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def run(i):
        start.wait()
        out[i] = _reply(backend, *jobs[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


class CountingModel(torch.nn.Module):
    """The language model, counting the rows of every forward pass (batches of more than one row seen)."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm
        self.widths: list[int] = []
        self.shapes: list[tuple[int, int]] = []

    @property
    def device(self):
        return self.lm.device

    def forward(self, **kw):
        self.widths.append(kw["input_ids"].shape[0])
        self.shapes.append(tuple(kw["input_ids"].shape))  # (rows, new tokens per row)
        return self.lm(**kw)


def test_eight_concurrent_replies_equal_the_replies_alone(folder):
    alone = NativeBackend.from_pretrained(folder)
    alone.batcher = None  # the single path: one reply at a time behind the lock
    jobs = _prompts(alone)
    single = [_reply(alone, *j) for j in jobs]
    assert len({tuple(r.reply_ids) for r in single}) >= 6  # the cases really differ
    assert any(r.image is not None for r in single) and len({len(r.reply_ids) for r in single}) >= 3  # rows end at different steps
    batched = NativeBackend.from_pretrained(folder)
    counting = CountingModel(batched.lm)
    batched.batcher.model = counting
    together = _together(batched, jobs)
    assert max(counting.widths) >= 4, "the replies were not decoded in one batch"
    for i, (a, b) in enumerate(zip(single, together)):
        assert a.reply_ids == b.reply_ids, f"case {i} ({CASES[i][1]!r}, {CASES[i][2]}) differs in the batch"
        assert a.text == b.text
        assert (a.image is None) == (b.image is None)
        if a.image is not None:
            assert a.image.tobytes() == b.image.tobytes()


def test_rows_of_different_lengths_and_late_joiners(folder):
    b = NativeBackend.from_pretrained(folder)
    jobs = _prompts(b)
    single = [_reply(b, *j) for j in jobs]  # through the batcher, one at a time
    # Prompts of very different lengths, started at different moments (later ones join a running batch).
    b.pool.clear()
    b.batcher.gather_s = 0.0
    out = [None] * len(jobs)

    def run(i):
        out[i] = _reply(b, *jobs[i])

    threads = []
    for i in range(len(jobs)):
        threads.append(threading.Thread(target=run, args=(i,)))
        threads[-1].start()
        threading.Event().wait(0.003 * i)
    for t in threads:
        t.join()
    assert len({len(p.ids) for p, _ in jobs}) >= 4
    assert [r.reply_ids for r in out] == [r.reply_ids for r in single]


def test_a_cancelled_row_leaves_the_others_undisturbed(folder):
    b = NativeBackend.from_pretrained(folder)
    jobs = _prompts(b)[:4]
    jobs = [(p, GenerationParams(**{**vars(q), "max_new_tokens": 30, "jacobi": 0})) for p, q in jobs]  # every row stays in the batch
    single = [_reply(b, *j) for j in jobs]
    b.pool.clear()
    cancel = threading.Event()
    out = [None] * len(jobs)

    def run(i):
        if i == 0:
            events = []
            for e in b.stream(*jobs[0], cancel):
                events.append(e)
                if len(events) == 2:
                    cancel.set()
            out[0] = events[-1]
        else:
            out[i] = _reply(b, *jobs[i])

    b.batcher.gather_s = 0.05
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out[0].cancelled and len(out[0].reply_ids) < len(single[0].reply_ids)
    assert [r.reply_ids for r in out[1:]] == [r.reply_ids for r in single[1:]]


# Jacobi off: the lock is a logits processor of a batched row; sampled with Jacobi: the span is decoded by JacobiSpan.
@pytest.mark.parametrize("temperature,jacobi", [(0.0, 0), (1.0, 16)])
def test_a_masked_edit_in_a_batch_keeps_its_lock(folder, temperature, jacobi):
    b = NativeBackend.from_pretrained(folder)
    a = Assistant(b)
    v = b.vocab
    s = Session()
    a.respond(s, "draw a dog", GenerationParams(temperature=0.0, max_new_tokens=30, seed=0))
    source = s.turns[s.head].assistant_image
    assert source is not None
    mask = Image.new("L", source.size, 0)
    mask.paste(255, (0, 0, source.size[0] // 2, source.size[1] // 2))  # paint the top left quarter
    prompt = b.prompt(s, Message("make it red", mask=mask))
    prompt.source_codes, prompt.keep = b.encode_image(source), ~b.edit_cells(mask)  # as the assistant sets them
    assert prompt.keep.any() and not prompt.keep.all()
    params = GenerationParams(temperature=temperature, seed=4, max_new_tokens=30, jacobi=jacobi)
    others = _prompts(b)[:5]
    single = _reply(b, prompt, params)
    replies = _together(b, [(prompt, params)] + others)
    assert replies[0].reply_ids == single.reply_ids
    ids = replies[0].reply_ids
    assert v.boi in ids
    codes = torch.tensor(ids[ids.index(v.boi) + 1 : ids.index(v.boi) + 1 + v.image_tokens]) - v.image_offset  # (H*W,)
    keep = prompt.keep.reshape(-1)
    assert torch.equal(codes[keep], prompt.source_codes.reshape(-1)[keep].long())


def test_cached_equals_uncached_turn_after_turn_in_a_batch(folder):
    cached = Assistant(NativeBackend.from_pretrained(folder))
    fresh = Assistant(NativeBackend.from_pretrained(folder))
    fresh.backend.pool.size = 0  # never keep a cache: every turn reads the whole conversation
    params = [GenerationParams(temperature=t, seed=k, max_new_tokens=30) for k, t in enumerate((0.0, 1.0, 0.7))]
    sessions = {id(a): [Session() for _ in params] for a in (cached, fresh)}
    for step, text in enumerate(["draw a dog", "make the dog a cat", "how many animals are there?"]):
        replies = {}
        for a in (cached, fresh):
            a.backend.batcher.gather_s = 0.05
            out = [None] * len(params)

            def run(i, a=a, out=out):
                out[i] = a.respond(sessions[id(a)][i], text, params[i])

            threads = [threading.Thread(target=run, args=(i,)) for i in range(len(params))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            replies[id(a)] = [s.turns[r.turn_id].reply_ids for s, r in zip(sessions[id(a)], out)]
            if a is fresh:
                assert all(r.metadata["tokens"]["cached_tokens"] == 0 for r in out)
            elif step:
                assert all(r.metadata["tokens"]["cached_tokens"] > 0 for r in out)
        assert replies[id(cached)] == replies[id(fresh)], f"turn {step + 1} differs"


# Edits of different pictures (each row drafts from its own picture), a drawing and a question, greedy or seeded sampling.
EDITS = [(("draw a dog",), "make the dog a cat"), (("draw a tree",), "now at night"), (("draw a balloon",), "add a sun at the top"),
         (("draw a cat on the grass",), "remove the cat"), ((), "draw a dog and a tree"), (("draw a fox",), "where is the fox?")]


def _edit_jobs(backend, params):
    a = Assistant(backend)
    jobs = []
    for i, (history, text) in enumerate(EDITS):
        s = Session()
        for h in history:
            a.respond(s, h, GenerationParams(temperature=0.0, max_new_tokens=60, seed=i))
        jobs.append((backend.prompt(s, Message(text)), GenerationParams(**{"max_new_tokens": 60, "seed": 20 + i, **params})))
    return jobs


@pytest.mark.parametrize("params,max_holes,span_tokens", [(dict(temperature=0.0), 64, 48), (dict(temperature=0.0), 0, 48), (dict(temperature=1.0, top_k=40), 64, 48),
                                                       (dict(temperature=0.0), 8, 6), (dict(temperature=1.0, top_k=40), 8, 6)],
                         ids=["greedy", "greedy-compacted", "sampled", "greedy-narrow", "sampled-narrow"])
def test_concurrent_jacobi_edits_equal_the_edits_alone(folder, params, max_holes, span_tokens):
    """Several rows inside image spans verify their drafts in one forward pass together (rejected
    drafts masked out of each row's cache, or compacted away; greedy rows' windows shrunk to the
    pass's token budget); each reply (and picture) is still the one it gets alone, greedy or
    sampled with its own seed."""
    b = NativeBackend.from_pretrained(folder)
    b.batcher.max_holes, b.batcher.span_tokens = max_holes, span_tokens
    b.batcher.text_tokens, b.batcher.prefill_pad = 0, -1  # no drafts in text passes, prefills alone: a pass of several rows and tokens is a span pass
    jobs = _edit_jobs(b, params)
    assert sum(p.source_codes is not None or b.vocab.boi in p.ids for p, _ in jobs) >= 4  # rows with a picture to draft from
    b.pool.clear()
    single = [_reply(b, *j) for j in jobs]  # one at a time: each span decoded alone by JacobiSpan
    assert sum(r.image is not None for r in single) >= 3, "too few replies draw a picture to test concurrent spans"
    b.pool.clear()
    counting = CountingModel(b.lm)
    b.batcher.model = counting
    together = _together(b, jobs)
    assert any(rows >= 2 and width >= 2 for rows, width in counting.shapes), "no forward pass verified several rows' drafts together"
    if span_tokens < 16:  # several span rows in a pass: greedy rows read a shorter window than alone, sampled rows their own
        narrow = [width for rows, width in counting.shapes if rows >= 3 and width > 1]
        assert narrow and (max(narrow) <= 2 if params["temperature"] == 0 else max(narrow) == 17), narrow
    for i, (one, many) in enumerate(zip(single, together)):
        assert one.reply_ids == many.reply_ids, f"case {i} {EDITS[i]} differs in the batch"
        assert (one.image is None) == (many.image is None)
        if one.image is not None:
            assert one.image.tobytes() == many.image.tobytes()


def test_a_batch_pass_gives_each_row_the_logits_it_gets_alone(folder):
    """The mechanics under the equality above, at the logits: rows of different lengths read
    different numbers of new tokens in one pass (right-padded), keep different prefixes of them
    (the rest become masked holes, then are compacted away), and every row sees only its own
    keys: its logits, and the cache it leaves with, are those of the row decoded alone."""
    import copy
    from types import SimpleNamespace

    from transformers import DynamicCache

    from chatgen.batching import _Batch

    lm = NativeBackend.from_pretrained(folder).lm
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(5, 60, (1, n), generator=g) for n in (9, 4, 13)]  # (1, T) each
    batch, alone, rows = _Batch(), [], []
    with torch.no_grad():
        for ids in prompts:
            cache = DynamicCache()
            lm(input_ids=ids, attention_mask=torch.ones_like(ids), cache=cache, use_cache=True)
            alone.append(copy.deepcopy(cache))
            rows.append(SimpleNamespace(n=ids.shape[1], seq=ids))
            batch.join(rows[-1], cache)
        # (new tokens per row, how many of them each row keeps), pass after pass; the last pass compacts.
        passes = [((5, 1, 3), (2, 1, 3)), ((1, 4, 2), (1, 1, 2)), ((3, 3, 1), (3, 2, 1)), ((2, 1, 2), (1, 1, 2))]
        for step, (widths, kept) in enumerate(passes):
            xs = [torch.randint(5, 60, (w,), generator=g).tolist() for w in widths]
            width = max(widths)
            tokens = torch.tensor([x + [x[-1]] * (width - len(x)) for x in xs])  # (B, W)
            real = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in xs])  # (B, W)
            logits = batch.step(lm, tokens, real)  # (B, W, V)
            for i, (x, cache) in enumerate(zip(xs, alone)):
                t = torch.tensor([x])  # (1, w)
                mask = torch.ones(1, cache.get_seq_length() + len(x), dtype=torch.long)
                own = lm(input_ids=t, attention_mask=mask, cache=cache, use_cache=True).logits[0].float()  # (w, V)
                assert torch.allclose(logits[i, : len(x)], own, atol=1e-4), f"row {i} sees other keys in pass {step}"
                if kept[i] < len(x):
                    cache.crop(kept[i] - len(x))
            batch.settle(list(kept), width, max_holes=0 if step == len(passes) - 1 else 64)
            assert [r.n for r in rows] == [c.get_seq_length() for c in alone]
        for row, cache in zip(list(rows), alone):
            own = batch.leave(row)
            for a, b in zip(own.layers, cache.layers):
                assert torch.allclose(a.keys, b.keys, atol=1e-5) and torch.allclose(a.values, b.values, atol=1e-5)


def test_batch_decoder_rejects_an_empty_prompt(folder):
    b = NativeBackend.from_pretrained(folder)
    with pytest.raises(ValueError, match="ids"):
        BatchDecoder(b.lm).decode([], None, None, False, 3, b.vocab.eot, threading.Event(), lambda t: None)


def test_span_window_budget_and_draft_room():
    """The token budgets of a pass: greedy span rows shrink their Jacobi window so the pass's rows
    (text rows too: they share it) x (1 + window) stay near `span_tokens` (never below 1, never below a
    sampled row's own window, whose random draws depend on it); text rows draft freely up to
    `lookup_rows` rows in the pass, then within `text_tokens`."""
    from types import SimpleNamespace

    from chatgen.generation import JacobiSpan

    d = BatchDecoder(None, span_tokens=48, text_tokens=32, lookup_rows=1)
    greedy = [SimpleNamespace(sample=False, jacobi=SimpleNamespace(window=16)) for _ in range(8)]
    sampled = SimpleNamespace(sample=True, jacobi=SimpleNamespace(window=12))
    assert d._span_window(greedy, 8) == 5 and d._span_window(greedy[:2], 2) == 23 and d._span_window(greedy[:2] + [sampled], 3) == 15
    assert d._span_window(greedy[:2], 8) == 5  # two span rows among six text rows: the pass holds 8
    assert d._span_window(greedy + [sampled], 9) == 12 and BatchDecoder(None, span_tokens=8)._span_window(greedy, 8) == 1
    assert BatchDecoder(None, span_tokens=0)._span_window(greedy, 8) is None
    assert d._draft_room(1) > 1000 and d._draft_room(2) == 15 and d._draft_room(8) == 3 and d._draft_room(20) == 0
    assert BatchDecoder(None, text_tokens=0)._draft_room(2) == 0
    j = JacobiSpan(n=10, lo=100, hi=110, window=6)
    state = j.start(torch.tensor([[1, 2, 3]]))
    assert len(j.tokens(state, 2)) == 3 and len(j.tokens(state, 0)) == 2 and len(j.tokens(state, 50)) == 7 and len(j.tokens(state)) == 7


def test_wide_text_batches_read_lookup_drafts_and_equal_the_replies_alone(tmp_path):
    """Past `lookup_rows` rows, text rows still read prompt-lookup drafts within the `text_tokens`
    budget (several rows, several tokens each, in one pass); the replies (greedy and seeded sampling)
    are those they get alone."""
    folder = build_tiny(TinySpec(seed=2, steer_images=False)).save_pretrained(tmp_path / "m")  # a tiny model whose replies repeat the prompt
    b = NativeBackend.from_pretrained(folder)
    jobs = []
    for i, (text, params) in enumerate([("draw a dog", dict(temperature=0.0)), ("make the dog a cat", dict(temperature=1.0, seed=3)),
                                        ("how many animals are there?", dict(temperature=0.8, seed=5, top_k=10)), ("hello there", dict(temperature=0.0)),
                                        ("where is the cat?", dict(temperature=0.0))]):
        s = Session()
        Assistant(b).respond(s, Message("there is a cat on the left"), GenerationParams(temperature=0.0, seed=0, max_new_tokens=30))
        jobs.append((b.prompt(s, Message(text)), GenerationParams(**{"max_new_tokens": 40, "max_text_tokens": 30, "seed": i, "jacobi": 0, "lookup": 5, **params})))
    b.pool.clear()
    single = [_reply(b, *j) for j in jobs]
    b.pool.clear()
    counting = CountingModel(b.lm)
    b.batcher.model, b.batcher.lookup_rows, b.batcher.text_tokens = counting, 1, 32
    together = _together(b, jobs)
    assert any(rows >= 2 and width > 1 for rows, width in counting.shapes), "no text pass of several rows read drafts"  # no spans: jacobi is off
    assert [r.reply_ids for r in together] == [r.reply_ids for r in single]


def test_rows_arriving_together_are_prefilled_together(folder):
    """Prompts that share a prefix are read in waves: the shortest first, then the others copy its
    keys and values and read their own remaining tokens in one padded pass; the replies (greedy and
    seeded sampling) are those they get alone."""
    b = NativeBackend.from_pretrained(folder)
    texts = ["draw a dog", "draw a dog on the grass", "draw a dog at night", "draw a dog and a tree in the top right", "draw a cat"]
    jobs = [(b.prompt(Session(), Message(t)), GenerationParams(temperature=0.9 * (i % 2), seed=i, max_new_tokens=20, jacobi=0)) for i, t in enumerate(texts)]
    b.pool.clear()
    single = [_reply(b, *j) for j in jobs]
    b.pool.clear()
    counting = CountingModel(b.lm)
    b.batcher.model, b.batcher.text_tokens, b.batcher.lookup_rows = counting, 0, 0  # text passes read one token a row: a wider pass of several rows is a prefill
    together = _together(b, jobs)
    assert any(rows >= 3 and width > 1 for rows, width in counting.shapes), counting.shapes
    assert [r.reply_ids for r in together] == [r.reply_ids for r in single]


def test_prefill_groups_pad_only_where_a_pass_is_saved():
    from types import SimpleNamespace

    d = BatchDecoder(None, prefill_pad=24)
    rows = [SimpleNamespace(ids=list(range(n + r)), reused=r) for n, r in ((1, 5), (30, 5), (2, 5), (7, 0), (1, 9))]
    groups = [[len(x.ids) - x.reused for x, _ in g] for g in d._prefill_groups([(r, None) for r in rows])]
    assert groups == [[7], [1, 1, 2], [30]]  # a row without a cache alone; 30 would pad 3 rows by 86 tokens to save one pass
    assert [len(g) for g in BatchDecoder(None, prefill_pad=-1)._prefill_groups([(r, None) for r in rows])] == [1] * 5
