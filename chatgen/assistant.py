"""One turn end to end: check the message, build the prompt, stream the reply, refine, store.

`Assistant.respond(session, message)` is the single entry point every front end uses (UI, CLI,
API, LangChain, evals). A turn is added to the session only when the reply finished; bad input
or a cancel leaves the session exactly as it was.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image

from .backends.base import Backend, Event, GenerationParams, ReplyDone
from .conversation import Message, Session, Turn
from .errors import ChatgenError
from .images import check_image, mask_from_image


@dataclass
class Reply:
    """What the assistant answered in one turn."""

    text: str  # the reply text (may be empty when the reply is an image only)
    image: Image.Image | None  # the reply image, if any
    turn_id: str | None  # the stored turn; None when the reply was cancelled
    cancelled: bool = False  # stopped before the end; nothing was stored
    metadata: dict = field(default_factory=dict)  # model, seed, parameters, timings, token counts

    def png_text(self) -> dict[str, str]:
        """PNG tEXt chunks that let anyone reproduce the image."""
        return {"chatgen": json.dumps(self.metadata, sort_keys=True)}


class Assistant:
    """A backend (+ optional refiner) behind one `respond` call."""

    def __init__(self, backend: Backend, refiner=None, params: GenerationParams | None = None):
        self.backend = backend  # the joint-vocabulary model
        self.refiner = refiner  # optional: .refine(image, prompt) -> image
        self.params = params or GenerationParams()  # defaults for every turn

    # ---- checks ------------------------------------------------------------------------------
    def check_message(self, session: Session, message: Message | str) -> Message:
        """Normalise and check a message; raises ChatgenError with one sentence."""
        if isinstance(message, str):
            message = Message(text=message)
        if not isinstance(message, Message):
            raise ChatgenError(f"message must be text or a Message, got {type(message).__name__}")
        text = (message.text or "").strip()
        image = check_image(message.image, "uploaded image") if message.image is not None else None
        if not text and image is None:
            raise ChatgenError("the message is empty: type a request or attach an image")
        mask = None
        if message.mask is not None:
            check_image(message.mask, "mask")
            if image is None and session.last_image() is None:
                raise ChatgenError("a mask needs an image to edit: draw or upload one first")
            mask = mask_from_image(message.mask)
            if mask.getextrema()[1] == 0:
                raise ChatgenError("the mask is empty: paint the region the edit may change")
        return Message(text=text, image=image, mask=mask)

    def merge_params(self, params: GenerationParams | dict | None) -> GenerationParams:
        if params is None:
            p = replace(self.params)
        elif isinstance(params, dict):
            unknown = set(params) - set(GenerationParams.__dataclass_fields__)
            if unknown:
                raise ChatgenError(f"unknown generation parameter {sorted(unknown)[0]!r}")
            p = replace(self.params, **params)
        else:
            p = replace(params)
        p.check()
        if p.seed is None:
            p.seed = random.randrange(2**31)
        return p

    # ---- one turn ----------------------------------------------------------------------------
    def stream(self, session: Session, message: Message | str, params: GenerationParams | dict | None = None, cancel: threading.Event | None = None) -> Iterator[Event | Reply]:
        """Yield the backend's events as they come, then the final `Reply` (the last item)."""
        # 1. Check inputs (nothing has changed yet if this raises).
        message = self.check_message(session, message)
        p = self.merge_params(params)
        t0 = time.perf_counter()
        # 2. Build the prompt; a mask turns into a per-code keep grid over the edited image.
        prompt = self.backend.prompt(session, message)
        if message.mask is not None:
            prompt.source_codes = self._source_codes(session, message)
            prompt.keep = ~_mask_grid(message.mask, self.backend.vocab.grid_h, self.backend.vocab.grid_w)
        prep_s = time.perf_counter() - t0
        # 3. Generate, passing every event through.
        done: ReplyDone | None = None
        for ev in self.backend.stream(prompt, p, cancel=cancel):
            if isinstance(ev, ReplyDone):
                done = ev
            yield ev
        assert done is not None, "backend.stream must end with ReplyDone"
        # 4. Refine the image (optional).
        image, refine_s = done.image, 0.0
        if image is not None and self.refiner is not None and not done.cancelled:
            t1 = time.perf_counter()
            image = self.refiner.refine(image, message.text)
            refine_s = time.perf_counter() - t1
        metadata = {
            "model": self.backend.name,
            "params": p.to_dict(),
            "seed": p.seed,
            "timings": {"prepare_s": round(prep_s, 4), "generate_s": done.stats.get("total_s"), "first_token_s": done.stats.get("first_token_s"), "refine_s": round(refine_s, 4), "total_s": round(time.perf_counter() - t0, 4)},
            "tokens": {k: done.stats[k] for k in ("prompt_tokens", "cached_tokens", "new_tokens", "image_tokens") if k in done.stats},
        }
        if done.cancelled:
            yield Reply(text=done.text, image=image, turn_id=None, cancelled=True, metadata=metadata)
            return
        # 5. Store the turn; the reply's ids always end with <eot>.
        reply_ids = list(done.reply_ids)
        if not reply_ids or reply_ids[-1] != self.backend.vocab.eot:
            reply_ids.append(self.backend.vocab.eot)
        turn = Turn(
            id=session.new_turn_id(),
            parent=session.head,
            user_text=message.text,
            user_image=message.image,
            user_mask=message.mask,
            assistant_text=done.text,
            assistant_image=image,
            user_ids=prompt.user_ids,
            reply_ids=reply_ids,
            token_model=self.backend.name,
            params={**p.to_dict(), "metadata": metadata},
        )
        session.append(turn)
        yield Reply(text=done.text, image=image, turn_id=turn.id, metadata=metadata)

    def respond(self, session: Session, message: Message | str, params: GenerationParams | dict | None = None, cancel: threading.Event | None = None, on_event: Callable[[Event], None] | None = None) -> Reply:
        """Run one turn to the end and return the reply."""
        for item in self.stream(session, message, params, cancel):
            if isinstance(item, Reply):
                return item
            if on_event is not None:
                on_event(item)
        raise RuntimeError("the reply stream ended without a Reply")

    # ---- helpers -----------------------------------------------------------------------------
    def _source_codes(self, session: Session, message: Message) -> torch.Tensor:
        """Codes of the image a masked edit starts from: the upload, else the latest image."""
        b = self.backend
        if message.image is not None:
            return b.encode_image(message.image)
        for t in reversed(session.path()):
            if t.assistant_image is not None:
                if t.token_model == b.name:
                    _, spans = b.vocab.split_spans(t.reply_ids)
                    if spans:
                        return b.vocab.ids_to_codes(spans[-1])
                return b.encode_image(t.assistant_image)
            if t.user_image is not None:
                return b.encode_image(t.user_image)
        raise ChatgenError("a mask needs an image to edit: draw or upload one first")


def _mask_grid(mask: Image.Image, rows: int, cols: int) -> torch.Tensor:
    """(rows, cols) bool: True where any painted pixel falls in that code cell."""
    m = np.asarray(mask.convert("L").resize((cols * 8, rows * 8), Image.Resampling.BOX)) > 0  # (8R, 8C)
    return torch.from_numpy(m.reshape(rows, 8, cols, 8).any(axis=(1, 3)))  # (R, C)
