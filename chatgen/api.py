"""The HTTP / MCP API: named endpoints for `gradio_client` and MCP clients.

`ChatAPI` holds the endpoint functions as plain methods (tests call them directly) over a
`ModelSet` and a `SessionStore` of server-side conversations; `add_api` registers them in the
current `gr.Blocks`. Every error reaches the client as one sentence (`gr.Error`).

A scripted conversation from Python:

    from gradio_client import Client
    c = Client("http://127.0.0.1:7860/")
    sid = c.predict(api_name="/new_session")
    text, image_path, info = c.predict(session_id=sid, text="draw a dog on the grass", seed=7, api_name="/chat")

With a data folder (`chatgen ui --data-dir DIR`) every session is saved after each completed
change and is back, by the same id, after the server restarts; `/image` fetches a turn's picture again.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

from .autosave import SessionFolder
from .conversation import Message, Session, Turn
from .errors import ChatgenError
from .text import clean_text
from .images import read_image
from .limits import Limits, TurnLimiter, check_upload_size
from .models import ModelSet
from .session_store import SessionStore


# ---- values from a form or a client --------------------------------------------------------------
def make_params(seed=None, temperature=None, top_k=None, cfg_scale=None) -> dict:
    """Generation parameters from UI/API values: a seed of None or below 0 means a random one."""
    p: dict = {}
    try:
        if seed is not None and seed != "" and float(seed) >= 0:
            if float(seed) != int(float(seed)):
                raise ChatgenError(f"seed must be a whole number, got {seed}")
            p["seed"] = int(float(seed))
        if temperature is not None:
            p["temperature"] = float(temperature)
        if top_k is not None:
            p["top_k"] = int(top_k)
        if cfg_scale is not None:
            p["cfg_scale"] = float(cfg_scale)
    except (TypeError, ValueError) as e:
        raise ChatgenError(f"generation settings must be numbers ({e})") from None
    return p


def make_refine(refine=True, strength=None) -> bool | float:
    """`ModelSet`'s refine= from UI/API values: False (off), True (the refiner as configured) or a
    strength in (0, 1]; a strength of None, empty or below 0 keeps the configured one."""
    if refine is None or refine == "":
        refine = True
    if isinstance(refine, str):
        if refine.strip().lower() not in ("true", "false", "on", "off", "1", "0"):
            raise ChatgenError(f"refine must be true or false, got {refine!r}")
        refine = refine.strip().lower() in ("true", "on", "1")
    if not refine:
        return False
    if strength is None or strength == "":
        return True
    try:
        value = float(strength)
    except (TypeError, ValueError):
        raise ChatgenError(f"refine_strength must be a number between 0 and 1, got {strength!r}") from None
    if value < 0:
        return True
    if not 0 < value <= 1:
        raise ChatgenError(f"refine_strength must be above 0 and at most 1, got {strength!r}")
    return value


def history_dict(session: Session, session_id: str | None = None) -> dict:
    """The current branch as plain JSON (what `/history` returns)."""
    turns = []
    for i, t in enumerate(session.path(), 1):
        turns.append({"turn": i, "id": t.id, "user": t.user_text, "user_image": t.user_image is not None, "masked": t.user_mask is not None, "assistant": t.assistant_text, "image": t.assistant_image is not None, "seed": t.params.get("seed")})
    return {"session_id": session_id, "head": session.head, "turns": turns, "can_undo": session.can_undo, "can_redo": session.can_redo, "branches": len(session.branches())}


def _api(fn):
    """Endpoint wrapper: a ChatgenError reaches the client as one sentence, not a traceback."""
    import gradio as gr

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ChatgenError as e:
            raise gr.Error(str(e), print_exception=False) from None

    return wrapper


class ChatAPI:
    """The endpoint functions; the methods are plain Python (tests call them directly)."""

    def __init__(self, models: ModelSet, folder: str | Path | None = None, capacity: int = 256, data_dir: str | Path | None = None, limits: Limits | None = None):
        self.models = ModelSet.of(models)  # the configured models
        self.limits = limits or Limits()  # upload size and turns per minute (per session id)
        self.turns = TurnLimiter(self.limits.turns_per_minute)  # turns started per session id
        self.folder = Path(folder or tempfile.mkdtemp(prefix="chatgen-api-"))  # reply PNGs and archives, one subfolder per session
        saved = SessionFolder(Path(data_dir) / "api") if data_dir is not None else None  # sessions on disk (None: in memory only)
        self.store = SessionStore(capacity, on_drop=lambda sid: shutil.rmtree(self.folder / sid, ignore_errors=True), saved=saved)  # sessions by id

    def new_session(self, system: str = "") -> str:
        """Start a conversation kept on the server and return its id (pass it to every other call).

        Args:
            system: an optional system prompt for this conversation.
        """
        return self.store.new(Session(system=clean_text(system, "the system prompt")))

    def chat(self, session_id: str, text: str, image: str | None = None, mask: str | None = None, seed: float | None = -1, temperature: float | None = None, top_k: float | None = None, cfg_scale: float | None = None, model: str | None = "", refine: bool | None = True, refine_strength: float | None = -1) -> tuple[str, str | None, dict]:
        """Send one message (text, optionally an image and a mask) and get the reply: text, image, and details.

        Args:
            session_id: the id returned by new_session.
            text: the request or question, e.g. "draw a dog on the grass" or "make the dog a cat".
            image: an optional image file to edit or ask about.
            mask: an optional mask image; only its painted (non-black or opaque) region may change.
            seed: random seed for a reproducible reply; -1 picks one.
            temperature: sampling temperature (0 = greedy); empty keeps the model default.
            top_k: sample among the k most likely tokens (0 = off); empty keeps the model default.
            cfg_scale: classifier-free guidance for images (1 = off); empty keeps the model default.
            model: which configured model answers; empty = the default.
            refine: redraw the reply picture with the server's diffusion refiner, when it has one (default true).
            refine_strength: how much the refiner redraws, above 0 and at most 1; -1 keeps the server's setting.
        """
        session, lock = self.store.get(session_id)
        upload = read_upload(image, "uploaded image", max_bytes=self.limits.max_upload_bytes) if image else None
        painted = read_upload(mask, "mask", mask=True, max_bytes=self.limits.max_upload_bytes) if mask else None
        params = make_params(seed, temperature, top_k, cfg_scale)
        refine = make_refine(refine, refine_strength)
        self.turns.take(session_id)  # the visitor is the session id; a refusal changes nothing
        with lock:
            *_, reply = self.models.stream(session, Message(text or "", upload, painted), params, model=model or None, refine=refine)
            session.append(reply.turn)
            self.store.save(session_id, session)  # only a completed turn is ever written
        path = self._png(session_id, session, reply.turn) if reply.image is not None else None
        info = {"turn_id": reply.turn_id, "seed": reply.metadata.get("seed"), "model": reply.metadata.get("model"), "metadata": reply.metadata}
        return reply.text, path, info

    def undo(self, session_id: str) -> dict:
        """Take back the last turn (redo puts it back); returns the conversation history.

        Args:
            session_id: the id returned by new_session.
        """
        session, lock = self.store.get(session_id)
        with lock:
            session.undo()
            self.store.save(session_id, session)
            return history_dict(session, session_id)

    def redo(self, session_id: str) -> dict:
        """Put back the turn undone last; returns the conversation history.

        Args:
            session_id: the id returned by new_session.
        """
        session, lock = self.store.get(session_id)
        with lock:
            session.redo()
            self.store.save(session_id, session)
            return history_dict(session, session_id)

    def branch(self, session_id: str, turn: float) -> dict:
        """Continue from after turn N of the current branch (0 = from the start); the next message starts a new branch.

        Args:
            session_id: the id returned by new_session.
            turn: the 1-based turn to continue from.
        """
        session, lock = self.store.get(session_id)
        with lock:
            session.branch(whole_number(turn, "turn"))
            self.store.save(session_id, session)
            return history_dict(session, session_id)

    def checkout(self, session_id: str, turn_id: str) -> dict:
        """Continue from any earlier turn by its id (as listed by history), e.g. an older image.

        Args:
            session_id: the id returned by new_session.
            turn_id: a turn id such as "t2".
        """
        session, lock = self.store.get(session_id)
        with lock:
            session.checkout(turn_id or None)
            self.store.save(session_id, session)
            return history_dict(session, session_id)

    def image(self, session_id: str, turn_id: str) -> str:
        """The PNG of a turn's reply image (with its generation parameters), e.g. after reconnecting.

        Args:
            session_id: the id returned by new_session.
            turn_id: a turn id such as "t2" (as listed by history).
        """
        session, lock = self.store.get(session_id)
        with lock:
            turn = session.turns.get(turn_id) if isinstance(turn_id, str) else None
            if turn is None or turn.assistant_image is None:
                raise ChatgenError(f"no reply image for turn {turn_id!r} in this session")
            return self._png(session_id, session, turn)

    def _png(self, session_id: str, session: Session, turn: Turn) -> str:
        """A reply image as a PNG file to send (the same pixels and parameters for the same turn,
        before and after a restart; signed with a C2PA manifest when the assistant signs images)."""
        name = f"chatgen-{turn.id}-seed{turn.params.get('seed')}.png"
        path = self.folder / session_id / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.models.get().reply_png(session, turn))
        return str(path)

    def history(self, session_id: str) -> dict:
        """The current branch of the conversation: every turn's text, whether it has an image, and its seed.

        Args:
            session_id: the id returned by new_session.
        """
        session, lock = self.store.get(session_id)
        with lock:
            return history_dict(session, session_id)

    def export_session(self, session_id: str) -> str:
        """The whole conversation (every branch and image) as a zip archive.

        Args:
            session_id: the id returned by new_session.
        """
        session, lock = self.store.get(session_id)
        with lock:
            return str(session.write_zip(self.folder / session_id / f"chatgen-session-{session_id[:8]}.zip"))

    def import_session(self, archive: str) -> str:
        """Load a conversation archive (from export_session or the UI) and return its new session id.

        Args:
            archive: a zip file written by export_session.
        """
        if not archive:
            raise ChatgenError("no archive given: upload a .zip written by export_session")
        check_upload_size(archive, self.limits.max_upload_bytes, "the archive")
        return self.store.new(Session.read_zip(archive))


def read_upload(path: str, what: str, mask: bool = False, max_bytes: int | None = None):
    """An uploaded file through `read_image` (its errors name the file, not the server's temporary path);
    a file over `max_bytes` is refused before it is opened."""
    if not isinstance(path, (str, Path)):
        raise ChatgenError(f"{what} must be an uploaded file, got {type(path).__name__}")
    if max_bytes is not None:
        check_upload_size(path, max_bytes, what)
    return read_image(path, what, mask=mask)


def whole_number(x, what: str) -> int:
    """A form's number that must be whole (1.0 is fine, 1.5 is not), or a one-line error."""
    try:
        if float(x) != int(float(x)):
            raise ValueError
        return int(float(x))
    except (TypeError, ValueError):
        raise ChatgenError(f"{what} must be a whole number, got {x!r}") from None


def add_api(api: ChatAPI, concurrency_limit: int | None = 1, concurrency_id: str = "generate") -> None:
    """Register the API endpoints in the current `gr.Blocks`.

    The endpoints that take or return only text and numbers are `gr.api` functions (typed by
    their signatures). `/chat`, `/export_session` and `/import_session` carry files, and
    `gr.api` skips Gradio's pre- and postprocessing: an uploaded file would arrive as a
    client-chosen server path that nothing checks, and a returned PNG as a bare server path the
    client cannot download. So those three (and `/image`) keep file components (hidden) that upload, check and
    serve files the usual way."""
    import gradio as gr

    light = dict(concurrency_limit=None)
    for fn in (api.new_session, api.undo, api.redo, api.branch, api.checkout, api.history):
        gr.api(_api(fn), api_name=fn.__name__, **light)

    with gr.Column(visible=False):
        sid = gr.Textbox(label="session_id")
        text = gr.Textbox(label="text")
        image = gr.File(label="image", file_types=["image"], type="filepath")
        mask = gr.File(label="mask", file_types=["image"], type="filepath")
        seed = gr.Number(label="seed", value=-1, precision=0)
        temperature = gr.Number(label="temperature", value=None)
        top_k = gr.Number(label="top_k", value=None, precision=0)
        cfg = gr.Number(label="cfg_scale", value=None)
        model = gr.Textbox(label="model", value="")
        refine = gr.Checkbox(label="refine", value=True)
        refine_strength = gr.Number(label="refine_strength", value=-1)
        archive = gr.File(label="archive", file_types=[".zip"], type="filepath")
        out_text = gr.Textbox(label="reply text")
        out_image = gr.Image(label="reply image", type="filepath", format="png")
        out_info = gr.JSON(label="details")
        out_sid = gr.Textbox(label="session_id")
        out_file = gr.File(label="archive")
        turn_id = gr.Textbox(label="turn_id")
        trigger = gr.Button()

    trigger.click(_api(api.chat), [sid, text, image, mask, seed, temperature, top_k, cfg, model, refine, refine_strength], [out_text, out_image, out_info], api_name="chat", concurrency_limit=concurrency_limit, concurrency_id=concurrency_id, show_progress="hidden")
    trigger.click(_api(api.image), [sid, turn_id], [out_image], api_name="image", show_progress="hidden", **light)
    trigger.click(_api(api.export_session), [sid], [out_file], api_name="export_session", show_progress="hidden", **light)
    trigger.click(_api(api.import_session), [archive], [out_sid], api_name="import_session", show_progress="hidden", **light)
