"""GLM-Image (zai-org/GLM-Image) behind chatgen: an autoregressive layout model plus a diffusion decoder.

GLM-Image is a diffusers pipeline folder (`model_index.json`, `_class_name` "GlmImagePipeline"),
not a transformers one: `checkpoint.read_config` maps it to model type `glm_image`. Its parts:

    processor                GlmImageProcessor (tokenizer, image processor, chat template)
    vision_language_encoder  GlmImageForConditionalGeneration: a GLM text model whose head has
                             only `vision_vocab_size` outputs (image tokens, no words), a vision
                             encoder and an encode-only GlmImageVQVAE (uploads -> tokens)
    text_encoder, tokenizer  T5 (ByT5) for the quoted text the picture should spell (glyphs)
    transformer, vae, scheduler  the diffusion transformer that turns the tokens into pixels

A turn, single-shot:

1. Route the request (`janus_vocab.route`, the same rule as Janus): a question gets one fixed,
   honest sentence (`CANNOT_ANSWER`) and no picture: the model cannot answer in words. A mask
   is refused in one sentence (GLM-Image redraws the whole picture).
2. Draw, or edit the latest picture (this message's upload, else the newest picture of the
   conversation): the processor renders the chat template, the source picture (edits) as
   `<image start> <|image|>... <image end>`, then `<sop>H W<eop>` grids and the image start
   token `<|dit_token_16384|>`, which ends the prompt.
3. The autoregressive step, streamed: a coarse preview grid (about 16x16, drawing only), then the
   large grid (H/32 x W/32, 32x32 at 1024 px), then the image end `<|dit_token_16385|>`; a
   logits processor allows only VQ codes inside the grids and the image end after them. The
   reply's stored ids are these tokens.
4. The diffusion decoder: the large grid upsampled x2 goes to `GlmImagePipeline(...,
   prior_token_ids=...)`, which then skips its own autoregressive step; an edit also passes
   the source picture and its tokens (`prior_token_image_ids`, `source_image_grid_thw`).

Not here, and why: the key/value cache is not reused across turns and earlier turns are not in
the prompt. GLM-Image was trained single-shot (one request, at most its source pictures), and
the model keeps its decode positions on itself (`_cached_decode_position_ids`, `rope_deltas`,
computed from the whole prompt at prefill), so a cache reused for a longer prompt would decode
with the wrong positions. Each turn reads its own request and the picture it edits.

The edit path works around a bug of diffusers 0.42.1 with transformers 5.24 (the same call
site as the GLM-Image repository's issue 20): `generate_prior_tokens` concatenates the per-image
features `torch.cat(pooler_output)` and `get_image_tokens` then iterates that tensor's channels
as if they were images. chatgen tokenizes the source itself (`encode_image`: `get_image_tokens`
on the list of (C, h, w) features) and passes the tokens in.

Memory: `--quantize 4bit|8bit` quantizes the autoregressive model's GLM layers with bitsandbytes
(diffusers' `PipelineQuantizationConfig`); the low-memory profile (`offload.py`) is diffusers'
CPU offload of whole components, on CUDA only.

Not checked here (no GPU, no weights): GLM-Image's own pictures, and its CPU offload on CUDA;
the tests use a tiny random pipeline of the same classes saved with `save_pretrained`.
"""

from __future__ import annotations

import hashlib
import json
import math
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch
from PIL import Image

from ..conversation import Message, Session
from ..errors import ChatgenError
from ..events import Event, ImageDone, ImageRow, ImageStart, ReplyDone, TextDelta
from ..generation import Prompt
from ..params import GenerationParams
from .base import Backend
from .checkpoint import bnb_config, size_text, weight_bytes
from .janus_vocab import route
from .offload import onloaded

CANNOT_ANSWER = "GLM-Image draws and edits pictures; it cannot answer questions in words."
NO_PICTURE = "There is no picture to edit yet: draw one or upload one first."
NO_MASK = "GLM-Image redraws the whole picture and cannot keep a painted mask: send the edit without a mask."
DEFAULT_SIZE = 1024  # pixels per side: GLM-Image's 32x32 large grid
FACTOR = 32  # pixels per token side of the large grid (GlmImageProcessor._get_target_shape)


@dataclass(frozen=True)
class GlmImageVocab:
    """What chatgen asks of a vocabulary, over GLM-Image's ids: prompt ids are the processor's,
    generated ids are image tokens (`<|dit_token_k|>` is id k) and the image end."""

    size: int  # ids of the processor's tokenizer (prompts); generated ids are below codebook_size + 2
    codebook_size: int  # VQ codes (16384); code k is id k
    boi: int  # image start <|dit_token_16384|>: ends the prompt
    eot: int  # image end <|dit_token_16385|>: ends the reply
    grid_h: int  # token rows of the large grid (height / 32)
    grid_w: int  # tokens per row
    prev_h: int  # rows of the coarse preview grid a drawing starts with
    prev_w: int  # tokens per preview row

    @property
    def image_tokens(self) -> int:
        return self.grid_h * self.grid_w

    def is_image(self, token_id: int) -> bool:
        return 0 <= token_id < self.codebook_size

    def codes_to_ids(self, codes: torch.Tensor) -> list[int]:
        """(grid_h, grid_w) codes -> the reply ids of a picture: the codes and the image end."""
        if tuple(codes.shape) != (self.grid_h, self.grid_w):
            raise ValueError(f"codes must have shape ({self.grid_h}, {self.grid_w}), got {tuple(codes.shape)}")
        return [*codes.reshape(-1).long().tolist(), self.eot]  # (H*W,) row-major

    def ids_to_codes(self, ids) -> torch.Tensor:
        ids = list(ids)[-self.image_tokens :]
        return torch.tensor(ids, dtype=torch.long).reshape(self.grid_h, self.grid_w)  # (H, W)

    def split_spans(self, ids: list[int]) -> tuple[list[int], list[list[int]]]:
        """(ids that are not codes, [the large grid's codes]) of a stored reply."""
        codes = [i for i in ids if self.is_image(i)]
        spans = [codes[-self.image_tokens :]] if len(codes) >= self.image_tokens else []
        return [i for i in ids if not self.is_image(i)], spans


@dataclass
class GlmPrompt(Prompt):
    """A GLM-Image turn: the processor's inputs and what the turn does."""

    kind: str = "draw"  # "draw", "edit", or "say" (a fixed sentence, no picture)
    text: str = ""  # the request as the model reads it, or the sentence to say
    source: Image.Image | None = None  # the picture an edit starts from, resized to the target size
    inputs: dict = field(default_factory=dict)  # the processor's tensors for `generate`


class GlmImageBackend(Backend):
    """A `GlmImagePipeline` (its `vision_language_encoder` is GLM-Image's autoregressive model), parts passed in."""

    def __init__(self, pipe, size: int | None = None, steps: int = 50, guidance_scale: float = 1.5, name: str = "glm_image"):
        self.pipe = pipe  # diffusers GlmImagePipeline
        self.model = pipe.vision_language_encoder.eval()  # GlmImageForConditionalGeneration
        self.processor = pipe.processor  # GlmImageProcessor
        self.tokenizer = self.processor.tokenizer
        self.steps = steps  # denoising steps of the diffusion decoder (the pipeline's default)
        self.guidance_scale = guidance_scale  # the decoder's CFG (the pipeline's default); cfg_scale != 1 overrides it
        # 1. The picture size: 1024 px, capped by what the image processor reads, a multiple of 32.
        ip = self.processor.image_processor
        cap = math.isqrt(int((getattr(ip, "size", None) or {}).get("longest_edge", DEFAULT_SIZE**2)))
        side = (min(size or DEFAULT_SIZE, cap) // FACTOR) * FACTOR
        if side < FACTOR:
            raise ChatgenError(f"GLM-Image pictures need at least {FACTOR} px a side, got {side}")
        self.pixels = side, side  # (height, width)
        grid_h, grid_w, prev_h, prev_w = self.processor._get_target_shape(height=side, width=side)
        # 2. The ids: <|dit_token_k|> is id k (codes, then the image start and end).
        config = self.model.config
        codebook = int(config.vq_config.num_embeddings)
        if (config.image_start_token_id, config.image_end_token_id) != (codebook, codebook + 1):
            raise ChatgenError("this GLM-Image checkpoint's image start and end tokens do not follow its codebook")
        self.vocab = GlmImageVocab(size=len(self.tokenizer), codebook_size=codebook, boi=codebook, eot=codebook + 1, grid_h=grid_h, grid_w=grid_w, prev_h=prev_h, prev_w=prev_w)
        self.max_context = int(config.text_config.max_position_embeddings)
        digest = hashlib.sha1(json.dumps([codebook, side, len(self.tokenizer)]).encode()).hexdigest()[:12]
        self.name = f"glm_image:{name}:{digest}"
        self.lock = threading.Lock()  # one generation at a time

    # ---- loading -----------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path, dtype: torch.dtype | None = None, device: str | None = None, quantization: str | None = None, size: int | None = None, steps: int = 50, offload=None) -> "GlmImageBackend":
        """Load a diffusers GLM-Image folder (`GlmImagePipeline.save_pretrained`).

        quantization ("4bit", "8bit"): the autoregressive model's GLM layers with bitsandbytes,
        through diffusers' `PipelineQuantizationConfig` (its vision encoder, its VQ and its head
        stay in full precision; the diffusion decoder and the T5 are not quantized).
        offload (an `offload.OffloadPlan`): on CUDA, diffusers' CPU offload, whole components in
        turn (`enable_model_cpu_offload`); one sentence when the largest does not fit the plan's
        GPU budget. Not `enable_sequential_cpu_offload`: with accelerate 1.15 and transformers
        5.24 it fails inside the pipeline (a weight accelerate brought in comes back as a plain
        tensor and cannot be offloaded again; seen on the CPU). Off CUDA: a note, and the
        pipeline loads whole."""
        from diffusers import GlmImagePipeline

        folder = Path(path)
        missing = [p for p in ("processor", "vision_language_encoder", "transformer", "vae", "text_encoder", "tokenizer", "scheduler") if not (folder / p).is_dir()]
        if missing:
            raise ChatgenError(f"GLM-Image pipeline at {folder} is incomplete: {', '.join(missing)} missing")
        kwargs: dict = {"torch_dtype": dtype} if dtype is not None else {}
        if quantization:
            from diffusers import PipelineQuantizationConfig

            vle = bnb_config(quantization, dtype, skip_modules=["model.visual", "model.vqmodel", "lm_head"])
            kwargs["quantization_config"] = PipelineQuantizationConfig(quant_mapping={"vision_language_encoder": vle})
        pipe = GlmImagePipeline.from_pretrained(folder, **kwargs)
        pipe.set_progress_bar_config(disable=True)
        cuda = bool(device) and torch.device(device).type == "cuda"
        if offload is not None and cuda:
            largest = max(weight_bytes(folder / part) for part in ("vision_language_encoder", "transformer", "text_encoder", "vae"))
            if largest > offload.device_budget():
                raise ChatgenError(f"GLM-Image's largest part needs about {size_text(largest)} but the GPU holds only {size_text(offload.device_budget())} of weights; try --quantize 4bit or a GPU with more memory")
            pipe.enable_model_cpu_offload(device=device)
        else:
            if offload is not None:
                print("chatgen: GLM-Image is offloaded on CUDA only (diffusers' CPU offload); loading it whole", file=sys.stderr, flush=True)
            if device:
                pipe = pipe.to(device)
        return cls(pipe, size=size, steps=steps, name=folder.name)

    # ---- text --------------------------------------------------------------------------------
    def encode_text(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False) if text else []

    def decode_text(self, ids: list[int]) -> str:
        return self.tokenizer.decode([i for i in ids if not self.vocab.is_image(i) and i != self.vocab.eot]).strip()

    # ---- images ------------------------------------------------------------------------------
    def _fit(self, image: Image.Image) -> Image.Image:
        h, w = self.pixels
        return image.convert("RGB").resize((w, h), Image.BICUBIC)

    @torch.no_grad()
    def encode_image(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> (grid_h, grid_w) VQ codes: the vision encoder's features, then the VQ.

        Workaround for diffusers 0.42.1 + transformers 5.24 (GLM-Image issue 20's call site): the
        pipeline calls `get_image_tokens(torch.cat(features))`, which iterates channels as
        images; here it gets the list of (C, h, w) features, one per image, as it expects."""
        inputs = self.processor.image_processor(images=[self._fit(image)], return_tensors="pt")
        device = self._device()
        grid = inputs["image_grid_thw"].to(device)  # (1, 3): t, h, w
        pixels = inputs["pixel_values"].to(device, self.model.dtype)
        with onloaded(self.model.model.vqmodel.quantize):  # it reads its codebook's weight: bring it in when offloaded
            features = self.model.get_image_features(pixels, image_grid_thw=grid).pooler_output  # [(C, h, w)]
            tokens = self.model.get_image_tokens(list(features), grid)  # (h*w,)
        _, h, w = grid[0].tolist()
        return tokens.reshape(h, w).cpu().long()  # (h, w)

    def _device(self) -> torch.device:
        """Where the autoregressive model's inputs go: its own device, or under diffusers' CPU
        offload (CUDA) the pipeline's execution device. Model offload moves the model there only
        when its `forward` runs, and `get_image_features` is none: it is moved in here first."""
        hook = getattr(self.model, "_hf_hook", None)
        if hook is None:
            return self.model.device
        if hasattr(hook, "prev_module_hook"):  # accelerate's CpuOffload: the whole model in, the previous one out
            hook.pre_forward(self.model)
        return self.pipe._execution_device

    def decode_image(self, codes: torch.Tensor) -> Image.Image:
        """(grid_h, grid_w) codes -> PIL image through the diffusion decoder (empty prompt)."""
        return self._draw_pixels("", codes, None, seed=0, guidance=self.guidance_scale)

    # ---- prompts -----------------------------------------------------------------------------
    def encode_user(self, message: Message) -> list[int]:
        return self._inputs(message.text, message.image)["input_ids"][0].tolist()

    def turn_ids(self, turn) -> list[int]:
        """A stored turn: its prompt ids and reply ids (kept for the session format; GLM-Image's
        prompts never hold earlier turns)."""
        if turn.token_model == self.name and self.stored_ids_ok(turn):
            return [*turn.user_ids, *turn.reply_ids]
        return self.encode_user(Message(turn.user_text))

    def stored_ids_ok(self, turn) -> bool:
        user, reply = turn.user_ids, turn.reply_ids
        return bool(user and reply and reply[-1] == self.vocab.eot and all(type(i) is int and 0 <= i < self.vocab.size for i in (*user, *reply)))

    def message_room(self, session: Session) -> int:
        v = self.vocab
        return self.max_context - v.prev_h * v.prev_w - 2 * v.image_tokens - 16

    def _inputs(self, text: str, image: Image.Image | None) -> dict:
        """The processor's tensors: the chat template, the source picture, the target grids and the image start."""
        h, w = self.pixels
        content = ([{"type": "image", "image": image}] if image is not None else []) + [{"type": "text", "text": text}]
        return self.processor.apply_chat_template([[{"role": "user", "content": content}]], tokenize=True, return_dict=True, return_tensors="pt", processor_kwargs={"target_h": h, "target_w": w})

    def prompt(self, session: Session, message: Message) -> GlmPrompt:
        """Step 1 and 2 of the module docstring: what the turn does, and its prompt ids."""
        upload = message.image is not None
        latest = message.image if upload else session.last_image()
        kind, text = route(message.text, mask=message.mask is not None, has_picture=False)
        say = None
        if message.mask is not None:
            say = NO_MASK
        elif kind == "answer" or not text:
            say = CANNOT_ANSWER
        elif kind == "edit" and latest is None:
            say = NO_PICTURE
        if say is not None:
            ids = self.encode_user(Message(message.text))
            return GlmPrompt(ids=ids, user_ids=ids, kind="say", text=say)
        if upload and kind == "draw" and not message.text.strip().lower().startswith("draw:"):
            kind = "edit"  # a request with an upload redraws the upload
        source = self._fit(latest) if kind == "edit" else None
        inputs = self._inputs(text, source)
        ids = inputs["input_ids"][0].tolist()
        return GlmPrompt(ids=ids, user_ids=ids, kind=kind, text=text, source=source, inputs=dict(inputs))

    # ---- generation --------------------------------------------------------------------------
    def stream(self, prompt: Prompt, params: GenerationParams, cancel: threading.Event | None = None) -> Iterator[Event]:
        """Step 3 and 4 of the module docstring; the last event is `ReplyDone`."""
        if not isinstance(prompt, GlmPrompt):
            raise ChatgenError("GLM-Image streams only prompts made by its own `prompt`")
        if prompt.kind == "say":
            yield TextDelta(prompt.text)
            yield ReplyDone(text=prompt.text, image=None, reply_ids=[*self.encode_text(prompt.text), self.vocab.eot], stats={"prompt_tokens": len(prompt.ids), "new_tokens": 0})
            return
        with self.lock:
            yield from self._stream_picture(prompt, params, cancel)

    def _stream_picture(self, prompt: GlmPrompt, params: GenerationParams, cancel: threading.Event | None) -> Iterator[Event]:
        v, t0 = self.vocab, time.perf_counter()
        preview = v.prev_h * v.prev_w if prompt.kind == "draw" else 0  # an edit has no preview grid
        n = preview + v.image_tokens
        # 3. The autoregressive step on a worker thread; its tokens come through a queue.
        # Closing this generator early stops the worker too (`halt`); the caller's `cancel` stops both.
        tokens: queue.Queue = queue.Queue()
        stop, halt = cancel or threading.Event(), threading.Event()
        worker = threading.Thread(target=self._generate, args=(prompt, params, n, tokens, lambda: stop.is_set() or halt.is_set()), daemon=True)
        worker.start()
        out: list[int] = []
        first = None
        try:
            yield ImageStart(rows=v.grid_h, cols=v.grid_w)
            while True:
                item = tokens.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                for t in item:
                    first = first or time.perf_counter() - t0
                    out.append(t)
                    k = len(out) - preview  # tokens of the large grid so far
                    if k > 0 and k % v.grid_w == 0 and k <= v.image_tokens:
                        yield ImageRow(row=k // v.grid_w - 1, rows=v.grid_h, preview=None)
        finally:
            halt.set()
            worker.join()
        stats = {"prompt_tokens": len(prompt.ids), "cached_tokens": 0, "new_tokens": len(out), "image_tokens": v.image_tokens, "first_token_s": round(first or 0.0, 4)}
        if len(out) < n or stop.is_set():
            stats["total_s"] = round(time.perf_counter() - t0, 4)
            yield ReplyDone(text="", image=None, reply_ids=out, cancelled=stop.is_set(), stats=stats)
            return
        # 4. The diffusion decoder turns the large grid into pixels.
        codes = torch.tensor(out[preview:n], dtype=torch.long).reshape(v.grid_h, v.grid_w)  # (H, W)
        guidance = params.cfg_scale if params.cfg_scale != 1.0 else self.guidance_scale
        image = self._draw_pixels(prompt.text, codes, prompt.source, seed=int(params.seed or 0), guidance=guidance)
        yield ImageDone(image=image, codes=codes)
        stats["total_s"] = round(time.perf_counter() - t0, 4)
        yield ReplyDone(text="", image=image, reply_ids=[*out[:n], v.eot], stats=stats)

    @torch.no_grad()
    def _generate(self, prompt: GlmPrompt, params: GenerationParams, n: int, tokens: queue.Queue, stopped) -> None:
        """`generate` with the grids constrained to codes and the image end after them; puts
        lists of new token ids on `tokens`, then None (or the exception); `stopped()` cancels."""
        from transformers import (
            LogitsProcessorList,
            StoppingCriteria,
            StoppingCriteriaList,
        )
        from transformers.generation.streamers import BaseStreamer

        v = self.vocab
        start = prompt.inputs["input_ids"].shape[1]

        class Stream(BaseStreamer):
            def __init__(self):
                self.prompt_seen = False

            def put(self, value):
                if not self.prompt_seen:  # generate first puts the prompt
                    self.prompt_seen = True
                    return
                tokens.put(value.reshape(-1).tolist())

            def end(self):
                pass

        def constrain(input_ids, scores):  # (B, T), (B, vision_vocab_size)
            step = input_ids.shape[1] - start
            keep = torch.zeros_like(scores, dtype=torch.bool)
            if step < n:
                keep[:, : v.codebook_size] = True  # inside a grid: codes only
            else:
                keep[:, v.eot] = True  # after the grids: the image end
            return scores.masked_fill(~keep, float("-inf"))

        class Cancel(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), stopped(), dtype=torch.bool, device=input_ids.device)

        try:
            torch.manual_seed(int(params.seed or 0))
            config = params.generation_config(self.model.generation_config, eos_token_id=v.eot, pad_token_id=v.eot)
            config.update(max_new_tokens=n + 1, return_dict_in_generate=False)
            device = self._device()
            inputs = {k: x.to(device) if torch.is_tensor(x) else x for k, x in prompt.inputs.items()}
            self.model.generate(**inputs, generation_config=config, logits_processor=LogitsProcessorList([constrain]), stopping_criteria=StoppingCriteriaList([Cancel()]), streamer=Stream())
            tokens.put(None)
        except BaseException as e:  # handed to the consumer, raised there
            tokens.put(e)

    @torch.no_grad()
    def _draw_pixels(self, text: str, codes: torch.Tensor, source: Image.Image | None, seed: int, guidance: float) -> Image.Image:
        """The diffusion decoder: the large grid upsampled x2 as `prior_token_ids` (the pipeline's
        own autoregressive step is skipped); an edit adds the source picture and its tokens."""
        pipe, (h, w) = self.pipe, self.pixels
        device = pipe._execution_device
        prior = pipe._upsample_token_ids(codes.reshape(-1).to(device), *codes.shape)  # (1, 4*H*W)
        kwargs = {}
        if source is not None:
            src = self.encode_image(source).to(device)  # (h, w), the workaround of `encode_image`
            kwargs = {
                "image": [source],
                "prior_token_image_ids": [pipe._upsample_token_ids(src.reshape(-1), *src.shape).squeeze(0)],  # per sample: (4*h*w,)
                "source_image_grid_thw": [torch.tensor([[1, src.shape[0] * 2, src.shape[1] * 2]], device=device)],  # per sample: (1, 3)
            }
        generator = torch.Generator(device="cpu").manual_seed(seed)
        out = pipe(prompt=text, height=h, width=w, num_inference_steps=self.steps, guidance_scale=guidance, generator=generator, prior_token_ids=prior, output_type="pil", **kwargs)
        return out.images[0].convert("RGB")
