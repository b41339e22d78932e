"""The optional diffusion refiner: any diffusers image-to-image pipeline as a detail pass.

"Autoregressive layout, diffusion detail": the transformer decides what is where, and a
diffusers img2img pipeline redraws the decoded picture with the detail a VQ decoder loses.
`Refiner.from_pretrained(ID_OR_FOLDER)` loads any pipeline `AutoPipelineForImage2Image` knows
(Stable Diffusion, SD-Turbo, the SDXL refiner, Flux Kontext, Qwen-Image-Edit, ...), safetensors
weights only and never remote code. The refined picture is what the turn shows and saves; the
conversation keeps the model's own image tokens (`Turn.reply_ids`), so refining never changes
what the model reads on the next turn. Off unless a refiner is given (`--refiner ID|PATH`).

`Refiner.stream(image, prompt, seed, cancel)`, step by step:

1. Scale the picture up (bicubic) to the pipeline's working size: its longer side `size`
   (default: the pipeline's native side), both sides a multiple of 16.
2. Run the pipeline in a worker thread. After each denoising step its `callback_on_step_end`
   posts a `RefineStep` (with a preview) to a queue that this generator yields from; a set
   `cancel`, or closing the generator, interrupts the pipeline at the next step.
3. Bring the result to exactly the input's shape scaled by the same factor (pipelines that pick
   their own size, like Flux Kontext, included), so a mask painted on it keeps fitting.

Previews (`RefinerConfig.preview`):

- "latent" (default, cheap): the current latents through a linear latents -> RGB map, one small
  matrix product per step. The map is fit by least squares once per picture, on the VAE
  encoding of that picture at 16x16 latents (one small encode). The latents mid-way are noisy,
  so the preview is a noisy, low-resolution sketch of where the picture is heading.
- "vae": the latents decoded by the pipeline's own VAE: exact, but one full VAE decode per step
  (on a CPU about as slow as a denoising step at 512 px).
- "off": steps are still reported (for a progress bar), without a picture.

Previews need 4-D latents (B, C, h, w) and an `AutoencoderKL` (SD, SD-Turbo, SDXL and its
refiner). Pipelines that pack their latents into sequences (Flux Kontext, Qwen-Image-Edit)
report their steps without a picture.

`embedded` names the refiner of chatgen's own world (`chatgen.embedded_refiner`: the 96 px
decode to a crisp 384 px picture by a learned per-tile dictionary, not a diffusion model: its
doc says why), trained by `chatgen train --stage refiner` and shipped in
`chatgen/weights/refiner` (`EMBEDDED_REFINER`). A folder whose model_index.json names
`EmbeddedRefinerPipeline` is loaded with that class, gets the decode as it is (not upscaled
first), runs one step (its `refiner_defaults`) and previews its result.
"""

from __future__ import annotations

import inspect
import json
import queue
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image

from .errors import ChatgenError
from .events import RefineStep

EMBEDDED_REFINER = Path(__file__).parent / "weights" / "refiner"  # where the embedded refiner is shipped (a diffusers pipeline folder)
PREVIEWS = ("latent", "vae", "off")  # the preview modes of RefinerConfig.preview
SNAP = 16  # the pipeline's working sides are multiples of this (8x VAEs with 2x2 patches, as Flux, need 16)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}  # --dtype names


@dataclass
class RefinerConfig:
    """How the refiner redraws a picture (the CLI's --refiner-* flags, the UI's strength slider)."""

    strength: float = 0.5  # how much is redrawn: near 0 keeps the picture, 1 ignores it (pipelines without `strength`, as Flux Kontext, ignore it)
    steps: int = 4  # denoising steps at strength 1; img2img runs int(steps x strength) of them
    guidance: float | None = None  # classifier-free guidance scale; None: the pipeline's default (SD-Turbo wants 0)
    size: int | None = None  # longer side of the refined picture in px; None: the pipeline's native side (512 for SD, 1024 for SDXL)
    style: str = ""  # words added to every turn's prompt, e.g. "sharp, detailed emoji"
    negative_prompt: str = ""  # what to steer away from (only pipelines that take a negative prompt)
    preview: str = "latent"  # per-step previews: "latent" (cheap linear map), "vae" (exact decode per step) or "off"

    def check(self) -> "RefinerConfig":
        """Raise a one-sentence ChatgenError naming the first bad field; return self."""
        if not isinstance(self.strength, (int, float)) or not 0 < self.strength <= 1:
            raise ChatgenError(f"refiner strength must be above 0 and at most 1, got {self.strength!r}")
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 1:
            raise ChatgenError(f"refiner steps must be a whole number of at least 1, got {self.steps!r}")
        if int(self.steps * self.strength) < 1:
            raise ChatgenError(f"refiner steps x strength must be at least 1 (img2img runs int(steps x strength) steps), got {self.steps} x {self.strength}")
        if self.guidance is not None and (not isinstance(self.guidance, (int, float)) or self.guidance < 0):
            raise ChatgenError(f"refiner guidance must be 0 or more, got {self.guidance!r}")
        if self.size is not None and (not isinstance(self.size, int) or not SNAP <= self.size <= 4096):
            raise ChatgenError(f"refiner size must be a whole number of pixels from {SNAP} to 4096, got {self.size!r}")
        if self.preview not in PREVIEWS:
            raise ChatgenError(f"refiner preview must be one of {', '.join(PREVIEWS)}, got {self.preview!r}")
        return self


class Refiner:
    """A diffusers img2img pipeline (passed in) as the assistant's detail pass."""

    def __init__(self, pipe, config: RefinerConfig | None = None, name: str = "", lock: threading.Lock | None = None):
        self.pipe = pipe  # a diffusers image-to-image pipeline
        self.config = (config or RefinerConfig()).check()  # how it redraws
        self.name = name or type(pipe).__name__  # the Hub id or folder it was loaded from (recorded in each refined turn)
        self.lock = lock or threading.Lock()  # one pipeline call at a time (shared by `with_config` copies)
        self._params = set(inspect.signature(pipe.__call__).parameters)  # what this pipeline's __call__ accepts
        if hasattr(pipe, "set_progress_bar_config"):
            pipe.set_progress_bar_config(disable=True)

    @classmethod
    def from_pretrained(cls, path: str | Path, config: RefinerConfig | dict | None = None, dtype: str | torch.dtype | None = None, device: str | None = None) -> "Refiner":
        """Load an img2img pipeline from a folder (with model_index.json) or a Hub id.

        `config`: the settings (taken as they are), or a dict of the settings given, or None (the
        rest are the pipeline's own defaults: `RefinerConfig`'s, or the embedded refiner's
        `refiner_defaults`).

        1. Check the settings, then where the pipeline is: a folder, else something shaped like a Hub id.
        2. Load it with `AutoPipelineForImage2Image` (chatgen's own `EmbeddedRefinerPipeline` when
           the folder names it: two PNG tables, no code): safetensors weights only, no remote code.
        3. Move it to `device` (default: the CPU)."""
        # 1. Check.
        given = config if isinstance(config, dict) else {} if config is None else None  # settings over the pipeline's defaults
        (RefinerConfig(**given) if given is not None else config).check()  # a bad value is refused before anything loads
        torch_dtype = _dtype(dtype)
        p = Path(path)
        if p.is_file():
            raise ChatgenError(f"refiner {path} is a file; expected a diffusers pipeline folder (with model_index.json) or a Hub id")
        if p.is_dir() and not (p / "model_index.json").is_file():
            raise ChatgenError(f"no diffusers pipeline at refiner folder {path}: model_index.json is missing")
        if not p.is_dir() and (str(path).count("/") != 1 or str(path).startswith((".", "/", "~"))):
            raise ChatgenError(f"no refiner at {path}: the folder does not exist and it is not a Hub id (like stabilityai/sd-turbo)")
        # 2. Load.
        from diffusers import AutoPipelineForImage2Image

        own = p.is_dir() and _class_name(p) == "EmbeddedRefinerPipeline"
        kwargs = {"use_safetensors": True}
        if torch_dtype is not None:
            kwargs["torch_dtype"] = torch_dtype
        try:
            if own:
                from .embedded_refiner import EmbeddedRefinerPipeline

                pipe = EmbeddedRefinerPipeline.from_pretrained(str(path))
            else:
                pipe = AutoPipelineForImage2Image.from_pretrained(str(path), **kwargs)
        except ChatgenError:
            raise
        except Exception as e:  # offline, unknown repo, no safetensors, no img2img variant: one line, not a traceback
            where = "" if p.is_dir() else "; not a local folder, and the Hub did not provide it"
            raise ChatgenError(f"cannot load refiner {path}{where} ({type(e).__name__}: {_first_line(e)})") from None
        if given is not None:
            config = RefinerConfig(**(getattr(pipe, "refiner_defaults", {}) | given)).check()
        # 3. Place.
        if device:
            try:
                pipe = pipe.to(device)
            except (RuntimeError, AssertionError, ValueError) as e:
                raise ChatgenError(f"cannot move the refiner to device {device!r} ({_first_line(e)})") from None
        return cls(pipe, config, name=str(path))

    def with_config(self, **changes) -> "Refiner":
        """The same pipeline (and lock) with other settings, e.g. `with_config(strength=0.3)`."""
        return Refiner(self.pipe, replace(self.config, **changes), name=self.name, lock=self.lock)

    def describe(self) -> dict:
        """What a refined turn records in its metadata (and its PNG's parameters)."""
        c = self.config
        return {"name": self.name, "strength": c.strength, "steps": c.steps, "guidance": c.guidance, "size": self.size}

    @property
    def size(self) -> int:
        """The longer side of a refined picture in px: the configured size, else the pipeline's native side."""
        if self.config.size is not None:
            return self.config.size
        if isinstance(getattr(self.pipe, "output_side", None), int):  # a pipeline with one output size (the embedded refiner)
            return self.pipe.output_side
        pipe, factor = self.pipe, int(getattr(self.pipe, "vae_scale_factor", 8) or 8)
        unet = getattr(pipe, "unet", None)
        if unet is not None and isinstance(getattr(unet.config, "sample_size", None), int):
            return unet.config.sample_size * factor
        if isinstance(getattr(pipe, "default_sample_size", None), int):
            return pipe.default_sample_size * factor
        return 512

    # ---- refining ----------------------------------------------------------------------------
    def refine(self, image: Image.Image, prompt: str = "", seed: int | None = None, cancel: threading.Event | None = None) -> Image.Image | None:
        """The refined picture, without previews (None when `cancel` was set)."""
        steps = self.stream(image, prompt, seed=seed, cancel=cancel, previews=False)
        while True:
            try:
                next(steps)
            except StopIteration as stop:
                return stop.value

    def stream(self, image: Image.Image, prompt: str = "", seed: int | None = None, cancel: threading.Event | None = None, previews: bool = True) -> Iterator[RefineStep]:
        """Yield a `RefineStep` per denoising step; return (as the generator's value, for
        `picture = yield from refiner.stream(...)`) the refined picture, or None when cancelled."""
        # 1. Check and scale the picture up to the working size.
        if not isinstance(image, Image.Image):
            raise ChatgenError(f"the refiner needs a PIL image, got {type(image).__name__}")
        w, h = image.size
        k = self.size / max(w, h)
        out_size = (max(1, round(w * k)), max(1, round(h * k)))  # the input's shape, scaled
        work = tuple(max(SNAP, round(s / SNAP) * SNAP) for s in out_size)  # (width, height) the pipeline draws
        source = image.convert("RGB") if getattr(self.pipe, "wants_original", False) else image.convert("RGB").resize(work, Image.Resampling.BICUBIC)
        text = ", ".join(x for x in (prompt.strip(), self.config.style.strip()) if x)
        mode = self.config.preview if previews else "off"
        # 2. Run the pipeline in a worker thread; its step callback posts to `posted`.
        posted: queue.Queue = queue.Queue()
        stop = threading.Event()  # set when this generator is closed
        interrupted = threading.Event()  # the pipeline was told to skip its remaining steps
        fit: list = [None]  # the latents -> RGB map of "latent" previews, (C + 1, 3), fit in the worker

        def on_step(pipe, i, t, tensors):
            if stop.is_set() or (cancel is not None and cancel.is_set()):
                pipe._interrupt = True  # diffusers pipelines skip their remaining steps
                interrupted.set()
                return tensors
            total = getattr(pipe, "num_timesteps", None) or max(1, int(self.config.steps * self.config.strength))
            latents = tensors.get("latents")
            picture = None
            if mode != "off" and hasattr(pipe, "preview"):  # a pipeline that knows its own latents (the embedded refiner)
                picture = pipe.preview(latents, out_size)
            elif mode == "latent" and fit[0] is not None:
                picture = _latent_preview(latents, fit[0], out_size)
            elif mode == "vae":
                picture = _vae_preview(pipe, latents, out_size)
            posted.put(RefineStep(step=i, steps=int(total), preview=picture))
            return tensors

        kwargs = self._call_kwargs(source, text, seed, on_step)

        def work_():
            try:
                with self.lock:
                    if mode == "latent" and not hasattr(self.pipe, "preview"):
                        fit[0] = _latent_fit(self.pipe, source)
                    posted.put(("done", self.pipe(**kwargs).images[0]))
            except BaseException as e:  # handed to the caller's thread, raised there
                posted.put(("error", e))

        worker = threading.Thread(target=work_, name="chatgen-refiner", daemon=True)
        worker.start()
        try:
            while True:
                item = posted.get()
                if isinstance(item, RefineStep):
                    yield item
                    continue
                kind, value = item
                if kind == "error":
                    raise value
                break
        finally:
            stop.set()
            worker.join()
        if interrupted.is_set():
            return None
        # 3. The input's shape, scaled.
        out = value.convert("RGB")
        return out if out.size == out_size else out.resize(out_size, Image.Resampling.BICUBIC)

    def _call_kwargs(self, source: Image.Image, text: str, seed: int | None, on_step) -> dict:
        """The pipeline's keyword arguments: only those its `__call__` takes."""
        c, accepts = self.config, self._params
        kwargs: dict = {"image": source, "prompt": text, "num_inference_steps": c.steps, "output_type": "pil"}
        if "strength" in accepts:
            kwargs["strength"] = c.strength
        if c.guidance is not None and "guidance_scale" in accepts:
            kwargs["guidance_scale"] = float(c.guidance)
        if c.negative_prompt and "negative_prompt" in accepts:
            kwargs["negative_prompt"] = c.negative_prompt
        if "height" in accepts and "width" in accepts:
            kwargs["width"], kwargs["height"] = source.size
        if seed is not None:
            kwargs["generator"] = torch.Generator().manual_seed(int(seed))  # on the CPU: the same seed, the same picture on any device
        if "callback_on_step_end" in accepts:
            kwargs["callback_on_step_end"] = on_step
            kwargs["callback_on_step_end_tensor_inputs"] = ["latents"]
        return kwargs


def embedded_shipped() -> bool:
    """Whether this install has the embedded refiner (the UI and the Space turn it on by default
    for the embedded model when it does)."""
    return (EMBEDDED_REFINER / "model_index.json").is_file()


def load_refiner(spec: str | None, config: RefinerConfig | dict | None = None, dtype: str | None = None, device: str | None = None) -> Refiner | None:
    """The refiner a `--refiner` value names: None for "off" (or nothing), the embedded one for
    "embedded", else a Hub id or a pipeline folder (`Refiner.from_pretrained`)."""
    spec = (spec or "").strip()
    if spec in ("", "off", "none"):
        return None
    if spec == "embedded":
        if not embedded_shipped():
            raise ChatgenError("the embedded refiner is missing from this install (chatgen/weights/refiner); pass a Hub id such as stabilityai/sd-turbo or a pipeline folder to --refiner, or leave it off")
        return Refiner.from_pretrained(EMBEDDED_REFINER, config, dtype=dtype, device=device)
    return Refiner.from_pretrained(spec, config, dtype=dtype, device=device)


# ---- helpers ---------------------------------------------------------------------------------
def _dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ChatgenError(f"refiner dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def _class_name(folder: Path) -> str | None:
    """The pipeline class a folder's model_index.json names (None when unreadable)."""
    try:
        return json.loads((folder / "model_index.json").read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError):
        return None


def _first_line(e: BaseException) -> str:
    line = (str(e).strip().splitlines() or [""])[0]
    return line if len(line) <= 200 else line[:197] + "..."


def _vae_of(pipe):
    """The pipeline's VAE when previews can use it (an AutoencoderKL), else None."""
    from diffusers import AutoencoderKL

    vae = getattr(pipe, "vae", None)
    return vae if isinstance(vae, AutoencoderKL) else None


def _latent_space(vae) -> tuple[float, float]:
    """(scale, shift) with latents = (vae latents - shift) * scale, as the pipelines do."""
    return float(vae.config.scaling_factor or 1.0), float(getattr(vae.config, "shift_factor", None) or 0.0)


@torch.no_grad()
def _latent_fit(pipe, picture: Image.Image, n: int = 16) -> torch.Tensor | None:
    """(C + 1, 3): the least-squares linear map (weights, then bias) from the pipeline's latent
    channels to RGB in [-1, 1], fit on `picture`'s own encoding at n x n latents."""
    vae = _vae_of(pipe)
    if vae is None:
        return None
    factor = int(getattr(pipe, "vae_scale_factor", 8) or 8)
    small = np.asarray(picture.resize((n * factor, n * factor), Image.Resampling.BICUBIC), dtype=np.float32) / 127.5 - 1  # (nf, nf, 3)
    x = torch.from_numpy(small).permute(2, 0, 1)[None].to(vae.device, vae.dtype)  # (1, 3, nf, nf)
    scale, shift = _latent_space(vae)
    z = (vae.encode(x).latent_dist.mean.float() - shift) * scale  # (1, C, n, n)
    target = np.asarray(picture.resize((n, n), Image.Resampling.BOX), dtype=np.float32) / 127.5 - 1  # (n, n, 3)
    a = z[0].flatten(1).T.cpu()  # (n*n, C)
    a = torch.cat([a, torch.ones(len(a), 1)], 1)  # (n*n, C + 1)
    b = torch.from_numpy(target).reshape(-1, 3)  # (n*n, 3)
    solution = torch.linalg.lstsq(a, b).solution  # (C + 1, 3)
    return solution if torch.isfinite(solution).all() else None  # a half-precision VAE may overflow: then no previews


def _to_picture(rgb: torch.Tensor, size: tuple[int, int]) -> Image.Image:
    """(3, h, w) in [-1, 1] -> a PIL picture of `size`."""
    pixels = ((torch.nan_to_num(rgb).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()  # (h, w, 3)
    return Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR)


def _latent_preview(latents, fit: torch.Tensor, size: tuple[int, int]) -> Image.Image | None:
    """The current latents through the fitted linear map (None for latents it cannot read)."""
    if not isinstance(latents, torch.Tensor) or latents.dim() != 4 or latents.shape[1] != fit.shape[0] - 1:
        return None
    z = latents[0].detach().float().cpu()  # (C, h, w)
    rgb = torch.einsum("chw,cd->dhw", z, fit[:-1]) + fit[-1][:, None, None]  # (3, h, w)
    return _to_picture(rgb, size)


@torch.no_grad()
def _vae_preview(pipe, latents, size: tuple[int, int]) -> Image.Image | None:
    """The current latents decoded by the pipeline's VAE (None for latents it cannot read)."""
    vae = _vae_of(pipe)
    if vae is None or not isinstance(latents, torch.Tensor) or latents.dim() != 4:
        return None
    scale, shift = _latent_space(vae)
    x = vae.decode(latents[:1].to(vae.dtype) / scale + shift).sample  # (1, 3, H, W)
    return _to_picture(x[0].float(), size)
