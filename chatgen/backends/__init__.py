"""Model families behind one protocol (`Backend`); `load_backend(path)` loads a checkpoint folder or Hub id."""

from .base import Backend

__all__ = ["Backend", "load_backend"]


def load_backend(path, **kwargs) -> Backend:
    """Load a backend from a folder or Hub id (chatgen's native checkpoint format is the only family so far)."""
    from .native import NativeBackend

    return NativeBackend.from_pretrained(path, **kwargs)
