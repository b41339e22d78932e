"""The Gradio chat UI: `build_demo(models) -> gr.Blocks` and `launch_options()`; nothing runs at import time.

`layout` builds the Blocks, `handlers` holds the event handlers (`ChatUI`), `state` one tab's
`UIState`, `inputs` turns Gradio payloads into chatgen values, `style` the CSS and theme, `world_card` the
"What I can draw" card and example prompts (with `world_sprites`, its icons).
"""

from .handlers import VIEW, ChatUI
from .inputs import mask_from_editor, read_box
from .layout import build_demo
from .state import Settings, UIState
from .style import launch_options

__all__ = ["VIEW", "ChatUI", "Settings", "UIState", "build_demo", "launch_options", "mask_from_editor", "read_box"]
