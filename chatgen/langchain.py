"""chatgen inside LangChain: a chat model that answers with pictures, and a tool an agent calls.

`ChatGenChatModel` is a langchain-core `BaseChatModel` over an `Assistant`. Each call turns the
message list into a `Session` and runs one turn through `Assistant.stream`, the path every
front end takes:

    SystemMessage (first ones only)  -> Session.system
    HumanMessage, AIMessage, ...     -> the earlier turns: a request, then the reply to it
    the last HumanMessage            -> the new message

Images are standard image content blocks with inline data (`{"type": "image", "base64": ...,
"mime_type": ...}`, a `data:` URL, or OpenAI's `image_url`), at most one per message. A reply's
content is a text block and, when it drew, a PNG image block. Its `response_metadata["chatgen"]`
holds the model, seed, parameters and token counts, and the turn's token ids with a digest of
the turn's text and pixels: passed back in a later call, a turn whose digest still matches is
rebuilt with those ids, so the model reads exactly what it generated (an edit starts from the
picture's own codes) and the backend reuses its cached prefix. A changed turn is encoded afresh.

`stream()` yields text blocks (index 0), a preview image after every finished code row (index
"preview-<row>", `extras={"preview": True}`; `previews=False` turns them off), then the final
image (index 1) with the metadata. Previews are skipped when messages are read back.

Parameters (seed, temperature, top_k, top_p, cfg_scale, max_new_tokens, jacobi, lookup, model) are set on the
constructor, with `bind(...)`, or per call; a refiner object (`.refine(image, prompt)`) on the
constructor. Bad input raises a one-sentence `ChatgenError` (a ValueError).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from collections.abc import Iterator
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool, ToolException
from PIL import Image
from pydantic import BaseModel, Field, PrivateAttr, TypeAdapter, ValidationError

from .assistant import Assistant, Reply
from .backends import load_backend
from .conversation import Message, Session, Turn
from .defaults import default_model_path
from .errors import ChatgenError
from .events import ImageRow, TextDelta
from .images import png_bytes, read_image
from .params import GenerationParams
from .prompts import render_prompt
from .text import clean_text

CALL_KEYS = (*GenerationParams.__dataclass_fields__, "model")  # what bind(...) and a call may set


# ---- image blocks -----------------------------------------------------------------------------
def image_block(image: Image.Image, text: dict[str, str] | None = None, png: bytes | None = None, **keys) -> dict:
    """A standard image content block holding `image` as a base64 PNG (with optional PNG text
    chunks), or the PNG file `png` as is (a reply's, as `Assistant.reply_png` writes it)."""
    data = png if png is not None else png_bytes(image, text)
    return {"type": "image", "base64": base64.b64encode(data).decode("ascii"), "mime_type": "image/png", **keys}


def decode_image_block(block: dict, where: str = "the message") -> Image.Image:
    """The picture in an image block with inline data (base64, or a base64 `data:` URL)."""
    data, url = block.get("base64"), block.get("url")
    if not data and isinstance(url, str) and url.startswith("data:"):
        header, _, data = url.partition(",")
        if not header.endswith(";base64"):
            raise ChatgenError(f"the image in {where} is a data: URL that is not base64; encode it as data:image/png;base64,...")
    if not data:
        raise ChatgenError(f"the image in {where} has no inline data; pass it as base64 or a data: URL (links and file ids are not fetched)")
    try:
        raw = base64.b64decode("".join(str(data).split()), validate=True)
    except (binascii.Error, ValueError):
        raise ChatgenError(f"the image in {where} is not valid base64") from None
    return read_image(raw, what=f"the image in {where}")


def reply_image(message: BaseMessage) -> Image.Image | None:
    """The final picture of a reply (its last image block that is not a preview), or None."""
    return read_message(message, "the reply")[1]


def read_message(message: BaseMessage, where: str) -> tuple[str, Image.Image | None]:
    """(text, image) of a message: its text blocks joined, its one image (previews skipped)."""
    try:
        blocks = message.content_blocks
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ChatgenError(f"{where} has content LangChain cannot read ({type(e).__name__}: {e})") from None
    texts, images = [], []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            texts.append(clean_text(block.get("text"), f"the text of {where}", strip=False))
        elif kind == "image":
            if not (block.get("extras") or {}).get("preview"):
                images.append(decode_image_block(block, where))
        else:
            raise ChatgenError(f"{where} holds a {kind!r} block; chatgen reads text and image blocks only")
    if len(images) > 1:
        raise ChatgenError(f"{where} holds {len(images)} images; chatgen reads one picture per message")
    return clean_text("".join(texts), f"the text of {where}", strip=False), images[-1] if images else None


# ---- messages <-> a session -------------------------------------------------------------------
def turn_digest(turn: Turn) -> str:
    """A fingerprint of what a turn says and shows (its text and pixels)."""
    h = hashlib.sha1()
    for part in (turn.user_text, turn.user_image, turn.assistant_text, turn.assistant_image):
        if isinstance(part, Image.Image):
            h.update(f"{part.mode}{part.size}".encode() + part.tobytes())
        else:
            h.update(repr(part).encode())
    return h.hexdigest()


def session_from_messages(messages: list[BaseMessage]) -> tuple[Session, Message]:
    """The conversation a message list holds, and its last message (the new request)."""
    if not messages:
        raise ChatgenError("no messages: pass at least one HumanMessage with the request")
    session = Session()
    # 1. System messages at the start become the session's system prompt.
    n = 0
    while n < len(messages) and isinstance(messages[n], SystemMessage):
        n += 1
    session.system = "\n".join(read_message(m, f"message {i + 1} (system)")[0] for i, m in enumerate(messages[:n]))
    # 2. The rest alternates request, reply, ..., request.
    rest = messages[n:]
    for i, m in enumerate(rest):
        where, want = f"message {n + i + 1}", (HumanMessage, AIMessage)[i % 2]
        if not isinstance(m, want):
            name = type(m).__name__
            if not isinstance(m, (HumanMessage, AIMessage, SystemMessage)):
                raise ChatgenError(f"{where} is a {name}; chatgen reads system, human and AI messages only")
            raise ChatgenError(f"{where} is a {name} where {('a HumanMessage', 'an AIMessage')[i % 2]} belongs: after any system messages, requests (human) and replies (AI) alternate")
    if not rest or not isinstance(rest[-1], HumanMessage):
        raise ChatgenError("the last message must be a HumanMessage: the request to answer")
    # 3. Each (request, reply) pair becomes a turn; a reply's own token ids come back when its digest matches.
    for i in range(0, len(rest) - 1, 2):
        text, image = read_message(rest[i], f"message {n + i + 1} (human)")
        reply_text, reply_image_ = read_message(rest[i + 1], f"message {n + i + 2} (AI)")
        turn = Turn(id=session.new_turn_id(), parent=session.head, user_text=clean_text(text, f"message {n + i + 1} (human)"), user_image=image, assistant_text=reply_text, assistant_image=reply_image_)  # images already read by decode_image_block
        stored = (rest[i + 1].response_metadata.get("chatgen") or {}).get("turn") or {}
        if stored.get("digest") == turn_digest(turn):
            turn.user_ids, turn.reply_ids, turn.token_model = list(stored["user_ids"]), list(stored["reply_ids"]), stored["token_model"]
        session.append(turn)
    text, image = read_message(rest[-1], f"message {len(messages)} (human)")
    return session, Message(text=text, image=image)


def reply_metadata(reply: Reply) -> dict:
    """What a reply message carries besides its content: the assistant's metadata and the turn's ids."""
    t = reply.turn
    turn = {"user_ids": t.user_ids, "reply_ids": t.reply_ids, "token_model": t.token_model, "digest": turn_digest(t)} if t is not None else None
    return {"model_name": reply.metadata.get("model"), "chatgen": {**reply.metadata, "turn": turn}}


def usage(reply: Reply) -> dict:
    tokens = reply.metadata.get("tokens", {})
    prompt, new = tokens.get("prompt_tokens", 0), tokens.get("new_tokens", 0)
    return {"input_tokens": prompt, "output_tokens": new, "total_tokens": prompt + new, "input_token_details": {"cache_read": tokens.get("cached_tokens", 0)}}


# ---- the chat model ---------------------------------------------------------------------------
class ChatGenChatModel(BaseChatModel):
    """A LangChain chat model that draws, edits and answers (see the module docstring).

    Example:
        llm = ChatGenChatModel(temperature=0)  # the embedded model
        reply = llm.invoke("draw a dog on the grass")
        edit = llm.invoke(["draw a dog on the grass", reply, "make the dog a cat"])
    """

    assistant: Any = Field(default=None, exclude=True)  # an Assistant to use (parts passed in); None loads `model`
    model: str | None = None  # model folder or Hub id; None: the embedded model (ignored when `assistant` is given)
    refiner: Any = Field(default=None, exclude=True)  # optional: .refine(image, prompt) -> image, applied to every picture
    seed: int | None = None  # RNG seed; None picks one per reply (the reply's metadata records it)
    temperature: float | None = None  # 0 = greedy; None: the assistant's default (1.0)
    top_k: int | None = None  # sample among the k most likely tokens (0 = off)
    top_p: float | None = None  # nucleus sampling mass (1 = off)
    cfg_scale: float | None = None  # classifier-free guidance inside image spans (1 = off)
    max_new_tokens: int | None = None  # reply length cap, image codes included
    max_text_tokens: int | None = None  # cap on the reply's text outside images
    previews: bool | None = None  # stream(): a preview image after every code row (default on)
    jacobi: int | None = None  # speculative Jacobi decoding of image spans: draft window (0 = off; default 16)
    lookup: int | None = None  # prompt-lookup drafts of text tokens: drafts per forward pass (0 = off; default 5)

    _assistants: dict = PrivateAttr(default_factory=dict)  # model -> the Assistant serving it
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)  # one load at a time

    @property
    def _llm_type(self) -> str:
        return "chatgen"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model or ("assistant" if self.assistant is not None else "embedded"), **self._fixed_params()}

    # ---- one call ------------------------------------------------------------------------------
    def _fixed_params(self) -> dict:
        return {k: getattr(self, k) for k in CALL_KEYS if k != "model" and getattr(self, k) is not None}

    def _call(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict) -> tuple[Assistant, Session, Message, dict]:
        """Check a call: the assistant, the conversation, the new message and the turn's parameters."""
        if stop:
            raise ChatgenError("chatgen does not support stop sequences (stop=...)")
        kwargs = {k: v for k, v in kwargs.items() if k != "stream"}  # stream=True only picks the streaming path
        unknown = sorted(set(kwargs) - set(CALL_KEYS))
        if unknown:
            raise ChatgenError(f"unknown chatgen parameter {unknown[0]!r}; use one of: {', '.join(CALL_KEYS)}")
        fields = type(self).model_fields
        checked = {}
        for k, v in kwargs.items():
            try:
                checked[k] = TypeAdapter(fields[k].annotation).validate_python(v)
            except ValidationError as e:
                raise ChatgenError(f"{k} must be {fields[k].annotation}, got {v!r} ({e.errors()[0]['msg']})") from None
        model = checked.pop("model", self.model)
        session, message = session_from_messages(messages)
        return self._assistant_for(model), session, message, {**self._fixed_params(), **checked}

    def _assistant_for(self, model: str | None) -> Assistant:
        """The assistant serving `model`, loaded once and kept (its prefix cache lives in its backend)."""
        with self._lock:
            if model not in self._assistants:
                if self.assistant is not None and model == self.model:
                    a = self.assistant
                    self._assistants[model] = a if self.refiner is None else a.with_refiner(self.refiner)
                else:
                    self._assistants[model] = Assistant(load_backend(model or default_model_path()), self.refiner)
            return self._assistants[model]

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager=None, **kwargs: Any) -> ChatResult:
        assistant, session, message, params = self._call(messages, stop, kwargs)
        reply = assistant.respond(session, message, {**params, "previews": False})
        content = ([{"type": "text", "text": reply.text}] if reply.text else []) + ([image_block(reply.image, png=assistant.reply_png(session, reply.turn))] if reply.image is not None else [])
        ai = AIMessage(content=content, response_metadata=reply_metadata(reply), usage_metadata=usage(reply))
        return ChatResult(generations=[ChatGeneration(message=ai)])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager=None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        assistant, session, message, params = self._call(messages, stop, kwargs)
        events = assistant.stream(session, message, params)
        try:
            for ev in events:
                if isinstance(ev, TextDelta) and ev.text:
                    yield ChatGenerationChunk(message=AIMessageChunk(content=[{"type": "text", "text": ev.text, "index": 0}]))
                elif isinstance(ev, ImageRow) and ev.preview is not None:
                    block = image_block(ev.preview, index=f"preview-{ev.row}", extras={"preview": True, "row": ev.row, "rows": ev.rows})
                    yield ChatGenerationChunk(message=AIMessageChunk(content=[block]))
                elif isinstance(ev, Reply):
                    content = [image_block(ev.image, png=assistant.reply_png(session, ev.turn), index=1)] if ev.image is not None and ev.turn is not None else []
                    yield ChatGenerationChunk(message=AIMessageChunk(content=content, response_metadata=reply_metadata(ev), usage_metadata=usage(ev), chunk_position="last"))
        finally:
            events.close()  # a consumer that stops early cancels the generation


# ---- the tool -------------------------------------------------------------------------------------
class ToolRequest(BaseModel):
    request: str = Field(description='what to draw, change or ask, in plain words, e.g. "draw a dog on the grass"')


class ChatGenTool(BaseTool):
    """chatgen as a tool an agent calls: every call is the next turn of one conversation (`messages`).

    The tool message's content is the reply's sentence (what the agent's model reads); its
    artifact is the reply `AIMessage`, picture included (`reply_image(msg.artifact)`). A request
    chatgen cannot take comes back as the one-sentence error, for the agent to read."""

    name: str = "chatgen"
    description: str = Field(default_factory=lambda: render_prompt("langchain_tool"))  # prompts/langchain_tool.txt
    args_schema: type[BaseModel] = ToolRequest
    response_format: str = "content_and_artifact"
    handle_tool_error: bool = True
    model: Runnable  # a ChatGenChatModel, or one with bound parameters (llm.bind(seed=1))
    messages: list[BaseMessage] = Field(default_factory=list)  # the conversation so far; clear it to start over

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)  # one turn at a time

    def _run(self, request: str, run_manager=None) -> tuple[str, AIMessage]:
        with self._lock:
            asked = [*self.messages, HumanMessage(request)]
            try:
                reply = self.model.invoke(asked)
            except ChatgenError as e:
                raise ToolException(str(e)) from None
            self.messages = [*asked, reply]
        image = reply_image(reply)
        note = f" [a {image.width}x{image.height} picture]" if image is not None else ""
        return (reply.text + note).strip(), reply
