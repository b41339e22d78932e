"""chatgen's own checkpoint format: the embedded default model.

A native checkpoint is a folder:

    config.json       {"format": "chatgen-native", "vocab": {...}, "image_size": 96, "tile": 16, ...}
    tokenizer.model   sentencepiece model of the text ids
    lm/               a transformers causal LM over the joint vocabulary (e.g. LlamaForCausalLM)
    vq/               a diffusers VQModel whose codes are the image tokens
    reader.npz        optional: a `SceneReader` of the pictures it was trained on; with it, a done
                      edit's claim is checked against the pictures before and after (`check_edit`)
                      and a text answer's facts against the picture it is about (`check_answer`),
                      and an edit's reply against what the message asked of the picture (`check_request`)

`NativeBackend.from_pretrained(path)` loads it; `save_pretrained(path)` writes it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import sentencepiece as spm
import torch
from PIL import Image
from transformers import AutoModelForCausalLM

from ..batching import BatchDecoder
from ..errors import ChatgenError
from ..edit_claims import check_claims, parse_done
from ..drawing_requests import check_drawing, may_name_a_scene
from ..group_edits import check_group, names_a_group
from ..mask_claims import check_masked
from ..relative_places import answer_relative, check_relative, names_a_relation
from ..reply_fit import faults
from ..text_mends import mend_text
from ..picture_answers import Names, check_answer
from ..events import Event
from ..generation import PrefixCachePool, Prompt, stream_reply
from ..image_tokenizer import VQImageTokenizer
from ..images import mask_regions, region_text
from ..params import GenerationParams
from ..prompts import render_prompt
from ..safe_weights import safetensors_folder
from ..scene_reader import SceneReader
from ..text import Lexicon
from ..vocab import JointVocab
from .base import Backend

FORMAT = "chatgen-native"
# The embedded model reads only pictures like its own (world renders: a VQ round trip changes
# them by about 0.015-0.022 mean L1; photos, noise, gradients and flat colours by 0.07-0.29).
# What it says about any other upload is prompts/native_unreadable_upload.txt.
UNREADABLE_PROMPT = "native_unreadable_upload"
READER = "reader.npz"  # the optional scene reader of a checkpoint (see the folder layout above)


@dataclass
class NativeConfig:
    """The small `config.json` of a native checkpoint."""

    vocab: JointVocab  # the joint vocabulary
    image_size: int  # square pixel size the VQ-VAE reads and writes
    tile: int = 0  # >0: the VQ-VAE encodes and decodes tile x tile pixel patches independently (codes stay local)
    unshuffle: int = 1  # space-to-depth factor applied before the VQ encoder (and undone after the decoder)
    model_name: str = "chatgen"  # shown in the UI and in PNG metadata
    max_upload_error: float = 0.05  # an upload whose VQ round trip differs more (mean L1, 0..1) is not read (0 = read everything)
    unreadable_reply: str = field(default_factory=lambda: render_prompt(UNREADABLE_PROMPT))  # what the assistant says about such an upload
    mask_regions: bool = False  # the model was trained to read masks: the prompt names the painted cells of a 3x3 split (`<mask> top left`), and a masked edit may change those whole cells
    lexicon: dict | None = None  # the world's words ({"targets", "known"}): a user's typos are repaired before the model reads them (`chatgen.text.Lexicon`)
    extra: dict = field(default_factory=dict)  # training facts (data seed, steps, ...)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "vocab": self.vocab.to_dict(), "image_size": self.image_size, "tile": self.tile, "unshuffle": self.unshuffle, "model_name": self.model_name, "max_upload_error": self.max_upload_error, "unreadable_reply": self.unreadable_reply, "mask_regions": self.mask_regions, **({"lexicon": self.lexicon} if self.lexicon else {}), "extra": self.extra}

    @classmethod
    def from_dict(cls, d: dict) -> "NativeConfig":
        return cls(vocab=JointVocab.from_dict(d["vocab"]), image_size=int(d["image_size"]), tile=int(d.get("tile", 0)), unshuffle=int(d.get("unshuffle", 1)), model_name=d.get("model_name", "chatgen"), max_upload_error=float(d.get("max_upload_error", 0.05)), unreadable_reply=d["unreadable_reply"] if "unreadable_reply" in d else render_prompt(UNREADABLE_PROMPT), mask_regions=bool(d.get("mask_regions", False)), lexicon=d.get("lexicon"), extra=d.get("extra", {}))

    def image_tokenizer(self, vq) -> VQImageTokenizer:
        """The image tokenizer these settings describe, over the VQ model `vq`."""
        return VQImageTokenizer(vq, self.image_size, self.vocab.grid_h, self.vocab.grid_w, self.tile, self.unshuffle)


class NativeBackend(Backend):
    """A causal LM + an image tokenizer (a VQModel) + a sentencepiece tokenizer, parts passed in."""

    def __init__(self, lm, image_tokenizer: VQImageTokenizer, tokenizer: spm.SentencePieceProcessor, config: NativeConfig, cache_size: int = 16,
                 batching: bool = True, gather_s: float = 0.002, reader: SceneReader | None = None):
        self.lm = lm.eval()  # transformers causal LM over vocab.size ids
        self.image_tokenizer = image_tokenizer  # images <-> codes (a diffusers VQModel inside)
        self.sp = tokenizer  # sentencepiece processor for the text ids
        self.config = config
        self.lexicon = Lexicon.from_dict(config.lexicon)  # typo repair of user messages (None: read as typed)
        self.reader = reader  # reads the world's pictures back: a done edit's words are checked against them (None: not checked)
        self.vocab = config.vocab
        if self.sp.get_piece_size() != self.vocab.text_size:
            raise ChatgenError(f"tokenizer has {self.sp.get_piece_size()} pieces but the vocabulary expects {self.vocab.text_size}")
        if self.lm.get_input_embeddings().num_embeddings < self.vocab.size:
            raise ChatgenError(f"the language model has {self.lm.get_input_embeddings().num_embeddings} embeddings; the joint vocabulary needs {self.vocab.size}")
        self.max_context = int(getattr(self.lm.config, "max_position_embeddings", 4096))
        digest = hashlib.sha1(json.dumps(config.vocab.to_dict(), sort_keys=True).encode() + self.sp.serialized_model_proto()).hexdigest()[:12]
        self.name = f"native:{config.model_name}:{digest}"
        self.pool = PrefixCachePool(cache_size)  # KV caches of recent conversations
        self.lock = threading.Lock()  # one user of the model at a time (the batch scheduler, or a reply decoded alone)
        # Replies of concurrent requests decoded in one batch (replies with CFG run alone); off: one reply at a time.
        self.batcher = BatchDecoder(self.lm, self.pool, self.lock, gather_s=gather_s) if batching else None

    # ---- loading and saving ------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path, dtype: torch.dtype | str | None = None, device: str | None = None, quantization: str | None = None, offload=None) -> "NativeBackend":
        """Load a native checkpoint from a folder or a Hub id.

        quantization: None, "8bit" or "4bit" (bitsandbytes) for the language model.
        offload: an `offload.OffloadPlan` (the low-memory profile) for the language model; the
        small VQ loads whole.
        """
        folder = _resolve(path)
        try:
            config = NativeConfig.from_dict(json.loads((folder / "config.json").read_text()))
        except (KeyError, TypeError, ValueError) as e:
            raise ChatgenError(f"{folder / 'config.json'} is not a chatgen model config ({type(e).__name__}: {e})") from None
        for part in ("tokenizer.model", "lm", "vq"):
            if not (folder / part).exists():
                raise ChatgenError(f"chatgen model at {folder} is incomplete: {part} is missing")
        from diffusers import VQModel

        from ..attention import implementation_for

        kwargs: dict = {}
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        if dtype is not None:
            kwargs["dtype"] = dtype
        if quantization:
            from transformers import BitsAndBytesConfig

            if quantization not in ("4bit", "8bit"):
                raise ChatgenError(f"quantization must be '4bit' or '8bit', got {quantization!r}")
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=quantization == "4bit", load_in_8bit=quantization == "8bit")
        if offload is not None:
            kwargs.update(offload.kwargs())
        lm_folder = safetensors_folder(folder / "lm", "language model")
        if attention := implementation_for(lm_folder):  # sdpa with packed grouped-query attention (chatgen.attention)
            kwargs["attn_implementation"] = attention
        lm = AutoModelForCausalLM.from_pretrained(lm_folder, use_safetensors=True, **kwargs)
        vq = VQModel.from_pretrained(safetensors_folder(folder / "vq", "image tokenizer"), use_safetensors=True)
        if device and not quantization:
            lm = lm if offload is not None else lm.to(device)
            vq = vq.to(device)
        sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
        reader = SceneReader.load(folder / READER) if (folder / READER).is_file() else None
        return cls(lm, config.image_tokenizer(vq), sp, config, reader=reader)

    def save_pretrained(self, path: str | Path) -> Path:
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(self.config.to_dict(), indent=1))
        (folder / "tokenizer.model").write_bytes(self.sp.serialized_model_proto())
        self.lm.save_pretrained(folder / "lm")
        self.image_tokenizer.vq.save_pretrained(folder / "vq")
        if self.reader is not None:
            self.reader.save(folder / READER)
        return folder

    # ---- text --------------------------------------------------------------------------------
    def encode_text(self, text: str) -> list[int]:
        return list(self.sp.encode(text)) if text else []

    def user_text(self, text: str) -> str:
        """What the model reads of a user message: with the world's typos repaired ("pnada" -> "panda")."""
        return self.lexicon.correct(text) if self.lexicon is not None and text else text

    def decode_text(self, ids: list[int]) -> str:
        return self.sp.decode([i for i in ids if self.vocab.is_text(i)])

    def mask_ids(self, mask: Image.Image) -> list[int]:
        """`<mask>` and the painted cells of a 3x3 split in words ("top left, middle center"),
        for a model trained with masks (`config.mask_regions`); nothing for one that was not."""
        if not self.config.mask_regions:
            return []
        return [self.vocab.special("<mask>"), *self.encode_text(region_text(mask_regions(mask)))]

    def edit_cells(self, mask: Image.Image) -> torch.Tensor:
        """With `config.mask_regions`, the whole 3x3 cells the prompt names may change (a stroke
        over part of a thing frees all of it, so the lock never leaves a quarter of a balloon);
        otherwise the painted code cells."""
        v = self.vocab
        if not self.config.mask_regions or v.grid_h % 3 or v.grid_w % 3:
            return super().edit_cells(mask)
        cells = torch.zeros(3, 3, dtype=torch.bool)  # (3, 3)
        for r, c in mask_regions(mask):
            cells[r, c] = True
        return cells.repeat_interleave(v.grid_h // 3, 0).repeat_interleave(v.grid_w // 3, 1)  # (grid_h, grid_w)

    @property
    def reads_pictures(self) -> bool:
        return self.reader is not None

    def check_edit(self, text: str, before: Image.Image | None, after: Image.Image) -> str | None:
        """With a scene reader (`reader.npz`, saved by training on the world): the sentence that replaces
        a done edit's text when the pictures contradict it (`chatgen.edit_claims`), else None."""
        if self.reader is None:
            return None
        claims = parse_done(text, self.reader.classes, self.reader.canvases)
        if claims is None:
            return None
        return check_claims(claims, self.reader.read(before) if before is not None else None, self.reader.read(after), self.reader.limits)

    def redoes(self, text: str, mask: Image.Image | None) -> bool:
        return self.reader is not None and ((mask is not None and self.config.mask_regions) or names_a_relation(text) or may_name_a_scene(text) or names_a_group(text))

    def check_request(self, text: str, user_text: str, mask: Image.Image | None, before: Image.Image | None, after: Image.Image | None = None):
        """With a scene reader: a masked edit's reply against what the painted cells of `before` hold
        (`chatgen.mask_claims`, for a model trained on masks), a drawing's against the scene a request
        spells out (`chatgen.drawing_requests`), an edit's against the place it was asked to put a
        thing relative to another (`chatgen.relative_places`) and the group it was asked to change
        (`chatgen.group_edits`); None when it fits."""
        if self.reader is None:
            return None
        words = (self.reader.classes, self.reader.canvases)
        if text.startswith("Here is "):
            return check_drawing(text, user_text, *words)
        if before is None:
            return None
        reading = self.reader.read(before)
        if mask is not None:
            return check_masked(text, user_text, mask_regions(mask), reading, *words) if self.config.mask_regions else None
        relative = check_relative(text, user_text, reading, *words)
        if relative is not None or after is None:
            return relative
        return check_group(text, user_text, reading, self.reader.read(after), *words, self.reader.categories)

    def text_faults(self, text: str, message: str, picture: Image.Image | None, mask: bool, before: str = "") -> list[str]:
        """With a scene reader: what the text shows that does not fit the message (`chatgen.reply_fit`),
        the picture read only for a text that says a thing is not there."""
        if self.reader is None:
            return []
        present = None
        if picture is not None and text.startswith("There is no "):
            present = frozenset(c for row in self.reader.read(picture).labels for c in row if c)
        return faults(text, message, self.reader.words, picture is not None, mask and self.config.mask_regions, before, present)

    def mend_text(self, text: str, message: str, picture: Image.Image | None = None, before: str = "") -> str | None:
        """With a scene reader: the answer `picture` gives to a question about a place relative to a thing
        (`relative_places.answer_relative`: "what's right above the car?" answered with an edit), or the
        text mended to fit the message (`text_mends.mend_text`: the asked background, only the changes
        asked for, a refusal naming back the thing asked for)."""
        if self.reader is None:
            return None
        answer = answer_relative(message, self.reader.read(picture), self.reader.classes, self.reader.aliases) if picture is not None else None
        return answer if answer is not None and answer != text else mend_text(text, message, self.reader.words, before)

    def check_answer(self, text: str, question: str, picture: Image.Image) -> str | None:
        """With a scene reader: the answer the picture supports when a text reply states something else
        about it (`chatgen.picture_answers`), else None."""
        if self.reader is None:
            return None
        reading = self.reader.read(picture)
        relative = answer_relative(question, reading, self.reader.classes, self.reader.aliases)
        if relative is not None:
            return relative if relative != text else None
        return check_answer(text, question, reading, Names(self.reader.classes, self.reader.canvases, self.reader.categories))

    def unreadable(self, image: Image.Image) -> str | None:
        limit = self.config.max_upload_error
        if limit and self.image_tokenizer.reconstruction_error(image) > limit:
            return self.config.unreadable_reply
        return None

    # ---- generation --------------------------------------------------------------------------
    def stream(self, prompt: Prompt, params: GenerationParams, cancel: threading.Event | None = None) -> Iterator[Event]:
        return stream_reply(self.lm, self.vocab, prompt, params, self.decode_text, self.decode_image, cancel=cancel, pool=self.pool, lock=self.lock, batcher=self.batcher)


def _resolve(path: str | Path) -> Path:
    """A local folder as is; anything else is tried as a Hub id (cached or downloaded)."""
    p = Path(path)
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise ChatgenError(f"no chatgen model at {p}: config.json is missing")
        return p
    if p.exists():
        raise ChatgenError(f"model path {p} is a file; expected a chatgen model folder")
    looks_like_id = str(path).count("/") == 1 and not str(path).startswith((".", "/", "~"))
    if not looks_like_id:
        raise ChatgenError(f"no chatgen model at {p}: the folder does not exist")
    try:
        from huggingface_hub import snapshot_download

        return _resolve(snapshot_download(str(path)))
    except ChatgenError:
        raise
    except Exception as e:  # offline, unknown repo, no access: one line, not a traceback
        raise ChatgenError(f"cannot load model {path!s}: not a local folder and not available from the Hub ({type(e).__name__})") from None
