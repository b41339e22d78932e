"""Streaming generation over a `transformers` causal LM with the joint vocabulary.

`decode_loop` (a plain loop: one forward step per token, the vocabulary rules as transformers
logits processors, then the stock warpers) runs in a worker thread and hands each new token to
a queue; the caller's thread turns tokens into events (text deltas, finished image rows with
previews, the finished image). The loop checks a `threading.Event` after every token, so a
cancel stops within one token step. Stock `generate` gives the same tokens (a test checks it);
its per-step bookkeeping cost about a millisecond a token on the embedded model.

`PrefixCachePool` keeps the key/value caches of the last few conversations: the next turn of a
conversation shares its whole history with the previous turn's prompt + reply, so only the new
tokens are read.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from PIL import Image
from transformers import DynamicCache, GenerationConfig, LogitsProcessorList
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor, SuppressTokensAtBeginLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper,
)

from .events import Event, ImageDone, ImageRow, ImageStart, ReplyDone, TextDelta
from .lookup import PromptLookup, choose, without_undelivered
from .params import GenerationParams
from .sampling import EditLock, ImageGuidance, ImageSpanConstraint, SpanTracker, model_device
from .vocab import JointVocab


@dataclass
class Prompt:
    """Everything `stream_reply` needs for one reply."""

    ids: list[int]  # the whole conversation so far, ending with the assistant role marker
    user_ids: list[int]  # the new user part alone (stored in the turn)
    uncond_ids: list[int] | None = None  # the same prompt with the request removed, for CFG
    source_codes: torch.Tensor | None = None  # (H, W) codes of the image being edited, for masked edits
    keep: torch.Tensor | None = None  # (H, W) bool: True where the edit must keep source_codes
    banned_first: tuple[int, ...] = ()  # ids the reply may not start with (a redo that must not refuse again)


class PrefixCachePool:
    """A few (token ids, DynamicCache) pairs; `take` returns the one sharing the longest prefix."""

    def __init__(self, size: int = 4):
        self.size = size  # caches kept (one per recent conversation)
        self.entries: list[tuple[list[int], DynamicCache]] = []
        self.guard = threading.Lock()  # take/put come from the batch scheduler and from single-row workers

    def take(self, ids: list[int]) -> tuple[DynamicCache | None, int]:
        """Remove and return the best cache cropped to the shared prefix (at most len(ids) - 1)."""
        with self.guard:
            return self._take(ids)

    def _take(self, ids: list[int]) -> tuple[DynamicCache | None, int]:
        best, best_len = None, 0
        for i, (cached, _) in enumerate(self.entries):
            n = 0
            for a, b in zip(cached, ids):
                if a != b:
                    break
                n += 1
            n = min(n, len(ids) - 1)  # at least one token must be fed to get logits
            if n > best_len:
                best, best_len = i, n
        if best is None:
            return None, 0
        cached, cache = self.entries.pop(best)
        cache.crop(best_len - cache.get_seq_length())  # negative: tokens to drop
        return cache, best_len

    def put(self, ids: list[int], cache: DynamicCache) -> None:
        with self.guard:
            self.entries.insert(0, (ids[: cache.get_seq_length()], cache))
            del self.entries[self.size :]

    def clear(self) -> None:
        with self.guard:
            self.entries.clear()


PREVIEW_EVERY_S = 0.2  # the least time between two preview decodes of one image


def _sampling_processors(config: GenerationConfig) -> LogitsProcessorList:
    """The stock warpers `generate` would add for `config`, in its order (repetition penalty,
    then temperature, top-k, top-p); empty for greedy decoding."""
    out = LogitsProcessorList()
    if config.repetition_penalty not in (None, 1.0):
        out.append(RepetitionPenaltyLogitsProcessor(config.repetition_penalty))
    if config.do_sample:
        if config.temperature not in (None, 1.0):
            out.append(TemperatureLogitsWarper(config.temperature))
        if config.top_k:
            out.append(TopKLogitsWarper(config.top_k))
        if config.top_p is not None and config.top_p < 1.0:
            out.append(TopPLogitsWarper(config.top_p))
    return out


@dataclass
class JacobiSpan:
    """Speculative Jacobi decoding of one image span (Teng et al., arXiv 2410.01699), training-free.

    Each forward pass reads the pending token and up to `window` draft codes after it; the model's
    prediction at every position then verifies the drafts in order:

    1. greedy: a draft is kept while it equals the argmax there; at the first mismatch the
       argmax is taken instead (so every pass yields at least one code, and the codes are those
       of plain greedy decoding); if all drafts hold, the prediction after the last one is a
       bonus code;
    2. sampled: a draft x drawn from q is kept with probability min(1, p(x) / q(x)); at the first
       rejection a code is drawn from max(0, p - q) renormalised (speculative sampling: the
       codes keep the model's distribution); a draft that was a guess (not drawn) has q = 1 at x;
    3. the cache keeps the kept drafts and drops the rest; the predictions made past the first
       mismatch become the next drafts (the Jacobi iteration), and positions never predicted
       yet are guessed: the latest picture's code there (`init`), else the last code.

    Only the rules of a span's codes apply inside it (codes only; the edit lock's kept cells are
    their source code), so it runs where those are all the rules: no CFG, no repetition penalty,
    a span of codes only (`stream_reply` decides).

    `decode` runs a span alone; its steps (`start`, then per pass `tokens` and `verify`) let the
    batch decoder (`batching.BatchDecoder`) verify the drafts of several rows in one forward pass."""

    n: int  # codes in one span (grid_h * grid_w)
    lo: int  # first code id
    hi: int  # one past the last code id
    window: int = 16  # draft codes verified per forward pass
    source: torch.Tensor | None = None  # (n,) code ids the edit lock keeps ...
    keep: torch.Tensor | None = None  # (n,) bool: ... where True
    init: torch.Tensor | None = None  # (n,) code ids guessed before any prediction (the latest picture), or None
    passes: int = 0  # forward passes spent inside spans

    def _scores(self, logits: torch.Tensor, start: int) -> torch.Tensor:
        """(L, V) logits of code positions start.. -> scores under the span's rules."""
        scores = torch.full_like(logits, float("-inf"))
        scores[:, self.lo : self.hi] = logits[:, self.lo : self.hi]
        if self.keep is not None:
            pos = torch.arange(start, start + logits.shape[0])  # (L,)
            rows = torch.nonzero(self.keep[pos]).flatten()
            if len(rows):
                scores[rows] = float("-inf")
                scores[rows, self.source[pos[rows]]] = 0.0
        return scores

    def _guess(self, position: int, last: int) -> int:
        return int(self.init[position]) if self.init is not None else last

    def start(self, seq: torch.Tensor) -> SpanState:
        """The state of a span about to be decoded after `seq` (1, T), which ends with `<boi>` (not yet in the cache)."""
        return SpanState(seq=seq[:, :-1], pending=int(seq[0, -1]))

    def tokens(self, state: SpanState, window: int | None = None) -> list[int]:
        """The next pass's new tokens: the pending token, then up to `window` (at most `self.window`) drafts (guessed where none is predicted yet)."""
        e = len(state.done)  # the position the first draft stands for
        k = min(self.window if window is None else max(1, min(window, self.window)), self.n - e)
        while len(state.drafts) < k:
            state.drafts.append(self._guess(e + len(state.drafts), state.done[-1] if state.done else self.lo))
            state.qs.append(None)
        state.drafts, state.qs = state.drafts[:k], state.qs[:k]
        return [state.pending, *state.drafts]

    def verify(self, state: SpanState, out: torch.Tensor, warpers: LogitsProcessorList, sample: bool,
               generator: torch.Generator | None = None) -> tuple[list[int], int, torch.Tensor | None]:
        """Verify the drafts of `tokens(state)` against `out` (1+k, V), the pass's logits at those tokens.
        Returns the codes decided (in order), how many of the pass's tokens the cache must drop (the
        rejected drafts, at its end), and the logits (1, V) for the token after the span once it is
        complete (else None). Random draws come from `generator` (None: the global one)."""
        g = generator
        drafts, qs, e = state.drafts, state.qs, len(state.done)
        k = len(drafts)
        x = torch.tensor([[state.pending, *drafts]], device=state.seq.device)  # (1, 1+k)
        seq = torch.cat([state.seq, x], dim=1)  # (1, T+1+k): for now every draft is in
        self.passes += 1
        if k == 0:
            state.seq = seq
            return [], 0, out[-1:]  # the last code was pending: out[-1] reads past it
        # 1. Verify the drafts in order (positions e .. e+k-1), then the bonus or the correction.
        rows = min(k + 1, self.n - e)  # predictions that stand for codes of this span
        scores = warpers(seq.expand(rows, -1), self._scores(out[:rows], e))  # (rows, V)
        probs = torch.softmax(scores, dim=-1) if sample else None
        kept = 0
        while kept < k:
            d = drafts[kept]
            if sample:
                q = qs[kept]
                qd = 1.0 if q is None else float(q[d])
                if float(torch.rand((), generator=g, device=g.device if g is not None else None)) * qd < float(probs[kept, d]):
                    kept += 1
                    continue
                residual = probs[kept].clone()
                if q is None:
                    residual[d] = 0.0
                else:
                    residual = (residual - q).clamp_min(0.0)
                fix = int(torch.multinomial(residual / residual.sum(), 1, generator=g)) if residual.sum() > 0 else int(probs[kept].argmax())
            elif d == int(scores[kept].argmax()):
                kept += 1
                continue
            else:
                fix = int(scores[kept].argmax())
            break
        else:
            fix = None
            if kept < rows:  # all drafts held and the span goes on: the bonus code
                fix = int(torch.multinomial(probs[kept], 1, generator=g)) if sample else int(scores[kept].argmax())
        new = drafts[:kept] + ([fix] if fix is not None else [])
        # 2. Keep the verified drafts; the rest of the pass is dropped.
        state.seq = seq[:, : seq.shape[1] - (k - kept)]
        state.done += new
        if fix is None:  # the span is complete and every code is in the cache
            return new, k - kept, out[k : k + 1]
        state.pending = fix
        # 3. The predictions past the correction become the next drafts (positions e+kept+1 ..).
        later = range(kept + 1, rows)
        if sample:
            state.drafts = [int(torch.multinomial(probs[j], 1, generator=g)) for j in later]
            state.qs = [probs[j] for j in later]
        else:
            state.drafts = [int(scores[j].argmax()) for j in later]
            state.qs = [None] * len(state.drafts)
        if len(state.done) == self.n:
            state.drafts, state.qs = [], []
        return new, k - kept, None

    @torch.no_grad()
    def decode(self, model, seq: torch.Tensor, cache: DynamicCache, warpers: LogitsProcessorList, sample: bool,
               put: Callable[[int], None], cancel: threading.Event, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode the span's `n` codes after `seq` (which ends with `<boi>`, not yet in `cache`).
        Returns the sequence with the codes and the logits for the token after the last code
        (every token of the sequence is then in the cache; None for the logits when cancelled).
        Random draws come from `generator` (the reply's own RNG; None: the global one)."""
        state = self.start(seq)
        while True:
            if cancel.is_set():
                return torch.cat([state.seq, torch.tensor([[state.pending]], device=seq.device)], dim=1), None
            # 1. One pass over the pending token and the drafts.
            x = torch.tensor([self.tokens(state)], device=seq.device)  # (1, 1+k)
            mask = torch.ones(1, state.seq.shape[1] + x.shape[1], dtype=torch.long, device=seq.device)  # (1, T+1+k)
            out = model(input_ids=x, attention_mask=mask, cache=cache, use_cache=True).logits[0].float()  # (1+k, V)
            # 2. Verify; the cache keeps the verified drafts.
            new, drop, logits = self.verify(state, out, warpers, sample, generator)
            for t in new:
                put(t)
            if drop:
                cache.crop(-drop)
            if logits is not None:
                return state.seq, logits


@dataclass
class SpanState:
    """One image span being decoded by `JacobiSpan` (its steps: `start`, then `tokens` and `verify` per pass)."""

    seq: torch.Tensor  # (1, T) what the cache holds; `pending` follows it
    pending: int  # the last code decided (or `<boi>`), not in the cache yet
    done: list[int] = field(default_factory=list)  # codes decided
    drafts: list[int] = field(default_factory=list)  # guesses for the positions after the pending token
    qs: list = field(default_factory=list)  # the distribution each draft was drawn from (None: a guess)


@torch.no_grad()
def decode_loop(model, ids: list[int], cache: DynamicCache, reused: int, rules: LogitsProcessorList, warpers: LogitsProcessorList,
                sample: bool, max_new_tokens: int, eos: int, cancel: threading.Event, put: Callable[[int], None],
                jacobi: JacobiSpan | None = None, boi: int | None = None, generator: torch.Generator | None = None,
                lookup: PromptLookup | None = None) -> tuple[list[int], DynamicCache]:
    """The plain decode loop: one forward step per token, the vocabulary rules, then greedy or
    sampled (`sample`) choice; each token goes to `put` as soon as it is chosen. The same tokens as stock
    `generate` with these processors (checked in the tests), without its per-step bookkeeping.

    With `jacobi`, the codes after a `<boi>` (id `boi`) are decoded by `jacobi.decode`, several
    per forward pass. With `lookup`, each text step also reads prompt-lookup drafts and keeps
    those that hold (`lookup.PromptLookup`: the tokens are those of plain decoding, greedy or
    sampled with the same generator). `cache` already holds the first `reused` tokens of `ids`. Returns the whole
    sequence and the cache (which holds every token but the last). Random draws come from
    `generator` (the reply's own RNG; None: the global one)."""
    seq = torch.tensor([ids], dtype=torch.long, device=model_device(model))  # (1, T)
    # 1. Prefill: only the tokens the cache does not hold yet.
    logits = model(input_ids=seq[:, reused:], attention_mask=torch.ones_like(seq), cache=cache, use_cache=True).logits[:, -1, :].float()  # (1, V)
    made = 0
    ahead: list[int] = []  # tokens a lookup pass decided, not handed out yet (all but the last in the cache)
    while made < max_new_tokens:
        # 2. Rules (guidance, edit lock, image spans), then the sampling warpers, then the choice.
        t = ahead.pop(0) if ahead else int(choose(seq, logits, rules, warpers, sample, generator))
        seq = torch.cat([seq, torch.tensor([[t]], dtype=seq.dtype, device=seq.device)], dim=1)  # (1, T+1)
        put(t)
        made += 1
        if t == eos or cancel.is_set() or made == max_new_tokens:
            break
        if ahead:
            continue  # a verified draft: already in the cache
        if jacobi is not None and t == boi and made + jacobi.n < max_new_tokens:
            # 3a. An image span: its codes several per forward pass.
            seq, logits = jacobi.decode(model, seq, cache, warpers, sample, put, cancel, generator)
            made += jacobi.n
            if logits is None:
                break
            continue
        # 3. One forward step for the chosen token (and its prompt-lookup drafts, verified in the same pass).
        drafts = lookup.drafts(seq[0].tolist(), max_new_tokens - made - 1) if lookup is not None else []
        x = torch.tensor([[t, *drafts]], dtype=seq.dtype, device=seq.device)  # (1, 1+k)
        mask = torch.ones(1, seq.shape[1] + len(drafts), dtype=torch.long, device=seq.device)  # (1, T+1+k)
        out = model(input_ids=x, attention_mask=mask, cache=cache, use_cache=True).logits[0].float()  # (1+k, V)
        if drafts:
            ahead = lookup.verify(seq, out, drafts, rules, warpers, sample, generator)
            if len(ahead) <= len(drafts):
                cache.crop(len(ahead) - 1 - len(drafts))  # the rejected drafts leave the cache
        else:
            logits = out[-1:]  # (1, V)
    return seq[0].tolist(), without_undelivered(cache, seq.shape[1])


def _jacobi_for(vocab: JointVocab, prompt: Prompt, params: GenerationParams, rules: LogitsProcessorList, warpers: LogitsProcessorList) -> JacobiSpan | None:
    """Jacobi decoding for this reply's image span where its rules allow it (see `JacobiSpan`):
    on, no CFG, no repetition penalty, a span of codes only. Its first guesses are the codes of
    the picture being edited (a masked edit's source, else the latest picture in the prompt)."""
    if not params.jacobi or any(isinstance(r, ImageGuidance) for r in rules) or any(isinstance(w, RepetitionPenaltyLogitsProcessor) for w in warpers):
        return None
    if any(x is not None for x in vocab.span_layout()):
        return None
    n, lo = vocab.image_tokens, vocab.image_offset
    init = None
    if prompt.source_codes is not None:
        init = prompt.source_codes.reshape(-1).long() + lo  # (n,)
    else:
        spans = [s for s in vocab.split_spans(prompt.ids)[1] if len(s) == n]
        init = torch.tensor(spans[-1]) if spans else None  # (n,)
    lock = next((r for r in rules if isinstance(r, EditLock)), None)
    return JacobiSpan(n=n, lo=lo, hi=lo + vocab.codebook_size, window=params.jacobi, init=init,
                      source=None if lock is None else lock.source + lo, keep=None if lock is None else lock.keep)


def stream_reply(
    model,
    vocab: JointVocab,
    prompt: Prompt,
    params: GenerationParams,
    decode_text: Callable[[list[int]], str],
    decode_image: Callable[[torch.Tensor], Image.Image],
    cancel: threading.Event | None = None,
    pool: PrefixCachePool | None = None,
    lock: threading.Lock | None = None,
    batcher=None,
) -> Iterator[Event]:
    """Generate one reply for `prompt` with checked `params`, yielding events; the last one is `ReplyDone`.

    With a `batcher` (a `batching.BatchDecoder` over the same model and pool), the reply is decoded
    in one batch with the others that arrive together (a reply with CFG runs alone, under `lock`).
    The reply draws from its own RNG (a `torch.Generator` seeded with the reply's seed), so a seeded
    reply is the same alone or in a batch."""
    # 1. The stop signal and the seed.
    cancel = cancel or threading.Event()
    lock = lock or threading.Lock()
    prompt_len = len(prompt.ids)
    seed = params.seed if params.seed is not None else int(torch.seed() % 2**31)

    # 2. The vocabulary rules as logits processors over one span tracker (guidance first, span constraint last).
    span = SpanTracker(vocab, prompt_len)
    processors = LogitsProcessorList()
    if params.cfg_scale != 1.0 and prompt.uncond_ids is not None:
        processors.append(ImageGuidance(model, span, prompt.uncond_ids, params.cfg_scale))
    if prompt.source_codes is not None and prompt.keep is not None:
        processors.append(EditLock(span, prompt.source_codes, prompt.keep))
    if prompt.banned_first:
        processors.append(SuppressTokensAtBeginLogitsProcessor(prompt.banned_first, prompt_len, device=model_device(model)))
    processors.append(ImageSpanConstraint(span, params.max_new_tokens, max_text_tokens=params.max_text_tokens))
    config = params.generation_config(getattr(model, "generation_config", None), eos_token_id=vocab.eot, pad_token_id=vocab.pad)

    warpers = _sampling_processors(config)
    jacobi = _jacobi_for(vocab, prompt, params, processors, warpers)
    lookup = PromptLookup(lambda t: vocab.is_text(t) and t not in (vocab.eot, vocab.boi), width=params.lookup) if params.lookup else None
    tokens: queue.Queue = queue.Queue()  # ("token", id) ... then ("end", None), from the worker
    result: dict = {}
    generator = torch.Generator(device=model_device(model)).manual_seed(seed)  # the reply's own RNG
    batched = batcher is not None and not any(isinstance(r, ImageGuidance) for r in processors)

    def work():
        try:
            put = lambda t: tokens.put(("token", t))  # noqa: E731
            if batched:
                # 3a. Decoded in a batch with the replies that arrive together (the batcher reuses cached prefixes).
                result["reused"] = batcher.decode(prompt.ids, processors, warpers, bool(config.do_sample), config.max_new_tokens, vocab.eot,
                                                  cancel, put, generator=generator, jacobi=jacobi, boi=vocab.boi, lookup=lookup)
                return
            with lock:
                # 3. Reuse the longest cached prefix of this conversation.
                cache, reused = pool.take(prompt.ids) if pool is not None else (None, 0)
                result["reused"] = reused
                seq, cache = decode_loop(model, prompt.ids, cache if cache is not None else DynamicCache(), reused, processors, warpers,
                                         bool(config.do_sample), config.max_new_tokens, vocab.eot, cancel, put,
                                         jacobi=jacobi, boi=vocab.boi, generator=generator, lookup=lookup)
                if pool is not None:
                    pool.put(seq, cache)
        except BaseException as e:  # surfaced in the consuming thread
            result["error"] = e
        finally:
            tokens.put(("end", None))

    # 4. Run the loop in a worker; turn its tokens into events here.
    t0 = time.perf_counter()
    worker = threading.Thread(target=work, name="chatgen-generate", daemon=True)
    worker.start()
    generated: list[int] = []
    text_ids: list[int] = []
    text_so_far = ""
    codes: list[int] = []
    inside = False
    image = None
    first_token_s = None
    last_preview = 0.0  # when the last preview was decoded (they cost a VQ decode: one per PREVIEW_EVERY_S at most)
    finished = False
    try:
        while True:
            kind, tok = tokens.get()
            if kind == "end":
                finished = True
                break
            if first_token_s is None:
                first_token_s = time.perf_counter() - t0
            generated.append(tok)
            if tok == vocab.boi:
                inside, codes = True, []
                yield ImageStart(rows=vocab.grid_h, cols=vocab.grid_w)
            elif tok == vocab.eoi and inside:
                inside = False
                grid = vocab.ids_to_codes(codes)  # (H, W)
                image = decode_image(grid)
                yield ImageDone(image=image, codes=grid)
            elif inside:
                if not vocab.is_image(tok):
                    continue  # a fixed token of the family's span layout (Emu3's end-of-row), not a code
                codes.append(tok)
                if len(codes) % vocab.grid_w == 0:
                    row = len(codes) // vocab.grid_w - 1
                    due = params.previews and len(codes) < vocab.image_tokens and time.perf_counter() - last_preview >= PREVIEW_EVERY_S
                    preview = _preview(codes, vocab, decode_image) if due else None
                    if preview is not None:
                        last_preview = time.perf_counter()
                    yield ImageRow(row=row, rows=vocab.grid_h, preview=preview)
            elif vocab.is_text(tok):
                text_ids.append(tok)
                new_text = decode_text(text_ids)
                # Wait while a multi-byte character is still incomplete.
                if not new_text.endswith("\ufffd") and new_text.startswith(text_so_far) and len(new_text) > len(text_so_far):
                    yield TextDelta(new_text[len(text_so_far) :])
                    text_so_far = new_text
    finally:
        # A consumer that stops listening (closes this generator) cancels the generation.
        if not finished:
            cancel.set()
        worker.join()
    if "error" in result:
        raise result["error"]
    # 5. The whole reply with its token counts and timings.
    total = time.perf_counter() - t0
    yield ReplyDone(
        text=decode_text(text_ids),
        image=image,
        reply_ids=generated,
        cancelled=cancel.is_set() and (not generated or generated[-1] != vocab.eot),
        stats={
            "seed": seed,
            "prompt_tokens": prompt_len,
            "cached_tokens": result.get("reused", 0),
            "new_tokens": len(generated),
            "image_tokens": len(codes) if image is not None else 0,
            "first_token_s": round(first_token_s or total, 4),
            "total_s": round(total, 4),
            "tokens_per_s": round(len(generated) / total, 1) if total > 0 else 0.0,
            "image_passes": jacobi.passes if jacobi is not None and jacobi.passes else None,  # forward passes inside the image span (plain decoding: codes + 1)
            "lookup_drafts": [lookup.accepted, lookup.drafted] if lookup is not None and lookup.passes else None,  # prompt-lookup draft tokens kept, verified
        },
    )


def _preview(codes: list[int], vocab: JointVocab, decode_image) -> Image.Image:
    """Decode the rows finished so far; rows still to come are grey."""
    rows_done = len(codes) // vocab.grid_w
    filled = codes + [codes[-1]] * (vocab.image_tokens - len(codes))
    img = decode_image(vocab.ids_to_codes(filled)).copy()
    w, h = img.size
    top = round(h * rows_done / vocab.grid_h)
    img.paste((128, 128, 128), (0, top, w, h))
    return img
