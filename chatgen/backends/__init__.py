"""Model families behind one protocol (`Backend`); `load_backend(path)` loads a checkpoint folder or Hub id."""

from __future__ import annotations

import importlib
import os

import torch

from ..errors import ChatgenError
from .base import Backend
from .checkpoint import looks_like_hub_id, parse_dtype, read_config, resolve
from .offload import plan_offload

__all__ = ["Backend", "FAMILIES", "load_backend"]

# config.json's `model_type` (for a diffusers pipeline, the type `checkpoint.PIPELINES` gives it) ->
# (module under chatgen.backends, backend class); chatgen's own format is recognised by
# `"format": "chatgen-native"` instead.
FAMILIES: dict[str, tuple[str, str]] = {
    "chameleon": ("chameleon", "ChameleonBackend"),
    "emu3": ("emu3", "Emu3Backend"),
    "glm_image": ("glm_image", "GlmImageBackend"),  # a diffusers GlmImagePipeline folder (model_index.json)
    "janus": ("janus", "JanusBackend"),
}


def load_backend(path, dtype=None, device: str | None = None, quantization: str | None = None, check_memory: bool = True, offload: str = "auto", max_memory: int | str | None = None, **kwargs) -> Backend:
    """Load the backend of the checkpoint at `path` (a folder or a Hub id), picked from its config.json.

    `offload` ("auto", "on", "off") and `max_memory` (bytes or "6GB" on the device): the
    low-memory profile of `offload.py`, for weights larger than the free memory.

    1. Find the folder (for a Hub id, only its small files so far) and read config.json.
    2. Pick the family: chatgen's native format, or the transformers `model_type`.
    3. Memory: weights that fit load as they are; weights that do not load in the low-memory
       profile (accelerate offload) when `offload` allows it, else are refused (one sentence,
       with the flag that helps).
    4. Download the weights (Hub) and load them through the family's `from_pretrained`.
    """
    # 1. The folder and its config.
    hub_id = str(path) if looks_like_hub_id(path) else None
    folder = resolve(path, weights=False)
    config = read_config(folder)
    # 2. The family.
    if config.get("format") == "chatgen-native":
        module, name = "native", "NativeBackend"
    else:
        model_type = config.get("model_type")
        if model_type not in FAMILIES:
            what = f"model_type {model_type!r}" if model_type else "no model_type and no chatgen format"
            raise ChatgenError(f"{path} has {what}; chatgen supports its own format and model_type {', '.join(sorted(FAMILIES))}")
        module, name = FAMILIES[model_type]
    # 3. Memory.
    dtype = parse_dtype(dtype)
    plan = None
    if check_memory or offload == "on":
        plan = plan_offload(folder, config, dtype, device, quantization, hub_id, mode=offload, max_memory=max_memory, accelerate=module != "glm_image")
    # 4. Load.
    if hub_id is not None:
        folder = resolve(hub_id)
    cls = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    if plan is not None:
        kwargs["offload"] = plan
    backend = cls.from_pretrained(folder, dtype=dtype, device=device, quantization=quantization, **kwargs)
    if module == "native":
        small_model_threads(backend.lm)
    return backend


# A chatgen-native model this small runs its forward passes fastest on one CPU thread.
SMALL_MODEL_PARAMS = 50_000_000


def small_model_threads(model) -> None:
    """Use one CPU thread for a small model on the CPU, unless OMP_NUM_THREADS or CHATGEN_THREADS
    says how many. Its passes are too small to share between cores: `chatgen bench` on 2 cores,
    the embedded 5.8M-parameter model, the 10-turn conversation takes 1.09 s on one thread and
    1.81 s on two (the stock `generate` baseline 2.78 s and 3.17 s)."""
    from ..sampling import model_device

    if "OMP_NUM_THREADS" in os.environ:
        return
    if os.environ.get("CHATGEN_THREADS"):
        n = os.environ["CHATGEN_THREADS"]
        if not n.isdigit() or int(n) < 1:
            raise ChatgenError(f"CHATGEN_THREADS must be a positive whole number of CPU threads, got {n!r}")
        torch.set_num_threads(int(n))
    elif model_device(model).type == "cpu" and sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMS:
        torch.set_num_threads(1)
