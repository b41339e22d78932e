"""The `Backend` protocol every model family implements, and the events a reply streams as.

A backend owns a joint-vocabulary model: it turns images into codes and back, turns a session
plus a new message into prompt token ids, and streams a reply for a prompt. Everything above it
(the assistant, the UI, the CLI, the evals) only speaks this protocol.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Iterator

import torch
from PIL import Image

from ..conversation import Message, Session
from ..errors import ChatgenError
from ..vocab import JointVocab


@dataclass
class GenerationParams:
    """Sampling settings of one reply."""

    seed: int | None = None  # RNG seed; None picks one (and the reply records it)
    temperature: float = 1.0  # 0 = greedy
    top_k: int = 0  # keep the k most likely tokens (0 = off)
    top_p: float = 1.0  # nucleus sampling mass (1 = off)
    cfg_scale: float = 1.0  # classifier-free guidance inside image spans (1 = off)
    max_new_tokens: int = 512  # reply length cap, image codes included
    previews: bool = True  # decode a partial image after every finished code row

    def check(self) -> "GenerationParams":
        """Raise a one-line error naming the first bad field."""
        if self.seed is not None and not (isinstance(self.seed, int) and 0 <= self.seed < 2**63):
            raise ChatgenError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not self.temperature >= 0:
            raise ChatgenError(f"temperature must be >= 0, got {self.temperature}")
        if not (isinstance(self.top_k, int) and self.top_k >= 0):
            raise ChatgenError(f"top_k must be a non-negative integer, got {self.top_k!r}")
        if not 0 < self.top_p <= 1:
            raise ChatgenError(f"top_p must be in (0, 1], got {self.top_p}")
        if not self.cfg_scale >= 0:
            raise ChatgenError(f"cfg_scale must be >= 0, got {self.cfg_scale}")
        if not (isinstance(self.max_new_tokens, int) and self.max_new_tokens >= 1):
            raise ChatgenError(f"max_new_tokens must be a positive integer, got {self.max_new_tokens!r}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


# ---- events a reply streams as ------------------------------------------------------------------
@dataclass
class TextDelta:
    """More reply text."""

    text: str  # the new characters


@dataclass
class ImageStart:
    """The model opened an image span."""

    rows: int  # code rows to come
    cols: int  # codes per row


@dataclass
class ImageRow:
    """One more row of image codes is finished."""

    row: int  # 0-based index of the finished row
    rows: int  # total rows
    preview: Image.Image | None  # the image so far (unfinished rows grey), when previews are on


@dataclass
class ImageDone:
    """The image span is complete."""

    image: Image.Image  # decoded image
    codes: torch.Tensor  # (grid_h, grid_w) codes


@dataclass
class ReplyDone:
    """The reply is over (finished, cut by max_new_tokens, or cancelled)."""

    text: str  # the whole reply text
    image: Image.Image | None  # the reply image, if one was completed
    reply_ids: list[int]  # every generated id, ending with <eot> when finished normally
    cancelled: bool = False  # stopped by the caller
    stats: dict = field(default_factory=dict)  # token counts and timings


Event = TextDelta | ImageStart | ImageRow | ImageDone | ReplyDone


@dataclass
class Prompt:
    """Everything `stream` needs for one reply."""

    ids: list[int]  # the whole conversation so far, ending with the assistant role marker
    user_ids: list[int]  # the new user part alone (stored in the turn)
    uncond_ids: list[int] | None = None  # the same prompt with the request removed, for CFG
    source_codes: torch.Tensor | None = None  # (H, W) codes of the image being edited, for masked edits
    keep: torch.Tensor | None = None  # (H, W) bool: True where the edit must keep source_codes


class Backend(ABC):
    """A joint text+image model behind chatgen's protocol."""

    vocab: JointVocab  # the joint vocabulary
    name: str  # identifies the token space; stored token ids are reused only under the same name
    max_context: int = 4096  # the model's context length; the oldest turns are dropped to fit

    # ---- images ------------------------------------------------------------------------------
    @abstractmethod
    def encode_image(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> (grid_h, grid_w) codes."""

    @abstractmethod
    def decode_image(self, codes: torch.Tensor) -> Image.Image:
        """(grid_h, grid_w) codes -> PIL image."""

    # ---- text --------------------------------------------------------------------------------
    @abstractmethod
    def encode_text(self, text: str) -> list[int]:
        """Text -> text ids (inside the vocabulary's text range)."""

    @abstractmethod
    def decode_text(self, ids: list[int]) -> str:
        """Text ids -> text."""

    # ---- prompts -----------------------------------------------------------------------------
    def encode_user(self, message: Message) -> list[int]:
        """`<user> text [<boi> codes <eoi>] <eot>`."""
        v = self.vocab
        ids = [v.special("<user>"), *self.encode_text(message.text)]
        if message.image is not None:
            ids += v.codes_to_ids(self.encode_image(message.image))
        return ids + [v.eot]

    def turn_ids(self, turn) -> list[int]:
        """A stored turn as ids: its user part, the assistant marker, its reply. Rebuilt when the
        turn was made by another token space."""
        v = self.vocab
        if turn.token_model == self.name and turn.user_ids:
            user, reply = turn.user_ids, turn.reply_ids
        else:
            user = self.encode_user(Message(turn.user_text, turn.user_image))
            reply = self.encode_text(turn.assistant_text)
            if turn.assistant_image is not None:
                reply += v.codes_to_ids(self.encode_image(turn.assistant_image))
            reply += [v.eot]
        return [*user, v.special("<assistant>"), *reply]

    def prompt(self, session: Session, message: Message) -> Prompt:
        """The token ids of the whole conversation plus the new message, ready for `stream`."""
        v = self.vocab
        head = [v.special("<bos>")]
        if session.system:
            head += [v.special("<system>"), *self.encode_text(session.system), v.eot]
        user = self.encode_user(message)
        # Keep the newest turns that fit, with room for a reply holding one image.
        budget = self.max_context - len(head) - len(user) - 1 - (v.image_tokens + 64)
        if budget < 0:
            raise ChatgenError(f"the message is too long for this model ({len(user)} tokens; the context holds {self.max_context})")
        history: list[int] = []
        for t in reversed(session.path()):
            ids = self.turn_ids(t)
            if len(history) + len(ids) > budget:
                break
            history = ids + history
        # The unconditional prompt keeps the history (and any upload) but drops the request text.
        uncond_user = self.encode_user(Message("", message.image))
        start = [v.special("<assistant>")]
        return Prompt(ids=head + history + user + start, user_ids=user, uncond_ids=head + history + uncond_user + start)

    # ---- generation --------------------------------------------------------------------------
    @abstractmethod
    def stream(self, prompt: Prompt, params: GenerationParams, cancel: threading.Event | None = None) -> Iterator[Event]:
        """Generate a reply, yielding events; the last event is always `ReplyDone`."""
