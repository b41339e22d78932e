"""Model families behind one protocol (`Backend`). `load_backend(path)` picks the right one."""

from .base import Backend, GenerationParams, ImageDone, ImageRow, ImageStart, Prompt, ReplyDone, TextDelta

__all__ = ["Backend", "GenerationParams", "ImageDone", "ImageRow", "ImageStart", "Prompt", "ReplyDone", "TextDelta", "load_backend"]


def load_backend(path, **kwargs) -> Backend:
    """Load a backend from a folder or Hub id (today: chatgen's native checkpoint format)."""
    from .native import NativeBackend

    return NativeBackend.from_pretrained(path, **kwargs)
