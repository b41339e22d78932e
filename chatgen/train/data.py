"""Training sequences: world dialogues as joint-vocabulary token ids, exactly as the backend
builds prompts at chat time, with the loss on the assistant's tokens only.

    <bos> <user> text [<boi> codes <eoi>] <eot> <assistant> text [<boi> codes <eoi>] <eot> <user> ...
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import sentencepiece as spm
import torch
from torch.nn.utils.rnn import pad_sequence

from .. import world
from ..image_tokenizer import VQImageTokenizer
from ..images import region_text
from ..vocab import JointVocab
from ..world.people_words import people_text
from .vq import render_tiles


def sample_dialogue(rng: random.Random, focus: tuple[str, ...] = (), share: float = 0.5, people: float = 0.0) -> "world.Dialogue":
    """The training mixture: mixed dialogues, single turns of every kind, and edit chains.

    `focus`: turn kinds (from `world.KINDS`) that get a `share` of the samples (half by default)
    as focused turns on top of that mixture (for a warm restart aimed at weak kinds); empty
    keeps the mixture as it was.

    A "clarify" focus is balanced: half its samples are the clarifying question, half an edit
    (replace, remove or move) on the same kind of scene (one with a repeated class) that must
    be done without asking: the user names a class that is there once, or says which one. A
    model trained on clarifying questions alone learns to ask "Which X?" about everything.

    Focused question kinds come as a drawing and 1 to 4 questions about it (of the focused
    question kinds): more readings per token trained, and the same picture read several ways.

    `people` (0..1): that share of the dialogues is rewritten as people type
    (`world.people_words`: other words for things, typos in class names, chatty wrappers), and
    a drawing, 1 to 5 edits and 1 to 3 questions about the edited picture join the mixture, and
    (60% of `people` of the samples) dialogues in the language of a conversation under way
    (`world.people_turns`: "it", several edits in one message, all/both, relative places, yes/no
    questions), masked edits (8% of the rest: `world.masked_turns`) and long edit chains (6 to 10 edits; they need `max_len` 1024 to be kept). `focus` may name those kinds too (`world.PEOPLE_KINDS`)."""
    dialogue = _sample_kind_mixture(rng, focus, share, people)
    if people and rng.random() < people:
        words = random.Random(rng.random())  # its own stream: the mixture's stays as it is
        dialogue = world.Dialogue([replace(t, user=people_text(words, t.user)) for t in dialogue.turns])
    return dialogue


def _sample_kind_mixture(rng: random.Random, focus: tuple[str, ...], share: float, people: float) -> "world.Dialogue":
    if focus and rng.random() < share:
        kind = rng.choice(focus)
        if kind in world.PEOPLE_KINDS:
            return world.generate_people_dialogue(rng, kinds=(kind,))
        if kind in world.MASK_KINDS:
            return world.generate_masked_dialogue(rng)
        if kind == "clarify" and rng.random() < 0.5:
            return world.generate_unambiguous_edit(rng)
        if kind in world.ASK_KINDS:
            asks = tuple(k for k in focus if k in world.ASK_KINDS)
            return world.generate_questions(rng, asks, n=rng.randint(1, 4))
        return world.generate_turn_of_kind(rng, kind)
    if people and rng.random() < 0.6 * people:
        return world.generate_people_dialogue(rng)
    if people and rng.random() < 0.08:
        return world.generate_masked_dialogue(rng)
    if people and rng.random() < 0.08:
        return world.generate_edit_chain(rng, n_edits=rng.randint(6, 10), allow_clarify=rng.random() < 0.3)
    if people and rng.random() < 0.15:
        return world.generate_edits_then_questions(rng, n_edits=rng.randint(1, 5), n_questions=rng.randint(1, 3))
    r = rng.random()
    if r < 0.45:
        return world.generate_dialogue(rng, max_turns=6)
    if r < 0.85:
        return world.generate_turn_of_kind(rng, rng.choice(world.KINDS))
    return world.generate_edit_chain(rng, n_edits=rng.randint(2, 5), allow_clarify=rng.random() < 0.3)


class TileCodebook:
    """Scene -> (H, W) codes by looking up each tile's code (the VQ encodes tiles independently,
    so a tile seen once never needs the VQ again)."""

    def __init__(self, image_tokenizer: VQImageTokenizer):
        if not image_tokenizer.tile:
            raise ValueError("image_tokenizer must read tiles (tile > 0) for a TileCodebook")
        self.image_tokenizer = image_tokenizer  # encodes a render whose tiles are not in the table yet
        self.table: dict[bytes, int] = {}  # tile bytes -> code
        self.cache: dict[object, torch.Tensor] = {}  # scene -> codes

    def codes(self, scene) -> torch.Tensor:
        if scene in self.cache:
            return self.cache[scene]
        # 1. The render's tiles, row by row: one code each.
        tok = self.image_tokenizer
        keys = [t.tobytes() for t in render_tiles(world.render_array(scene), tok.tile)]  # H*W tiles
        # 2. Encode the render once if any of its tiles is new.
        missing = [i for i, k in enumerate(keys) if k not in self.table]
        if missing:
            codes = tok.encode(world.render(scene)).reshape(-1)  # (H*W,)
            for i in missing:
                self.table[keys[i]] = int(codes[i])
        out = torch.tensor([self.table[k] for k in keys]).reshape(tok.grid_h, tok.grid_w)  # (H, W)
        if len(self.cache) < 200_000:
            self.cache[scene] = out
        return out


@dataclass
class Example:
    """One dialogue as ids with a loss mask."""

    ids: list[int]  # token ids
    loss: list[bool]  # True where the model is trained to predict this token (assistant replies)


class DialogueEncoder:
    """World dialogues -> `Example`s in the chat-time prompt format."""

    def __init__(self, sp: spm.SentencePieceProcessor, vocab: JointVocab, codebook: TileCodebook):
        self.sp = sp
        self.vocab = vocab
        self.codebook = codebook

    def text(self, s: str) -> list[int]:
        s = s.strip()
        return list(self.sp.encode(s)) if s else []

    def encode(self, dialogue) -> Example:
        v = self.vocab
        ids, loss = [v.special("<bos>")], [False]

        def add(tokens, trained):
            ids.extend(tokens)
            loss.extend([trained] * len(tokens))

        for turn in dialogue.turns:
            user = [v.special("<user>"), *self.text(turn.user)]
            if turn.upload is not None:
                user += v.codes_to_ids(self.codebook.codes(turn.upload))
            if turn.mask is not None:  # as `NativeBackend.mask_ids` writes a painted mask
                user += [v.special("<mask>"), *self.text(region_text(list(turn.mask)))]
            add(user + [v.eot, v.special("<assistant>")], False)
            reply = self.text(turn.reply_text)
            if turn.reply_scene is not None:
                reply += v.codes_to_ids(self.codebook.codes(turn.reply_scene))
            add(reply + [v.eot], True)
        return Example(ids, loss)


def collate(examples: list[Example], pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded (B, T) input ids, attention mask and labels (-100 where no loss)."""
    ids = [torch.tensor(e.ids) for e in examples]
    labels = [torch.where(torch.tensor(e.loss), x, -100) for e, x in zip(examples, ids)]
    att = [torch.ones_like(x) for x in ids]
    return (
        pad_sequence(ids, batch_first=True, padding_value=pad),  # (B, T)
        pad_sequence(att, batch_first=True, padding_value=0),  # (B, T)
        pad_sequence(labels, batch_first=True, padding_value=-100),  # (B, T)
    )
