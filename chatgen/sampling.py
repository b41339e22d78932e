"""Logits processors: the vocabulary rules of a reply, enforced by masking logits.

- `ImageSpanConstraint`: after `<boi>` only image codes, exactly H*W of them, then `<eoi>`;
  outside an image span never an image code; at most one image per reply.
- `ImageGuidance`: classifier-free guidance, applied inside image spans only.
- `EditLock`: inside the image span, codes the user's mask keeps are forced to the source codes.

They run inside `transformers`' `generate` in this order: guidance, lock, span constraint, and
then the stock temperature / top-k / top-p warpers.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, LogitsProcessor

from .vocab import JointVocab


def span_state(generated: list[int], vocab: JointVocab) -> tuple[bool, int, int]:
    """(inside an image span, codes emitted in the open span, images completed) for a reply so far."""
    inside, k, done = False, 0, 0
    for t in generated:
        if t == vocab.boi:
            inside, k = True, 0
        elif t == vocab.eoi:
            inside, k, done = False, 0, done + 1
        elif inside:
            k += 1
    return inside, k, done


class ImageSpanConstraint(LogitsProcessor):
    """Only legal tokens get finite logits: image codes inside a span, text outside."""

    def __init__(self, vocab: JointVocab, prompt_len: int, max_new_tokens: int, max_images: int = 1):
        self.vocab = vocab
        self.prompt_len = prompt_len  # tokens before the reply
        self.max_new_tokens = max_new_tokens  # the reply's length cap
        self.max_images = max_images  # images one reply may hold
        v = vocab
        # Outside a span: text ids, <eot>, and <boi> when an image still fits.
        self.text_ok = torch.zeros(v.size, dtype=torch.bool)
        self.text_ok[: v.text_size] = True
        self.text_ok[v.eot] = True

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        v = self.vocab
        allowed = torch.zeros_like(scores, dtype=torch.bool)  # (B, V)
        for b in range(input_ids.shape[0]):
            generated = input_ids[b, self.prompt_len :].tolist()
            inside, k, done = span_state(generated, v)
            if inside and k < v.image_tokens:
                # 1. Inside a span: image codes only.
                allowed[b, v.image_offset : v.size] = True
            elif inside:
                # 2. The grid is full: close the span.
                allowed[b, v.eoi] = True
            else:
                # 3. Outside: text and <eot>; <boi> only if a whole image (<boi>, H*W codes, <eoi>) fits.
                allowed[b, : v.size] = self.text_ok.to(scores.device)
                left = self.max_new_tokens - len(generated)
                if done < self.max_images and left >= v.image_tokens + 2:
                    allowed[b, v.boi] = True
        # Vocab padding rows past v.size (some checkpoints round the embedding up) stay masked too.
        return scores.masked_fill(~allowed, float("-inf"))


class ImageGuidance(LogitsProcessor):
    """Classifier-free guidance inside image spans: uncond + scale * (cond - uncond).

    The unconditional stream (the prompt without the request text) runs through the same model
    with its own KV cache; it catches up on the reply's tokens only when a span needs it.
    """

    def __init__(self, model, vocab: JointVocab, prompt_len: int, uncond_ids: list[int], scale: float):
        self.model = model  # the causal LM
        self.vocab = vocab
        self.prompt_len = prompt_len  # tokens before the reply in the conditional stream
        self.scale = scale  # guidance strength (1 = off)
        self.pending = torch.tensor([uncond_ids], dtype=torch.long)  # (1, T) ids not yet fed to the uncond stream
        self.cache = DynamicCache()
        self.fed = 0  # reply tokens already appended to `pending` or fed
        self.logits = None  # last uncond logits, (1, V)

    @torch.no_grad()
    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids[0, self.prompt_len :]
        inside, k, _ = span_state(generated.tolist(), self.vocab)
        if not inside or k >= self.vocab.image_tokens:
            return scores
        # 1. Feed the reply tokens the uncond stream has not seen yet.
        new = generated[self.fed :].unsqueeze(0).to(self.pending.device)  # (1, n)
        self.fed = generated.shape[0]
        feed = torch.cat([self.pending, new], dim=1)  # (1, T + n)
        self.pending = self.pending[:, :0]
        out = self.model(input_ids=feed.to(input_ids.device), past_key_values=self.cache, use_cache=True)
        uncond = out.logits[:, -1].float()  # (1, V)
        # 2. Mix, and let the span constraint mask what is illegal afterwards.
        uncond = torch.log_softmax(uncond[:, : scores.shape[-1]], dim=-1)
        cond = torch.log_softmax(scores, dim=-1)
        return uncond + self.scale * (cond - uncond)


class EditLock(LogitsProcessor):
    """Inside the image span, force the source image's code wherever the edit mask says keep."""

    def __init__(self, vocab: JointVocab, prompt_len: int, source_codes: torch.Tensor, keep: torch.Tensor):
        self.vocab = vocab
        self.prompt_len = prompt_len  # tokens before the reply
        self.source = source_codes.reshape(-1).long()  # (H*W,) codes of the image being edited
        self.keep = keep.reshape(-1).bool()  # (H*W,) True = keep the source code

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for b in range(input_ids.shape[0]):
            inside, k, _ = span_state(input_ids[b, self.prompt_len :].tolist(), self.vocab)
            if inside and k < self.vocab.image_tokens and bool(self.keep[k]):
                forced = self.vocab.image_offset + int(self.source[k])
                row = torch.full_like(scores[b], float("-inf"))
                row[forced] = 0.0
                scores[b] = row
        return scores
