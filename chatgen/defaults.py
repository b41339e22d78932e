"""Where the embedded default model lives."""

from __future__ import annotations

import os
import sys
from pathlib import Path

SHIPPED = Path(__file__).parent / "weights" / "default"  # trained weights committed with the package


def default_model_path() -> Path:
    """The shipped trained model; before one is trained, a tiny random one made once in the cache."""
    if (SHIPPED / "config.json").is_file():
        return SHIPPED
    cache = Path(os.environ.get("CHATGEN_CACHE", Path.home() / ".cache" / "chatgen")) / "tiny-random-v1"
    if not (cache / "config.json").is_file():
        from .tiny import make_tiny_checkpoint

        print("chatgen: no trained model is shipped in this checkout; using a tiny random model (it draws noise)", file=sys.stderr)
        make_tiny_checkpoint(cache)
    return cache
