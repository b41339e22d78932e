"""Hugging Face ZeroGPU: a GPU is lent to a decorated function for the length of one call.

On a ZeroGPU Space `spaces.GPU` runs the function in a process forked from the app (so the
models loaded at start-up are there); its arguments and results are pickled across. Elsewhere
`gpu(fn)` is `fn` itself.
"""

from __future__ import annotations

import importlib.util
import os


def on_zero_gpu() -> bool:
    """True on a ZeroGPU Space (the `spaces` package is importable and the Space says so)."""
    return bool(os.environ.get("SPACE_ID")) and os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true") and importlib.util.find_spec("spaces") is not None


def gpu(fn, duration: int = 120):
    """`@spaces.GPU(duration=...)` on ZeroGPU hardware; elsewhere `fn` itself, undecorated."""
    if not on_zero_gpu():
        return fn
    import spaces

    return spaces.GPU(duration=duration)(fn)
