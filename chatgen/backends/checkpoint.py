"""Finding a checkpoint and checking it fits before anything is loaded.

`load_backend` (in `__init__`) uses these steps for every family:

1. `resolve(path)`: a local folder as is, else a Hub id (its small files first, so a checkpoint
   that cannot fit is refused before gigabytes are downloaded); one sentence when neither.
2. `read_config(folder)`: the folder's `config.json` (`model_type`, or chatgen's `format`); a
   diffusers pipeline folder (`model_index.json`) of GLM-Image reads as model type `glm_image`.
3. `check_fits(...)`: the weight bytes (`estimate`: the safetensors index's `total_size`, else
   the sum of the `*.safetensors` / `*.bin` files), scaled to the dtype or quantization asked
   for, against the memory free on the device; a model that cannot fit gets one sentence naming
   both sizes and the flag that would help (`too_big`). `offload.plan_offload` decides, before
   that, whether the low-memory profile loads it instead.
4. `load_kwargs(...)`: the `from_pretrained` keyword arguments of `dtype` / `quantization` /
   `device` / offload shared by the transformers families.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..errors import ChatgenError

# Files a model needs besides its weights: fetched first from the Hub (config, processor, tokenizer).
SMALL_FILES = ["*.json", "*.txt", "*.model", "*.jinja", "*.tiktoken", "*.py"]
WEIGHT_SUFFIXES = (".safetensors", ".bin")
GB = 1024**3
PIPELINE_INDEX = "model_index.json"  # a diffusers pipeline folder's index
PIPELINES = {"GlmImagePipeline": "glm_image"}  # diffusers pipeline class -> the model type chatgen loads it as


def looks_like_hub_id(path: str | Path) -> bool:
    s = str(path)
    return s.count("/") == 1 and not s.startswith((".", "/", "~")) and not Path(s).exists()


def resolve(path: str | Path, weights: bool = True) -> Path:
    """The local folder of `path`: the folder itself, or the Hub snapshot of a Hub id (only its
    small files with weights=False)."""
    p = Path(path).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file() and not (p / PIPELINE_INDEX).is_file():
            raise ChatgenError(f"no chatgen model at {p}: config.json is missing")
        return p
    if p.exists():
        raise ChatgenError(f"model path {p} is a file; expected a model folder or a Hub id")
    if not looks_like_hub_id(path):
        raise ChatgenError(f"no chatgen model at {p}: the folder does not exist")
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(str(path), allow_patterns=None if weights else SMALL_FILES))
    except Exception as e:  # offline, unknown repo, no access: one line, not a traceback
        offline = " (offline: HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
        raise ChatgenError(f"cannot load model {path!s}: not a local folder and not available from the Hub{offline} ({type(e).__name__})") from None
    if not (folder / "config.json").is_file() and not (folder / PIPELINE_INDEX).is_file():
        raise ChatgenError(f"Hub repo {path} has no config.json; expected a transformers or chatgen checkpoint")
    return folder


def read_config(folder: Path) -> dict:
    """config.json as a dict; for a diffusers pipeline folder (no config.json, a model_index.json)
    the model type its `_class_name` stands for (`PIPELINES`) and its language model's dtype."""
    path = folder / "config.json"
    if not path.is_file() and (folder / PIPELINE_INDEX).is_file():
        index = _json(folder / PIPELINE_INDEX)
        model_type = PIPELINES.get(index.get("_class_name"))
        config = {"model_type": model_type, "pipeline": index.get("_class_name")}
        inner = folder / "vision_language_encoder" / "config.json"
        if model_type and inner.is_file():
            config["dtype"] = _json(inner).get("dtype")
        return config
    return _json(path)


def _json(path: Path) -> dict:
    try:
        config = json.loads(path.read_text())
    except ValueError as e:
        raise ChatgenError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise ChatgenError(f"{path} is not a JSON object")
    return config


def weight_bytes(folder: Path, hub_id: str | None = None) -> int:
    """Bytes of the checkpoint's weights as stored (0 when unknown)."""
    for index in sorted(folder.rglob("*.index.json")):
        try:
            total = json.loads(index.read_text()).get("metadata", {}).get("total_size")
        except ValueError:
            total = None
        if total:
            return int(total)
    local = sum(f.stat().st_size for f in folder.rglob("*") if f.suffix in WEIGHT_SUFFIXES and f.is_file())
    if local or hub_id is None:
        return local
    try:  # a Hub checkpoint whose weights are not downloaded yet: their sizes from the Hub
        from huggingface_hub import HfApi

        info = HfApi().model_info(hub_id, files_metadata=True)
        return sum(s.size or 0 for s in info.siblings or [] if s.rfilename.endswith(WEIGHT_SUFFIXES))
    except Exception:
        return 0


def available_bytes(device: str | None) -> int:
    """Memory free for the weights: the GPU's free memory for a cuda device, else the host's."""
    if device and str(device).startswith("cuda") and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def _bytes_per_param(config: dict, dtype: torch.dtype | None, quantization: str | None) -> tuple[float, float]:
    """(bytes per parameter as stored, bytes per parameter once loaded)."""
    stored_name = config.get("dtype") or config.get("torch_dtype") or config.get("text_config", {}).get("dtype") or "float32"
    stored = getattr(torch, str(stored_name).replace("torch.", ""), torch.float32)
    stored_size = torch.finfo(stored).bits / 8 if stored.is_floating_point else 4
    if quantization == "4bit":
        return stored_size, 0.5 + 0.06  # 4-bit weights plus their block scales
    if quantization == "8bit":
        return stored_size, 1.0 + 0.03
    loaded = dtype if dtype is not None else stored
    return stored_size, torch.finfo(loaded).bits / 8


def estimate(folder: Path, config: dict, dtype: torch.dtype | None, quantization: str | None, hub_id: str | None = None) -> tuple[int, int]:
    """(bytes of the weights once loaded, bytes they would take in 4-bit); (0, 0) when unknown."""
    stored_bytes = weight_bytes(folder, hub_id)
    if not stored_bytes:
        return 0, 0
    stored, loaded = _bytes_per_param(config, dtype, quantization)
    return int(stored_bytes / stored * loaded), int(stored_bytes / stored * 0.56)


def size_text(n: int | float) -> str:
    """Bytes for a person: "14.0 GB", "512.0 MB", "96 KB" (GB = 1024**3 bytes)."""
    if n >= GB:
        return f"{n / GB:.1f} GB"
    if n >= 1024**2:
        return f"{n / 1024**2:.1f} MB"
    return f"{n / 1024:.0f} KB"


def too_big(need: int, four: int, free: int, device: str | None, quantization: str | None, offload_hint: bool = False, beyond: str = "") -> ChatgenError:
    """The refusal of weights that cannot fit: one sentence naming both sizes and the flags that would help."""
    where = "GPU memory" if device and str(device).startswith("cuda") else "memory"
    if quantization == "4bit":
        hint = "a machine with more memory (or --device cuda)"
    else:
        hint = f"--quantize 4bit (about {size_text(four)})"
        if offload_hint and not quantization:
            hint += " or --offload auto (slower: the weights that do not fit are read from the CPU or the disk)"
    return ChatgenError(f"the model's weights need about {size_text(need)} but only {size_text(free)} of {where} is free{beyond}; try {hint}")


def check_fits(folder: Path, config: dict, dtype: torch.dtype | None, device: str | None, quantization: str | None, hub_id: str | None = None, offload_hint: bool = False) -> int:
    """Raise one sentence when the weights cannot fit in the free memory; returns the estimate in bytes.
    `offload_hint`: the sentence names `--offload auto` too (the family can load offloaded)."""
    need, four = estimate(folder, config, dtype, quantization, hub_id)
    free = available_bytes(device) if need else 0
    if free and need > free:
        raise too_big(need, four, free, device, quantization, offload_hint)
    return need


def parse_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    name = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}.get(str(dtype), str(dtype))
    value = getattr(torch, name, None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ChatgenError(f"dtype must be one of float32, bfloat16, float16, got {dtype!r}")
    return value


def load_kwargs(dtype: torch.dtype | None, device: str | None, quantization: str | None, skip_modules: list[str] | None = None, offload=None) -> dict:
    """`from_pretrained` keyword arguments for the dtype, the bitsandbytes quantization (image
    parts in `skip_modules`, full module names from the root, stay unquantized), the device, and
    the low-memory profile (`offload`: an `offload.OffloadPlan`, whose device map places the weights)."""
    kwargs: dict = {}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if quantization:
        kwargs["quantization_config"] = bnb_config(quantization, dtype, skip_modules)
        if device:
            kwargs["device_map"] = {"": device}
    if offload is not None:
        kwargs.update(offload.kwargs())
    return kwargs


def bnb_config(quantization: str, dtype: torch.dtype | None, skip_modules: list[str] | None = None):
    """transformers' `BitsAndBytesConfig` for "4bit" / "8bit"; the modules in `skip_modules` stay unquantized."""
    if quantization not in ("4bit", "8bit"):
        raise ChatgenError(f"quantization must be '4bit' or '8bit', got {quantization!r}")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ChatgenError("--quantize needs bitsandbytes and accelerate: pip install 'chatgen[quant]'") from None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=quantization == "4bit", load_in_8bit=quantization == "8bit", llm_int8_skip_modules=skip_modules, bnb_4bit_compute_dtype=dtype or torch.float32)
