"""How the chat UI looks: its CSS and theme, and what `launch()` takes (gradio 6 takes them there)."""

from __future__ import annotations

import gradio as gr

from .state import FILES_ROOT

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

