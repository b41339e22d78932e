"""Batched decoding of concurrent replies: one forward pass per step for every reply in flight.

`BatchDecoder.decode` is what a reply's worker thread calls instead of `generation.decode_loop`
(same arguments, same tokens): it queues the reply and waits. One scheduler thread decodes all
queued replies together:

1. collect the replies waiting now (when it was idle, after a short gather window, so requests
   that arrive together start together); at most `max_batch` rows;
2. prefill each new reply alone, from the longest cached prefix in the `PrefixCachePool`, and
   let it join the batch: the rows' key/value caches are left-padded to one length and stacked
   into one `DynamicCache` of shape (B, heads, L, head_dim) per layer, with a (B, L) padding mask;
3. choose each row's next token from its own logits with its own rules (span tracker, edit lock,
   image-span constraint), warpers and `torch.Generator` (`generation.choose`, as the single path);
4. rows that end (`<eot>`, cancel, length cap) leave the batch: their cache, un-padded, goes back
   to the pool, and their worker wakes;
5. a row that opens an image span with Jacobi decoding (`generation.JacobiSpan`) leaves too; a
   sampled row always decodes its span by Jacobi (its draws then do not depend on the batch), a
   greedy row (whose codes are the same either way) when it is alone or edits a picture (its
   drafts, guessed from that picture, mostly hold), else it stays in the batch;
6. one forward pass for the rows left: their new tokens (B, 1) at their own positions (B, 1), the
   padding mask keeping each row to its own keys;
7. the Jacobi rows decode their spans one at a time, then join the batch again.

Rows join and leave between steps. The scheduler holds the backend's `lock` while it works, so a
reply decoded alone (CFG) and the batch never share the model at the same time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from transformers import DynamicCache, LogitsProcessorList

from .generation import JacobiSpan, PrefixCachePool, choose
from .sampling import model_device


@dataclass
class _Row:
    """One reply in flight: its request, then its decoding state."""

    ids: list[int]  # the prompt
    rules: LogitsProcessorList  # its vocabulary rules (own span tracker, edit lock, span constraint)
    warpers: LogitsProcessorList  # its sampling warpers
    sample: bool  # sampled (else greedy)
    max_new_tokens: int  # its length cap
    eos: int  # the end-of-turn id
    cancel: threading.Event  # set: stop after the current token
    put: Callable[[int], None]  # where each chosen token goes (the reply's event queue)
    generator: torch.Generator | None  # its own RNG
    jacobi: JacobiSpan | None  # Jacobi decoding of its image span, or None
    boi: int | None  # the `<boi>` id (Jacobi starts after it)
    done: threading.Event = field(default_factory=threading.Event)  # set when the reply is finished
    error: BaseException | None = None  # what went wrong, raised in the worker
    reused: int = 0  # prompt tokens that came from the pool
    seq: torch.Tensor | None = None  # (1, T) prompt + reply so far
    logits: torch.Tensor | None = None  # (1, V) the prediction for the next token
    n: int = 0  # tokens in the row's cache (its next position)
    made: int = 0  # reply tokens chosen


class _Batch:
    """The rows decoded together: one left-padded `DynamicCache` and its (B, L) padding mask."""

    def __init__(self):
        self.rows: list[_Row] = []  # in batch order
        self.cache: DynamicCache | None = None  # (B, heads, L, head_dim) keys and values per layer
        self.mask: torch.Tensor | None = None  # (B, L) 1 = a real token, 0 = left padding

    def join(self, row: _Row, cache: DynamicCache) -> None:
        """Add `row`, whose own cache holds its `row.n` tokens, padding whichever side is shorter."""
        ones = torch.ones(1, row.n, dtype=torch.long, device=row.seq.device)  # (1, n)
        if not self.rows:
            self.rows, self.cache, self.mask = [row], cache, ones
            return
        length = self.mask.shape[1]
        if row.n > length:  # the batch is shorter: pad every row on the left
            grow = row.n - length
            for layer in self.cache.layers:
                layer.keys = F.pad(layer.keys, (0, 0, grow, 0))  # (B, H, n, D)
                layer.values = F.pad(layer.values, (0, 0, grow, 0))
            self.mask = F.pad(self.mask, (grow, 0))  # (B, n)
            length = row.n
        pad = length - row.n
        for layer, own in zip(self.cache.layers, cache.layers):
            layer.keys = torch.cat([layer.keys, F.pad(own.keys, (0, 0, pad, 0))], dim=0)  # (B+1, H, L, D)
            layer.values = torch.cat([layer.values, F.pad(own.values, (0, 0, pad, 0))], dim=0)
        self.mask = torch.cat([self.mask, F.pad(ones, (pad, 0))], dim=0)  # (B+1, L)
        self.rows.append(row)

    def leave(self, row: _Row) -> DynamicCache:
        """Remove `row`; returns its own un-padded cache (its `row.n` tokens)."""
        i = self.rows.index(row)
        if len(self.rows) == 1:  # alone: the batch cache is the row's cache, never padded
            cache = self.cache
            self.rows, self.cache, self.mask = [], None, None
            return cache
        length = self.mask.shape[1]
        pad = length - row.n
        cache = DynamicCache(ddp_cache_data=[(layer.keys[i : i + 1, :, pad:].clone(), layer.values[i : i + 1, :, pad:].clone())
                                             for layer in self.cache.layers])  # (1, H, n, D) each
        del self.rows[i]
        keep = torch.tensor([j for j in range(len(self.rows) + 1) if j != i], device=self.mask.device)  # (B-1,)
        trim = length - max(r.n for r in self.rows)  # left padding no remaining row needs
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, keep)[:, :, trim:]  # (B-1, H, L-trim, D)
            layer.values = layer.values.index_select(0, keep)[:, :, trim:]
        self.mask = self.mask.index_select(0, keep)[:, trim:]  # (B-1, L-trim)
        return cache

    def step(self, model, tokens: torch.Tensor) -> torch.Tensor:
        """One forward pass of each row's new token `tokens` (B, 1); returns the next logits (B, V)."""
        b = len(self.rows)
        self.mask = torch.cat([self.mask, self.mask.new_ones(b, 1)], dim=1)  # (B, L+1)
        positions = torch.tensor([[r.n] for r in self.rows], device=tokens.device)  # (B, 1) each row's own position
        out = model(input_ids=tokens, attention_mask=self.mask, position_ids=positions, cache=self.cache, use_cache=True)
        for r in self.rows:
            r.n += 1
        return out.logits[:, -1, :].float()  # (B, V)


class BatchDecoder:
    """Decodes the replies of concurrent requests in one batch (see the module doc)."""

    def __init__(self, model, pool: PrefixCachePool | None = None, lock: threading.Lock | None = None,
                 gather_s: float = 0.002, max_batch: int = 16, idle_s: float = 5.0):
        self.model = model  # the causal LM (a transformers model with a DynamicCache)
        self.pool = pool  # caches of recent conversations (taken at prefill, given back un-padded)
        self.lock = lock or threading.Lock()  # held while the scheduler uses the model
        self.gather_s = gather_s  # how long an idle scheduler waits for more requests before it starts
        self.max_batch = max_batch  # rows decoded together at most (the rest wait for a free row)
        self.idle_s = idle_s  # an idle scheduler thread ends after this long (a new request starts another)
        self._cond = threading.Condition()  # guards _waiting and _thread
        self._waiting: list[_Row] = []  # requests not yet admitted
        self._thread: threading.Thread | None = None

    def decode(self, ids: list[int], rules: LogitsProcessorList, warpers: LogitsProcessorList, sample: bool, max_new_tokens: int,
               eos: int, cancel: threading.Event, put: Callable[[int], None], generator: torch.Generator | None = None,
               jacobi: JacobiSpan | None = None, boi: int | None = None) -> int:
        """Decode one reply in the batch (the arguments of `generation.decode_loop`); blocks until it
        is finished and returns how many prompt tokens came from the pool."""
        if not ids:
            raise ValueError("ids must hold at least one token")
        row = _Row(list(ids), rules, warpers, sample, max_new_tokens, eos, cancel, put, generator, jacobi, boi)
        with self._cond:
            self._waiting.append(row)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="chatgen-batch", daemon=True)
                self._thread.start()
            self._cond.notify()
        row.done.wait()
        if row.error is not None:
            raise row.error
        return row.reused

    # ---- the scheduler thread ----------------------------------------------------------------
    def _run(self) -> None:
        batch = _Batch()
        while True:
            # 1. Collect the requests waiting now (after the gather window when idle).
            with self._cond:
                while not batch.rows and not self._waiting:
                    if not self._cond.wait(timeout=self.idle_s) and not self._waiting:
                        self._thread = None
                        return
                idle = not batch.rows
            if idle and self.gather_s > 0:
                time.sleep(self.gather_s)
            with self._cond:
                free = self.max_batch - len(batch.rows)
                new, self._waiting[:free] = self._waiting[:free], []
            try:
                with self.lock:
                    self._iterate(batch, new)
            except BaseException as e:  # every row in flight fails with it; the scheduler goes on
                for row in batch.rows + new:
                    if not row.done.is_set():
                        row.error = e
                        row.done.set()
                batch = _Batch()

    @torch.no_grad()
    def _iterate(self, batch: _Batch, new: list[_Row]) -> None:
        model = self.model
        # 2. Prefill each new row alone, from its longest cached prefix, and let it join.
        for row in new:
            cache, row.reused = self.pool.take(row.ids) if self.pool is not None else (None, 0)
            cache = cache if cache is not None else DynamicCache()
            row.seq = torch.tensor([row.ids], dtype=torch.long, device=model_device(model))  # (1, T)
            row.logits = model(input_ids=row.seq[:, row.reused :], attention_mask=torch.ones_like(row.seq), cache=cache,
                               use_cache=True).logits[:, -1, :].float()  # (1, V)
            row.n = row.seq.shape[1]
            batch.join(row, cache)
        # 3. Each row's next token, by its own rules, warpers and RNG.
        ending, spans = [], []
        for row in batch.rows:
            tok = choose(row.seq, row.logits, row.rules, row.warpers, row.sample, row.generator)  # (1, 1)
            row.seq = torch.cat([row.seq, tok], dim=1)  # (1, T+1)
            t = int(tok)
            row.put(t)
            row.made += 1
            if t == row.eos or row.cancel.is_set() or row.made == row.max_new_tokens:
                ending.append(row)
            elif row.jacobi is not None and t == row.boi and row.made + row.jacobi.n < row.max_new_tokens:
                # Sampled: always (its draws must not depend on the batch). Greedy (the same codes either way):
                # when alone, or for an edit (drafts guessed from the picture it edits mostly hold).
                alone = len(batch.rows) == 1 and not self._waiting
                if row.sample or alone or row.jacobi.init is not None:
                    spans.append(row)
        # 4. Finished rows leave; their caches go back to the pool un-padded.
        for row in ending:
            self._finish(row, row.seq, batch.leave(row))
        # 5. Rows opening a Jacobi span leave for it.
        side = [(row, batch.leave(row)) for row in spans]
        # 6. One forward pass for every row left, each at its own position.
        if batch.rows:
            tokens = torch.cat([r.seq[:, -1:] for r in batch.rows], dim=0)  # (B, 1)
            logits = batch.step(model, tokens)  # (B, V)
            for i, r in enumerate(batch.rows):
                r.logits = logits[i : i + 1]  # (1, V)
        # 7. The Jacobi spans, one row at a time; each row then joins again with its next logits.
        for row, cache in side:
            row.seq, row.logits = row.jacobi.decode(model, row.seq, cache, row.warpers, row.sample, row.put, row.cancel, row.generator)
            row.made += row.jacobi.n
            if row.logits is None:  # cancelled inside the span
                self._finish(row, row.seq, cache)
                continue
            row.n = row.seq.shape[1]
            batch.join(row, cache)

    def _finish(self, row: _Row, seq: torch.Tensor, cache: DynamicCache) -> None:
        if self.pool is not None:
            self.pool.put(seq[0].tolist(), cache)
        row.done.set()
