"""Gradio payloads -> chatgen values: the message box, the mask editor, an edited chat message."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import ChatgenError
from ..images import read_image

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
        if not isinstance(layer, (str, Image.Image)):
            raise ChatgenError("the mask could not be read: paint it again")
        m = read_image(layer, "mask", mask=True)
        mask = m if mask is None else Image.fromarray(np.maximum(np.asarray(mask), np.asarray(m.resize(mask.size))))
    if mask is None or mask.getextrema()[1] == 0:
        return None
    return mask


def progress_html(done: int, total: int, label: str) -> str:
    pct = 100.0 * done / total if total else 0.0
    return f'<div class="cg-progress-label">{label}</div><div class="cg-progress" role="progressbar" aria-valuenow="{done}" aria-valuemax="{total}"><div style="width:{pct:.1f}%"></div></div>'


def message_content(items: list):
    """A message's content: one item as is, several as a list."""
    return items[0] if len(items) == 1 else items


def edited_text(value) -> str:
    """The text of an edited chat message (gradio sends a string or a list of parts)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get("text") or value.get("value") or "")
    if isinstance(value, (list, tuple)):
        return " ".join(edited_text(v) for v in value if isinstance(v, (str, dict)) and not (isinstance(v, dict) and ("path" in v or "file" in v))).strip()
    return "" if value is None else str(value)

