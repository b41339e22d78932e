"""Janus's ids and routing: `JanusVocab` (codes numbered past the Llama's vocabulary, a picture
as `<begin_of_image>` + H*W codes + `<end_of_image>`) and `route` (does a request want words, a
new picture or an edit; the rule is step 3 of `janus.py`'s docstring)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from ..vocab import grid_to_ids, ids_to_grid, split_spans

# The chat template transformers' conversion script gives Janus-Pro (used when a folder has none).
DEFAULT_CHAT_TEMPLATE = (
    "{%set seps=['\n\n','<\uff5cend\u2581of\u2581sentence\uff5c>']%}{%set i=0%}{%for message in messages%}"
    "{%if message['role']|lower=='user'%}<|User|>: {%elif message['role']|lower=='assistant'%}"
    "<|Assistant|>:{%if not (loop.last and not add_generation_prompt and message['content'][0]['type']=='text' and message['content'][0]['text']=='')%} {%endif%}"
    "{%else%}{{message['role'].capitalize()}}: {%endif%}{%for content in message['content']%}{%if content['type']=='image'%}"
    "{%if not loop.first%}{{'\n'}}{%endif%}<image_placeholder>{%if not loop.last%}{{'\n'}}{%endif%}"
    "{%elif content['type']=='text'%}{%set text=content['text']%}{%if loop.first%}{%set text=text.lstrip()%}{%endif%}"
    "{%if loop.last%}{%set text=text.rstrip()%}{%endif%}{%if not loop.first and message['content'][loop.index0-1]['type']=='text'%}"
    "{{' '+text}}{%else%}{{text}}{%endif%}{%endif%}{%endfor%}{%if not loop.last or add_generation_prompt%}"
    "{%if message['role']|lower=='user'%}{{seps[0]}}{%else%}{{seps[1]}}{%endif%}{%endif%}{%endfor%}"
    "{%if add_generation_prompt%}<|Assistant|>:{%endif%}"
)
# The words of the routing rule (module docstring, step 3).
OVERRIDES = {"draw:": "draw", "edit:": "edit", "ask:": "answer"}
OPENERS = ("please", "can you", "could you", "would you", "will you", "now", "and", "then", "ok", "okay")
EDIT_VERBS = {"make", "add", "remove", "delete", "erase", "change", "replace", "move", "turn", "put", "swap", "recolor", "recolour", "color", "colour", "give", "place", "shift", "enlarge", "shrink", "flip", "edit"}
DRAW_VERBS = {"draw", "paint", "sketch", "create", "generate", "render", "imagine", "design", "illustrate"}
PICTURE_PHRASES = ("picture of", "image of", "photo of", "drawing of", "painting of", "illustration of")
QUESTION_WORDS = {"what", "how", "why", "where", "who", "which", "when", "is", "are", "does", "do", "did", "was", "were", "whats", "what's", "describe", "tell", "count"}


def route(text: str, mask: bool = False, has_picture: bool = False) -> tuple[str, str]:
    """("draw" | "edit" | "answer", the request as the model reads it) by the rule of the module
    docstring (step 3); `has_picture`: the conversation or the message already holds a picture."""
    stripped = text.strip()
    # a. An explicit override.
    for prefix, kind in OVERRIDES.items():
        if stripped.lower().startswith(prefix):
            return kind, stripped[len(prefix) :].strip()
    # b. A painted mask.
    if mask:
        return "edit", stripped
    # c. The first word after the polite openers, or a picture phrase.
    words = re.sub(r"[^\w\s']", " ", stripped.lower()).split()
    opened = True
    while words and opened:
        opened = False
        for o in OPENERS:
            n = len(o.split())
            if words[:n] == o.split():
                words, opened = words[n:], True
                break
    first = words[0] if words else ""
    if first in EDIT_VERBS and not any(p in stripped.lower() for p in PICTURE_PHRASES):
        return "edit", stripped
    if first in DRAW_VERBS or any(p in stripped.lower() for p in PICTURE_PHRASES):
        return "draw", stripped
    # d. A question.
    if stripped.endswith("?") or first in QUESTION_WORDS:
        return "answer", stripped
    # e./f. A bare caption draws in a conversation without pictures; otherwise words.
    return ("answer" if has_picture else "draw"), stripped


@dataclass(frozen=True)
class JanusVocab:
    """What chatgen asks of a vocabulary, over Janus's text ids plus its VQ codes placed after them."""

    text_size: int  # rows of the Llama's embedding / lm_head; ids below are text (and Janus's specials)
    codebook_size: int  # VQ codes; code k is id text_size + k
    grid_h: int  # code rows of a picture (24 for Janus-Pro)
    grid_w: int  # codes per row
    bos: int  # <｜begin▁of▁sentence｜>
    eot: int  # end of the assistant's turn (<｜end▁of▁sentence｜>)
    pad: int  # <｜▁pad▁｜>: Janus's unconditional row is made of it
    boi: int  # <begin_of_image>
    eoi: int  # <end_of_image>
    image_token: int  # <image_placeholder> (never in chatgen's ids: a picture is its codes)
    words: int  # ids below this are the tokenizer's (a checkpoint may pad its embedding past them)

    @property
    def image_offset(self) -> int:
        return self.text_size

    @property
    def size(self) -> int:
        return self.text_size + self.codebook_size

    @property
    def image_tokens(self) -> int:
        return self.grid_h * self.grid_w

    def span_layout(self) -> tuple[int | None, ...]:
        return (None,) * self.image_tokens

    def is_text(self, token_id: int) -> bool:
        return 0 <= token_id < self.words and token_id not in (self.boi, self.eoi, self.image_token, self.pad)

    def is_image(self, token_id: int) -> bool:
        return self.text_size <= token_id < self.size

    def codes_to_ids(self, codes: torch.Tensor) -> list[int]:
        """(grid_h, grid_w) codes -> `<begin_of_image>` code ids `<end_of_image>`."""
        return [self.boi, *grid_to_ids(codes, self.text_size, self.codebook_size, self.grid_h, self.grid_w), self.eoi]

    def ids_to_codes(self, ids) -> torch.Tensor:
        """The H*W code ids of one picture -> (grid_h, grid_w) codes."""
        return ids_to_grid(ids, self.text_size, self.codebook_size, self.grid_h, self.grid_w)

    def raw_spans(self, ids: list[int]) -> tuple[list[int], list[list[int]]]:
        """Text ids outside pictures, and the inner ids of every complete span."""
        return split_spans(ids, self.boi, self.eoi, self.is_text)

    def split_spans(self, ids: list[int]) -> tuple[list[int], list[list[int]]]:
        return self.raw_spans(ids)

    def span_ok(self, inner: list[int]) -> bool:
        return len(inner) == self.image_tokens and all(map(self.is_image, inner))




def _msg(role: str, text: str, images: int = 0) -> dict:
    """One chat-template message: `images` image placeholders, then the text."""
    return {"role": role, "content": [{"type": "image"}] * images + [{"type": "text", "text": text}]}
