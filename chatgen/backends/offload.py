"""The low-memory profile: a checkpoint larger than the free memory, loaded with accelerate offload.

`load_backend(..., offload=...)`, the CLI's `--offload`:

- "off": weights that do not fit in the device's free memory are refused, one sentence.
- "auto" (default): such weights load in the low-memory profile instead, when the device, the
  host's RAM and the disk hold them together; weights that fit load as before, nothing changes.
- "on": always the low-memory profile.

`max_memory` (`--max-memory`, e.g. "6GB") caps what the weights may take on the device; under
"auto", weights over it count as not fitting.

The profile is transformers' big-model loading: `device_map="auto"` fills the device up to its
budget, then the CPU, then the disk, and accelerate's hooks bring offloaded weights in at
forward time (slower; the output is the same). `plan_offload` computes the budget:

1. Estimate the loaded weight bytes and the device's free memory (`checkpoint.estimate`,
   `checkpoint.available_bytes`). They fit (and the mode is not "on"): no plan, no change.
2. "off", a quantized load (bitsandbytes weights are not offloaded), or no accelerate installed:
   the refusal sentence.
3. The tiers: `HEADROOM` of the device's free memory (or `max_memory`), room left for the
   activations and the KV cache; on an accelerator also `HEADROOM` of the free RAM; the disk:
   safetensors weights are read where they lie, other weights are written to `offload_folder`
   first and need that much free disk.
4. The tiers cannot hold the weights: the refusal sentence, naming `--quantize 4bit`.
5. The plan (`OffloadPlan`: accelerate's `max_memory` and offload folder); one line on stderr.

Library code that reads a submodule's weight instead of calling it (a VQ's nearest-code search
reads its codebook) would meet an offloaded weight on the `meta` device: the backends run it
inside `onloaded(module)`, which brings those weights in for the call.

GLM-Image is a diffusers pipeline (`accelerate=False`): it has no disk tier; on CUDA its profile
is diffusers' CPU offload of whole components (`GlmImageBackend.from_pretrained`), off CUDA it
loads whole and "on" is only a note.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import sys
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ChatgenError
from . import checkpoint
from .checkpoint import estimate, size_text, too_big

MODES = ("auto", "on", "off")
HEADROOM = 0.85  # share of the free memory (device and RAM) the weights may take; the rest: activations, KV cache
UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


@dataclass(frozen=True)
class OffloadPlan:
    """Where the weights go in the low-memory profile."""

    max_memory: dict  # accelerate's budget in bytes: {GPU index or "mps" or "cpu": bytes}; the rest goes to the disk
    folder: Path  # accelerate's offload folder: offloaded weights that are not safetensors are written here
    device: str  # the device the model computes on ("cpu", "cuda:0", ...)

    def kwargs(self) -> dict:
        """transformers' `from_pretrained` keyword arguments."""
        return {"device_map": "auto", "max_memory": dict(self.max_memory), "offload_folder": str(self.folder)}

    def device_budget(self) -> int:
        """Bytes the weights may take on the device."""
        d = torch.device(self.device)
        return int(self.max_memory[(d.index or 0) if d.type == "cuda" else d.type])


def parse_size(size: int | str | None, flag: str = "--max-memory") -> int | None:
    """Bytes of "6GB", "512MiB", "100KB" or a plain number (bytes); K/M/G are powers of 1024."""
    if size is None or isinstance(size, int):
        if isinstance(size, int) and size <= 0:
            raise ChatgenError(f"{flag} must be above 0, got {size}")
        return size
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", str(size), re.IGNORECASE)
    if not m or float(m.group(1)) <= 0:
        raise ChatgenError(f"{flag} must be a size such as 6GB, 512MB or 100KB, got {size!r}")
    return int(float(m.group(1)) * UNITS[m.group(2).lower()])


def offload_folder(folder: Path) -> Path:
    """The checkpoint's own offload folder under chatgen's cache (`CHATGEN_CACHE`, else ~/.cache/chatgen)."""
    cache = Path(os.environ.get("CHATGEN_CACHE", Path.home() / ".cache" / "chatgen"))
    digest = hashlib.sha1(str(Path(folder).resolve()).encode()).hexdigest()[:10]
    return cache / "offload" / f"{Path(folder).name}-{digest}"


def disk_free_bytes(path: Path) -> int:
    """Free bytes on the disk that holds `path` (or its nearest existing parent)."""
    p = Path(path)
    while not p.exists() and p.parent != p:
        p = p.parent
    try:
        return int(shutil.disk_usage(p).free)
    except OSError:
        return 0


def _accelerator(device: str | None) -> bool:
    """Whether `device` is a GPU (or another accelerator) rather than the CPU."""
    if not device:
        return False
    try:
        return torch.device(device).type not in ("cpu", "meta")
    except (RuntimeError, ValueError):
        raise ChatgenError(f"--device must be cpu, cuda, cuda:N, mps ..., got {device!r}") from None


def plan_offload(folder: Path, config: dict, dtype: torch.dtype | None, device: str | None, quantization: str | None, hub_id: str | None = None,
                 mode: str = "auto", max_memory: int | str | None = None, accelerate: bool = True) -> OffloadPlan | None:
    """The low-memory plan for this checkpoint, None to load it as before; one sentence when it
    cannot load at all. `accelerate`: the family loads through transformers' device map (False:
    a diffusers pipeline, offloaded to the CPU on CUDA only)."""
    mode = mode or "auto"
    if mode not in MODES:
        raise ChatgenError(f"offload must be one of {', '.join(MODES)}, got {mode!r}")
    cap = parse_size(max_memory)
    if cap is not None and mode == "off":
        raise ChatgenError("--max-memory caps the low-memory profile: use it with --offload auto or on")
    accelerator = _accelerator(device)
    if mode == "on" and importlib.util.find_spec("accelerate") is None:
        raise ChatgenError("--offload on needs accelerate: pip install accelerate")
    can = not quantization and (accelerate or accelerator) and importlib.util.find_spec("accelerate") is not None  # whether the profile can load this
    # 1. The estimate and the free memory.
    need, four = estimate(folder, config, dtype, quantization, hub_id)
    free = checkpoint.available_bytes(device)
    limit = min(free, cap) if free and cap else (cap or free)
    fits = not need or not limit or need <= limit
    if mode == "auto" and fits:
        return None
    # 2. Off, or a load the profile cannot take.
    if mode == "on" and quantization:
        raise ChatgenError("--offload on does not combine with --quantize (bitsandbytes weights are not offloaded): drop one of them")
    if mode == "off" or not can:
        if mode == "on":
            print("chatgen: --offload on: a diffusers pipeline is offloaded on CUDA only; loading it whole", file=sys.stderr, flush=True)
        if need and free and need > free:
            raise too_big(need, four, free, device, quantization, offload_hint=can)
        return None
    # 3. The tiers: the device, the RAM (beside an accelerator), the disk.
    target = str(device or "cpu")
    on_device = cap if cap is not None else int(free * HEADROOM)
    ram = int(checkpoint.available_bytes(None) * HEADROOM) if accelerator else 0
    spill = offload_folder(folder)
    in_place = any(Path(folder).rglob("*.safetensors")) or any(Path(folder).rglob("*.safetensors.index.json"))
    disk = 0 if not accelerate else (need if in_place else int(disk_free_bytes(spill) * 0.9))
    # 4. Too big even so.
    if need and need > on_device + ram + disk:
        beyond = f", and even offloaded the CPU{' and the disk' if accelerate else ''} hold only {size_text(ram + disk)} more"
        raise too_big(need, four, free or on_device, device, quantization, beyond=beyond)
    # 5. The plan, and one line saying so.
    kind = torch.device(target).type
    key = (torch.device(target).index or 0) if kind == "cuda" else kind
    budget = {key: on_device} if key == "cpu" else {key: on_device, "cpu": ram}
    rest = "the CPU and the disk" if ram and accelerate else ("the CPU" if ram else "the disk")
    sizes = f"the weights need about {size_text(need)}, " if need else ""
    print(f"chatgen: loading in the low-memory profile (--offload {mode}): {sizes}{size_text(free)} of {'GPU ' if kind == 'cuda' else ''}memory is free; "
          f"up to {size_text(on_device)} on {target}, the rest on {rest} (slower)", file=sys.stderr, flush=True)
    return OffloadPlan(max_memory=budget, folder=spill, device=target)


@contextmanager
def onloaded(module: torch.nn.Module):
    """Inside, the offloaded weights of `module` and of its submodules are real tensors on their
    execution device: for library code that reads a submodule's `.weight` instead of calling it
    (the VQ's nearest-code search reads its codebook). A module loaded whole: nothing to do."""
    with ExitStack() as stack:
        if any(hasattr(m, "_hf_hook") for m in module.modules()):
            from accelerate.utils import align_module_device, has_offloaded_params

            for m in module.modules():
                if has_offloaded_params(m):
                    stack.enter_context(align_module_device(m))
        yield module
