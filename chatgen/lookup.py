"""Prompt-lookup drafts for text tokens (PLD, the idea of transformers' `prompt_lookup_num_tokens`).

A reply's text often repeats the conversation: "Done: added a sun at the top." after "add a sun
at the top", the phrasing of earlier replies. `PromptLookup` drafts the tokens that followed the
sequence's last n-gram earlier in it, and one forward pass reads the pending token and the drafts:

1. drafts: the last n-gram of the sequence (n = 3, then 2, then 1) is looked up earlier in the
   sequence (the most recent occurrence first); the text tokens that followed it (at most
   `width`, stopping before any other token: `<boi>` opens a span decoded by Jacobi, `<eot>`
   ends the reply) are the drafts;
2. verify: at each position in turn, the token is chosen exactly as plain decoding chooses it
   (`choose`: the vocabulary rules with that position's prefix, the warpers, then the argmax or
   one draw from the reply's generator); the draft holds if it is that token, and the first token
   that differs is kept instead. Greedy, that is the usual longest-correct-prefix rule. Sampled,
   it is speculative sampling with a deterministic draft x: x holds with probability p(x), and
   on a rejection the token is distributed as p with x removed, renormalised; coupled to one
   draw per token, the tokens are exactly those of plain sampling with the same seed (so a reply
   is the same with or without drafts, alone or in a batch, and keeps the model's distribution);
3. after the drafts that held comes one more token: the correction, or the bonus token past the
   last draft; the cache drops the rejected drafts.

The rules are called once per position, prefixes in order, exactly as plain decoding calls them,
so the stateful ones (the span tracker, guidance's unconditional stream) stay in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from transformers import LogitsProcessorList


def choose(seq: torch.Tensor, logits: torch.Tensor, rules: LogitsProcessorList, warpers: LogitsProcessorList, sample: bool,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """One reply's next token (1, 1): its vocabulary rules, then the sampling warpers, then greedy
    or sampled (from `generator`, the reply's own RNG; None: the global one). `seq` is (1, T), `logits` (1, V).
    The step of plain decoding, of the batch decoder and of the verification of lookup drafts."""
    scores = warpers(seq, rules(seq, logits))
    return torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator) if sample else scores.argmax(dim=-1, keepdim=True)


def without_undelivered(cache, length: int):
    """`cache` holding every token of a `length`-token sequence but the last, as a finished reply
    leaves it: verified lookup drafts a cancel or an end kept from being handed out are dropped."""
    extra = cache.get_seq_length() - (length - 1)
    if extra > 0:
        cache.crop(-extra)
    return cache


@dataclass
class PromptLookup:
    """Prompt-lookup drafting and verification of a reply's text tokens (see the module doc)."""

    draftable: Callable[[int], bool]  # may this id be drafted (text tokens; never `<boi>`, `<eot>`, codes, markers)
    width: int = 8  # draft tokens verified per forward pass at most
    max_ngram: int = 3  # the longest n-gram looked up
    passes: int = 0  # forward passes that carried drafts
    drafted: int = 0  # draft tokens verified
    accepted: int = 0  # draft tokens kept

    def drafts(self, ids: list[int], room: int) -> list[int]:
        """The drafts after `ids` (the whole sequence, ending with the pending token): at most
        min(width, room) text tokens that followed the last n-gram of `ids` earlier in it."""
        room = min(self.width, room)
        if room <= 0 or len(ids) < 2:
            return []
        last = ids[-1]
        ends = [j for j, t in enumerate(ids[:-1]) if t == last]  # where earlier occurrences of the last token stand
        for n in range(min(self.max_ngram, len(ids) - 1), 0, -1):
            key = ids[-n:]
            for j in reversed(ends):  # the most recent occurrence first
                if j + 1 < n or ids[j + 1 - n : j + 1] != key:
                    continue
                out = []
                for t in ids[j + 1 : j + 1 + room]:
                    if not self.draftable(t):
                        break
                    out.append(t)
                if out:
                    return out
        return []

    def verify(self, seq: torch.Tensor, out: torch.Tensor, drafts: list[int], rules: LogitsProcessorList, warpers: LogitsProcessorList,
               sample: bool, generator: torch.Generator | None = None) -> list[int]:
        """Verify `drafts` against `out` (1+k, V), the pass's logits at the pending token (the last of
        `seq`, (1, T)) and at each draft. Returns the tokens decided, in order: the drafts that held,
        then the correction or the bonus token (so 1 + kept tokens; the cache drops k - kept)."""
        k = len(drafts)
        full = torch.cat([seq, torch.tensor([drafts], dtype=seq.dtype, device=seq.device)], dim=1)  # (1, T+k)
        t = seq.shape[1]
        self.passes += 1
        self.drafted += k
        new: list[int] = []
        for j in range(k + 1):
            # 1. The token at this position, chosen from its own prefix as plain decoding chooses it.
            tok = int(choose(full[:, : t + j], out[j : j + 1], rules, warpers, sample, generator))
            new.append(tok)
            # 2. The draft holds if it is that token; else the chosen token replaces it and the pass ends.
            if j == k or tok != drafts[j]:
                break
        self.accepted += len(new) - 1
        return new
