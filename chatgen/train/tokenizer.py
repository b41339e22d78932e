"""Train the sentencepiece text tokenizer (byte-fallback BPE, so any text round-trips)."""

from __future__ import annotations

import io
import random
from typing import Iterable

import sentencepiece as spm


def train_tokenizer(sentences: Iterable[str], vocab_size: int) -> spm.SentencePieceProcessor:
    """A byte-fallback BPE sentencepiece model trained in memory; ids 0 = <unk>, no bos/eos/pad
    (the joint vocabulary has its own structural specials)."""
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(sentences)),
        model_writer=buf,
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        unk_id=0,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    return spm.SentencePieceProcessor(model_proto=buf.getvalue())


def world_sentences(n_dialogues: int, seed: int) -> list[str]:
    """User and assistant texts of `n_dialogues` sampled training dialogues."""
    from .data import sample_dialogue

    rng = random.Random(seed)
    out = []
    for _ in range(n_dialogues):
        for t in sample_dialogue(rng).turns:
            out += [t.user, t.reply_text]
    return out
