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
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from PIL import Image
from transformers import DynamicCache, GenerationConfig, LogitsProcessorList
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper,
)

from .events import Event, ImageDone, ImageRow, ImageStart, ReplyDone, TextDelta
from .params import GenerationParams
from .sampling import EditLock, ImageGuidance, ImageSpanConstraint, SpanTracker
from .vocab import JointVocab


@dataclass
class Prompt:
    """Everything `stream_reply` needs for one reply."""

    ids: list[int]  # the whole conversation so far, ending with the assistant role marker
    user_ids: list[int]  # the new user part alone (stored in the turn)
    uncond_ids: list[int] | None = None  # the same prompt with the request removed, for CFG
    source_codes: torch.Tensor | None = None  # (H, W) codes of the image being edited, for masked edits
    keep: torch.Tensor | None = None  # (H, W) bool: True where the edit must keep source_codes


class PrefixCachePool:
    """A few (token ids, DynamicCache) pairs; `take` returns the one sharing the longest prefix."""

    def __init__(self, size: int = 4):
        self.size = size  # caches kept (one per recent conversation)
        self.entries: list[tuple[list[int], DynamicCache]] = []

    def take(self, ids: list[int]) -> tuple[DynamicCache | None, int]:
        """Remove and return the best cache cropped to the shared prefix (at most len(ids) - 1)."""
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
        self.entries.insert(0, (ids[: cache.get_seq_length()], cache))
        del self.entries[self.size :]

    def clear(self) -> None:
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


@torch.no_grad()
def decode_loop(model, ids: list[int], cache: DynamicCache, reused: int, rules: LogitsProcessorList, warpers: LogitsProcessorList,
                sample: bool, max_new_tokens: int, eos: int, cancel: threading.Event, put: Callable[[int], None]) -> tuple[list[int], DynamicCache]:
    """The plain decode loop: one forward step per token, the vocabulary rules, then greedy or
    sampled (`sample`) choice; each token goes to `put` as soon as it is chosen. The same tokens as stock
    `generate` with these processors (checked in the tests), without its per-step bookkeeping.

    `cache` already holds the first `reused` tokens of `ids`. Returns the whole sequence and the
    cache (which holds every token but the last)."""
    seq = torch.tensor([ids], dtype=torch.long, device=model.device)  # (1, T)
    # 1. Prefill: only the tokens the cache does not hold yet.
    logits = model(input_ids=seq[:, reused:], attention_mask=torch.ones_like(seq), cache=cache, use_cache=True).logits[:, -1, :].float()  # (1, V)
    for step in range(max_new_tokens):
        # 2. Rules (guidance, edit lock, image spans), then the sampling warpers, then the choice.
        scores = warpers(seq, rules(seq, logits))
        tok = torch.multinomial(torch.softmax(scores, dim=-1), 1) if sample else scores.argmax(dim=-1, keepdim=True)  # (1, 1)
        seq = torch.cat([seq, tok], dim=1)  # (1, T+1)
        t = int(tok)
        put(t)
        if t == eos or cancel.is_set() or step == max_new_tokens - 1:
            break
        # 3. One forward step for the chosen token.
        logits = model(input_ids=tok, attention_mask=torch.ones_like(seq), cache=cache, use_cache=True).logits[:, -1, :].float()  # (1, V)
    return seq[0].tolist(), cache


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
) -> Iterator[Event]:
    """Generate one reply for `prompt` with checked `params`, yielding events; the last one is `ReplyDone`."""
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
    processors.append(ImageSpanConstraint(span, params.max_new_tokens, max_text_tokens=params.max_text_tokens))
    config = params.generation_config(getattr(model, "generation_config", None), eos_token_id=vocab.eot, pad_token_id=vocab.pad)

    warpers = _sampling_processors(config)
    tokens: queue.Queue = queue.Queue()  # ("token", id) ... then ("end", None), from the worker
    result: dict = {}

    def work():
        with lock:
            try:
                # 3. Reuse the longest cached prefix of this conversation.
                cache, reused = pool.take(prompt.ids) if pool is not None else (None, 0)
                result["reused"] = reused
                torch.manual_seed(seed)
                seq, cache = decode_loop(model, prompt.ids, cache if cache is not None else DynamicCache(), reused, processors, warpers,
                                         bool(config.do_sample), config.max_new_tokens, vocab.eot, cancel, lambda t: tokens.put(("token", t)))
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
