"""Chameleon format (facebook/chameleon-7b; Anole and Lumina-mGPT converted to it): `ChameleonForConditionalGeneration` behind chatgen's protocol.

Chameleon is early fusion like Emu3: its BPE vocabulary holds the 8,192 VQ codes as tokens
(`IMGIMG...`), and a picture in the stream is

    <racm3:break>  c c ... c  <eoss>        (32 x 32 = 1,024 codes at 512 px, row-major)

(`ChameleonProcessor`: `image_seq_length` codes between its image start and end tokens). So the
backend is Emu3's (`Emu3Backend`: the chat template, uploads spliced in where the template puts
`<image>`, the generic engine `generation.stream_reply` with the KV cache reused across turns,
CFG, the edit lock) over a `ChameleonVocab`, and only the image side is Chameleon's own: uploads
go through its VQ encoder (the processor's resize, crop, mean and std).

Drawing is a switch, because a checkpoint in this format may or may not have been trained to
draw, and nothing in its config says which:

- off (the default): questions about pictures, answers in words. Meta's released weights were
  not to draw (transformers' forward masks the image tokens); chatgen's `ChameleonChat` also
  masks the image start, so a reply is never an empty picture.
- on (`load_backend(path, draw=True)`, or `CHATGEN_CHAMELEON_DRAW=1` in the environment for the
  CLI, UI, API, Space and evals): nothing is masked, and the VQ decoder
  (`chameleon_model.ChameleonVQDecoder`, absent from transformers 5.24) is loaded from the
  checkpoint's `model.vqmodel.decoder.*` weights. For Anole (leloy/Anole-7b-v0.1-hf) and
  Lumina-mGPT converted with the decoder; a checkpoint without those weights is refused in one
  sentence.

A folder is what `save_pretrained` of the model and its `ChameleonProcessor` write: config.json
(model_type "chameleon", vocabulary_map), model*.safetensors, tokenizer files,
processor_config.json / preprocessor_config.json (chat_template.jinja when it has one; else the
"USER: ... ASSISTANT:" template of `emu3.DEFAULT_CHAT_TEMPLATE`).

Not checked here (no GPU, no weights; the tests use tiny random checkpoints): how well Anole
draws after a multi-turn history.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from ..errors import ChatgenError
from ..generation import PrefixCachePool
from ..sampling import model_device
from .checkpoint import load_kwargs
from .emu3 import DEFAULT_CHAT_TEMPLATE, Emu3Backend, Emu3Vocab, _check_files, _msg
from .offload import onloaded

DRAW_ENV = "CHATGEN_CHAMELEON_DRAW"  # "1": Chameleon-format checkpoints load with drawing on


@dataclass(frozen=True)
class ChameleonVocab(Emu3Vocab):
    """Emu3's vocabulary object over Chameleon's ids: a span is H*W codes, no fixed tokens
    (header, eol and eof unused); the text ids are those that are neither codes nor markers."""

    words: int = 0  # ids below this are the tokenizer's
    not_text: frozenset = frozenset()  # markers that are never text (bos, eos, pad, image start/end, <image>)

    def span_layout(self) -> tuple[int | None, ...]:
        return (None,) * self.image_tokens

    def is_text(self, token_id: int) -> bool:
        return 0 <= token_id < self.words and not self.is_image(token_id) and token_id not in self.not_text

    def text_mask(self) -> torch.Tensor:
        """(size,) bool: `is_text` of every id (the span constraint's text outside pictures)."""
        mask = torch.zeros(self.size, dtype=torch.bool)
        mask[: self.words] = True
        mask[self.image_offset : self.image_offset + self.codebook_size] = False
        mask[list(self.not_text)] = False
        return mask


def draw_switch(draw: bool | None) -> bool:
    """`draw` as given, else the environment's `CHATGEN_CHAMELEON_DRAW` ("1" = on)."""
    return bool(draw) if draw is not None else os.environ.get(DRAW_ENV, "").strip() == "1"


class ChameleonBackend(Emu3Backend):
    """A `ChameleonChat` / `ChameleonDraw` model (chameleon_model.py) and its `ChameleonProcessor`, parts passed in."""

    def __init__(self, model, processor, name: str = "chameleon", cache_size: int = 4):
        self.model = model.eval()  # ChameleonChat (words only) or ChameleonDraw
        self.draws = bool(model.draw)  # whether a reply may hold a picture
        self.processor = processor  # ChameleonProcessor: tokenizer, image processor, image_seq_length
        self.tokenizer = tok = processor.tokenizer
        self.vq = model.model.vqmodel  # ChameleonVQVAE (+ .decoder when drawing)
        self.device = model_device(model)  # where inputs go (offloaded weights are on `meta` until used)
        self.template = processor.chat_template or DEFAULT_CHAT_TEMPLATE
        # 1. Sizes: image_seq_length codes in a square grid; the VQ downsamples by 2**(levels-1).
        grid = math.isqrt(int(processor.image_seq_length))
        factor = 2 ** (len(self.vq.config.channel_multiplier) - 1)
        crop = processor.image_processor.crop_size
        side = int(crop["height"] if isinstance(crop, dict) else crop.height)
        if grid * grid != processor.image_seq_length or grid * factor != side:
            raise ChatgenError(f"this Chameleon checkpoint reads {side} px pictures as {processor.image_seq_length} codes, but its VQ makes {side // factor}x{side // factor}; chatgen needs them equal")
        self.pixels = side, side  # (height, width) of a picture
        # 2. The codes: one contiguous block of ids in code order (as in Meta's vocabulary).
        img2bpe = model.model.vocabulary_mapping.img2bpe
        n = int(self.vq.config.num_embeddings)
        offset = img2bpe.get(0)
        if offset is None or any(img2bpe.get(k) != offset + k for k in range(n)):
            raise ChatgenError("this Chameleon checkpoint's image tokens are not one contiguous block in code order")
        markers = {processor.image_start_token_id, processor.image_end_token_id, processor.image_token_id}
        markers |= {i for i in (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.sep_token_id) if i is not None}
        self.vocab = ChameleonVocab(
            text_size=len(tok), size=model.get_output_embeddings().out_features, image_offset=offset, codebook_size=n,
            grid_h=grid, grid_w=grid, boi=processor.image_start_token_id, eoi=processor.image_end_token_id,
            eot=tok.eos_token_id, pad=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
            eol=-1, eof=-1, header=(), words=min(len(tok), model.get_output_embeddings().out_features), not_text=frozenset(markers),
        )
        # 3. The template's pieces, the name of the token space, the caches.
        self.max_context = int(model.config.max_position_embeddings)
        self.gen_prompt = self._render([_msg("user", "x")], True)[len(self._render([_msg("user", "x")], False)) :]
        digest = hashlib.sha1(json.dumps([offset, n, grid, len(tok), self.template]).encode()).hexdigest()[:12]
        self.name = f"chameleon:{name}:{digest}"
        self.pool = PrefixCachePool(cache_size)  # KV caches of recent conversations
        self.lock = threading.Lock()  # one generation at a time

    # ---- loading -----------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path, dtype: torch.dtype | None = None, device: str | None = None, quantization: str | None = None, draw: bool | None = None, offload=None) -> ChameleonBackend:
        """Load a transformers-format Chameleon folder; `draw` (default: `CHATGEN_CHAMELEON_DRAW`)
        lifts the image mask and loads the VQ decoder. Quantization quantizes the language model
        only (the VQ and the output head stay in full precision); `offload` (an `offload.OffloadPlan`):
        the low-memory profile."""
        from transformers import ChameleonProcessor

        from .chameleon_model import model_class

        folder = Path(path)
        _check_files(folder, "Chameleon")
        draw = draw_switch(draw)
        processor = ChameleonProcessor.from_pretrained(folder)
        kwargs = load_kwargs(dtype, device, quantization, skip_modules=["model.vqmodel", "lm_head"], offload=offload)
        model, info = model_class(draw).from_pretrained(folder, output_loading_info=True, **kwargs)
        if draw and any(k.startswith("model.vqmodel.decoder.") for k in info.get("missing_keys", [])):
            raise ChatgenError(f"Chameleon model at {folder} has no VQ decoder weights (model.vqmodel.decoder.*), so it cannot draw; load it without draw=True / {DRAW_ENV}=1 to ask about pictures")
        if device and not quantization and offload is None:
            model = model.to(device)
        return cls(model, processor, name=folder.name)

    # ---- images ------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_image(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> (grid_h, grid_w) codes: Chameleon's image processor, then its VQ encoder."""
        x = self.processor.image_processor(image.convert("RGB"), return_tensors="pt")["pixel_values"]  # (1, 3, S, S)
        with onloaded(self.vq.quantize):  # it reads its codebook's weight: bring it in when offloaded
            codes = self.vq.encode(x.to(self.device, self.vq.dtype)).image_tokens  # (H*W,)
        return codes.reshape(self.vocab.grid_h, self.vocab.grid_w).cpu().long()

    @torch.no_grad()
    def decode_image(self, codes: torch.Tensor) -> Image.Image:
        """(grid_h, grid_w) codes -> PIL image through the VQ decoder (drawing checkpoints only)."""
        if not self.draws:
            raise ChatgenError(f"this Chameleon checkpoint was loaded to answer in words; draw=True ({DRAW_ENV}=1) loads a drawing one")
        v, ip = self.vocab, self.processor.image_processor
        z = self.vq.quantize.embedding(codes.reshape(-1).long().to(self.device))  # (H*W, C)
        z = z.reshape(1, v.grid_h, v.grid_w, -1).permute(0, 3, 1, 2)  # (1, C, H, W)
        x = self.vq.decoder(self.vq.post_quant_conv(z))[0].float().cpu()  # (3, h, w), normalised
        mean = torch.tensor(ip.image_mean).view(3, 1, 1)
        std = torch.tensor(ip.image_std).view(3, 1, 1)
        x = ((x * std + mean) / ip.rescale_factor).clamp(0, 255).round().byte()  # (3, h, w)
        return Image.fromarray(x.permute(1, 2, 0).numpy())  # (h, w, 3)
