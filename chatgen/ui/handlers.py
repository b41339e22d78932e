"""The UI's handlers as plain methods of `ChatUI` over a `UIState`.

Each handler takes a `UIState` and component values and returns (or, while generating,
yields) one value per `VIEW` component, so tests call them without a browser or a server.

With a `SessionFolder` (`--data-dir`) the tab's session is saved after every completed change
(a reply appended, undo, import, ...; never while a reply streams) under the tab's session id,
which the browser keeps (`gr.BrowserState`); `restore` (on page load) brings it back.
"""

from __future__ import annotations

import logging
import threading
import uuid

import gradio as gr
from PIL import Image

from ..assistant import Reply
from ..autosave import SessionFolder, new_session_id
from ..conversation import Message, Session
from ..errors import ChatgenError
from ..events import ImageDone, ImageRow, ImageStart, RefineStep, TextDelta
from ..images import read_image
from ..limits import Limits, TurnLimiter, check_upload_size
from ..models import ModelSet
from .inputs import edited_text, mask_from_editor, message_content, progress_html, read_box
from .state import Settings, UIState

log = logging.getLogger(__name__)

# The components every handler updates, in the order handlers return them.
VIEW = ("chat", "progress", "box", "image", "download", "editor", "versions", "branches", "status", "state")
RETRY_TEMPERATURE = 0.7  # Retry samples at this temperature when the settings are greedy
EDITOR_SIZE = 384  # pixels per side of the mask canvas (the current image is scaled up to it)
UNDO_HINT = '<div class="cg-hint">Not right? <b>↶ Undo</b> it or <b>⟳ Retry</b> (new seed).</div>'
_KEEP = object()  # `box` of a reply that leaves the message box's text alone (a clicked example)


def _refuse_while_busy(state) -> bool:
    """True (after telling the user) when a reply is still streaming in this tab."""
    if state.busy:
        gr.Warning("a reply is still being generated: wait for it or press Stop")
    return state.busy


class ChatUI:
    """The UI's handlers as plain methods over a `UIState`."""

    def __init__(self, models: ModelSet, saved: SessionFolder | None = None, limits: Limits | None = None):
        self.models = ModelSet.of(models)  # the configured models
        self.saved = saved  # where each tab's session is kept (None: nowhere)
        self.limits = limits or Limits()  # upload size and turns per minute (per gradio session hash)
        self.turns = TurnLimiter(self.limits.turns_per_minute)  # turns started per visitor

    # ---- saving and restoring (with a data folder) ---------------------------------------------
    def restore(self, state, sid) -> tuple:
        """On page load: the session the browser's id names, else a new id; the view, then the id to keep."""
        state = self.state(state)
        if self.saved is None:
            return (*self.view(state), gr.skip())
        try:
            session = self.saved.load(sid)
        except ChatgenError as e:  # a damaged file: say so, start afresh under a new id
            gr.Warning(f"your saved conversation could not be restored: {e}")
            session = None
        if session is None:
            sid = new_session_id()  # never adopt an id that names no saved session
        else:
            state.replace(session)
        state.sid = sid
        return (*self.view(state), sid)

    def _save(self, state: UIState) -> None:
        """Write the tab's session after a completed change (nothing without a data folder or an id)."""
        if self.saved is not None and state.sid is not None:
            self.saved.save(state.sid, state.session)

    # ---- rendering ---------------------------------------------------------------------------
    def state(self, state) -> UIState:
        state = state if isinstance(state, UIState) else UIState()
        if self.models.loaded():  # reply PNGs carry a C2PA manifest when the assistant signs images
            assistant = self.models.get()
            state.reply_png = assistant.reply_png if assistant.provenance is not None else None
        return state

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
            msgs.append({"role": "user", "content": message_content(user)})
            msgs.append({"role": "assistant", "content": message_content(reply or ["*(no reply)*"])})
            state.msg_turns += [i, i]
        return msgs

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
        turn, kind = state.session.latest_image()
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
    def _reply(self, state: UIState, message: Message, settings: Settings, box, on_fail=None, visitor: str | None = None):
        """Stream one turn into the view; on an error or Stop the session is put back as it was
        and `box` (the message typed, None, or _KEEP) goes back into the message box. `visitor`
        (the gradio session hash; None: not limited) counts against the turns-per-minute limit."""
        def fail(msg: str | None, info: str | None = None):
            if on_fail is not None:
                on_fail()
            if msg:
                gr.Warning(msg)
            if info:
                gr.Info(info)
            return self.view(state, box=gr.update(interactive=True) if box is _KEEP else gr.update(value=box, interactive=True))

        if _refuse_while_busy(state):
            yield self.view(state)
            return
        # 1. Check everything before the conversation changes on screen (the stream checks at the call).
        state.cancel = threading.Event()
        try:
            self.turns.take(visitor)
            turn = self.models.stream(state.session, message, settings.params(), state.cancel, model=settings.model, refine=settings.refine_choice())
        except ChatgenError as e:
            yield fail(str(e))
            return
        # 2. Show the message and a placeholder reply; lock the box while generating.
        state.busy = True
        history = self.chat_messages(state)
        user: list = [message.text] if message.text else []
        if message.image is not None:
            user.append({"path": state.png(message.image, "upload.png"), "mime_type": "image/png"})
        if message.mask is not None:
            user.append("*(edit limited to the painted region)*")
        text, preview, rows, reply = "", None, 0, None
        progress = progress_html(0, 1, "Thinking…")

        locked = gr.update(interactive=False) if box is _KEEP else gr.update(value=None, interactive=False)

        def frame(status: str):
            pending = [text] if text else []
            shown = state.png(preview, "preview.png") if preview is not None else None
            if shown is not None:
                pending.append({"path": shown, "mime_type": "image/png", "alt_text": "the image so far"})
            pending = pending or ["…"]
            chat = history + [{"role": "user", "content": message_content(user)}, {"role": "assistant", "content": message_content(pending)}]
            return self.view(state, chat=chat, progress=progress, box=locked, image=shown if shown is not None else gr.skip(), download=gr.skip(), editor=gr.skip(), versions=gr.skip(), branches=gr.skip(), status=status)

        yield frame("generating…")
        # 3. Generate; every event updates the view.
        try:
            for item in turn:
                if isinstance(item, TextDelta):
                    text += item.text
                    yield frame("writing…")
                elif isinstance(item, ImageStart):
                    rows = item.rows
                    progress = progress_html(0, rows, f"Drawing… 0 of {rows} rows")
                    yield frame("drawing…")
                elif isinstance(item, ImageRow):
                    if item.preview is not None:
                        preview = item.preview
                    progress = progress_html(item.row + 1, item.rows, f"Drawing… {item.row + 1} of {item.rows} rows")
                    yield frame("drawing…")
                elif isinstance(item, ImageDone):
                    preview = item.image
                    progress = progress_html(rows or 1, rows or 1, "Finishing…")
                    yield frame("finishing…")
                elif isinstance(item, RefineStep):  # the diffusion refiner's steps, after the model's picture
                    if item.preview is not None:
                        preview = item.preview
                    progress = progress_html(item.step + 1, item.steps, f"Refining… {item.step + 1} of {item.steps} steps")
                    yield frame("refining…")
                elif isinstance(item, Reply):
                    reply = item
        except ChatgenError as e:
            yield fail(str(e))
            return
        except Exception as e:  # a model failure: one line for the person, the traceback for the log
            log.exception("generation failed")
            yield fail(f"generation failed ({type(e).__name__}: {e})")
            return
        finally:
            state.busy = False
        if reply is None or reply.turn_id is None:
            yield fail(None, "Stopped: nothing was saved, your message is back in the box")
            return
        # 4. Store the turn; clear the box, reset the mask canvas to the new image; after an edit, hint at Undo / Retry.
        edited = reply.image is not None and state.session.last_image() is not None
        state.session.append(reply.turn)
        self._save(state)  # only a completed turn is ever written
        box_after = gr.update(interactive=True) if box is _KEEP else gr.update(value=None, interactive=True)
        yield self.view(state, progress=UNDO_HINT if edited else "", box=box_after, status=self.status(state, reply))

    # ---- events ------------------------------------------------------------------------------
    def send(self, state, box, editor, *settings, visitor: str | None = None):
        """Send the typed message (+ upload, + painted mask)."""
        state = self.state(state)
        try:
            text, files = read_box(box)
            if len(files) > 1:
                raise ChatgenError("attach one image per message")
            for f in files:
                check_upload_size(f, self.limits.max_upload_bytes, "uploaded image")
            image = read_image(files[0], "uploaded image") if files else None
            mask, target = mask_from_editor(editor), image if image is not None else state.session.last_image()
            if mask is not None and target is not None:  # the canvas is square: back to the edited image's shape
                mask = mask.resize(target.size, Image.Resampling.NEAREST)
            message = Message(text=text, image=image, mask=mask)
        except ChatgenError as e:
            gr.Warning(str(e))
            yield self.view(state, editor=gr.skip())
            return
        yield from self._reply(state, message, Settings(*settings), box, visitor=visitor)

    def example(self, text: str, state, *settings, visitor: str | None = None):
        """A clicked example prompt: sent as the next message (the box keeps what was typed)."""
        yield from self._reply(self.state(state), Message(text=text), Settings(*settings), _KEEP, visitor=visitor)

    def stop(self, state) -> None:
        """Stop the reply being generated (nothing is stored)."""
        if isinstance(state, UIState):
            state.cancel.set()

    def retry(self, state, *settings, visitor: str | None = None):
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
        if not settings.temperature:
            settings.temperature = RETRY_TEMPERATURE  # greedy would give the same answer again
        yield from self._reply(state, Message(last.user_text, last.user_image, last.user_mask), settings, None, on_fail=s.redo, visitor=visitor)

    def edit(self, state, index, text, *settings, visitor: str | None = None):
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
        old, new_text = path[n], edited_text(text)
        old_head = s.head
        s.branch(n)
        yield from self._reply(state, Message(new_text, old.user_image, old.user_mask), Settings(*settings), None, on_fail=lambda: s.checkout(old_head), visitor=visitor)

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
        path = state.session.write_zip(state.folder / "export" / uuid.uuid4().hex[:8] / "chatgen-session.zip")
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
            check_upload_size(path, self.limits.max_upload_bytes, "the session archive")
            session = Session.read_zip(path)
        except ChatgenError as e:
            gr.Warning(str(e))
            return self.view(state)
        state.replace(session)
        self._save(state)
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
        self._save(state)
        return self.view(state)

