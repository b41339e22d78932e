"""Streaming generation over a `transformers` causal LM with the joint vocabulary.

`generate` runs in a worker thread and hands each new token to a streamer; the caller's thread
turns tokens into events (text deltas, finished image rows with previews, the finished image).
A stopping criterion watches a `threading.Event`, so a cancel stops within one token step.

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
from transformers import DynamicCache, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

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


class _Cancelled(StoppingCriteria):
    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class _QueueStreamer(BaseStreamer):
    """Hands generated token ids to the consuming thread (the prompt itself is skipped)."""

    def __init__(self):
        self.q: queue.Queue = queue.Queue()
        self.seen_prompt = False

    def put(self, value):
        if not self.seen_prompt:
            self.seen_prompt = True
            return
        for t in value.reshape(-1).tolist():
            self.q.put(("token", t))

    def end(self):
        self.q.put(("end", None))


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

    streamer = _QueueStreamer()
    result: dict = {}

    def work():
        with lock:
            try:
                # 3. Reuse the longest cached prefix of this conversation.
                cache, reused = pool.take(prompt.ids) if pool is not None else (None, 0)
                result["reused"] = reused
                input_ids = torch.tensor([prompt.ids], dtype=torch.long, device=model.device)  # (1, T)
                torch.manual_seed(seed)
                out = model.generate(
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    cache=cache if cache is not None else DynamicCache(),
                    generation_config=config,
                    logits_processor=processors,
                    stopping_criteria=StoppingCriteriaList([_Cancelled(cancel)]),
                    streamer=streamer,
                )
                if pool is not None and out.cache is not None:
                    pool.put(out.sequences[0].tolist(), out.cache)
            except BaseException as e:  # surfaced in the consuming thread
                result["error"] = e
                streamer.end()

    # 4. Run generate in a worker; turn its tokens into events here.
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
    finished = False
    try:
        while True:
            kind, tok = streamer.q.get()
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
                codes.append(tok)
                if len(codes) % vocab.grid_w == 0:
                    row = len(codes) // vocab.grid_w - 1
                    preview = _preview(codes, vocab, decode_image) if params.previews and len(codes) < vocab.image_tokens else None
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
