"""Tiny randomly initialised native checkpoints, for tests and for running before any training.

They exercise every code path a real checkpoint takes (save_pretrained -> from_pretrained) but
draw noise and speak gibberish.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .backends.native import NativeBackend, NativeConfig
from .train.tokenizer import train_tokenizer
from .vocab import JointVocab

# A few sentences for the tiny tokenizer; every ASCII character is reachable through byte fallback.
_CORPUS = [
    "draw a dog on the grass",
    "make the dog a cat",
    "how many animals are there?",
    "there is a cat on the left and a tree on the right",
    "which dog, the left one or the right one?",
    "i can't draw a giraffe; i can draw: dog, cat, rabbit, fox",
    "move the sun to the top right, please",
    "remove the boat and change the background to snow",
]


@dataclass
class TinySpec:
    """Sizes of a tiny checkpoint."""

    image_size: int = 32  # pixels per side
    grid: int = 4  # codes per side (the VQ downsamples by image_size / grid)
    codebook: int = 32  # VQ codebook size
    text_vocab: int = 300  # sentencepiece pieces (>= 259 for byte fallback)
    hidden: int = 32  # LM width
    layers: int = 2  # LM depth
    max_context: int = 2048  # LM positions
    seed: int = 0  # weight init seed
    steer_images: bool = True  # bias the random weights so most replies are an image (tests need images)


def build_tiny(spec: TinySpec = TinySpec()) -> NativeBackend:
    """A randomly initialised native backend of the given sizes."""
    from diffusers import VQModel
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(spec.seed)
    sp = train_tokenizer(_CORPUS * 4, spec.text_vocab)
    vocab = JointVocab(text_size=sp.get_piece_size(), codebook_size=spec.codebook, grid_h=spec.grid, grid_w=spec.grid)
    levels = (spec.image_size // spec.grid).bit_length()  # 2^(levels-1) = downsample factor
    vq = VQModel(
        block_out_channels=(8,) * levels,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        layers_per_block=1,
        latent_channels=4,
        num_vq_embeddings=spec.codebook,
        norm_num_groups=4,
        sample_size=spec.image_size,
    )
    lm = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=vocab.size,
            hidden_size=spec.hidden,
            intermediate_size=spec.hidden * 2,
            num_hidden_layers=spec.layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=spec.max_context,
            bos_token_id=vocab.special("<bos>"),
            eos_token_id=vocab.eot,
            pad_token_id=vocab.pad,
            tie_word_embeddings=False,
        )
    )
    if spec.steer_images:
        _steer(lm, vocab)
    config = NativeConfig(vocab=vocab, image_size=spec.image_size, model_name="tiny-random", max_upload_error=0.0)
    return NativeBackend(lm, config.image_tokenizer(vq), sp, config)


@torch.no_grad()
def _steer(lm, vocab: JointVocab) -> None:
    """Make hidden dimension 0 large in every embedding, so after the final norm it dominates;
    then lm_head's column 0 sets a near-constant logit bias: <boi> first, <eot> after the image."""
    lm.model.embed_tokens.weight[:, 0] = 10.0
    head = lm.lm_head.weight  # (V, D)
    head[:, 0] = 0.0
    head[vocab.boi, 0] = 1.5
    head[vocab.eot, 0] = 1.0


def make_tiny_checkpoint(folder: str | Path, spec: TinySpec = TinySpec()) -> Path:
    """Build a tiny random checkpoint and save it to `folder` (what tests load with from_pretrained)."""
    return build_tiny(spec).save_pretrained(folder)
