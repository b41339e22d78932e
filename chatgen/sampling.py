"""Logits processors: the vocabulary rules of a reply, enforced by masking logits.

- `ImageSpanConstraint`: after `<boi>` only image codes, exactly H*W of them, then `<eoi>`;
  outside an image span never an image code; at most one image per reply; a text that runs
  past `max_text_tokens` (a loop) is ended with `<eot>`.
- `ImageGuidance`: classifier-free guidance (transformers' unbatched CFG processor), applied
  inside image spans only.
- `EditLock`: inside the image span, codes the user's mask keeps are forced to the source codes.

They run inside `transformers`' `generate` in this order: guidance, lock, span constraint, and
then the stock temperature / top-k / top-p warpers. All of them read one `SpanTracker`, which
follows the reply token by token (no rescans of the reply).
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor
from transformers.generation.logits_process import UnbatchedClassifierFreeGuidanceLogitsProcessor

from .vocab import JointVocab


def model_device(model) -> torch.device:
    """The device `model` computes on. For a model loaded with accelerate offload (it has an
    `hf_device_map`) that is the map's first accelerator, else the CPU: its offloaded weights
    are on the `meta` device until a forward pass brings them in, so `model.device` may say meta."""
    placed = getattr(model, "hf_device_map", None)
    if placed:
        on = [d for d in placed.values() if d not in ("cpu", "disk", "meta")]
        return torch.device(on[0]) if on else torch.device("cpu")
    return model.device


class SpanTracker:
    """Where a one-row reply is: inside an image span or not, codes in the open span, images done.

    The span's layout (`vocab.span_layout()`) says what stands at each position between `<boi>`
    and `<eoi>`: a code (None), or a fixed token some families put there (Emu3's size header and
    end-of-row tokens); the native layout is H*W codes.

    `update(input_ids)` reads only the tokens added since the last call, so every processor of a
    step may call it and the first one does the work."""

    def __init__(self, vocab: JointVocab, prompt_len: int):
        self.vocab = vocab
        self.prompt_len = prompt_len  # tokens before the reply
        self.read = 0  # reply tokens read so far
        self.layout = tuple(vocab.span_layout())  # what stands at each position of an image span (None: a code)
        self.inside = False  # an image span is open
        self.pos = 0  # tokens emitted in the open span (fixed ones included)
        self.codes = 0  # codes emitted in the open span
        self.images = 0  # image spans closed
        self.text = 0  # reply tokens outside image spans (text and markers)

    def update(self, input_ids: torch.LongTensor) -> "SpanTracker":
        if input_ids.shape[0] != 1:
            raise ValueError(f"chatgen decodes one reply at a time; got a batch of {input_ids.shape[0]}")
        v = self.vocab
        for t in input_ids[0, self.prompt_len + self.read :].tolist():
            if t == v.boi:
                self.inside, self.pos, self.codes = True, 0, 0
            elif t == v.eoi:
                self.inside, self.pos, self.codes, self.images = False, 0, 0, self.images + 1
            elif self.inside:
                self.codes += self.pos < len(self.layout) and self.layout[self.pos] is None
                self.pos += 1
            else:
                self.text += 1
        self.read = input_ids.shape[1] - self.prompt_len
        return self

    @property
    def in_codes(self) -> bool:
        """The next token is an image code."""
        return self.inside and self.pos < len(self.layout) and self.layout[self.pos] is None

    @property
    def forced(self) -> int | None:
        """The fixed token the layout puts at the next position of the open span, if any."""
        return self.layout[self.pos] if self.inside and self.pos < len(self.layout) else None


class ImageSpanConstraint(LogitsProcessor):
    """Only legal tokens get finite logits: image codes inside a span, text outside."""

    def __init__(self, span: SpanTracker, max_new_tokens: int, max_images: int = 1, max_text_tokens: int | None = None):
        v = span.vocab
        self.span = span  # the reply's position
        self.max_new_tokens = max_new_tokens  # the reply's length cap
        self.max_text_tokens = max_text_tokens  # cap on the reply's text outside images (None: only max_new_tokens)
        self.max_images = max_images  # images one reply may hold
        # Allowed-token masks of the three situations, built once.
        self.codes_ok = torch.zeros(v.size, dtype=torch.bool)
        self.codes_ok[v.image_offset : v.image_offset + v.codebook_size] = True
        self.span_len = len(span.layout)  # tokens between <boi> and <eoi>
        self.close_ok = torch.zeros(v.size, dtype=torch.bool)
        self.close_ok[v.eoi] = True
        # Text ids: [0, text_size), or the vocabulary's own mask where text ids do not lead (Chameleon).
        self.text_ok = v.text_mask() if hasattr(v, "text_mask") else torch.arange(v.size) < v.text_size
        self.text_ok[v.eot] = True
        self.text_or_image_ok = self.text_ok.clone()
        self.text_or_image_ok[v.boi] = True
        self.end_ok = torch.zeros(v.size, dtype=torch.bool)
        self.end_ok[v.eot] = True

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        s, v = self.span.update(input_ids), self.span.vocab
        if s.in_codes:
            allowed = self.codes_ok  # 1. Inside a span: image codes only,
        elif s.forced is not None:
            allowed = torch.zeros(v.size, dtype=torch.bool)  # or the fixed token the layout puts here.
            allowed[s.forced] = True
        elif s.inside:
            allowed = self.close_ok  # 2. The grid is full: close the span.
        elif self.max_text_tokens is not None and s.text >= self.max_text_tokens:
            allowed = self.end_ok  # 3. The text ran on too long: end the reply.
        else:
            # 4. Outside: text and <eot>; <boi> only if a whole image (<boi>, H*W codes, <eoi>) fits.
            left = self.max_new_tokens - s.read
            allowed = self.text_or_image_ok if s.images < self.max_images and left >= self.span_len + 2 else self.text_ok
        # Vocab padding rows past v.size (some checkpoints round the embedding up) stay masked too.
        mask = torch.zeros(scores.shape[-1], dtype=torch.bool)
        mask[: v.size] = allowed
        return scores.masked_fill(~mask.to(scores.device), float("-inf"))


class ImageGuidance(UnbatchedClassifierFreeGuidanceLogitsProcessor):
    """Classifier-free guidance inside image spans: uncond + scale * (cond - uncond).

    The unconditional stream (the prompt without the request text) runs through the same model
    with its own cache, one token per step like the conditional one (transformers' processor);
    its logits are mixed in only while image codes are being chosen."""

    def __init__(self, model, span: SpanTracker, uncond_ids: list[int], scale: float):
        device = model_device(model)
        super().__init__(scale, model, unconditional_ids=torch.tensor([uncond_ids], dtype=torch.long, device=device), use_cache=True)
        self.span = span  # the reply's position

    @torch.no_grad()
    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        # 1. Keep the unconditional stream in step with the reply (it reads every new token).
        uncond = self.get_unconditional_logits(input_ids)[:, -1, : scores.shape[-1]].float()  # (1, V)
        if not self.span.update(input_ids).in_codes:
            return scores
        # 2. Mix, and let the span constraint mask what is illegal afterwards.
        uncond = torch.log_softmax(uncond, dim=-1)
        cond = torch.log_softmax(scores, dim=-1)
        return uncond + self.guidance_scale * (cond - uncond)


class EditLock(LogitsProcessor):
    """Inside the image span, force the source image's code wherever the edit mask says keep."""

    def __init__(self, span: SpanTracker, source_codes: torch.Tensor, keep: torch.Tensor):
        self.span = span  # the reply's position
        self.source = source_codes.reshape(-1).long()  # (H*W,) codes of the image being edited
        self.keep = keep.reshape(-1).bool()  # (H*W,) True = keep the source code

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        s = self.span.update(input_ids)
        if s.in_codes and bool(self.keep[s.codes]):
            forced = s.vocab.image_offset + int(self.source[s.codes])
            scores = torch.full_like(scores, float("-inf"))
            scores[:, forced] = 0.0
        return scores
