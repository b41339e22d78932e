"""The `Backend` protocol every model family implements, and the events a reply streams as.

A backend owns a joint-vocabulary model and the image tokenizer of its family (images <-> codes):
it turns a session plus a new message into prompt token ids, and streams a reply for a prompt. Everything above it
(the assistant, the UI, the CLI, the evals) only speaks this protocol.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Iterator

import torch
from PIL import Image

from ..conversation import Message, Session
from ..errors import ChatgenError
from ..events import Event
from ..generation import Prompt
from ..images import painted_cells
from ..image_tokenizer import ImageTokenizer
from ..params import GenerationParams
from ..vocab import JointVocab


class Backend(ABC):
    """A joint text+image model behind chatgen's protocol."""

    vocab: JointVocab  # the joint vocabulary
    image_tokenizer: ImageTokenizer  # the image side of the model: PIL image <-> (grid_h, grid_w) codes
    name: str  # identifies the token space; stored token ids are reused only under the same name
    max_context: int = 4096  # the model's context length; the oldest turns are dropped to fit

    # ---- images ------------------------------------------------------------------------------
    def encode_image(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> (grid_h, grid_w) codes."""
        return self.image_tokenizer.encode(image)

    def decode_image(self, codes: torch.Tensor) -> Image.Image:
        """(grid_h, grid_w) codes -> PIL image."""
        return self.image_tokenizer.decode(codes)

    def edit_cells(self, mask: Image.Image) -> torch.Tensor:
        """(grid_h, grid_w) bool: the codes a masked edit may change (True), every code cell the
        mask paints; the others are locked to the edited image's codes while decoding."""
        return torch.from_numpy(painted_cells(mask, self.vocab.grid_h, self.vocab.grid_w))

    def mask_ids(self, mask: Image.Image) -> list[int]:
        """The mask as prompt ids, after the user's text and upload. A model trained to read
        masks says so here (`<mask>` and what is painted); by default the mask is only the
        decoding lock of `edit_cells`, and the prompt leaves it out."""
        return []

    reads_pictures: bool = False  # whether `check_edit` and `check_answer` read pictures (the assistant then passes them the pictures)

    def check_edit(self, text: str, before: Image.Image | None, after: Image.Image) -> str | None:
        """One sentence that replaces the text of a reply picture `after` when the pictures contradict
        what the text says it changed (`before`: the picture the edit started from, None without one);
        None when it holds, or when this backend cannot read pictures (the default)."""
        return None

    def redoes(self, text: str, mask: Image.Image | None) -> bool:
        """Whether `check_request` may ask to answer a message again (its reply's events are then held
        until it is checked); False for a backend that cannot read pictures (the default)."""
        return False

    def check_request(self, text: str, user_text: str, mask: Image.Image | None, before: Image.Image | None, after: Image.Image | None = None):
        """A reply `text` (with its picture `after`, None without one) checked against what the message
        asked (of the picture `before`, None when there is none): what it should have been (`chatgen.edit_claims.Say` or `Redo`; a masked edit
        against what the painted part holds, "add a bird above the house" against where the house is,
        a drawing against the scene a request spells out), or None when it fits, when the text is not
        one this backend reads, or when it cannot read pictures (the default)."""
        return None

    def text_faults(self, text: str, message: str, picture: Image.Image | None, mask: bool, before: str = "") -> list[str]:
        """What a reply's text (before its picture) shows that does not fit `message` ("draws star,
        not asked for"), given the `picture` it starts from (None: there is none), whether a part was
        painted (`mask`), and the message `before` it; [] when nothing does or when this backend does
        not read its texts (the default)."""
        return []

    def mend_text(self, text: str, message: str, picture: Image.Image | None = None, before: str = "") -> str | None:
        """`text` mended to fit `message` (about `picture`, the one the reply starts from) where the
        backend knows how (a refusal naming back the thing asked for), else None (the default)."""
        return None

    def check_answer(self, text: str, question: str, picture: Image.Image) -> str | None:
        """The answer `picture` supports when the text reply `text` to `question` states something
        else about it ("There is one dog." next to two); None when it holds, when the text is not
        an answer about the picture, or when this backend cannot read pictures (the default)."""
        return None

    def unreadable(self, image: Image.Image) -> str | None:
        """One sentence for the person when this model cannot read `image` (it is answered
        without generating, and its codes never enter the context); None when it can."""
        return None

    # ---- text --------------------------------------------------------------------------------
    @abstractmethod
    def encode_text(self, text: str) -> list[int]:
        """Text -> text ids (inside the vocabulary's text range)."""

    @abstractmethod
    def decode_text(self, ids: list[int]) -> str:
        """Text ids -> text."""

    # ---- prompts -----------------------------------------------------------------------------
    def encode_user(self, message: Message) -> list[int]:
        """`<user> text [<boi> codes <eoi>] [mask ids] <eot>`."""
        v = self.vocab
        ids = [v.special("<user>"), *self.encode_text(self.user_text(message.text))]
        if message.image is not None:
            ids += v.codes_to_ids(self.encode_image(message.image))
        if message.mask is not None:
            ids += self.mask_ids(message.mask)
        return ids + [v.eot]

    def user_text(self, text: str) -> str:
        """What the model reads of a user message (the native backend repairs typos; others read it as typed)."""
        return text

    def encode_reply(self, text: str, image: Image.Image | None) -> list[int]:
        """A stored assistant reply rebuilt from its text and picture: `text [<boi> codes <eoi>] <eot>`."""
        v = self.vocab
        ids = self.encode_text(text)
        if image is not None:
            ids += v.codes_to_ids(self.encode_image(image))
        return ids + [v.eot]

    def turn_ids(self, turn) -> list[int]:
        """A stored turn as ids: its user part, `reply_start`, its reply. Rebuilt (`encode_user`,
        `encode_reply`) when the turn was made by another token space."""
        if turn.token_model == self.name and self.stored_ids_ok(turn):
            user, reply = turn.user_ids, turn.reply_ids
        else:
            user = self.encode_user(Message(turn.user_text, turn.user_image, turn.user_mask))
            reply = self.encode_reply(turn.assistant_text, turn.assistant_image)
        return [*user, *self.reply_start(), *reply]

    def prompt(self, session: Session, message: Message) -> Prompt:
        """The token ids of the whole conversation plus the new message, ready for `stream`:
        `prompt_head`, the newest turns that fit, the message, `reply_start`."""
        head = self.prompt_head(session)
        user = self.encode_user(message)
        # Keep the newest turns that fit, with room for a reply holding one image.
        budget = self.message_room(session) - len(user)
        if budget < 0:
            raise ChatgenError(f"the message is too long for this model ({len(user)} tokens; the context holds {self.max_context})")
        history: list[int] = []
        for t in reversed(session.path()):
            if not in_prompt(t):
                continue
            ids = self.turn_ids(t)
            if len(history) + len(ids) > budget:
                break
            history = ids + history
        # The unconditional prompt keeps the history (and any upload and mask) but drops the request text.
        uncond_user = self.encode_user(Message("", message.image, message.mask))
        start = self.reply_start()
        return Prompt(ids=head + history + user + start, user_ids=user, uncond_ids=head + history + uncond_user + start)

    def prompt_head(self, session: Session) -> list[int]:
        """What opens every prompt: `<bos> [<system> text <eot>]`."""
        v = self.vocab
        head = [v.special("<bos>")]
        if session.system:
            head += [v.special("<system>"), *self.encode_text(session.system), v.eot]
        return head

    def reply_start(self) -> list[int]:
        """What follows the new message and opens the reply: `<assistant>`."""
        return [self.vocab.special("<assistant>")]

    def message_room(self, session: Session) -> int:
        """How many tokens a new user message may take: the context less the system prompt and
        room for a reply holding one image (`Assistant.prepare` refuses longer messages)."""
        v = self.vocab
        head = 1 + (len(self.encode_text(session.system)) + 2 if session.system else 0)
        return self.max_context - head - 1 - (v.image_tokens + 64)

    def stored_ids_ok(self, turn) -> bool:
        """Whether a stored turn's token ids are well formed for this vocabulary (an imported
        session may carry anything): in range, role and end markers in place, whole image spans."""
        v, user, reply = self.vocab, turn.user_ids, turn.reply_ids
        if not (user and reply and user[0] == v.special("<user>") and user[-1] == v.eot and reply[-1] == v.eot):
            return False
        if not all(type(i) is int and 0 <= i < v.size for i in (*user, *reply)):
            return False
        return all(len(s) == v.image_tokens and all(map(v.is_image, s)) for ids in (user, reply) for s in v.split_spans(ids)[1])

    # ---- generation --------------------------------------------------------------------------
    @abstractmethod
    def stream(self, prompt: Prompt, params: GenerationParams, cancel: threading.Event | None = None) -> Iterator[Event]:
        """Generate a reply, yielding events; the last event is always `ReplyDone`."""


def in_prompt(turn) -> bool:
    """Whether a stored turn goes into the model's prompt: not the canned answer to an upload
    the model cannot read (`Backend.unreadable`). Nothing of that picture is in the turn, and a
    model never trained on such a turn drew noise on the next request ("draw a dog on the grass"
    after one came out as four random things in bench-world's nonworld.followup)."""
    return not (turn.params or {}).get("metadata", {}).get("unreadable_upload")
