"""Janus / Janus-Pro (deepseek-community/Janus-Pro-1B, -7B): `JanusForConditionalGeneration` behind chatgen's protocol.

Janus is one Llama with two image paths. It *reads* a picture through SigLIP (the picture's
576 feature vectors stand where Janus's processor puts `<image_placeholder>` tokens) and it
*draws* through a separate VQ tokenizer with its own input embedding and output head
(`generation_embeddings` + `generation_aligner` in, `generation_head` out; 16,384 codes,
24 x 24 at 384 px). Its text vocabulary does not hold the codes, and its
`generate(generation_mode="image")` has no streamer, no stopping criterion and ignores an input
image. So this backend does the following.

1. Ids. `JanusVocab` numbers code k as `text_size + k` (past the Llama's vocabulary), so a
   conversation is still one list of ids; a picture, uploaded or drawn, is
   `<begin_of_image>` + H*W codes + `<end_of_image>`.
2. Embeddings (`_embed`). Text ids go through the Llama's table; the codes of a picture in the
   prompt are replaced by the SigLIP features of that picture (the upload as given, else the VQ
   decode of its codes), as Janus's processor does; codes being drawn go in through the
   generation embeddings, as in `JanusForConditionalGeneration.generate`.
3. Routing (`route`). A Janus reply is either words (`lm_head`) or one picture (the generation
   head); the request decides, by this rule, first match wins:
     a. a leading `draw:`, `edit:` or `ask:` says it outright (and is not shown to the model);
     b. a painted mask: edit;
     c. the first word, after "please" / "can you" / "could you" / ..., is an edit verb
        (make, add, remove, change, replace, move, turn, put, ...): edit; a drawing verb (draw,
        paint, sketch, create, generate, render, imagine) or "picture of" / "image of" /
        "photo of" anywhere: draw;
     d. a question (ends with "?" or opens with what / how / is / does / ...): answer;
     e. no picture yet in the conversation: draw (a bare caption, as Janus-Pro is prompted);
     f. otherwise: answer in words.
   An edit with no picture to edit draws a new one. A reply routed to words is only words: the
   model never claims a picture it did not draw.
4. Drawing (`_draw`): chatgen's own loop, the one of `JanusForConditionalGeneration.generate`
   with what chatgen adds: the conditional and unconditional rows in one batch through the
   Llama (the unconditional row is Janus's: every token but `<bos>` and `<begin_of_image>`
   replaced by the pad token), CFG on the generation head's logits (`--cfg`, 1 = off; Janus-Pro
   was tuned at 5), the edit lock, the user's temperature / top-k / top-p, a KV cache, a row
   preview, cancel within one code.
5. Edits (Janus was never trained to edit, and ignores an input image while drawing): the
   picture stays in context, and the edit-locality lock keeps the source codes outside the
   region to change: the painted mask when given, else `locate`: the source codes are scored
   under the old request and under the new one (one batched forward), and the cells whose
   likelihood drops most (smoothed over 3x3 cells, the top `edit_share` of them) may change.
6. KV cache: `PrefixCachePool`s of the conversation row and of the unconditional row; a turn
   reads only its new tokens. A drawn picture's codes went in through the generation
   embeddings, so the cache is kept up to `<begin_of_image>` and the next turn re-reads the
   picture through SigLIP.

A folder is what `save_pretrained` of the model and of its `JanusProcessor` write:

    config.json (model_type "janus"), model*.safetensors, generation_config.json,
    tokenizer.json, tokenizer_config.json, processor_config.json (image mean/std), chat_template.jinja

Not checked here (no GPU, no weights; the tests use tiny random checkpoints): how well
Janus-Pro draws after a multi-turn history rather than the bare single-turn prompt it was
trained on. The processor's default system prompt is left out, so that drawing (trained
without one) and answering share one prompt and its cache.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import DynamicCache

from ..conversation import Message, Session
from ..errors import ChatgenError
from ..events import Event, ImageDone, ImageRow, ImageStart, ReplyDone, TextDelta
from ..generation import PREVIEW_EVERY_S, PrefixCachePool, Prompt
from ..params import GenerationParams
from ..sampling import model_device
from .base import Backend, in_prompt
from .checkpoint import load_kwargs
from .janus_draw import JanusDrawing
from .janus_vocab import DEFAULT_CHAT_TEMPLATE, JanusVocab, _msg, route  # noqa: F401 (route: the rule, re-exported)
from .offload import onloaded


@dataclass
class JanusPrompt(Prompt):
    """A `Prompt` plus how Janus answers it."""

    mode: str = "text"  # "text": words through lm_head; "image": one picture through the generation head
    locate: tuple[list[int], list[int]] | None = None  # an edit without a mask: the old and the new request as bare drawing prompts (`JanusBackend.locate`)


class JanusBackend(JanusDrawing, Backend):
    """A `JanusForConditionalGeneration` and its `JanusProcessor`, parts passed in."""

    def __init__(self, model, processor, name: str = "janus", cache_size: int = 4, edit_share: float = 0.25):
        self.model = model.eval()  # JanusForConditionalGeneration
        self.processor = processor  # JanusProcessor: tokenizer, SigLIP image processor (mean/std), chat template
        self.tokenizer = processor.tokenizer
        self.lm = model.model.language_model  # the Llama both paths share
        self.vq = model.model.vqmodel  # JanusVQVAE: drawn codes <-> pixels
        self.device = model_device(model)  # where inputs go (offloaded weights are on `meta` until used)
        self.template = processor.chat_template or DEFAULT_CHAT_TEMPLATE
        self.edit_share = edit_share  # share of the cells an edit without a mask may change
        # 1. Sizes: the VQ grid (config: SigLIP image_size // patch_size) and its downsampling.
        grid = int(self.vq.config.num_patches)
        self.pixels = grid * 2 ** (len(self.vq.config.channel_multiplier) - 1)  # side of a drawn picture (384 for Janus-Pro)
        siglip = int(model.config.vision_config.num_image_tokens)
        if siglip != grid * grid:
            raise ChatgenError(f"this Janus checkpoint reads a picture as {siglip} SigLIP tokens but draws {grid}x{grid} codes; chatgen needs them equal")
        # 2. The vocabulary: text ids, then the codes.
        tok = self.tokenizer
        ids = {k: tok.convert_tokens_to_ids(getattr(tok, k)) for k in ("image_token", "boi_token", "eoi_token")}
        pad = tok.pad_token_id if tok.pad_token_id is not None else model.generation_config.pad_token_id
        if pad is None or tok.bos_token_id is None or tok.eos_token_id is None:
            raise ChatgenError("this Janus tokenizer lacks a bos, eos or pad token")
        self.vocab = JanusVocab(
            text_size=int(model.config.text_config.vocab_size),
            codebook_size=int(self.vq.config.num_embeddings),
            grid_h=grid,
            grid_w=grid,
            bos=tok.bos_token_id,
            eot=tok.eos_token_id,
            pad=int(pad),
            boi=ids["boi_token"],
            eoi=ids["eoi_token"],
            image_token=ids["image_token"],
            words=min(len(tok), int(model.config.text_config.vocab_size)),
        )
        v = self.vocab
        # 3. What a word reply may hold: the tokenizer's ids but the image markers; <eot> alone once the text is long.
        self.text_ok = torch.zeros(v.text_size, dtype=torch.bool)
        self.text_ok[: v.words] = True
        self.text_ok[[v.boi, v.eoi, v.image_token, v.pad, v.bos]] = False
        self.text_ok[v.eot] = True
        self.end_ok = torch.zeros(v.text_size, dtype=torch.bool)
        self.end_ok[v.eot] = True
        # 4. The chat template's pieces: "<|User|>: ..." and the generation prompt "\n\n<|Assistant|>:".
        bare = self._render([_msg("user", "x")])
        self.gen_prompt = self._render([_msg("user", "x")], True)[len(bare) :]
        self.max_context = int(model.config.text_config.max_position_embeddings)
        digest = hashlib.sha1(json.dumps([v.text_size, v.codebook_size, grid, self.template]).encode()).hexdigest()[:12]
        self.name = f"janus:{name}:{digest}"
        self.pool = PrefixCachePool(cache_size)  # KV caches of the conversation rows
        self.uncond_pool = PrefixCachePool(cache_size)  # KV caches of the unconditional rows (CFG)
        self.lock = threading.Lock()  # one generation at a time
        self.memo_lock = threading.Lock()  # guards `_pictures` (filled while prompts are built, in any thread)
        self._pictures: OrderedDict = OrderedDict()  # code ids -> the picture they were encoded from (an upload)
        self._features: OrderedDict = OrderedDict()  # code ids -> (H*W, C) SigLIP features

    # ---- loading -----------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path, dtype: torch.dtype | None = None, device: str | None = None, quantization: str | None = None, offload=None, **kwargs) -> JanusBackend:
        """Load a transformers-format Janus folder (model + processor); quantization quantizes the
        Llama only (SigLIP, the VQ, the generation parts and the text head stay in full precision);
        `offload` (an `offload.OffloadPlan`): the low-memory profile."""
        from transformers import JanusForConditionalGeneration, JanusProcessor

        folder = Path(path)
        _check_files(folder)
        processor = JanusProcessor.from_pretrained(folder)
        keep = ["model.vision_model", "model.aligner", "model.vqmodel", "model.generation_embeddings", "model.generation_aligner", "model.generation_head", "lm_head"]
        model = JanusForConditionalGeneration.from_pretrained(folder, **load_kwargs(dtype, device, quantization, skip_modules=keep, offload=offload))
        if device and not quantization and offload is None:
            model = model.to(device)
        return cls(model, processor, name=folder.name, **kwargs)

    # ---- text --------------------------------------------------------------------------------
    def encode_text(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False) if text else []

    def decode_text(self, ids: list[int]) -> str:
        return self.tokenizer.decode([i for i in ids if self.vocab.is_text(i)], skip_special_tokens=True).strip()

    # ---- images ------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_image(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> (grid_h, grid_w) codes through Janus's VQ (the processor's mean and std)."""
        s = self.pixels
        ip = self.processor.image_processor
        x = np.asarray(image.convert("RGB").resize((s, s), Image.BICUBIC), dtype=np.float32) * ip.rescale_factor  # (s, s, 3) in [0, 1]
        x = (x - np.asarray(ip.image_mean, dtype=np.float32)) / np.asarray(ip.image_std, dtype=np.float32)
        x = torch.from_numpy(x).permute(2, 0, 1)[None].to(self.device, self.vq.dtype)  # (1, 3, s, s)
        with onloaded(self.vq.quantize):  # it reads its codebook's weight: bring it in when offloaded
            codes = self.vq.encode(x).image_tokens.reshape(self.vocab.grid_h, self.vocab.grid_w).cpu().long()  # (H, W)
        with self.memo_lock:  # prompts are built outside the generation lock
            _remember(self._pictures, tuple((codes.reshape(-1) + self.vocab.image_offset).tolist()), image)
        return codes

    @torch.no_grad()
    def decode_image(self, codes: torch.Tensor) -> Image.Image:
        """(grid_h, grid_w) codes -> PIL image through Janus's VQ decoder."""
        ip = self.processor.image_processor
        x = self.model.decode_image_tokens(codes.reshape(1, -1).long().to(self.device))[0].float().cpu()  # (s, s, 3), channels last, normalised
        x = (x * torch.tensor(ip.image_std) + torch.tensor(ip.image_mean)) / ip.rescale_factor  # (s, s, 3) in [0, 255]
        return Image.fromarray(x.clamp(0, 255).round().byte().numpy())

    @torch.no_grad()
    def _siglip(self, codes: tuple[int, ...]) -> torch.Tensor:
        """(H*W, C) SigLIP features of the picture behind `codes` (code ids), as Janus's processor
        embeds a picture: the upload itself when this backend encoded it, else the VQ decode."""
        if codes in self._features:
            self._features.move_to_end(codes)
            return self._features[codes]
        with self.memo_lock:
            picture = self._pictures.get(codes)
        picture = picture or self.decode_image(self.vocab.ids_to_codes(codes))
        vision = self.model.model.vision_model
        pixels = self.processor.image_processor(picture.convert("RGB"), return_tensors="pt")["pixel_values"].to(self.device, vision.dtype)  # (1, 3, S, S)
        features = self.model.model.get_image_features(pixels).pooler_output[0]  # (H*W, C)
        _remember(self._features, codes, features.to(self.lm.embed_tokens.weight.dtype))
        return self._features[codes]

    # ---- the family's prompt format ----------------------------------------------------------
    def _render(self, messages: list[dict], generation_prompt: bool = False) -> str:
        return self.processor.apply_chat_template(messages, chat_template=self.template, add_generation_prompt=generation_prompt, tokenize=False)

    def encode_user(self, message: Message) -> list[int]:
        """`<|User|>: [picture] text` in Janus's template (the routing prefix left out), an upload
        as `<begin_of_image>` codes `<end_of_image>` where the template puts `<image_placeholder>`."""
        _, text = route(message.text)
        images = [message.image] if message.image is not None else []
        ids, spans = [], iter(images)
        for t in self.encode_text(self._render([_msg("user", text, len(images))])):
            ids += self.vocab.codes_to_ids(self.encode_image(next(spans))) if t == self.vocab.image_token else [t]
        return ids

    def encode_reply(self, text: str, image: Image.Image | None) -> list[int]:
        """A stored reply rebuilt: its words as the template writes them after the generation
        prompt, its picture as Janus draws it right after the prompt, then <eot>."""
        ids = []
        if text:
            rendered = self._render([_msg("user", "x"), _msg("assistant", text)])
            head = self._render([_msg("user", "x")], True)
            ids += self.encode_text((rendered[len(head) :] if rendered.startswith(head) else " " + text).rstrip())
        if image is not None:
            ids += self.vocab.codes_to_ids(self.encode_image(image))
        return ids + [self.vocab.eot]

    def prompt_head(self, session: Session) -> list[int]:
        """`<bos> [system "\\n\\n"]` (a session's system prompt as Janus's processor prefixes its own)."""
        return [self.vocab.bos] + (self.encode_text(session.system.rstrip() + "\n\n") if session.system else [])

    def reply_start(self) -> list[int]:
        return self.encode_text(self.gen_prompt)

    def message_room(self, session: Session) -> int:
        head = len(self.prompt_head(session))
        return self.max_context - head - len(self.reply_start()) - (self.vocab.image_tokens + 2 + 64)

    def stored_ids_ok(self, turn) -> bool:
        v, user, reply = self.vocab, turn.user_ids, turn.reply_ids
        if not (user and reply and reply[-1] == v.eot):
            return False
        if not all(type(i) is int and 0 <= i < v.size and i != v.image_token for i in (*user, *reply)):
            return False
        return all(v.span_ok(s) for ids in (user, reply) for s in v.raw_spans(ids)[1])

    def prompt(self, session: Session, message: Message) -> JanusPrompt:
        """The conversation's ids (`Backend.prompt`), how Janus answers (`route`), Janus's
        unconditional row for a picture, and what an edit without a mask compares."""
        base = super().prompt(session, message)
        has_picture = message.image is not None or session.latest_image()[0] is not None
        kind, text = route(message.text, message.mask is not None, has_picture)
        if kind == "answer":
            return JanusPrompt(ids=base.ids, user_ids=base.user_ids, mode="text")
        v = self.vocab
        uncond = [t if t in (v.bos, v.boi) else v.pad for t in base.ids]  # Janus's unconditional row: the same length, all pads
        prompt = JanusPrompt(ids=base.ids, user_ids=base.user_ids, uncond_ids=uncond, mode="image")
        if kind == "edit" and message.mask is None:
            source, old = self._edit_source(session, message)
            if source is not None:
                prompt.source_codes = source
                prompt.locate = (self._drawing_prompt(old), self._drawing_prompt(text))
        return prompt

    def _edit_source(self, session: Session, message: Message) -> tuple[torch.Tensor | None, str]:
        """(codes of the picture an edit starts from, the request that made it): the upload (no
        request), else the newest picture of the conversation."""
        if message.image is not None:
            return self.encode_image(message.image), ""
        turn, kind = session.latest_image()
        if turn is None or not in_prompt(turn):
            return None, ""
        old = route(turn.user_text)[1] if kind == "assistant_image" else ""
        if kind == "assistant_image" and turn.token_model == self.name and self.stored_ids_ok(turn):
            spans = self.vocab.split_spans(turn.reply_ids)[1]
            if spans:
                return self.vocab.ids_to_codes(spans[-1]), old
        return self.encode_image(getattr(turn, kind)), old

    def _drawing_prompt(self, text: str) -> list[int]:
        """A bare single-turn drawing prompt, as Janus-Pro was trained: `<bos><|User|>: text\\n\\n<|Assistant|>:<begin_of_image>`."""
        return [self.vocab.bos, *self.encode_text(self._render([_msg("user", text)], True)), self.vocab.boi]

    # ---- the model's forward passes ----------------------------------------------------------
    def _embed(self, ids: list[int], start: int = 0) -> torch.Tensor:
        """(1, len(ids) - start, C) input embeddings of ids[start:]: text through the Llama's
        table, the codes of each complete picture replaced by its SigLIP features."""
        v, n = self.vocab, self.vocab.image_tokens
        t = torch.tensor(ids, device=self.device)  # (T,)
        x = self.lm.embed_tokens(torch.where(t < v.text_size, t, v.pad)[start:][None]).clone()  # (1, T-start, C)
        for i, tok in enumerate(ids):
            if tok != v.boi or i + n >= len(ids) or not all(map(v.is_image, ids[i + 1 : i + 1 + n])):
                continue
            first = i + 1  # position of the picture's first code
            lo, hi = max(first, start), first + n
            if lo < hi:
                x[0, lo - start : hi - start] = self._siglip(tuple(ids[first : first + n]))[lo - first :]
        return x

    def _hidden(self, embeds: torch.Tensor, length: int, cache: DynamicCache) -> torch.Tensor:
        """One cached forward of the Llama over `embeds` (B, T, C); `length` tokens in all after
        it. Returns the last position's hidden state, (B, C)."""
        mask = torch.ones(embeds.shape[0], length, dtype=torch.long, device=embeds.device)  # (B, length)
        return self.lm(inputs_embeds=embeds, attention_mask=mask, cache=cache, use_cache=True).last_hidden_state[:, -1]

    # ---- generation --------------------------------------------------------------------------
    def stream(self, prompt: Prompt, params: GenerationParams, cancel: threading.Event | None = None) -> Iterator[Event]:
        """Generate a reply: words (`_answer`) or one picture (`_draw`), as the prompt's route says.

        1. The stop signal, the seed and the sampling warpers.
        2. Run the token loop under the backend's lock; turn its tokens into events as they come.
        3. The whole reply with its token counts and timings."""
        # 1. Stop signal, seed, warpers.
        v = self.vocab
        cancel = cancel or threading.Event()
        seed = params.seed if params.seed is not None else int(torch.seed() % 2**31)
        draw = getattr(prompt, "mode", "text") == "image"
        if draw and params.max_new_tokens < v.image_tokens + 2:
            raise ChatgenError(f"a Janus picture takes {v.image_tokens + 2} new tokens; raise max_new_tokens (now {params.max_new_tokens})")
        rng = torch.Generator(device=self.device).manual_seed(seed)
        stats: dict = {"cached_tokens": 0}
        # 2. Tokens -> events.
        t0 = time.perf_counter()
        generated, text_ids, codes = [], [], []
        text_so_far, image, first_token_s, last_preview = "", None, None, 0.0
        with self.lock:
            tokens = self._draw(prompt, params, rng, cancel, stats) if draw else self._answer(prompt, params, rng, cancel, stats)
            for tok in tokens:
                if first_token_s is None:
                    first_token_s = time.perf_counter() - t0
                generated.append(tok)
                if tok == v.boi:
                    codes = []
                    yield ImageStart(rows=v.grid_h, cols=v.grid_w)
                elif v.is_image(tok):
                    codes.append(tok)
                    if len(codes) % v.grid_w == 0:
                        due = params.previews and len(codes) < v.image_tokens and time.perf_counter() - last_preview >= PREVIEW_EVERY_S
                        preview = self._preview(codes) if due else None
                        last_preview = time.perf_counter() if preview is not None else last_preview
                        yield ImageRow(row=len(codes) // v.grid_w - 1, rows=v.grid_h, preview=preview)
                elif tok == v.eoi:
                    grid = v.ids_to_codes(codes)  # (H, W)
                    image = self.decode_image(grid)
                    yield ImageDone(image=image, codes=grid)
                elif v.is_text(tok):
                    text_ids.append(tok)
                    new_text = self.decode_text(text_ids)
                    if not new_text.endswith("\ufffd") and new_text.startswith(text_so_far) and len(new_text) > len(text_so_far):
                        yield TextDelta(new_text[len(text_so_far) :])
                        text_so_far = new_text
        # 3. The whole reply.
        total = time.perf_counter() - t0
        yield ReplyDone(
            text=self.decode_text(text_ids),
            image=image,
            reply_ids=generated,
            cancelled=cancel.is_set() and (not generated or generated[-1] != v.eot),
            stats={
                "seed": seed,
                "prompt_tokens": len(prompt.ids),
                "cached_tokens": stats["cached_tokens"],
                "new_tokens": len(generated),
                "image_tokens": len(codes) if image is not None else 0,
                "first_token_s": round(first_token_s or total, 4),
                "total_s": round(total, 4),
                "tokens_per_s": round(len(generated) / total, 1) if total > 0 else 0.0,
                "edit_region": stats.get("edit_region"),
            },
        )

    @torch.no_grad()
    def _preview(self, codes: list[int]) -> Image.Image:
        """The rows drawn so far; the rows still to come grey."""
        v = self.vocab
        rows = len(codes) // v.grid_w
        img = self.decode_image(v.ids_to_codes(codes + [codes[-1]] * (v.image_tokens - len(codes)))).copy()
        w, h = img.size
        img.paste((128, 128, 128), (0, round(h * rows / v.grid_h), w, h))
        return img


def _remember(memo: OrderedDict, key, value, size: int = 8) -> None:
    memo[key] = value
    memo.move_to_end(key)
    while len(memo) > size:
        memo.popitem(last=False)


def _check_files(folder: Path) -> None:
    """One sentence when a transformers-format Janus folder lacks its weights, tokenizer or processor."""
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        raise ChatgenError(f"Janus model at {folder} is incomplete: no weight files (*.safetensors)")
    if not (folder / "tokenizer.json").is_file() and not (folder / "tokenizer_config.json").is_file():
        raise ChatgenError(f"Janus model at {folder} is incomplete: tokenizer.json is missing")
    if not (folder / "processor_config.json").is_file() and not (folder / "preprocessor_config.json").is_file():
        raise ChatgenError(f"Janus model at {folder} is incomplete: processor_config.json / preprocessor_config.json is missing")
