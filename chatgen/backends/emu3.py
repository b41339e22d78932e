"""Emu3 (BAAI/Emu3-Chat-hf, BAAI/Emu3-Gen-hf): `Emu3ForConditionalGeneration` behind chatgen's protocol.

Emu3 is already an early-fusion model: its BPE vocabulary holds the VQ codes as tokens
(`<|visual token 000000|>` ...), so a conversation is one stream of the model's own ids and the
generic engine (`generation.stream_reply`: constrained `generate`, CFG, edit lock, KV cache
reused across turns) runs on it unchanged. The design is the smaller of the two the protocol
allows: a family vocabulary object, `Emu3Vocab`, answers what the engine and the assistant ask
of a vocabulary over Emu3's own ids, and the backend overrides only how a turn is written
(Emu3's chat template instead of chatgen's role specials).

An image inside the stream, as Emu3 writes it (H x W codes, 8x downsampling):

    <|image start|> "H*W" <|image token|>  c c ... c <|extra_200|>   (H rows: W codes + end of row)
                                           ...
                                           <|extra_201|> <|image end|>

`Emu3Vocab.span_layout()` spells that out (None where a code goes), so drawing is plain
`generate` with every fixed token forced and exactly H*W codes sampled.

A folder is what `save_pretrained` of the model and of its `Emu3Processor` write:

    config.json (model_type "emu3", vocabulary_map), model*.safetensors, generation_config.json,
    tokenizer.json, tokenizer_config.json, processor_config.json, chat_template.jinja (Chat)

Facts of the installed versions (transformers 5.24): the processor assumes the VQ downsamples
by 8 (a VQ config needs 4 `channel_multiplier` entries); `decode_image_tokens` is keyword-only
(chatgen calls the VQ directly); a checkpoint without a chat template gets the one of
Emu3-Chat-hf below (a request then reads "USER: ... ASSISTANT:"). Emu3-Gen was trained on
bare prompts followed by the image header; whether it opens an image after the chat template
on its own is not checked here (no GPU, no weights): the tests use tiny random checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image

from ..conversation import Message, Session
from ..errors import ChatgenError
from ..events import Event
from ..generation import PrefixCachePool, Prompt, stream_reply
from ..params import GenerationParams
from ..sampling import model_device
from ..vocab import ids_to_grid, split_spans
from .base import Backend
from .checkpoint import load_kwargs
from .offload import onloaded

# Emu3-Chat-hf's chat template (roles in capitals, images before the text of a message).
DEFAULT_CHAT_TEMPLATE = "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
DOWNSAMPLE = 8  # pixels per code side (Emu3Processor.downsample_ratio)
DEFAULT_IMAGE_AREA = 518400  # Emu3Processor.image_area: 720 x 720 px, 90 x 90 codes


@dataclass(frozen=True)
class Emu3Vocab:
    """What chatgen asks of a vocabulary, over Emu3's own token ids."""

    text_size: int  # ids below this are BPE text; the family's specials and the visual tokens follow
    size: int  # rows of the model's embedding / lm_head
    image_offset: int  # id of <|visual token 000000|>; code k is image_offset + k
    codebook_size: int  # VQ codes
    grid_h: int  # code rows of a drawn or read image
    grid_w: int  # codes per row
    boi: int  # <|image start|>
    eoi: int  # <|image end|>
    eot: int  # end of the assistant's turn (the tokenizer's eos, <|extra_204|>)
    pad: int  # padding (<|endoftext|>)
    eol: int  # end of a code row (<|extra_200|>)
    eof: int  # end of the codes (<|extra_201|>)
    header: tuple[int, ...]  # ids of "H*W<|image token|>" right after <|image start|>

    @property
    def image_tokens(self) -> int:
        """Codes in one image (grid_h * grid_w); the span holds `len(span_layout())` tokens."""
        return self.grid_h * self.grid_w

    def span_layout(self) -> tuple[int | None, ...]:
        row = (None,) * self.grid_w + (self.eol,)
        return (*self.header, *row * self.grid_h, self.eof)

    def is_text(self, token_id: int) -> bool:
        return 0 <= token_id < self.text_size

    def is_image(self, token_id: int) -> bool:
        return self.image_offset <= token_id < self.image_offset + self.codebook_size

    def codes_to_ids(self, codes: torch.Tensor) -> list[int]:
        """(grid_h, grid_w) codes -> the whole span, `<|image start|>` ... `<|image end|>`."""
        if tuple(codes.shape) != (self.grid_h, self.grid_w):
            raise ValueError(f"codes must have shape ({self.grid_h}, {self.grid_w}), got {tuple(codes.shape)}")
        flat = iter((codes.reshape(-1).long() + self.image_offset).tolist())  # (H*W,) row-major
        return [self.boi, *(next(flat) if t is None else t for t in self.span_layout()), self.eoi]

    def ids_to_codes(self, ids) -> torch.Tensor:
        """The H*W code ids of one image (no fixed tokens) -> (grid_h, grid_w) codes."""
        return ids_to_grid(ids, self.image_offset, self.codebook_size, self.grid_h, self.grid_w)

    def raw_spans(self, ids: list[int]) -> tuple[list[int], list[list[int]]]:
        """Text ids outside images, and every complete span's inner ids (fixed tokens included)."""
        return split_spans(ids, self.boi, self.eoi, self.is_text)

    def split_spans(self, ids: list[int]) -> tuple[list[int], list[list[int]]]:
        """Text ids, and the code ids of each complete image (fixed tokens dropped)."""
        text, spans = self.raw_spans(ids)
        return text, [[t for t in s if self.is_image(t)] for s in spans]

    def span_ok(self, inner: list[int]) -> bool:
        layout = self.span_layout()
        return len(inner) == len(layout) and all(self.is_image(t) if want is None else t == want for t, want in zip(inner, layout))


class Emu3Backend(Backend):
    """An `Emu3ForConditionalGeneration` and its `Emu3Processor`, parts passed in."""

    def __init__(self, model, processor, image_area: int | None = None, name: str = "emu3", cache_size: int = 4):
        self.model = model.eval()  # Emu3ForConditionalGeneration (its VQ is model.model.vqmodel)
        self.processor = processor  # Emu3Processor: tokenizer, image processor (mean/std), chat template
        self.tokenizer = processor.tokenizer
        self.vq = model.model.vqmodel  # Emu3VQVAE
        self.device = model_device(model)  # where inputs go (offloaded weights are on `meta` until used)
        self.template = processor.chat_template or DEFAULT_CHAT_TEMPLATE
        # 1. The image size: the processor's generation area, capped by what its image processor reads.
        ip = processor.image_processor
        area = image_area or min(DEFAULT_IMAGE_AREA, int(getattr(ip, "max_pixels", DEFAULT_IMAGE_AREA)))
        grid_h, grid_w = processor.calculate_generate_size("1:1", area, DOWNSAMPLE)
        factor = 2 ** (len(self.vq.config.channel_multiplier) - 1)
        if factor != DOWNSAMPLE:
            raise ChatgenError(f"this Emu3 VQ downsamples by {factor}; Emu3's processor assumes {DOWNSAMPLE} (vq_config.channel_multiplier needs 4 entries)")
        # 2. The vocabulary over the model's ids.
        vmap = model.config.vocabulary_map
        visual = sorted((int(k[-8:-2]), v) for k, v in vmap.items() if k.startswith("<|visual token"))
        if not visual or [v - visual[0][1] for _, v in visual] != [k for k, _ in visual] or visual[0][0] != 0:
            raise ChatgenError("this Emu3 checkpoint's visual tokens are not one contiguous block in code order")
        tok = self.tokenizer
        specials = [i for i in (tok.convert_tokens_to_ids(t) for t in tok.all_special_tokens) if i is not None]
        self.vocab = Emu3Vocab(
            text_size=min([visual[0][1], *specials, *(int(i) for i in tok.added_tokens_decoder)]),
            size=model.get_output_embeddings().out_features,
            image_offset=visual[0][1],
            codebook_size=len(visual),
            grid_h=grid_h,
            grid_w=grid_w,
            boi=vmap[processor.image_start_token],
            eoi=vmap[processor.image_end_token],
            eot=tok.eos_token_id,
            pad=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
            eol=vmap["<|extra_200|>"],
            eof=vmap[processor.eof_token],
            header=tuple(tok.encode(f"{grid_h}*{grid_w}", add_special_tokens=False)) + (vmap[processor.fake_token_around_image],),
        )
        self.pixels = grid_h * DOWNSAMPLE, grid_w * DOWNSAMPLE  # (height, width) of an image
        self.max_context = int(model.config.text_config.max_position_embeddings)
        self.gen_prompt = self._render([_msg("user", "x")], True)[len(self._render([_msg("user", "x")], False)) :]  # "ASSISTANT:"
        digest = hashlib.sha1(json.dumps([sorted(vmap.items()), grid_h, grid_w, self.template]).encode()).hexdigest()[:12]
        self.name = f"emu3:{name}:{digest}"
        self.pool = PrefixCachePool(cache_size)  # KV caches of recent conversations
        self.lock = threading.Lock()  # one generation at a time

    # ---- loading -----------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path, dtype: torch.dtype | None = None, device: str | None = None, quantization: str | None = None, image_area: int | None = None, offload=None) -> "Emu3Backend":
        """Load a transformers-format Emu3 folder (model + processor); quantization quantizes the
        language model only (the VQ and the output head stay in full precision); `offload` (an
        `offload.OffloadPlan`): the low-memory profile."""
        from transformers import Emu3ForConditionalGeneration, Emu3Processor

        folder = Path(path)
        _check_files(folder, "Emu3")
        processor = Emu3Processor.from_pretrained(folder)
        model = Emu3ForConditionalGeneration.from_pretrained(folder, **load_kwargs(dtype, device, quantization, skip_modules=["model.vqmodel", "lm_head"], offload=offload))
        if device and not quantization and offload is None:
            model = model.to(device)
        return cls(model, processor, image_area=image_area, name=folder.name)

    # ---- text --------------------------------------------------------------------------------
    def encode_text(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False) if text else []

    def decode_text(self, ids: list[int]) -> str:
        return self.tokenizer.decode([i for i in ids if self.vocab.is_text(i)]).strip()

    # ---- images ------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_image(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> (grid_h, grid_w) codes through Emu3's VQ (the processor's mean and std)."""
        h, w = self.pixels
        ip = self.processor.image_processor
        x = np.asarray(image.convert("RGB").resize((w, h), Image.BICUBIC), dtype=np.float32) * ip.rescale_factor  # (h, w, 3) in [0, 1]
        x = (x - np.asarray(ip.image_mean, dtype=np.float32)) / np.asarray(ip.image_std, dtype=np.float32)
        x = torch.from_numpy(x).permute(2, 0, 1)[None].to(self.device, self.vq.dtype)  # (1, 3, h, w)
        with onloaded(self.vq.quantize):  # it reads its codebook's weight: bring it in when offloaded
            codes = self.vq.encode(x, image_sizes=[[h, w]]).image_tokens[0]  # (grid_h, grid_w)
        return codes.cpu().long()

    @torch.no_grad()
    def decode_image(self, codes: torch.Tensor) -> Image.Image:
        """(grid_h, grid_w) codes -> PIL image through Emu3's VQ decoder."""
        ip = self.processor.image_processor
        x = self.vq.decode(codes.reshape(1, self.vocab.grid_h, self.vocab.grid_w).to(self.device))[0].float().cpu()  # (3, h, w), normalised
        mean = torch.tensor(ip.image_mean).view(3, 1, 1)
        std = torch.tensor(ip.image_std).view(3, 1, 1)
        x = ((x * std + mean) / ip.rescale_factor).clamp(0, 255).round().byte()  # (3, h, w)
        return Image.fromarray(x.permute(1, 2, 0).numpy())  # (h, w, 3)

    # ---- the family's prompt format ----------------------------------------------------------
    def _render(self, messages: list[dict], generation_prompt: bool = False) -> str:
        return self.processor.apply_chat_template(messages, chat_template=self.template, add_generation_prompt=generation_prompt, tokenize=False)

    def _with_images(self, text: str, images: list[Image.Image]) -> list[int]:
        """Rendered text -> ids, each `<image>` placeholder replaced by that image's span."""
        ids, spans = [], iter(images)
        for t in self.tokenizer.encode(text, add_special_tokens=False):
            ids += self.vocab.codes_to_ids(self.encode_image(next(spans))) if t == self.processor.image_token_id else [t]
        return ids

    def encode_user(self, message: Message) -> list[int]:
        """The user's message in Emu3's chat template, an upload as its span of visual tokens."""
        images = [message.image] if message.image is not None else []
        return self._with_images(self._render([_msg("user", message.text, len(images))]), images)

    def encode_reply(self, text: str, image: Image.Image | None) -> list[int]:
        """A stored assistant reply rebuilt in the template (what follows the generation prompt)."""
        rendered = self._render([_msg("assistant", text)])
        body = rendered[len(self.gen_prompt) :] if rendered.startswith(self.gen_prompt) else rendered
        ids = self.encode_text(body.rstrip())
        if image is not None:
            ids += self.vocab.codes_to_ids(self.encode_image(image))
        return ids + [self.vocab.eot]

    def prompt_head(self, session: Session) -> list[int]:
        """`<bos> [system]`; `Backend.prompt` adds the turns that fit, `USER: [image] text`, and
        `reply_start`."""
        head = [self.tokenizer.bos_token_id]
        if session.system:
            head += self.encode_text(self._render([_msg("system", session.system)]))
        return head

    def reply_start(self) -> list[int]:
        return self.encode_text(self.gen_prompt)

    def message_room(self, session: Session) -> int:
        head = 1 + (len(self.encode_text(session.system)) + 2 if session.system else 0)
        return self.max_context - head - len(self.encode_text(self.gen_prompt)) - (len(self.vocab.span_layout()) + 2 + 64)

    def stored_ids_ok(self, turn) -> bool:
        v, user, reply = self.vocab, turn.user_ids, turn.reply_ids
        if not (user and reply and reply[-1] == v.eot):
            return False
        if not all(type(i) is int and 0 <= i < v.size for i in (*user, *reply)):
            return False
        return all(v.span_ok(s) for ids in (user, reply) for s in v.raw_spans(ids)[1])

    # ---- generation --------------------------------------------------------------------------
    def stream(self, prompt: Prompt, params: GenerationParams, cancel: threading.Event | None = None) -> Iterator[Event]:
        return stream_reply(self.model, self.vocab, prompt, params, self.decode_text, self.decode_image, cancel=cancel, pool=self.pool, lock=self.lock)


def _msg(role: str, text: str, images: int = 0) -> dict:
    """One chat-template message: `images` image placeholders, then the text."""
    return {"role": role, "content": [{"type": "image"}] * images + [{"type": "text", "text": text}]}


def _check_files(folder: Path, family: str) -> None:
    """One sentence when a transformers-format folder lacks its weights or its tokenizer."""
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        raise ChatgenError(f"{family} model at {folder} is incomplete: no weight files (*.safetensors)")
    if not (folder / "tokenizer.json").is_file() and not (folder / "tokenizer_config.json").is_file():
        raise ChatgenError(f"{family} model at {folder} is incomplete: tokenizer.json is missing")
    if not (folder / "processor_config.json").is_file() and not (folder / "preprocessor_config.json").is_file():
        raise ChatgenError(f"{family} model at {folder} is incomplete: processor_config.json / preprocessor_config.json is missing")
