"""The chat UI's layout: `build_demo(models) -> gr.Blocks`, with the API endpoints on the same server.

Layout: the conversation on the left (three fifths), with one fixed-height slot above the message
box for the progress bar or the Undo / Retry hint (so the box never moves while a reply streams);
on the right, for models of chatgen's world, the "What I can draw" card with example prompts
(`world_card`), then the current image (it grows row by row while it is drawn), the version strip
of the current branch, a mask brush (closed at first), the sampling settings and session export /
import. On a phone the columns stack in that order. Nothing takes focus on load: an autofocused
box scrolled the page down. Each browser tab holds its own `UIState` in a
`gr.State`; nothing is shared between visitors. With `data_dir` each session is saved there
after every completed change, and the browser keeps its unguessable id (`gr.BrowserState`, in
localStorage), so a reload or a server restart brings the conversation back. `limits` caps
upload size, the queue and each visitor's turns per minute (a visitor: the tab's gradio session
hash in the UI, the session id in the API); `concurrency_limit` is how many replies are generated at once.
"""

from __future__ import annotations

import functools
import math
import uuid
from pathlib import Path

import gradio as gr

from ..api import ChatAPI, add_api
from ..autosave import SessionFolder, browser_secret
from ..limits import Limits
from ..models import ModelSet
from ..params import GenerationParams
from . import world_card
from .handlers import EDITOR_SIZE, ChatUI
from .state import FILES_ROOT, UIState, delete_state_files


CHAT_PLACEHOLDER = "**Start by asking for a drawing**, or click an example. You can also attach a picture to edit or ask about; edit an earlier message (pencil) to start a new branch."


def _by_visitor(handler):
    """A generating handler told who asks (the tab's gradio session hash), for the turns-per-minute limit."""
    def with_visitor(request: gr.Request, *args):
        yield from handler(*args, visitor=getattr(request, "session_hash", None))

    return with_visitor


def build_demo(models, *, concurrency_limit: int = 1, api_sessions: int = 256, title: str = "chatgen", card: bool | None = None, data_dir: str | Path | None = None, limits: Limits | None = None) -> gr.Blocks:
    """The chat UI (and the API endpoints) over `models`: an Assistant, a dict name -> Assistant
    (or -> a loader returning one), or a ModelSet. `card`: show the "what I can draw" card and
    its examples (default: when the default model is one of chatgen's world). `data_dir`: keep
    every session there (`ui/` and `api/`, one zip each), restored after a restart (None: nothing is written).
    `limits`: upload size, queue size, turns per minute per visitor (default: `Limits()`)."""
    models = ModelSet.of(models)
    limits = limits or Limits()
    if card is None:
        card = models.loaded() and world_card.is_world_model(models.get().backend.name)
    ui = ChatUI(models, saved=SessionFolder(Path(data_dir) / "ui") if data_dir is not None else None, limits=limits)
    default = models.get(models.default).params if models.loaded() else GenerationParams()
    has_refiner = models.loaded() and models.get().refiner is not None
    refiner_config = getattr(models.get().refiner, "config", None) if has_refiner else None  # a chatgen Refiner's settings (strength, steps)
    strength = getattr(refiner_config, "strength", None)  # the refiner's own strength (None: it has no strength setting)
    lowest = math.ceil(20 / refiner_config.steps) / 20 if isinstance(getattr(refiner_config, "steps", None), int) else 0.05  # img2img runs int(steps x strength) >= 1 steps

    with gr.Blocks(title=title, analytics_enabled=False, fill_width=True) as demo:
        state = gr.State(UIState(), delete_callback=delete_state_files)
        with gr.Row(elem_id="cg-header"):
            gr.Markdown("# chatgen\nDraw, edit and ask about pictures in one conversation with one small model.")
        with gr.Row(equal_height=False, elem_id="cg-main"):
            # ---- left: the conversation ----
            with gr.Column(scale=3, min_width=320, elem_id="cg-left"):
                chat = gr.Chatbot(label="Conversation", show_label=False, height=None, editable="user", placeholder=CHAT_PLACEHOLDER, allow_file_downloads=True, buttons=[], layout="bubble", elem_id="cg-chat")
                # one slot, its height reserved: the progress bar while a reply streams, the Undo / Retry hint after an edit
                progress = gr.HTML("", elem_id="cg-progress")
                box = gr.MultimodalTextbox(placeholder="Draw, edit, or ask…", file_types=["image"], file_count="single", sources=["upload"], show_label=False, elem_id="cg-box")
                with gr.Row(elem_id="cg-buttons"):
                    stop_btn = gr.Button("■ Stop", variant="stop", size="sm", min_width=60, elem_id="cg-stop")
                    undo_btn = gr.Button("↶ Undo", size="sm", min_width=60, elem_id="cg-undo")
                    redo_btn = gr.Button("↷ Redo", size="sm", min_width=60, elem_id="cg-redo")
                    retry_btn = gr.Button("⟳ Retry", size="sm", min_width=60, elem_id="cg-retry")
                    new_btn = gr.Button("+ New", size="sm", min_width=60, elem_id="cg-new")
            # ---- right: what it can draw, the picture, the versions, the settings ----
            with gr.Column(scale=2, min_width=320, elem_id="cg-right"):
                example_btns: list[tuple[gr.Button, str]] = []
                if card:
                    with gr.Group(elem_id="cg-card"):
                        gr.HTML(world_card.card_html(), elem_id="cg-card-body")
                        with gr.Row(elem_id="cg-examples"):
                            for ex in world_card.EXAMPLES:
                                btn = gr.Button(ex.text, size="sm", variant="secondary", min_width=0, scale=0, elem_classes=["cg-example", "cg-follow-up" if ex.follow_up else "cg-draw"])
                                example_btns.append((btn, ex.text))
                image = gr.Image(label="Current picture", show_label=False, type="filepath", format="png", interactive=False, height=288, buttons=["download", "fullscreen"], elem_id="cg-image")
                with gr.Row():
                    download = gr.DownloadButton("Download PNG (with its parameters)", value=None, interactive=False, size="sm", elem_id="cg-download")
                status = gr.Markdown("", elem_id="cg-status")
                gr.Markdown("**Versions** · click one to continue from it", elem_id="cg-versions-title")
                versions = gr.Gallery(show_label=False, columns=None, height="auto", allow_preview=False, fit_columns=False, object_fit="contain", buttons=[], elem_id="cg-versions")
                with gr.Accordion("Mask: edit only a region", open=False, elem_id="cg-mask") as mask_panel:
                    editor = gr.ImageEditor(show_label=False, type="pil", image_mode="RGBA", sources=[], transforms=[], layers=False, brush=gr.Brush(colors=[("#ff2d55", 0.6)], default_color=("#ff2d55", 0.6), color_mode="fixed", default_size=24), eraser=gr.Eraser(default_size=24), height=360, canvas_size=(EDITOR_SIZE, EDITOR_SIZE), fixed_canvas=True, elem_id="cg-editor")
                    gr.Markdown("Paint the thing or the place the next edit is about, then say what to do (*make this a cat*, *add a balloon here*): nothing outside the paint changes. Unpainted, an edit may change the whole picture. The paint is cleared after each reply.")
                with gr.Accordion("Settings", open=False, elem_id="cg-settings"):
                    model = gr.Dropdown(models.names, value=models.default, label="Model", interactive=len(models.names) > 1)
                    seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random each turn)", minimum=-1, elem_id="cg-seed")
                    # The embedded world model's figures are measured greedy: its UI starts there (Retry samples).
                    temperature = gr.Slider(0.0, 2.0, value=0.0 if card else default.temperature, step=0.05, label="Temperature (0 = greedy; Retry samples at 0.7 then)", elem_id="cg-temperature")
                    top_k = gr.Slider(0, 512, value=default.top_k, step=1, label="Top-k (0 = off)")
                    cfg = gr.Slider(0.0, 10.0, value=default.cfg_scale, step=0.25, label="CFG scale for images (1 = off)")
                    refine = gr.Checkbox(value=has_refiner, label=f"Refine pictures with the diffusion refiner ({getattr(models.get().refiner, 'size', '?')} px)" if has_refiner else "Refine pictures", visible=has_refiner, elem_id="cg-refine")
                    refine_strength = gr.Slider(min(lowest, 0.95), 1.0, value=strength or 0.5, step=0.05, label="Refiner strength (how much it redraws)", visible=strength is not None and lowest < 1.0, elem_id="cg-refine-strength")  # a one-step refiner (the embedded one) has nothing to set
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
        settings = [model, seed, temperature, top_k, cfg, refine, refine_strength]
        gen = dict(concurrency_limit=concurrency_limit, concurrency_id="generate", api_visibility="private", show_progress="hidden")
        quick = dict(api_visibility="private", show_progress="hidden", concurrency_limit=None)

        def on_edit(request: gr.Request, st, model_, seed_, temperature_, top_k_, cfg_, refine_, refine_strength_, evt: gr.EditData):
            yield from ui.edit(st, evt.index, evt.value, model_, seed_, temperature_, top_k_, cfg_, refine_, refine_strength_, visitor=getattr(request, "session_hash", None))

        def on_version(st, evt: gr.SelectData):
            return ui.select_version(st, evt.index)

        box.submit(_by_visitor(ui.send), [state, box, editor, *settings], view, api_name="ui_send", **gen)
        chat.edit(on_edit, [state, *settings], view, api_name="ui_edit", **gen)
        chat.retry(_by_visitor(ui.retry), [state, *settings], view, api_name="ui_retry", **gen)
        retry_btn.click(_by_visitor(ui.retry), [state, *settings], view, api_name="ui_retry_button", **gen)
        stop_btn.click(ui.stop, [state], None, api_name="ui_stop", **quick)
        box.stop(ui.stop, [state], None, api_name="ui_stop_box", **quick)
        undo_btn.click(ui.undo, [state], view, api_name="ui_undo", **quick)
        chat.undo(ui.undo, [state], view, api_name="ui_undo_chat", **quick)
        redo_btn.click(ui.redo, [state], view, api_name="ui_redo", **quick)
        new_btn.click(ui.new_chat, [state], view, api_name="ui_new", **quick)
        for i, (btn, text) in enumerate(example_btns):
            btn.click(_by_visitor(functools.partial(ui.example, text)), [state, *settings], view, api_name=f"ui_example_{i}", **gen)
        versions.select(on_version, [state], view, api_name="ui_version", **quick)
        branches.input(ui.checkout, [state, branches], view, api_name="ui_branch_pick", **quick)
        branch_btn.click(ui.branch_at, [state, branch_n], view, api_name="ui_branch_at", **quick)
        mask_panel.expand(ui.mask_canvas, [state], [editor], api_name="ui_mask_canvas", **quick)  # a hidden canvas does not draw its image
        export_btn.click(ui.export, [state], [export_file], api_name="ui_export", **quick)
        import_btn.upload(ui.import_session, [state, import_btn], view, api_name="ui_import", **quick)

        if ui.saved is not None:  # the browser keeps the tab's session id; on load the session comes back
            browser_sid = gr.BrowserState(None, storage_key="chatgen-session-id", secret=browser_secret(data_dir))
            demo.load(ui.restore, [state, browser_sid], [*view, browser_sid], api_visibility="private", show_progress="hidden")
        add_api(ChatAPI(models, folder=FILES_ROOT / f"api-{uuid.uuid4().hex[:8]}", capacity=api_sessions, data_dir=data_dir, limits=limits), concurrency_limit=concurrency_limit)
    demo.queue(max_size=limits.queue_size)  # beyond it gradio answers: the queue is full, please try again
    return demo

