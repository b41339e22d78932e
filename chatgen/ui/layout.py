"""The chat UI's layout: `build_demo(models) -> gr.Blocks`, with the API endpoints on the same server.

Layout: the conversation on the left (about two thirds); on the right the current image (it grows
row by row while it is drawn), a mask brush over it, the version strip of the current branch, the
sampling settings and session export / import. Each browser tab holds its own `UIState` in a
`gr.State`; nothing is shared between visitors.
"""

from __future__ import annotations

import uuid

import gradio as gr

from ..api import ChatAPI, add_api
from ..models import ModelSet
from ..params import GenerationParams
from .handlers import EDITOR_SIZE, ChatUI
from .state import FILES_ROOT, UIState, delete_state_files


def build_demo(models, *, concurrency_limit: int = 1, api_sessions: int = 256, title: str = "chatgen") -> gr.Blocks:
    """The chat UI (and the API endpoints) over `models`: an Assistant, a dict name -> Assistant
    (or -> a loader returning one), or a ModelSet."""
    models = ModelSet.of(models)
    ui = ChatUI(models)
    default = models.get(models.default).params if models.loaded() else GenerationParams()
    has_refiner = models.loaded() and models.get().refiner is not None

    with gr.Blocks(title=title, analytics_enabled=False, fill_width=True) as demo:
        state = gr.State(UIState(), delete_callback=delete_state_files)
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

