"""The Gradio chat UI: `build_demo(assistant) -> gr.Blocks`; nothing runs at import time.

Layout: the conversation on the left (about two thirds); on the right the current image (it grows
row by row while it is drawn), a mask brush over it, the version strip of the current branch, the
sampling settings and session export / import.

Each browser tab holds its own `UIState` (a `Session` plus a cancel flag) in a `gr.State`; nothing
is shared between visitors. The handlers are the plain methods of `ChatUI`: they take a `UIState`
and component values and return (or, while generating, yield) one value per `VIEW` component, so
tests call them without a browser or a server. The same Blocks also serve the API endpoints of
`chatgen.api` (`/new_session`, `/chat`, ...) for `gradio_client` and MCP clients.
"""

from __future__ import annotations

import copy
import logging
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .api import ChatAPI, ModelSet, add_api, export_zip, import_zip, make_params, stream_turn, turn_png_text
from .assistant import Assistant, Reply
from .backends.base import GenerationParams, ImageDone, ImageRow, ImageStart, TextDelta
from .conversation import Message, Session, Turn
from .errors import ChatgenError
from .images import check_image, load_image, mask_from_image, save_png

log = logging.getLogger(__name__)


def _refuse_while_busy(state) -> bool:
    """True (after telling the user) when a reply is still streaming in this tab."""
    if state.busy:
        gr.Warning("a reply is still being generated: wait for it or press Stop")
    return state.busy


class _Gradio:
    """`gr.X` imports gradio on first use, so `chatgen --help` does not pay for it."""

    def __getattr__(self, name):
        import gradio

        return getattr(gradio, name)


gr = _Gradio()

# The components every handler updates, in the order handlers return them.
VIEW = ("chat", "progress", "box", "image", "download", "editor", "versions", "branches", "status", "state")
EDITOR_SIZE = 384  # pixels per side of the mask canvas (the current image is scaled up to it)
FILES_ROOT = Path(tempfile.gettempdir()) / "chatgen-ui"  # reply PNGs per visitor (inside gradio's allowed temp dir)

CSS = """
#cg-header h1 {margin: 0; font-size: 1.35rem;}
#cg-header p {margin: 0; opacity: .75;}
.cg-progress {height: 8px; border-radius: 4px; background: var(--neutral-200); overflow: hidden; margin: 2px 0 4px 0;}
.cg-progress > div {height: 100%; background: var(--color-accent); transition: width .15s linear;}
.cg-progress-label {font-size: .85rem; opacity: .8;}
#cg-status {font-size: .85rem; opacity: .8; min-height: 1.2em;}
#cg-chat img, #cg-image img, #cg-versions img {image-rendering: pixelated;}
#cg-chat .image-frame img {width: 224px; height: 224px; object-fit: contain;}
#cg-image .image-frame, #cg-image .image-frame img {width: 100%; height: 100%; object-fit: contain;}
#cg-versions .grid-container {grid-template-columns: repeat(auto-fill, 92px) !important; gap: 8px;}
#cg-versions .thumbnail-item {width: 92px; height: 92px;}
#cg-versions .caption-label {font-size: .7rem; padding: 1px 5px; bottom: 3px;}
"""


def theme():
    """A calm theme with system fonts (no web font downloads)."""
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="slate", font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def launch_options() -> dict:
    """What gradio 6 takes at `launch()` rather than in `gr.Blocks`: theme, CSS, allowed paths."""
    FILES_ROOT.mkdir(parents=True, exist_ok=True)
    return {"theme": theme(), "css": CSS, "allowed_paths": [str(FILES_ROOT)]}


# ---- per-visitor state ---------------------------------------------------------------------------
class UIState:
    """One browser tab's conversation: the session, the cancel flag, the PNG files shown."""

    def __init__(self, session: Session | None = None):
        self.session = session or Session()  # the branchable history
        self.cancel = threading.Event()  # set by Stop; a fresh one per reply
        self.busy = False  # a reply is being generated
        self.msg_turns: list[int] = []  # chat message index -> index of its turn in the branch
        self._folder: Path | None = None  # created on first use
        self._files: dict[tuple, str] = {}  # (turn id, kind, image id) -> PNG path
        self._epoch = 0  # bumped when the session is replaced (file names stay unique)
        self._keep: list[Image.Image] = []  # images whose PNG files are cached by id
        self._mask_bg: tuple | None = None  # (key, PNG path, source image) of the mask canvas

    def __deepcopy__(self, memo):  # gr.State deep-copies its initial value; events and locks cannot be
        return UIState(copy.deepcopy(self.session, memo))

    @property
    def folder(self) -> Path:
        if self._folder is None:
            self._folder = FILES_ROOT / uuid.uuid4().hex
            self._folder.mkdir(parents=True, exist_ok=True)
        return self._folder

    def replace(self, session: Session) -> None:
        """Start over on another session (new conversation, import)."""
        self.session = session
        self._files.clear()
        self._epoch += 1

    def file(self, turn: Turn, kind: str) -> str:
        """The PNG of one of a turn's images (the reply image carries its generation parameters)."""
        image = getattr(turn, kind)
        key = (turn.id, kind, id(image), self._epoch)
        if key not in self._files:
            if kind == "assistant_image":
                seed = turn.params.get("seed")
                name = f"chatgen-{turn.id}" + (f"-seed{seed}" if seed is not None else "") + ".png"
                text = turn_png_text(turn)
            else:
                name, text = f"chatgen-{turn.id}-{kind.replace('_', '-')}.png", None
            sub = self.folder / str(self._epoch)
            self._files[key] = str(save_png(image, sub / name, text))
        return self._files[key]

    def png(self, image: Image.Image, name: str) -> str:
        """A PNG file of an in-memory image (a preview, an upload), written once per image.

        Gradio re-encodes a PIL value into the same cache file every time it is sent, racing the
        browser's download of that file; a path is copied into the cache once.
        """
        key = ("png", id(image), self._epoch)
        if key not in self._files:
            self._files[key] = str(save_png(image, self.folder / "tmp" / f"{uuid.uuid4().hex[:8]}-{name}"))
            self._keep.append(image)  # the id stays unique while the key is in use
            if len(self._keep) > 256:  # previews come and go: forget the oldest
                old = self._keep.pop(0)
                self._files.pop(("png", id(old), self._epoch), None)
        return self._files[key]

    def delete_files(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)


def _delete_state(state) -> None:
    if isinstance(state, UIState):
        state.delete_files()


@dataclass
class Settings:
    """The sampling settings panel."""

    model: str | None = None  # which configured model answers (None: the default)
    seed: float | None = -1  # -1 = a random seed each turn
    temperature: float | None = None  # None: the model default
    top_k: float | None = None  # None: the model default
    cfg_scale: float | None = None  # None: the model default
    refine: bool = False  # run the diffusion refiner (only when the model has one)

    def params(self) -> dict:
        return make_params(self.seed, self.temperature, self.top_k, self.cfg_scale)


# ---- input helpers ------------------------------------------------------------------------------
def read_box(box) -> tuple[str, list[str]]:
    """The multimodal textbox value -> (text, file paths)."""
    if box is None:
        return "", []
    if isinstance(box, str):
        return box, []
    if not isinstance(box, dict):
        raise ChatgenError(f"the message box sent {type(box).__name__}, expected text and files")
    files = []
    for f in box.get("files") or []:
        path = f.get("path") if isinstance(f, dict) else f
        if path:
            files.append(str(path))
    return str(box.get("text") or ""), files


def mask_from_editor(value) -> Image.Image | None:
    """The painted layers of the mask editor as an 'L' mask (255 = may change); None when unpainted."""
    if value is None:
        return None
    if isinstance(value, Image.Image):
        layers = [value]
    elif isinstance(value, dict):
        layers = [x for x in (value.get("layers") or []) if x is not None]
    else:
        raise ChatgenError(f"the mask editor sent {type(value).__name__}, expected painted layers")
    mask = None
    for layer in layers:
        if isinstance(layer, str):
            layer = load_image(layer, what="mask layer")
        if not isinstance(layer, Image.Image):
            raise ChatgenError("the mask could not be read: paint it again")
        check_image(layer, "mask")
        m = mask_from_image(layer)
        mask = m if mask is None else Image.fromarray(np.maximum(np.asarray(mask), np.asarray(m.resize(mask.size))))
    if mask is None or mask.getextrema()[1] == 0:
        return None
    return mask


def _progress_html(done: int, total: int, label: str) -> str:
    pct = 100.0 * done / total if total else 0.0
    return f'<div class="cg-progress-label">{label}</div><div class="cg-progress" role="progressbar" aria-valuenow="{done}" aria-valuemax="{total}"><div style="width:{pct:.1f}%"></div></div>'


# ---- the handlers -------------------------------------------------------------------------------
class ChatUI:
    """The UI's handlers as plain methods over a `UIState`."""

    def __init__(self, models):
        self.models = ModelSet.of(models)

    # ---- rendering ---------------------------------------------------------------------------
    def state(self, state) -> UIState:
        return state if isinstance(state, UIState) else UIState()

    def chat_messages(self, state: UIState) -> list[dict]:
        """The current branch in gradio's messages format (one user + one assistant message per turn)."""
        msgs, state.msg_turns = [], []
        for i, t in enumerate(state.session.path()):
            user: list = [t.user_text] if t.user_text else []
            if t.user_image is not None:
                user.append({"path": state.file(t, "user_image"), "mime_type": "image/png", "alt_text": "uploaded image"})
            if t.user_mask is not None:
                user.append("*(edit limited to the painted region)*")
            reply: list = [t.assistant_text] if t.assistant_text else []
            if t.assistant_image is not None:
                reply.append({"path": state.file(t, "assistant_image"), "mime_type": "image/png", "alt_text": f"image of turn {i + 1}"})
            msgs.append({"role": "user", "content": _one(user)})
            msgs.append({"role": "assistant", "content": _one(reply or ["*(no reply)*"])})
            state.msg_turns += [i, i]
        return msgs

    def current(self, state: UIState) -> tuple[Turn | None, str | None]:
        """The turn and image kind of the newest image in the current branch."""
        for t in reversed(state.session.path()):
            if t.assistant_image is not None:
                return t, "assistant_image"
            if t.user_image is not None:
                return t, "user_image"
        return None, None

    def versions(self, state: UIState) -> list[tuple[str, str]]:
        """The version strip: every reply image of the current branch, oldest first."""
        return [(state.file(t, "assistant_image"), f"turn {i}") for i, t in enumerate(state.session.path(), 1) if t.assistant_image is not None]

    def branch_choices(self, state: UIState) -> tuple[list[tuple[str, str]], str | None]:
        s = state.session
        choices, value = [], None
        for i, b in enumerate(s.branches(), 1):
            last = b[-1].user_text or "(image)"
            choices.append((f"Branch {i}: {len(b)} turn{'s' * (len(b) != 1)}, last: {last[:40]}", b[-1].id))
            if value is None and s.head in {t.id for t in b}:
                value = b[-1].id
        return choices, value

    def status(self, state: UIState, reply: Reply | None = None) -> str:
        s = state.session
        if not s.turns:
            return "New conversation."
        parts = [f"{len(s)} turn{'s' * (len(s) != 1)} in this branch", f"{len(s.branches())} branch{'es' * (len(s.branches()) != 1)}"]
        if reply is not None and reply.metadata:
            m = reply.metadata
            parts.append(f"last reply: seed {m.get('seed')}, {m.get('timings', {}).get('total_s', 0):.2f} s, {m.get('tokens', {}).get('new_tokens', '?')} tokens")
        return " · ".join(parts)

    def view(self, state: UIState, **override) -> tuple:
        """One value per `VIEW` component, from the session (keyword overrides win)."""
        out: dict = {}
        if "chat" not in override:
            out["chat"] = self.chat_messages(state)
        turn, kind = self.current(state)
        path = state.file(turn, kind) if turn is not None else None
        out["progress"] = ""
        out["box"] = gr.skip()
        out["image"] = path
        out["download"] = gr.update(value=path, interactive=path is not None)
        if "editor" not in override:
            out["editor"] = self.editor_value(state)
        if "versions" not in override:
            out["versions"] = self.versions(state)
        if "branches" not in override:
            choices, value = self.branch_choices(state)
            out["branches"] = gr.update(choices=choices, value=value)
        out["status"] = self.status(state)
        out["state"] = state
        out.update(override)
        return tuple(out[k] for k in VIEW)

    def mask_canvas(self, state) -> dict | None:
        """The mask editor's value for the current image (sent again when its panel opens)."""
        return self.editor_value(self.state(state))

    def editor_value(self, state: UIState):
        """The mask canvas: the current image scaled up, no paint."""
        image = state.session.last_image()
        if image is None:
            return None
        key = ("editor", id(image))
        if state._mask_bg is None or state._mask_bg[0] != key:
            bg = image.convert("RGB").resize((EDITOR_SIZE, EDITOR_SIZE), Image.Resampling.NEAREST)
            state._mask_bg = (key, state.png(bg, "mask-background.png"), image)
        path = state._mask_bg[1]
        return {"background": path, "layers": [], "composite": path}

    # ---- one reply, streamed -----------------------------------------------------------------
    def _reply(self, state: UIState, message: Message, settings: Settings, box, on_fail=None):
        """Stream one turn into the view; on an error or Stop the session is put back as it was."""
        def fail(msg: str | None, info: str | None = None):
            if on_fail is not None:
                on_fail()
            if msg:
                gr.Warning(msg)
            if info:
                gr.Info(info)
            return self.view(state, box=gr.update(value=box, interactive=True))

        if _refuse_while_busy(state):
            yield self.view(state)
            return
        # 1. Check everything before the conversation changes on screen.
        try:
            params = settings.params()
            assistant = self.models.get(settings.model)
            message = assistant.check_message(state.session, message)
            assistant.merge_params(params)
        except ChatgenError as e:
            yield fail(str(e))
            return
        # 2. Show the message and a placeholder reply; lock the box while generating.
        state.busy, state.cancel = True, threading.Event()
        history = self.chat_messages(state)
        user: list = [message.text] if message.text else []
        if message.image is not None:
            user.append({"path": state.png(message.image, "upload.png"), "mime_type": "image/png"})
        if message.mask is not None:
            user.append("*(edit limited to the painted region)*")
        text, preview, rows, reply = "", None, 0, None
        progress = _progress_html(0, 1, "Thinking…")

        def frame(status: str):
            pending = [text] if text else []
            shown = state.png(preview, "preview.png") if preview is not None else None
            if shown is not None:
                pending.append({"path": shown, "mime_type": "image/png", "alt_text": "the image so far"})
            pending = pending or ["…"]
            chat = history + [{"role": "user", "content": _one(user)}, {"role": "assistant", "content": _one(pending)}]
            return self.view(state, chat=chat, progress=progress, box=gr.update(value=None, interactive=False), image=shown if shown is not None else gr.skip(), download=gr.skip(), editor=gr.skip(), versions=gr.skip(), branches=gr.skip(), status=status)

        yield frame("generating…")
        # 3. Generate; every event updates the view.
        session = state.session
        try:
            for item in stream_turn(self.models, settings.model, session, message, params, state.cancel, refine=bool(settings.refine)):
                if isinstance(item, TextDelta):
                    text += item.text
                    yield frame("writing…")
                elif isinstance(item, ImageStart):
                    rows = item.rows
                    progress = _progress_html(0, rows, f"Drawing… 0 of {rows} rows")
                    yield frame("drawing…")
                elif isinstance(item, ImageRow):
                    if item.preview is not None:
                        preview = item.preview
                    progress = _progress_html(item.row + 1, item.rows, f"Drawing… {item.row + 1} of {item.rows} rows")
                    yield frame("drawing…")
                elif isinstance(item, ImageDone):
                    preview = item.image
                    progress = _progress_html(rows or 1, rows or 1, "Finishing…")
                    yield frame("finishing…")
                elif isinstance(item, Reply):
                    reply = item
                elif isinstance(item, Session):
                    state.session = item  # the updated copy when generation ran in a GPU worker
        except ChatgenError as e:
            state.session = session
            yield fail(str(e))
            return
        except Exception as e:  # a model failure: one line for the person, the traceback for the log
            log.exception("generation failed")
            state.session = session
            yield fail(f"generation failed ({type(e).__name__}: {e})")
            return
        finally:
            state.busy = False
        if reply is None or reply.turn_id is None:
            yield fail(None, "Stopped: nothing was saved, your message is back in the box")
            return
        # 4. The stored turn: clear the box, reset the mask canvas to the new image.
        yield self.view(state, box=gr.update(value=None, interactive=True), status=self.status(state, reply))

    # ---- events ------------------------------------------------------------------------------
    def send(self, state, box, editor, *settings):
        """Send the typed message (+ upload, + painted mask)."""
        state = self.state(state)
        try:
            text, files = read_box(box)
            if len(files) > 1:
                raise ChatgenError("attach one image per message")
            image = load_image(files[0], what="uploaded image") if files else None
            message = Message(text=text, image=image, mask=mask_from_editor(editor))
        except ChatgenError as e:
            gr.Warning(str(e))
            yield self.view(state, editor=gr.skip())
            return
        yield from self._reply(state, message, Settings(*settings), box)

    def stop(self, state) -> None:
        """Stop the reply being generated (nothing is stored)."""
        if isinstance(state, UIState):
            state.cancel.set()

    def retry(self, state, *settings):
        """Answer the last message again with a new seed; the old answer stays as a branch."""
        state = self.state(state)
        s = state.session
        if _refuse_while_busy(state):
            yield self.view(state)
            return
        if s.head is None:
            gr.Warning("nothing to retry: send a message first")
            yield self.view(state)
            return
        last = s.undo()
        settings = Settings(*settings)
        settings.seed = -1  # a new seed
        yield from self._reply(state, Message(last.user_text, last.user_image, last.user_mask), settings, None, on_fail=s.redo)

    def edit(self, state, index, text, *settings):
        """Edit an earlier message: the conversation branches before it and continues with the new text."""
        state = self.state(state)
        s = state.session
        if _refuse_while_busy(state):
            yield self.view(state)
            return
        if isinstance(index, (tuple, list)):
            index = index[0]
        path = s.path()
        if not state.msg_turns:
            self.chat_messages(state)
        if not isinstance(index, int) or not 0 <= index < len(state.msg_turns):
            gr.Warning("that message is no longer in the conversation")
            yield self.view(state)
            return
        n = state.msg_turns[index]
        old, new_text = path[n], _edited_text(text)
        old_head = s.head
        s.branch(n)
        yield from self._reply(state, Message(new_text, old.user_image, old.user_mask), Settings(*settings), None, on_fail=lambda: s.checkout(old_head))

    def undo(self, state) -> tuple:
        return self._change(state, lambda s: s.undo())

    def redo(self, state) -> tuple:
        return self._change(state, lambda s: s.redo())

    def new_chat(self, state) -> tuple:
        return self._change(state, lambda s: None, replace=Session())

    def branch_at(self, state, n) -> tuple:
        """Continue from after turn n (0 = from the start); the next message starts a new branch."""
        def go(s: Session):
            try:
                k = int(n)
            except (TypeError, ValueError):
                raise ChatgenError(f"the turn to branch from must be a number, got {n!r}") from None
            s.branch(k)

        return self._change(state, go)

    def checkout(self, state, turn_id: str | None) -> tuple:
        """Continue from any turn (a version strip image, a branch's last turn)."""
        return self._change(state, lambda s: s.checkout(turn_id))

    def select_version(self, state, index) -> tuple:
        """A click on the version strip: continue from that image."""
        state = self.state(state)
        images = state.session.images()
        if isinstance(index, (tuple, list)):
            index = index[0]
        if not isinstance(index, int) or not 0 <= index < len(images):
            gr.Warning("that image is no longer in this branch")
            return self.view(state)
        return self.checkout(state, images[index][0])

    def export(self, state):
        """The whole session (every branch) as a zip to download."""
        state = self.state(state)
        if not state.session.turns:
            gr.Warning("nothing to export yet: the conversation is empty")
            return gr.update(value=None, visible=False)
        path = export_zip(state.session, state.folder / "export" / uuid.uuid4().hex[:8], "chatgen-session")
        return gr.update(value=str(path), visible=True)

    def import_session(self, state, file) -> tuple:
        """Replace the conversation by an uploaded session zip."""
        state = self.state(state)
        if _refuse_while_busy(state):
            return self.view(state)
        try:
            path = file.get("path") if isinstance(file, dict) else getattr(file, "name", file)
            if not path:
                raise ChatgenError("no file was uploaded: choose a .zip exported from chatgen")
            session = import_zip(path)
        except ChatgenError as e:
            gr.Warning(str(e))
            return self.view(state)
        state.replace(session)
        gr.Info(f"imported {len(session.turns)} turns")
        return self.view(state)

    def _change(self, state, fn, replace: Session | None = None) -> tuple:
        state = self.state(state)
        if _refuse_while_busy(state):
            return self.view(state)
        try:
            fn(state.session)
        except ChatgenError as e:
            gr.Warning(str(e))
            return self.view(state)
        if replace is not None:
            state.replace(replace)
        return self.view(state)


def _one(items: list):
    """A message's content: one item as is, several as a list."""
    return items[0] if len(items) == 1 else items


def _edited_text(value) -> str:
    """The text of an edited chat message (gradio sends a string or a list of parts)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get("text") or value.get("value") or "")
    if isinstance(value, (list, tuple)):
        return " ".join(_edited_text(v) for v in value if isinstance(v, (str, dict)) and not (isinstance(v, dict) and ("path" in v or "file" in v))).strip()
    return "" if value is None else str(value)


# ---- the Blocks ---------------------------------------------------------------------------------
def build_demo(models, *, concurrency_limit: int = 1, api_sessions: int = 256, title: str = "chatgen") -> gr.Blocks:
    """The chat UI (and the API endpoints) over `models`: an Assistant, a dict name -> Assistant
    (or -> a loader returning one), or a ModelSet."""
    models = ModelSet.of(models)
    ui = ChatUI(models)
    default = models.get(models.default).params if models.loaded() else GenerationParams()
    has_refiner = models.loaded() and models.get().refiner is not None

    with gr.Blocks(title=title, analytics_enabled=False, fill_width=True) as demo:
        state = gr.State(UIState(), delete_callback=_delete_state)
        with gr.Row(elem_id="cg-header"):
            gr.Markdown("# chatgen\nDraw, edit and ask about images in one conversation. Try *draw a dog on the grass*, then *make the dog a cat*, then *how many animals are there?*")
        with gr.Row(equal_height=False):
            # ---- left: the conversation ----
            with gr.Column(scale=2, min_width=420):
                chat = gr.Chatbot(label="Conversation", height=640, editable="user", placeholder="**Start by asking for a drawing.** You can also attach an image to edit or ask about. Edit an earlier message (pencil) to start a new branch.", allow_file_downloads=True, buttons=["copy_all"], layout="bubble", elem_id="cg-chat")
                progress = gr.HTML("", elem_id="cg-progress")
                box = gr.MultimodalTextbox(placeholder="Describe a picture, an edit, or ask a question… (attach an image with the clip)", file_types=["image"], file_count="single", sources=["upload"], show_label=False, autofocus=True, elem_id="cg-box")
                with gr.Row():
                    stop_btn = gr.Button("■ Stop", variant="stop", size="sm", elem_id="cg-stop")
                    undo_btn = gr.Button("↶ Undo", size="sm", elem_id="cg-undo")
                    redo_btn = gr.Button("↷ Redo", size="sm", elem_id="cg-redo")
                    retry_btn = gr.Button("⟳ Retry (new seed)", size="sm", elem_id="cg-retry")
                    new_btn = gr.Button("+ New conversation", size="sm", elem_id="cg-new")
            # ---- right: the picture, the mask, the versions, the settings ----
            with gr.Column(scale=1, min_width=320):
                image = gr.Image(label="Current image", type="filepath", format="png", interactive=False, height=320, buttons=["download", "fullscreen"], elem_id="cg-image")
                with gr.Row():
                    download = gr.DownloadButton("Download PNG (with its parameters)", value=None, interactive=False, size="sm", elem_id="cg-download")
                status = gr.Markdown("", elem_id="cg-status")
                versions = gr.Gallery(label="Versions (click one to continue from it)", columns=4, height=124, allow_preview=False, fit_columns=False, object_fit="contain", buttons=["download"], elem_id="cg-versions")
                with gr.Accordion("Mask: edit only a region", open=True, elem_id="cg-mask") as mask_panel:
                    editor = gr.ImageEditor(label="Paint the area to change", type="pil", image_mode="RGBA", sources=[], transforms=[], layers=False, brush=gr.Brush(colors=[("#ff2d55", 0.6)], default_color=("#ff2d55", 0.6), color_mode="fixed", default_size=24), eraser=gr.Eraser(default_size=24), height=360, canvas_size=(EDITOR_SIZE, EDITOR_SIZE), fixed_canvas=True, elem_id="cg-editor")
                    gr.Markdown("Leave it unpainted to let the edit change the whole image. The paint is cleared after each reply.")
                with gr.Accordion("Settings", open=False, elem_id="cg-settings"):
                    model = gr.Dropdown(models.names, value=models.default, label="Model", interactive=len(models.names) > 1)
                    seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random each turn)", minimum=-1, elem_id="cg-seed")
                    temperature = gr.Slider(0.0, 2.0, value=default.temperature, step=0.05, label="Temperature (0 = greedy)")
                    top_k = gr.Slider(0, 512, value=default.top_k, step=1, label="Top-k (0 = off)")
                    cfg = gr.Slider(0.0, 10.0, value=default.cfg_scale, step=0.25, label="CFG scale for images (1 = off)")
                    refine = gr.Checkbox(value=has_refiner, label="Refine images with the diffusion refiner", visible=has_refiner)
                with gr.Accordion("Branches and session", open=False, elem_id="cg-session"):
                    branches = gr.Dropdown([], label="Branches (pick one to switch to it)", interactive=True)
                    with gr.Row():
                        branch_n = gr.Number(value=0, precision=0, minimum=0, label="Continue from after turn N", scale=2)
                        branch_btn = gr.Button("Branch here", size="sm", scale=1)
                    with gr.Row():
                        export_btn = gr.Button("Export session (.zip)", size="sm")
                        import_btn = gr.UploadButton("Import session (.zip)", file_types=[".zip"], size="sm")
                    export_file = gr.File(label="Exported session", visible=False, interactive=False)

        view = [chat, progress, box, image, download, editor, versions, branches, status, state]
        settings = [model, seed, temperature, top_k, cfg, refine]
        gen = dict(concurrency_limit=concurrency_limit, concurrency_id="generate", api_visibility="private", show_progress="hidden")
        quick = dict(api_visibility="private", show_progress="hidden", concurrency_limit=None)

        def on_edit(st, model_, seed_, temperature_, top_k_, cfg_, refine_, evt: gr.EditData):
            yield from ui.edit(st, evt.index, evt.value, model_, seed_, temperature_, top_k_, cfg_, refine_)

        def on_version(st, evt: gr.SelectData):
            return ui.select_version(st, evt.index)

        box.submit(ui.send, [state, box, editor, *settings], view, api_name="ui_send", **gen)
        chat.edit(on_edit, [state, *settings], view, api_name="ui_edit", **gen)
        chat.retry(ui.retry, [state, *settings], view, api_name="ui_retry", **gen)
        retry_btn.click(ui.retry, [state, *settings], view, api_name="ui_retry_button", **gen)
        stop_btn.click(ui.stop, [state], None, api_name="ui_stop", **quick)
        box.stop(ui.stop, [state], None, api_name="ui_stop_box", **quick)
        undo_btn.click(ui.undo, [state], view, api_name="ui_undo", **quick)
        chat.undo(ui.undo, [state], view, api_name="ui_undo_chat", **quick)
        redo_btn.click(ui.redo, [state], view, api_name="ui_redo", **quick)
        new_btn.click(ui.new_chat, [state], view, api_name="ui_new", **quick)
        chat.clear(ui.new_chat, [state], view, api_name="ui_clear", **quick)
        versions.select(on_version, [state], view, api_name="ui_version", **quick)
        branches.input(ui.checkout, [state, branches], view, api_name="ui_branch_pick", **quick)
        branch_btn.click(ui.branch_at, [state, branch_n], view, api_name="ui_branch_at", **quick)
        mask_panel.expand(ui.mask_canvas, [state], [editor], api_name="ui_mask_canvas", **quick)  # a hidden canvas does not draw its image
        export_btn.click(ui.export, [state], [export_file], api_name="ui_export", **quick)
        import_btn.upload(ui.import_session, [state, import_btn], view, api_name="ui_import", **quick)

        add_api(ChatAPI(models, folder=FILES_ROOT / f"api-{uuid.uuid4().hex[:8]}", capacity=api_sessions), concurrency_limit=concurrency_limit)
    demo.queue(max_size=64)
    return demo


# ---- CLI ----------------------------------------------------------------------------------------
def add_ui_parser(sub) -> None:
    """`chatgen ui [--model PATH ...] [--host H] [--port N] [--share] [--mcp] [--concurrency N]`."""
    p = sub.add_parser("ui", help="open the chat UI in the browser", description="Serve the chat UI (and its API) with Gradio.")
    p.add_argument("--model", metavar="PATH", action="append", help="model folder or Hub id (default: the embedded model); repeat to offer several models")
    p.add_argument("--quantize", choices=["4bit", "8bit"], help="load the language model quantized with bitsandbytes")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for everyone on the network)")
    p.add_argument("--port", type=int, default=None, help="port (default 7860, or the next free one)")
    p.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    p.add_argument("--mcp", action="store_true", help="also serve the API endpoints as MCP tools (needs: pip install -e '.[mcp]')")
    p.add_argument("--concurrency", type=int, default=1, metavar="N", help="how many replies are generated at once (default 1); more requests wait in the queue")
    p.add_argument("--api-sessions", type=int, default=256, metavar="N", help="how many API sessions the server keeps (least recently used dropped)")
    p.set_defaults(func=cmd_ui)


def model_set_from_paths(paths: list[str] | None, quantize: str | None = None) -> ModelSet:
    """Named loaders for the given model folders (the first is loaded now, the others on first use)."""
    import sys

    from .backends import load_backend
    from .defaults import default_model_path

    paths = list(paths or []) or [str(default_model_path())]
    entries: dict = {}
    for path in paths:
        name = Path(path).name or str(path)
        if name in entries:
            name = str(path)
        entries[name] = (lambda p=path: Assistant(load_backend(p, quantization=quantize)))
    models = ModelSet(entries)
    print(f"loading model {paths[0]} ...", file=sys.stderr, flush=True)
    models.get()
    return models


def cmd_ui(args) -> int:
    import importlib.util

    if args.concurrency < 1:
        raise ChatgenError(f"--concurrency must be at least 1, got {args.concurrency}")
    if args.port is not None and not 0 < args.port < 65536:
        raise ChatgenError(f"--port must be between 1 and 65535, got {args.port}")
    if args.mcp and importlib.util.find_spec("mcp") is None:
        raise ChatgenError("--mcp needs the MCP extra: pip install 'mcp>=1.21,<2' (or pip install -e '.[mcp]')")
    demo = build_demo(model_set_from_paths(args.model, args.quantize), concurrency_limit=args.concurrency, api_sessions=args.api_sessions)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, mcp_server=args.mcp, **launch_options())
    return 0
