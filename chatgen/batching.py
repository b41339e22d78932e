"""Batched decoding of concurrent replies: one forward pass per step for every reply in flight.

`BatchDecoder.decode` is what a reply's worker thread calls instead of `generation.decode_loop`
(same arguments, same tokens): it queues the reply and waits. One scheduler thread decodes all
queued replies together:

1. collect the replies waiting now (when it was idle, after a short gather window, so requests
   that arrive together start together); at most `max_batch` rows;
2. prefill the new replies from the longest cached prefix: the `PrefixCachePool`'s, or that of a
   reply prefilled before in the same step (shortest prompts first, in waves: a reply sharing a
   longer prefix with one being read waits for the next wave and copies it, so conversations that
   share a history read it once); the replies of a wave that start from a cache read their new
   tokens in one right-padded pass where the padding costs less than the passes it saves
   (`prefill_pad`); each joins the batch: the rows' key/value caches are
   left-padded to one length and stacked into one `DynamicCache` of shape (B, heads, L, head_dim)
   per layer, with a (B, L) mask (1 = a real token of the row);
3. choose the next token of each text row (a row not inside an image span) from its own logits
   with its own rules (span tracker, edit lock, image-span constraint), warpers and
   `torch.Generator` (`generation.choose`, as the single path);
4. rows that end (`<eot>`, cancel, length cap) leave: their cache, un-padded, goes back to the
   pool, and their worker wakes;
5. a row that opens an image span with Jacobi decoding (`generation.JacobiSpan`) starts its span
   in place (a row alone in the batch decodes it straight through, as the single path);
6. one forward pass for every row, right-padded to the widest (B, W), each row at its own
   positions, the (B, L + W) mask keeping each row to its own real keys (one pass a step: its
   fixed part, about 30 tokens' worth for the embedded model on a CPU, is paid once for all rows):
   a text row reads its last token and its prompt-lookup drafts (`lookup.PromptLookup`: as many
   as it likes while at most `lookup_rows` rows are in the pass, else within a budget of
   `text_tokens` tokens per pass, rows x (1 + drafts), so wide batches draft less); a span row
   reads its pending code and window of drafts (`JacobiSpan.tokens`; greedy rows' windows shrunk
   so that rows x (1 + window) stays near `span_tokens`: their codes do not depend on the window;
   a sampled row keeps its own, as its random draws do);
7. each row verifies its own drafts with its own rules and RNG (`PromptLookup.verify`,
   `JacobiSpan.verify`: the tokens and codes it gets alone); the padding and the rejected drafts
   stay in the cache as masked holes, the columns no row kept are cropped, and the cache is
   compacted (holes removed, rows left-padded again) once every row carries more than
   `max_holes` of them; a row whose span is complete goes back to one token per pass.

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

from .generation import JacobiSpan, PrefixCachePool, SpanState, choose
from .lookup import PromptLookup, without_undelivered
from .sampling import model_device


def _right_padded(xs: list[list[int]], device) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of new tokens right-padded to the widest (with each row's last token): the (B, W) ids
    and the (B, W) mask of real tokens (the padding becomes holes at `_Batch.settle`)."""
    width = max(len(x) for x in xs)
    tokens = torch.tensor([x + [x[-1]] * (width - len(x)) for x in xs], device=device)  # (B, W)
    real = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in xs], device=device)  # (B, W)
    return tokens, real


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
    lookup: PromptLookup | None = None  # prompt-lookup drafts of its text tokens, or None
    done: threading.Event = field(default_factory=threading.Event)  # set when the reply is finished
    error: BaseException | None = None  # what went wrong, raised in the worker
    reused: int = 0  # prompt tokens that came from the pool
    seq: torch.Tensor | None = None  # (1, T) prompt + reply so far
    logits: torch.Tensor | None = None  # (1, V) the prediction for the next token
    n: int = 0  # real tokens in the row's cache (its next position)
    span: SpanState | None = None  # its image span being decoded by Jacobi, or None
    made: int = 0  # reply tokens chosen
    ahead: list[int] = field(default_factory=list)  # tokens its last lookup pass decided (all but the last in the cache)


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
        """Remove `row`; returns its own un-padded cache (its `row.n` real tokens, holes removed)."""
        i = self.rows.index(row)
        real = self.mask[i].nonzero().flatten()  # (n,) the row's real columns
        if len(self.rows) == 1 and len(real) == self.mask.shape[1]:  # alone, no holes: the batch cache is the row's cache
            cache = self.cache
        else:
            cache = DynamicCache(ddp_cache_data=[(layer.keys[i : i + 1, :, real].clone(), layer.values[i : i + 1, :, real].clone())
                                                 for layer in self.cache.layers])  # (1, H, n, D) each
        if len(self.rows) == 1:
            self.rows, self.cache, self.mask = [], None, None
            return cache
        del self.rows[i]
        keep = torch.tensor([j for j in range(len(self.rows) + 1) if j != i], device=self.mask.device)  # (B-1,)
        mask = self.mask.index_select(0, keep)  # (B-1, L)
        trim = int(mask.any(dim=0).long().argmax())  # leading columns no remaining row uses
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, keep)[:, :, trim:]  # (B-1, H, L-trim, D)
            layer.values = layer.values.index_select(0, keep)[:, :, trim:]
        self.mask = mask[:, trim:]  # (B-1, L-trim)
        return cache

    def step(self, model, tokens: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """One forward pass of each row's new tokens `tokens` (B, W), right-padded where `real` (B, W)
        is 0; returns the logits at every new token (B, W, V). `settle` must follow."""
        self.mask = torch.cat([self.mask, real], dim=1)  # (B, L+W)
        start = torch.tensor([[r.n] for r in self.rows], device=tokens.device)  # (B, 1) each row's own next position
        positions = start + torch.arange(tokens.shape[1], device=tokens.device)  # (B, W)
        out = model(input_ids=tokens, attention_mask=self.mask, position_ids=positions, cache=self.cache, use_cache=True)
        return out.logits.float()  # (B, W, V)

    def settle(self, kept: list[int], width: int, max_holes: int) -> None:
        """After `step` of `width` new tokens: row i keeps the first `kept[i]` of them; the others
        become masked holes, the columns no row keeps are cropped, and the cache is compacted once
        every row has more than `max_holes` holes."""
        if min(kept) == width:  # every row kept every token: no holes
            for r in self.rows:
                r.n += width
            return
        length = self.mask.shape[1]
        for i, (r, k) in enumerate(zip(self.rows, kept)):
            self.mask[i, length - width + k :] = 0
            r.n += k
        if max(kept) < width:
            self.cache.crop(max(kept) - width)
            self.mask = self.mask[:, : length - width + max(kept)]  # (B, L')
        if self.mask.shape[1] - max(r.n for r in self.rows) > max_holes:
            self.compact()

    def compact(self) -> None:
        """Remove the holes: each row's real tokens, in order, left-padded to the longest row."""
        b, length = len(self.rows), max(r.n for r in self.rows)
        index = torch.zeros(b, length, dtype=torch.long, device=self.mask.device)  # (B, L') source column of each new column
        mask = torch.zeros(b, length, dtype=self.mask.dtype, device=self.mask.device)  # (B, L')
        for i, r in enumerate(self.rows):
            index[i, length - r.n :] = self.mask[i].nonzero().flatten()
            mask[i, length - r.n :] = 1
        for layer in self.cache.layers:
            h, d = layer.keys.shape[1], layer.keys.shape[3]
            at = index[:, None, :, None].expand(b, h, length, d)  # (B, H, L', D)
            layer.keys, layer.values = layer.keys.gather(2, at), layer.values.gather(2, at)
        self.mask = mask


class BatchDecoder:
    """Decodes the replies of concurrent requests in one batch (see the module doc)."""

    def __init__(self, model, pool: PrefixCachePool | None = None, lock: threading.Lock | None = None,
                 gather_s: float = 0.002, max_batch: int = 16, idle_s: float = 5.0, max_holes: int = 64, lookup_rows: int = 1,
                 text_tokens: int = 32, span_tokens: int = 48, prefill_pad: int = 24):
        self.model = model  # the causal LM (a transformers model with a DynamicCache)
        self.pool = pool  # caches of recent conversations (taken at prefill, given back un-padded)
        self.lock = lock or threading.Lock()  # held while the scheduler uses the model
        self.gather_s = gather_s  # how long an idle scheduler waits for more requests before it starts
        self.max_batch = max_batch  # rows decoded together at most (the rest wait for a free row)
        self.idle_s = idle_s  # an idle scheduler thread ends after this long (a new request starts another)
        self.max_holes = max_holes  # masked cache columns every row may carry before the cache is compacted
        self.lookup_rows = lookup_rows  # text rows at most for which a pass reads prompt-lookup drafts (they change no token)
        self.text_tokens = text_tokens  # wider text batches draft too, within this many tokens per pass (rows x (1 + drafts); 0 = off)
        self.prefill_pad = prefill_pad  # padding tokens a batched prefill may read per pass it saves (a pass costs about as much as this many tokens; negative: each row alone)
        self.span_tokens = span_tokens  # span passes of greedy rows aim at this many tokens (rows x (1 + window)) by shrinking windows (0 = off)
        self._cond = threading.Condition()  # guards _waiting and _thread
        self._waiting: list[_Row] = []  # requests not yet admitted
        self._thread: threading.Thread | None = None

    def decode(self, ids: list[int], rules: LogitsProcessorList, warpers: LogitsProcessorList, sample: bool, max_new_tokens: int,
               eos: int, cancel: threading.Event, put: Callable[[int], None], generator: torch.Generator | None = None,
               jacobi: JacobiSpan | None = None, boi: int | None = None, lookup: PromptLookup | None = None) -> int:
        """Decode one reply in the batch (the arguments of `generation.decode_loop`); blocks until it
        is finished and returns how many prompt tokens came from the pool."""
        if not ids:
            raise ValueError("ids must hold at least one token")
        row = _Row(list(ids), rules, warpers, sample, max_new_tokens, eos, cancel, put, generator, jacobi, boi, lookup)
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
        # 2. Prefill the new rows from their longest cached prefix (the pool's or a row prefilled before), and let them join.
        for row, cache in self._prefill(new):
            batch.join(row, cache)
        # 3. The next token of each text row, by its own rules, warpers and RNG (or the tokens its lookup pass decided).
        ending, opening = [], []
        for row in [r for r in batch.rows if r.span is None]:
            ahead, row.ahead = row.ahead or [int(choose(row.seq, row.logits, row.rules, row.warpers, row.sample, row.generator))], []
            for t in ahead:
                row.seq = torch.cat([row.seq, torch.tensor([[t]], dtype=row.seq.dtype, device=row.seq.device)], dim=1)  # (1, T+1)
                row.put(t)
                row.made += 1
                if t == row.eos or row.cancel.is_set() or row.made == row.max_new_tokens:
                    ending.append(row)
                    break
            else:
                if row.jacobi is not None and t == row.boi and row.made + row.jacobi.n < row.max_new_tokens:
                    opening.append(row)
        # 4. Finished rows (and cancelled spans) leave; their caches go back to the pool un-padded.
        for row in ending:
            self._finish(row, row.seq, without_undelivered(batch.leave(row), row.seq.shape[1]))
        for row in [r for r in batch.rows if r.span is not None and r.cancel.is_set()]:
            row.seq, row.span = torch.cat([row.span.seq, torch.tensor([[row.span.pending]], device=row.seq.device)], dim=1), None
            self._finish(row, row.seq, batch.leave(row))
        # 5. Rows opening an image span decode it by Jacobi, in place (a row alone: straight through, as the single path).
        alone = None
        if len(opening) == 1 and len(batch.rows) == 1 and not self._waiting:
            alone = (opening[0], batch.leave(opening[0]))
        else:
            for row in opening:
                row.span = row.jacobi.start(row.seq)
        # 6-7. One pass for every row: a text row's last token and lookup drafts, a span row's pending code and drafts.
        if batch.rows:
            self._pass(batch)
        if alone is not None:
            row, cache = alone
            row.seq, row.logits = row.jacobi.decode(model, row.seq, cache, row.warpers, row.sample, row.put, row.cancel, row.generator)
            row.made += row.jacobi.n
            if row.logits is None:  # cancelled inside the span
                self._finish(row, row.seq, cache)
            else:
                row.n = row.seq.shape[1]
                batch.join(row, cache)

    def _pass(self, batch: _Batch) -> None:
        """6-7. One forward pass over every row, right-padded to the widest (B, W): a text row reads its last
        token and (in a batch of at most `lookup_rows` text rows, else within the `text_tokens` budget) its
        prompt-lookup drafts, which it verifies (`PromptLookup.verify`, with its own rules and RNG: the tokens
        it gets alone); a span row reads its pending code and window of drafts and verifies them
        (`JacobiSpan.verify`, its own RNG: the codes it gets alone), and goes back to one token per pass once
        its span is complete. The rejected drafts and the padding become holes."""
        room = self._draft_room(len(batch.rows))
        spans = [r for r in batch.rows if r.span is not None]
        window = self._span_window(spans, len(batch.rows)) if spans else None
        xs = []
        for r in batch.rows:
            if r.span is not None:
                xs.append(r.jacobi.tokens(r.span, None if r.sample else window))
            else:
                drafts = r.lookup.drafts(r.seq[0].tolist(), min(room, r.max_new_tokens - r.made - 1)) if room > 0 and r.lookup is not None else []
                xs.append([int(r.seq[0, -1]), *drafts])
        tokens, real = _right_padded(xs, batch.rows[0].seq.device)  # (B, W) each
        width = tokens.shape[1]
        logits = batch.step(self.model, tokens, real)  # (B, W, V)
        kept = []
        for i, (r, x) in enumerate(zip(batch.rows, xs)):
            if r.span is not None:
                new, drop, after = r.jacobi.verify(r.span, logits[i, : len(x)], r.warpers, r.sample, r.generator)
                for t in new:
                    r.put(t)
                r.made += len(new)
                kept.append(len(x) - drop)
                if after is not None:  # the span is complete: back to one token per pass
                    r.seq, r.logits, r.span = r.span.seq, after, None
            elif len(x) > 1:
                r.ahead = r.lookup.verify(r.seq, logits[i, : len(x)], x[1:], r.rules, r.warpers, r.sample, r.generator)
                kept.append(len(r.ahead))  # the last token and the drafts that held
            else:
                r.logits = logits[i, :1]  # (1, V)
                kept.append(1)
        batch.settle(kept, width, self.max_holes)

    def _draft_room(self, rows: int) -> int:
        """Prompt-lookup drafts a text row may read in a pass of `rows` rows: as many as it likes (its
        `PromptLookup.width`) in a batch of at most `lookup_rows`, else what the `text_tokens` budget leaves."""
        if rows <= self.lookup_rows:
            return 1 << 30
        return max(0, self.text_tokens // rows - 1) if self.text_tokens > 0 else 0

    def _span_window(self, rows: list[_Row], total: int) -> int | None:
        """The Jacobi window of the greedy span rows `rows` in a pass of `total` rows (None: their own). A
        pass costs a fixed part plus a part per token, so several rows' full windows cost more than the extra
        passes shorter ones need: greedy rows shrink to keep total x (1 + window) near `span_tokens` (their
        codes do not depend on the window); never below a sampled row's window (the pass is that wide
        anyway), whose window stays its own (its random draws depend on it)."""
        if self.span_tokens <= 0:
            return None
        floor = max((r.jacobi.window for r in rows if r.sample), default=1)
        return max(floor, self.span_tokens // total - 1)

    def _prefill(self, new: list[_Row]) -> list[tuple[_Row, DynamicCache]]:
        """2. Prefill `new` in waves, shortest prompts first: each row starts from the longest cached prefix,
        the pool's or that of a row read in an earlier wave of this step (a row that shares a longer prefix
        with a row of the current wave waits for the next one and copies it). In a wave, the rows that start
        from a cache are read in one right-padded pass where the padding costs at most `prefill_pad` tokens
        per pass it saves; the others alone. Returns each row with its own cache (its `row.n` tokens)."""
        done: list[tuple[_Row, DynamicCache]] = []
        waiting = sorted(new, key=lambda r: len(r.ids))
        reuse = self.pool is not None and self.pool.size > 0  # no pool: no reuse
        while waiting:
            wave: list[tuple[_Row, DynamicCache]] = []
            later: list[_Row] = []
            for row in waiting:
                cache, row.reused = self.pool.take(row.ids) if self.pool is not None else (None, 0)
                share, own = self._shared(row.ids, [(r.ids, c) for r, c in done]) if reuse else (0, None)
                soon = max((min(self._common(row.ids, r.ids), len(row.ids) - 1) for r, _ in wave), default=0) if reuse else 0
                if soon > max(share, row.reused):  # a row of this wave reads a longer prefix: copy it in the next wave
                    if cache is not None:
                        self.pool.put(row.ids[: row.reused], cache)
                    row.reused = 0
                    later.append(row)
                    continue
                if share > row.reused:  # a conversation sharing a longer prefix was just read: copy its keys and values
                    if cache is not None:
                        self.pool.put(row.ids[: row.reused], cache)
                    cache, row.reused = DynamicCache(ddp_cache_data=[(layer.keys[:, :, :share].clone(), layer.values[:, :, :share].clone())
                                                                     for layer in own.layers]), share  # (1, H, share, D) each
                row.seq = torch.tensor([row.ids], dtype=torch.long, device=model_device(self.model))  # (1, T)
                wave.append((row, cache if cache is not None else DynamicCache()))
            for group in self._prefill_groups(wave):
                done += self._read(group)
            waiting = later
        return done

    def _prefill_groups(self, wave: list[tuple[_Row, DynamicCache]]) -> list[list[tuple[_Row, DynamicCache]]]:
        """The wave's rows in passes: a row without a cache alone; the others by their count of new
        tokens, a group growing while its padding costs at most `prefill_pad` tokens per pass it saves."""
        groups = [[x] for x in wave if x[0].reused == 0]
        cached = sorted((x for x in wave if x[0].reused > 0), key=lambda x: len(x[0].ids) - x[0].reused)
        for x in cached:
            g = groups[-1] if groups and groups[-1][0][0].reused > 0 else None
            w = len(x[0].ids) - x[0].reused  # the widest so far (sorted)
            if g is not None and (len(g) + 1) * w - sum(len(r.ids) - r.reused for r, _ in g) - w <= self.prefill_pad * len(g):
                g.append(x)
            else:
                groups.append([x])
        return groups

    def _read(self, group: list[tuple[_Row, DynamicCache]]) -> list[tuple[_Row, DynamicCache]]:
        """One forward pass over the new tokens of `group`'s rows (alone, or right-padded together over
        their left-padded caches, each at its own positions); sets each row's logits and returns its own cache."""
        if len(group) == 1:
            row, cache = group[0]
            row.logits = self.model(input_ids=row.seq[:, row.reused :], attention_mask=torch.ones_like(row.seq), cache=cache,
                                    use_cache=True).logits[:, -1, :].float()  # (1, V)
            row.n = row.seq.shape[1]
            return [(row, cache)]
        batch = _Batch()
        for row, cache in group:
            row.n = row.reused
            batch.join(row, cache)
        xs = [row.ids[row.reused :] for row, _ in group]
        tokens, real = _right_padded(xs, group[0][0].seq.device)  # (B, W) each
        width = tokens.shape[1]
        logits = batch.step(self.model, tokens, real)  # (B, W, V)
        for i, ((row, _), x) in enumerate(zip(group, xs)):
            row.logits = logits[i, len(x) - 1 : len(x)]  # (1, V) after its last prompt token
        batch.settle([len(x) for x in xs], width, max_holes=1 << 30)  # the padding: holes, removed as each row leaves
        return [(row, batch.leave(row)) for row, _ in group]

    @staticmethod
    def _common(a: list[int], b: list[int]) -> int:
        """How many leading ids `a` and `b` share."""
        n = 0
        for x, y in zip(a, b):
            if x != y:
                break
            n += 1
        return n

    @staticmethod
    def _shared(ids: list[int], done: list[tuple[list[int], DynamicCache]]) -> tuple[int, DynamicCache | None]:
        """The longest prefix of `ids` (at most all but its last token) that one of `done` holds, and that cache."""
        best, own = 0, None
        for other, cache in done:
            n = min(BatchDecoder._common(other, ids), len(ids) - 1, cache.get_seq_length())
            if n > best:
                best, own = n, cache
        return best, own

    def _finish(self, row: _Row, seq: torch.Tensor, cache: DynamicCache) -> None:
        if self.pool is not None:
            self.pool.put(seq[0].tolist(), cache)
        row.done.set()
