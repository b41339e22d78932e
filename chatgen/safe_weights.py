"""Weights load from safetensors only.

A pickle checkpoint (`pytorch_model.bin`, `*.pt`, `*.ckpt`, `*.pkl`) can run code when it is
loaded, so chatgen never reads one: every `from_pretrained` over a model folder goes through
`safetensors_folder(folder)` and passes `use_safetensors=True`, and `trust_remote_code` is never
set unless a person passes it. A folder with only pickle weights is refused in one sentence that
says how to convert it.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ChatgenError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")  # weight files that are pickles


def safetensors_folder(folder: str | Path, what: str = "model") -> Path:
    """`folder` when it holds `*.safetensors` weights; a ChatgenError naming `what` when its only
    weights are pickles (a folder with no weights at all is left to the loader to report)."""
    folder = Path(folder)
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return folder
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ChatgenError(
            f"the {what} at {folder} is refused: its weights are only pickle files ({', '.join(pickles[:3])}), which can run code when loaded, "
            "and chatgen loads safetensors only; convert it by loading it once where you trust it and saving it with save_pretrained(folder, safe_serialization=True)"
        )
    return folder
