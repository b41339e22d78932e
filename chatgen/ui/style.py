"""How the chat UI looks: its CSS and theme, and what `launch()` takes (gradio 6 takes them there)."""

from __future__ import annotations

import gradio as gr

from .state import FILES_ROOT

CSS = """
#cg-header {padding: 0 4px;}
#cg-header h1 {margin: 0; font-size: 1.3rem; display: inline;}
#cg-header p {margin: 0; opacity: .75; display: inline; margin-left: .6em;}
#cg-chat {height: clamp(300px, calc(100vh - 290px), 760px) !important;}
#cg-progress {height: 40px !important; min-height: 40px; max-height: 40px; overflow: hidden; padding: 0;}  /* a fixed slot: the box below never moves */
#cg-progress .html-container {min-height: 0 !important; padding: 0;}
#cg-progress .prose > * {margin-top: 0; margin-bottom: 0;}
#cg-chat .icon-button-wrapper.top-panel {display: none;}  /* its Clear button would cover the newest message; "+ New" does that */
.cg-progress {height: 8px; border-radius: 4px; background: var(--neutral-200); overflow: hidden; margin: 2px 0 0 0;}
.cg-progress > div {height: 100%; background: var(--color-accent); transition: width .15s linear;}
.cg-progress-label, .cg-hint {font-size: .85rem; opacity: .8; line-height: 1.3;}
#cg-buttons {flex-wrap: wrap; gap: 6px;}
#cg-buttons button {flex: 1 1 0;}
#cg-status {font-size: .85rem; opacity: .8; min-height: 1.2em;}
#cg-chat img, #cg-image img, #cg-versions img, .cg-icon {image-rendering: pixelated;}
#cg-chat .image-frame img {width: 192px; height: 192px; object-fit: contain;}
#cg-image .image-frame, #cg-image .image-frame img {width: 100%; height: 100%; object-fit: contain;}
#cg-card {padding: 10px 12px; gap: 4px;}
#cg-card-body, #cg-card-body .html-container, #cg-card-body .prose {padding: 0 !important; margin: 0;}
#cg-examples {padding: 0;}
.cg-card-title {font-weight: 600; margin-bottom: 4px;}
.cg-icons {display: flex; flex-wrap: wrap; gap: 3px; margin-bottom: 4px;}
.cg-icons img {margin: 0; border-radius: 3px;}
.cg-card-line {font-size: .85rem; line-height: 1.35;}
#cg-examples {flex-wrap: wrap; gap: 5px; align-items: center; background: none;}
.cg-try {margin: 6px 0 0 0;}
#cg-examples button {flex: 0 1 auto; width: auto; font-weight: 400; font-size: .8rem; padding: 2px 9px; border-radius: 999px; white-space: normal; text-align: left;}
#cg-versions-title p {margin: 0; font-size: .85rem;}
#cg-versions .grid-wrap, #cg-versions .grid-wrap.fixed-height {height: auto; min-height: 0; max-height: 236px; overflow-y: auto; padding: 2px;}
#cg-versions .grid-container {grid-template-columns: repeat(auto-fill, 72px) !important; grid-auto-rows: 72px; gap: 6px;}
#cg-versions .thumbnail-item {width: 72px; height: 72px;}
#cg-versions .caption-label {display: none;}
@media (max-width: 700px) {
  #cg-chat {height: min(420px, 62vh) !important;}
  #cg-header p {display: block; margin-left: 0;}
}
"""


def theme():
    """A calm theme with system fonts (no web font downloads)."""
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="slate", font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def launch_options() -> dict:
    """What gradio 6 takes at `launch()` rather than in `gr.Blocks`: theme, CSS, allowed paths."""
    FILES_ROOT.mkdir(parents=True, exist_ok=True)
    return {"theme": theme(), "css": CSS, "allowed_paths": [str(FILES_ROOT)]}

