"""Janus's token loops: words through `lm_head` (`_answer`), a picture through the generation
head with CFG rows batched (`_draw`), the edit region of an edit without a mask (`locate`), and
the two-row KV cache they share (`_take`). `JanusBackend` (janus.py) mixes them in; the steps
are those of janus.py's docstring (4 to 6)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from transformers import DynamicCache, LogitsProcessorList
from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from ..generation import PrefixCachePool, Prompt
from ..params import GenerationParams


class JanusDrawing:
    """The token loops of `JanusBackend` (which supplies lm, model, vocab, pools, _embed, _hidden)."""

    @torch.no_grad()
    def locate(self, source: torch.Tensor, old_ids: list[int], new_ids: list[int]) -> torch.Tensor:
        """(grid_h, grid_w) bool, True = keep: the edit region of an edit without a mask.

        1. Both drawing prompts (left-padded to one length) + the source codes, one batch of two.
        2. One forward: the generation head's log-likelihood of every source code under each.
        3. The drop from the old request to the new one, smoothed over 3x3 cells.
        4. The `edit_share` of the cells with the largest drop may change; the rest are kept."""
        v, n = self.vocab, self.vocab.image_tokens
        device = self.device
        codes = source.reshape(-1).long().to(device)  # (n,)
        # 1. Two rows: pads, the request, the codes.
        width = max(len(old_ids), len(new_ids))
        rows = torch.tensor([[v.pad] * (width - len(r)) + r for r in (old_ids, new_ids)], device=device)  # (2, width)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * (len(r) + n) for r in (old_ids, new_ids)], device=device)  # (2, width + n)
        x = torch.cat([self.lm.embed_tokens(rows), self.model.prepare_embeddings_for_image_generation(codes[None].expand(2, -1))], dim=1)  # (2, width + n, C)
        # 2. The hidden state before each code predicts it.
        position = (mask.cumsum(-1) - 1).clamp(min=0)  # (2, width + n)
        h = self.lm(inputs_embeds=x, attention_mask=mask, position_ids=position).last_hidden_state[:, width - 1 : width - 1 + n]  # (2, n, C)
        logp = torch.log_softmax(self.model.model.generation_head(h).float(), dim=-1)  # (2, n, K)
        logp = logp.gather(-1, codes[None, :, None].expand(2, -1, 1))[..., 0]  # (2, n)
        # 3. The drop, smoothed.
        drop = (logp[0] - logp[1]).reshape(1, 1, v.grid_h, v.grid_w)  # (1, 1, H, W)
        drop = F.avg_pool2d(drop, 3, stride=1, padding=1, count_include_pad=False).reshape(-1)  # (n,)
        # 4. The cells that may change.
        change = torch.zeros(n, dtype=torch.bool)
        change[drop.topk(max(1, round(self.edit_share * n))).indices.cpu()] = True
        return ~change.reshape(v.grid_h, v.grid_w)

    @torch.no_grad()
    def _answer(self, prompt: Prompt, params: GenerationParams, rng: torch.Generator, cancel: threading.Event, stats: dict) -> Iterator[int]:
        """Words: Janus's text path (lm_head), one token per cached step.

        1. Reuse the longest cached prefix; embed the rest (pictures through SigLIP) and read it.
        2. Mask what a word reply may not hold, warp, choose; stop at <eot>, the caps or a cancel.
        3. Keep the cache for the next turn."""
        v = self.vocab
        ids = list(prompt.ids)
        # 1. Prefill.
        cache, reused = self.pool.take(ids)
        cache = cache if cache is not None else DynamicCache()
        stats["cached_tokens"] = reused
        h = self._hidden(self._embed(ids, reused), len(ids), cache)  # (1, C)
        warpers, made, text = _warpers(params), 0, 0
        while True:
            # 2. One token.
            logits = self.model.lm_head(h).float()[:, : v.text_size]  # (1, V)
            allowed = (self.text_ok if text < params.max_text_tokens else self.end_ok).to(logits.device)
            scores = warpers(None, logits.masked_fill(~allowed, float("-inf")))
            tok = _choose(scores, params, rng)
            yield tok
            ids.append(tok)
            made, text = made + 1, text + (tok != v.eot)
            if tok == v.eot or cancel.is_set() or made >= params.max_new_tokens:
                break
            h = self._hidden(self.lm.embed_tokens(torch.tensor([[tok]], device=logits.device)), len(ids), cache)  # (1, C)
        # 3. The cache holds every token but the last.
        self.pool.put(ids, cache)

    @torch.no_grad()
    def _draw(self, prompt: Prompt, params: GenerationParams, rng: torch.Generator, cancel: threading.Event, stats: dict) -> Iterator[int]:
        """One picture: `<begin_of_image>`, H*W codes from the generation head, `<end_of_image>`, <eot>.

        1. The edit region: the mask's keep grid, or `locate` for an edit without a mask.
        2. The rows: the conversation, and Janus's unconditional row when CFG is on; their cached
           prefixes, cut to one length and stacked into one batch.
        3. Read the rest of both rows and `<begin_of_image>` in one forward.
        4. Per code: the generation head on both rows, CFG, the edit lock, the warpers, the
           choice; the code goes back in through the generation embeddings (both rows).
        5. Keep each row's cache up to `<begin_of_image>` (the next turn reads the picture
           through SigLIP)."""
        v, n = self.vocab, self.vocab.image_tokens
        # 1. The edit region.
        keep, source = prompt.keep, prompt.source_codes
        if source is not None and keep is None and getattr(prompt, "locate", None) is not None:
            keep = self.locate(source, *prompt.locate)
        if source is not None and keep is not None:
            stats["edit_region"] = int((~keep).sum())
            keep, source = keep.reshape(-1).tolist(), source.reshape(-1).tolist()
        else:
            keep = None
        # 2. Rows and their caches.
        guided = params.cfg_scale != 1.0 and prompt.uncond_ids is not None
        rows = [[*prompt.ids, v.boi]] + ([[*prompt.uncond_ids, v.boi]] if guided else [])
        pools = [self.pool, self.uncond_pool][: len(rows)]
        cache, reused = self._take(rows, pools)
        stats["cached_tokens"] = reused
        # 3. Prefill both rows.
        length = len(rows[0])
        h = self._hidden(torch.cat([self._embed(r, reused) for r in rows]), length, cache)  # (B, C)
        yield v.boi
        warpers = _warpers(params)
        for i in range(n):
            # 4. One code.
            logits = self.model.model.generation_head(h).float()  # (B, K)
            if guided:
                logits = logits[1:] + params.cfg_scale * (logits[:1] - logits[1:])  # (1, K): uncond + s * (cond - uncond)
            if keep is not None and keep[i]:
                logits = torch.full_like(logits, float("-inf"))
                logits[:, source[i]] = 0.0  # the edit lock: the source code
            code = _choose(warpers(None, logits), params, rng)
            yield v.image_offset + code
            if cancel.is_set():
                break
            if i < n - 1:
                step = torch.tensor([[code]] * len(rows), device=h.device)  # (B, 1): the same code in every row
                h = self._hidden(self.model.prepare_embeddings_for_image_generation(step), length + i + 1, cache)  # (B, C)
        # 5. Keep the caches of the prompt.
        cache.crop(length - cache.get_seq_length())
        for pool, row, c in zip(pools, rows, _split(cache, len(rows))):
            pool.put(row, c)
        if not cancel.is_set():
            yield v.eoi
            yield v.eot

    def _take(self, rows: list[list[int]], pools: list[PrefixCachePool]) -> tuple[DynamicCache, int]:
        """One batched cache holding the first `reused` tokens of every row: each row's longest
        cached prefix, the shorter ones read alone up to the longest (so a CFG turn after a turn
        without CFG still reuses the conversation's cache)."""
        taken = [pool.take(r) for pool, r in zip(pools, rows)]
        reused = max(k for _, k in taken)
        caches = []
        for row, (c, k) in zip(rows, taken):
            c = c if c is not None else DynamicCache()
            if k < reused:
                self._hidden(self._embed(row[:reused], k), reused, c)
            caches.append(c)
        return _stack(caches), reused


def _warpers(params: GenerationParams) -> LogitsProcessorList:
    """The stock temperature / top-k / top-p warpers of the user's settings (none when greedy)."""
    out = LogitsProcessorList()
    if params.temperature > 0:
        if params.temperature != 1.0:
            out.append(TemperatureLogitsWarper(params.temperature))
        if params.top_k:
            out.append(TopKLogitsWarper(params.top_k))
        if params.top_p < 1.0:
            out.append(TopPLogitsWarper(params.top_p))
    return out


def _choose(scores: torch.Tensor, params: GenerationParams, rng: torch.Generator) -> int:
    """(1, V) warped scores -> a sampled token (the argmax when greedy)."""
    if params.temperature == 0:
        return int(scores.argmax(dim=-1))
    return int(torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=rng))


def _stack(caches: list[DynamicCache]) -> DynamicCache:
    """Batch-1 caches of one length -> one cache with a row each."""
    if len(caches) == 1 or caches[0].get_seq_length() == 0:
        return caches[0]
    return DynamicCache(ddp_cache_data=[(torch.cat([c.layers[i].keys for c in caches]), torch.cat([c.layers[i].values for c in caches])) for i in range(len(caches[0].layers))])


def _split(cache: DynamicCache, rows: int) -> list[DynamicCache]:
    """A batched cache -> one batch-1 cache per row."""
    if rows == 1:
        return [cache]
    return [DynamicCache(ddp_cache_data=[(layer.keys[r : r + 1], layer.values[r : r + 1]) for layer in cache.layers]) for r in range(rows)]
