"""The server side shared by the Gradio UI and the HTTP / MCP API.

- `ModelSet`: the configured assistants by name, loaded on first use.
- `stream_turn`: one turn through `Assistant.stream`, under `@spaces.GPU` on ZeroGPU hardware.
- `SessionStore`: API sessions kept on the server by id (least recently used ones dropped).
- `ChatAPI` + `add_api`: named endpoints (`/new_session`, `/chat`, `/undo`, ...) for
  `gradio_client` and MCP clients; every error is one sentence (`gr.Error`).

A scripted conversation from Python:

    from gradio_client import Client
    c = Client("http://127.0.0.1:7860/")
    sid = c.predict(api_name="/new_session")
    text, image_path, info = c.predict(sid, "draw a dog on the grass", None, None, 7, api_name="/chat")
"""

from __future__ import annotations

import functools
import itertools
import json
import shutil
import tempfile
import threading
import uuid
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Iterator, Mapping


from .assistant import Assistant, Reply
from .conversation import Message, Session, Turn
from .errors import ChatgenError
from .images import load_image, load_mask, save_png

MAX_ARCHIVE_BYTES = 1 << 30  # the largest unpacked session archive we import (1 GiB)
MAX_ARCHIVE_FILES = 10_000  # the most files a session archive may hold


# ---- models ---------------------------------------------------------------------------------------
class ModelSet:
    """Assistants by name; an entry may be a loader called once on first use."""

    _registry: dict[str, "ModelSet"] = {}  # key -> set, so a GPU worker process can find it by key
    _ids = itertools.count()

    def __init__(self, models: "Assistant | Mapping[str, Assistant | Callable[[], Assistant]] | ModelSet", default: str | None = None):
        if isinstance(models, Assistant):
            models = {models.backend.name.split(":")[1] if models.backend.name.count(":") >= 2 else models.backend.name: models}
        if not models:
            raise ChatgenError("no model configured: pass an Assistant or a dict name -> Assistant")
        self._entries: dict[str, Assistant | Callable[[], Assistant]] = dict(models)  # name -> assistant or loader
        self.names = list(self._entries)  # in the order given; the first one is the default
        self.default = default or self.names[0]  # the model a new conversation uses
        if self.default not in self._entries:
            raise ChatgenError(f"default model {self.default!r} is not one of {self.names}")
        self._lock = threading.Lock()  # one load at a time
        self._plain: dict[str, Assistant] = {}  # name -> the same model without its refiner
        self.key = f"models-{next(self._ids)}"  # registry key
        ModelSet._registry[self.key] = self

    @classmethod
    def of(cls, models) -> "ModelSet":
        return models if isinstance(models, ModelSet) else cls(models)

    def get(self, name: str | None = None, refine: bool = True) -> Assistant:
        """The assistant called `name` (default: the first one), loading it if needed; with
        refine=False, the same model without its refiner."""
        name = name or self.default
        if not refine:
            full = self.get(name)
            if full.refiner is None:
                return full
            with self._lock:
                if name not in self._plain:
                    self._plain[name] = Assistant(full.backend, None, full.params)
                return self._plain[name]
        if name not in self._entries:
            raise ChatgenError(f"unknown model {name!r}; choose one of: {', '.join(self.names)}")
        entry = self._entries[name]
        if isinstance(entry, Assistant):
            return entry
        with self._lock:
            entry = self._entries[name]
            if not isinstance(entry, Assistant):
                entry = entry()
                if not isinstance(entry, Assistant):
                    raise ChatgenError(f"the loader of model {name!r} returned {type(entry).__name__}, not an Assistant")
                self._entries[name] = entry
        return entry

    def loaded(self, name: str | None = None) -> bool:
        return isinstance(self._entries.get(name or self.default), Assistant)


# ---- one turn -----------------------------------------------------------------------------------
def _stream_turn(models_key: str, model: str | None, session: Session, message: Message, params: dict, cancel: threading.Event | None, refine: bool = True):
    """The GPU part of a turn: `Assistant.stream`'s items, then the (updated) session.

    On ZeroGPU this runs in a worker process: arguments and items are pickled, so the session the
    caller passed is not the one changed here; the caller adopts the session yielded last.
    """
    assistant = ModelSet._registry[models_key].get(model, refine)
    yield from assistant.stream(session, message, params, cancel)
    yield session


def stream_turn(models: ModelSet, model: str | None, session: Session, message: Message, params: dict, cancel: threading.Event | None = None, refine: bool = True) -> Iterator:
    """Check the message here (one-sentence errors), then stream the turn: `Assistant.stream`'s
    events, the `Reply`, and last the session (adopt it: on ZeroGPU it is an updated copy)."""
    from .space import gpu

    assistant = models.get(model, refine)
    message = assistant.check_message(session, message)
    assistant.merge_params(params)  # raises on a bad parameter before any GPU time is spent
    fn = gpu(_stream_turn)
    if fn is not _stream_turn:
        cancel = None  # a threading.Event cannot cross the process boundary; closing the stream cancels
    yield from fn(models.key, model, session, message, params, cancel, refine)


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


# ---- session archives ---------------------------------------------------------------------------
def export_zip(session: Session, folder: str | Path, name: str = "chatgen-session") -> Path:
    """Save the session into `folder/name.zip` (session.json + one PNG per image)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        session.save(Path(tmp) / "session")
        archive = shutil.make_archive(str(folder / name), "zip", root_dir=Path(tmp) / "session")
    return Path(archive)


def import_zip(path: str | Path) -> Session:
    """Read an archive written by `export_zip` (or any zip of a saved session folder)."""
    p = Path(path)
    if not p.is_file():
        raise ChatgenError(f"session archive not found: {p.name}")
    if not zipfile.is_zipfile(p):
        raise ChatgenError(f"{p.name} is not a zip archive; export a session first and upload that file")
    with zipfile.ZipFile(p) as z, tempfile.TemporaryDirectory() as tmp:
        infos = z.infolist()
        if len(infos) > MAX_ARCHIVE_FILES or sum(i.file_size for i in infos) > MAX_ARCHIVE_BYTES:
            raise ChatgenError(f"{p.name} is too large to be a chatgen session")
        root = Path(tmp).resolve()
        for info in infos:  # never write outside the temporary folder
            target = (root / info.filename).resolve()
            if root != target and root not in target.parents:
                raise ChatgenError(f"{p.name} holds an unsafe path ({info.filename})")
        try:
            z.extractall(root)
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise ChatgenError(f"{p.name} is a damaged zip archive ({e})") from None
        found = sorted(root.rglob("session.json"), key=lambda f: len(f.parts))
        if not found:
            raise ChatgenError(f"{p.name} holds no chatgen session (session.json is missing)")
        try:
            return Session.load(found[0].parent)
        except ChatgenError as e:
            raise ChatgenError(str(e).replace(str(found[0]), "session.json").replace(str(found[0].parent), p.name)) from None


# ---- API sessions ---------------------------------------------------------------------------------
class SessionStore:
    """API sessions by id; beyond `capacity` the least recently used one is dropped."""

    def __init__(self, capacity: int = 256, on_drop: Callable[[str], None] | None = None):
        if capacity < 1:
            raise ChatgenError(f"session capacity must be at least 1, got {capacity}")
        self.capacity = capacity  # how many sessions are kept
        self.on_drop = on_drop  # called with the id of a dropped session (e.g. to delete its files)
        self._items: OrderedDict[str, tuple[Session, threading.Lock]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, sid: str) -> bool:
        return sid in self._items

    def new(self, session: Session | None = None) -> str:
        sid = uuid.uuid4().hex
        dropped = []
        with self._lock:
            self._items[sid] = (session or Session(), threading.Lock())
            while len(self._items) > self.capacity:
                dropped.append(self._items.popitem(last=False)[0])
        for d in dropped:
            if self.on_drop:
                self.on_drop(d)
        return sid

    def get(self, sid: str) -> tuple[Session, threading.Lock]:
        """The session and its lock (hold the lock while changing the session)."""
        with self._lock:
            if not isinstance(sid, str) or sid not in self._items:
                raise ChatgenError(f"unknown session id {sid!r}: call /new_session first (the server keeps the {self.capacity} most recent sessions)")
            self._items.move_to_end(sid)
            return self._items[sid]


def history_dict(session: Session, session_id: str | None = None) -> dict:
    """The current branch as plain JSON (what `/history` returns)."""
    turns = []
    for i, t in enumerate(session.path(), 1):
        turns.append({"turn": i, "id": t.id, "user": t.user_text, "user_image": t.user_image is not None, "masked": t.user_mask is not None, "assistant": t.assistant_text, "image": t.assistant_image is not None, "seed": t.params.get("seed")})
    return {"session_id": session_id, "head": session.head, "turns": turns, "can_undo": session.can_undo, "can_redo": session.can_redo, "branches": len(session.branches())}


def turn_png_text(turn: Turn) -> dict[str, str]:
    """The PNG text chunk of a stored reply image (the same as `Reply.png_text()`)."""
    meta = turn.params.get("metadata")
    return {"chatgen": json.dumps(meta, sort_keys=True)} if meta else {}


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

    def __init__(self, models, folder: str | Path | None = None, capacity: int = 256):
        self.models = ModelSet.of(models)
        self.folder = Path(folder or tempfile.mkdtemp(prefix="chatgen-api-"))  # reply PNGs and archives, one subfolder per session
        self.store = SessionStore(capacity, on_drop=lambda sid: shutil.rmtree(self.folder / sid, ignore_errors=True))

    def new_session(self, system: str = "") -> str:
        """Start a conversation kept on the server and return its id (pass it to every other call).

        Args:
            system: an optional system prompt for this conversation.
        """
        return self.store.new(Session(system=system or ""))

    def chat(self, session_id: str, text: str, image: str | None = None, mask: str | None = None, seed: float | None = -1, temperature: float | None = None, top_k: float | None = None, cfg_scale: float | None = None, model: str | None = "") -> tuple[str, str | None, dict]:
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
        """
        session, lock = self.store.get(session_id)
        upload = _read(load_image, image, what="uploaded image") if image else None
        painted = _read(load_mask, mask) if mask else None
        params = make_params(seed, temperature, top_k, cfg_scale)
        with lock:
            reply = None
            for item in stream_turn(self.models, model or None, session, Message(text or "", upload, painted), params):
                if isinstance(item, Reply):
                    reply = item
                elif isinstance(item, Session) and item is not session:
                    session = self._adopt(session_id, item)
        assert reply is not None and reply.turn_id is not None
        path = None
        if reply.image is not None:
            name = f"chatgen-{reply.turn_id}-seed{reply.metadata.get('seed')}.png"
            path = str(save_png(reply.image, self.folder / session_id / name, reply.png_text()))
        info = {"turn_id": reply.turn_id, "seed": reply.metadata.get("seed"), "model": reply.metadata.get("model"), "metadata": reply.metadata}
        return reply.text, path, info

    def _adopt(self, sid: str, session: Session) -> Session:
        """Replace a stored session by its updated copy (from a GPU worker process)."""
        with self.store._lock:
            _, lock = self.store._items[sid]
            self.store._items[sid] = (session, lock)
        return session

    def undo(self, session_id: str) -> dict:
        """Take back the last turn (redo puts it back); returns the conversation history.

        Args:
            session_id: the id returned by new_session.
        """
        session, lock = self.store.get(session_id)
        with lock:
            session.undo()
            return history_dict(session, session_id)

    def redo(self, session_id: str) -> dict:
        """Put back the turn undone last; returns the conversation history.

        Args:
            session_id: the id returned by new_session.
        """
        session, lock = self.store.get(session_id)
        with lock:
            session.redo()
            return history_dict(session, session_id)

    def branch(self, session_id: str, turn: float) -> dict:
        """Continue from after turn N of the current branch (0 = from the start); the next message starts a new branch.

        Args:
            session_id: the id returned by new_session.
            turn: the 1-based turn to continue from.
        """
        session, lock = self.store.get(session_id)
        with lock:
            session.branch(_whole(turn, "turn"))
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
            return history_dict(session, session_id)

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
            return str(export_zip(session, self.folder / session_id, f"chatgen-session-{session_id[:8]}"))

    def import_session(self, archive: str) -> str:
        """Load a conversation archive (from export_session or the UI) and return its new session id.

        Args:
            archive: a zip file written by export_session.
        """
        if not archive:
            raise ChatgenError("no archive given: upload a .zip written by export_session")
        return self.store.new(import_zip(archive))


def _read(loader, path: str, **kwargs):
    """Load an uploaded file; errors name the file, not the server's temporary path."""
    try:
        return loader(path, **kwargs)
    except ChatgenError as e:
        raise ChatgenError(str(e).replace(str(path), Path(path).name)) from None


def _whole(x, what: str) -> int:
    try:
        if float(x) != int(float(x)):
            raise ValueError
        return int(float(x))
    except (TypeError, ValueError):
        raise ChatgenError(f"{what} must be a whole number, got {x!r}") from None


def add_api(api: ChatAPI, concurrency_limit: int | None = 1, concurrency_id: str = "generate") -> None:
    """Register the API endpoints in the current `gr.Blocks` (on hidden components)."""
    import gradio as gr

    with gr.Column(visible=False):
        sid = gr.Textbox(label="session_id")
        system = gr.Textbox(label="system", value="")
        text = gr.Textbox(label="text")
        image = gr.File(label="image", file_types=["image"], type="filepath")
        mask = gr.File(label="mask", file_types=["image"], type="filepath")
        seed = gr.Number(label="seed", value=-1, precision=0)
        temperature = gr.Number(label="temperature", value=None)
        top_k = gr.Number(label="top_k", value=None, precision=0)
        cfg = gr.Number(label="cfg_scale", value=None)
        model = gr.Textbox(label="model", value="")
        turn = gr.Number(label="turn", precision=0)
        turn_id = gr.Textbox(label="turn_id")
        archive = gr.File(label="archive", file_types=[".zip"], type="filepath")
        out_text = gr.Textbox(label="reply text")
        out_image = gr.Image(label="reply image", type="filepath", format="png")
        out_info = gr.JSON(label="details")
        out_history = gr.JSON(label="history")
        out_sid = gr.Textbox(label="session_id")
        out_file = gr.File(label="archive")
        trigger = gr.Button()

    light = dict(concurrency_limit=None, show_progress="hidden")
    trigger.click(_api(api.new_session), [system], [out_sid], api_name="new_session", **light)
    trigger.click(_api(api.chat), [sid, text, image, mask, seed, temperature, top_k, cfg, model], [out_text, out_image, out_info], api_name="chat", concurrency_limit=concurrency_limit, concurrency_id=concurrency_id, show_progress="hidden")
    trigger.click(_api(api.undo), [sid], [out_history], api_name="undo", **light)
    trigger.click(_api(api.redo), [sid], [out_history], api_name="redo", **light)
    trigger.click(_api(api.branch), [sid, turn], [out_history], api_name="branch", **light)
    trigger.click(_api(api.checkout), [sid, turn_id], [out_history], api_name="checkout", **light)
    trigger.click(_api(api.history), [sid], [out_history], api_name="history", **light)
    trigger.click(_api(api.export_session), [sid], [out_file], api_name="export_session", **light)
    trigger.click(_api(api.import_session), [archive], [out_sid], api_name="import_session", **light)
