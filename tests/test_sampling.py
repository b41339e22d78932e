"""The vocabulary rules hold whatever the model wants: checked on raw random logits and on a model."""

import torch

from chatgen.conversation import Message, Session
from chatgen.params import GenerationParams
from chatgen.sampling import EditLock, ImageSpanConstraint, SpanTracker
from chatgen.vocab import JointVocab

V = JointVocab(text_size=20, codebook_size=16, grid_h=3, grid_w=3)


def check_reply(ids, vocab, max_images=1):
    """Every image span is <boi> + exactly H*W codes + <eoi>; no code outside a span."""
    i, images = 0, 0
    while i < len(ids):
        t = ids[i]
        if t == vocab.boi:
            span = ids[i + 1 : i + 1 + vocab.image_tokens]
            assert len(span) == vocab.image_tokens and all(vocab.is_image(c) for c in span), ids
            assert ids[i + 1 + vocab.image_tokens] == vocab.eoi, ids
            i += vocab.image_tokens + 2
            images += 1
        else:
            assert not vocab.is_image(t) and t != vocab.eoi, f"stray {t} in {ids}"
            assert t in (vocab.eot,) or vocab.is_text(t), f"illegal special {t}"
            i += 1
    assert images <= max_images


def sample_with(processor_factory, seed, steps, vocab=V, prompt=(1, 2, 3)):
    g = torch.Generator().manual_seed(seed)
    ids = torch.tensor([list(prompt)])
    proc = processor_factory(len(prompt))
    for _ in range(steps):
        logits = torch.randn(1, vocab.size, generator=g) * 3
        logits[0, vocab.image_offset :] += 2.0  # a model that loves image codes
        logits[0, vocab.boi] += 4.0
        scores = proc(ids, logits)
        nxt = torch.multinomial(torch.softmax(scores, -1), 1, generator=g)
        ids = torch.cat([ids, nxt], 1)
        if int(nxt) == vocab.eot:
            break
    return ids[0, len(prompt) :].tolist()


def test_span_constraint_on_random_logits_many_seeds():
    steps = 40
    for seed in range(200):
        reply = sample_with(lambda n: ImageSpanConstraint(SpanTracker(V, n), steps), seed, steps)
        check_reply(reply, V)


def test_no_image_starts_when_it_cannot_finish():
    budget = V.image_tokens + 1  # one token short of <boi> + codes + <eoi>
    for seed in range(50):
        reply = sample_with(lambda n: ImageSpanConstraint(SpanTracker(V, n), budget), seed, budget)
        assert V.boi not in reply


def test_edit_lock_forces_kept_codes():
    source = torch.randint(0, 16, (3, 3))
    keep = torch.ones(3, 3, dtype=torch.bool)
    keep[1, 1] = False
    for seed in range(30):

        def procs(n):
            tracker = SpanTracker(V, n)
            lock, span = EditLock(tracker, source, keep), ImageSpanConstraint(tracker, 40)
            return lambda ids, s: span(ids, lock(ids, s))

        reply = sample_with(procs, seed, 40)
        if V.boi in reply:
            i = reply.index(V.boi)
            codes = V.ids_to_codes(reply[i + 1 : i + 1 + V.image_tokens])
            assert torch.equal(codes[keep], source[keep])


def test_span_tracker_reads_each_token_once():
    def state(t):
        return (t.inside, t.codes, t.images, t.in_codes)

    t = SpanTracker(V, prompt_len=2)
    prompt = [7, 8]
    assert state(t.update(torch.tensor([prompt]))) == (False, 0, 0, False)
    assert state(t.update(torch.tensor([prompt + [V.boi, V.image_offset]]))) == (True, 1, 0, True)
    assert state(t.update(torch.tensor([prompt + [V.boi, V.image_offset]]))) == (True, 1, 0, True)  # a second processor in the same step
    reply = prompt + [V.boi, *[V.image_offset] * 9]
    assert state(t.update(torch.tensor([reply]))) == (True, 9, 0, False)  # the grid is full: only <eoi> may follow
    assert state(t.update(torch.tensor([reply + [V.eoi, 3]]))) == (False, 0, 1, False) and t.read == 12


def test_model_replies_obey_the_rules_over_many_seeds(backend):
    """The tiny model (steered toward images) through generate: spans exact, budgets respected."""
    v = backend.vocab
    prompt = backend.prompt(Session(), Message("draw a dog"))
    images = 0
    for seed in range(40):
        budget = 5 + seed % 30
        done = list(backend.stream(prompt, GenerationParams(seed=seed, temperature=1.3, max_new_tokens=budget, previews=False)))[-1]
        check_reply(done.reply_ids, v)
        assert len(done.reply_ids) <= budget
        images += done.image is not None
    assert images >= 10  # the check above really saw image spans


def test_unsteered_model_never_emits_stray_codes():
    from chatgen.tiny import TinySpec, build_tiny

    b = build_tiny(TinySpec(steer_images=False, seed=3))
    prompt = b.prompt(Session(), Message("hello"))
    for seed in range(10):
        done = list(b.stream(prompt, GenerationParams(seed=seed, temperature=2.0, max_new_tokens=40, previews=False)))[-1]
        check_reply(done.reply_ids, b.vocab)


def test_text_that_runs_on_is_ended_at_the_cap():
    """A reply that would loop in text ends with <eot> once max_text_tokens text tokens are out."""
    from chatgen.tiny import TinySpec, build_tiny

    b = build_tiny(TinySpec(steer_images=False, seed=3))
    prompt = b.prompt(Session(), Message("hello"))
    lengths = []
    for seed in range(8):
        done = list(b.stream(prompt, GenerationParams(seed=seed, temperature=2.0, max_new_tokens=60, max_text_tokens=12, previews=False)))[-1]
        check_reply(done.reply_ids, b.vocab)
        text = [t for t in done.reply_ids if not b.vocab.is_image(t) and t not in (b.vocab.boi, b.vocab.eoi, b.vocab.eot)]
        assert len(text) <= 12
        lengths.append(len(done.reply_ids))
    assert max(lengths) < 60  # the cap, not max_new_tokens, ended some reply
