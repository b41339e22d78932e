"""What a reply streams as: text deltas, an image growing row by row, the refiner's steps, and the end of the reply."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image


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
class RefineStep:
    """The diffusion refiner finished one more denoising step (after ImageDone, before ReplyDone)."""

    step: int  # 0-based index of the finished step
    steps: int  # total steps
    preview: Image.Image | None  # the picture so far, when previews are on


@dataclass
class ReplyDone:
    """The reply is over (finished, cut by max_new_tokens, or cancelled)."""

    text: str  # the whole reply text
    image: Image.Image | None  # the reply image, if one was completed
    reply_ids: list[int]  # every generated id, ending with <eot> when finished normally
    cancelled: bool = False  # stopped by the caller
    stats: dict = field(default_factory=dict)  # token counts and timings


Event = TextDelta | ImageStart | ImageRow | ImageDone | RefineStep | ReplyDone
