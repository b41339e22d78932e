"""Tiny randomly initialised checkpoints of the real model families (Emu3, Janus), saved with
`save_pretrained` exactly as a Hub checkpoint is laid out, for the backend tests. Nothing is
downloaded: the tokenizers are trained here on a few sentences."""

from __future__ import annotations

from pathlib import Path

import torch

CORPUS = [
    "draw a dog on the grass",
    "make the dog a cat",
    "how many animals are there?",
    "there is a cat on the left and a tree on the right",
    "move the sun to the top right, please",
    "remove the boat and change the background to snow",
    "You are a helpful assistant.",
    "USER: ASSISTANT: 0123456789 * what is in the picture?",
]


def bpe_tokenizer(special: list[str], vocab_size: int = 300):
    """A byte-level BPE `tokenizers.Tokenizer` trained on CORPUS; `special` tokens are appended after the text ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS * 4, trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tok.add_special_tokens(special)
    return tok


# Emu3's chat template (as in transformers' Emu3 processor tests, the one of Emu3-Chat-hf).
EMU3_CHAT_TEMPLATE = "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"


def make_emu3(folder: str | Path, grid: int = 4, codebook: int = 32, hidden: int = 64, seed: int = 0, steer: bool = True) -> Path:
    """A tiny `Emu3ForConditionalGeneration` + `Emu3Processor` in `folder`: images of grid*8 px, grid x grid codes."""
    from transformers import Emu3Config, Emu3ForConditionalGeneration, Emu3ImageProcessor, Emu3Processor, GPT2TokenizerFast

    torch.manual_seed(seed)
    folder = Path(folder)
    extra = ["<|extra_200|>", "<|extra_201|>", "<|extra_203|>", "<|extra_204|>", "<|image start|>", "<|image end|>", "<|image token|>", "<image>"]
    visual = [f"<|visual token {i:06d}|>" for i in range(codebook)]
    raw = bpe_tokenizer(["<|endoftext|>", *extra, *visual])
    tokenizer = GPT2TokenizerFast(
        tokenizer_object=raw,
        bos_token="<|extra_203|>",
        eos_token="<|extra_204|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<image>", "boi_token": "<|image start|>", "eoi_token": "<|image end|>", "image_wrapper_token": "<|image token|>", "eof_token": "<|extra_201|>"},
    )
    px = grid * 8
    processor = Emu3Processor(Emu3ImageProcessor(min_pixels=px * px, max_pixels=px * px, image_mean=[0.5] * 3, image_std=[0.5] * 3), tokenizer, chat_template=EMU3_CHAT_TEMPLATE)
    vocab_map = tokenizer.get_vocab()
    config = Emu3Config(
        vq_config=dict(codebook_size=codebook, embed_dim=4, latent_channels=4, base_channels=32, channel_multiplier=[1, 1, 1, 1], num_res_blocks=1, attn_resolutions=[], hidden_size=32, temporal_downsample_factor=4),
        text_config=dict(vocab_size=len(vocab_map), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id),
        vocabulary_map=vocab_map,
    )
    model = Emu3ForConditionalGeneration(config).eval()
    if steer:
        _steer(model.get_input_embeddings().weight, model.lm_head.weight, vocab_map["<|image start|>"], tokenizer.eos_token_id)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@torch.no_grad()
def _steer(embed: torch.Tensor, head: torch.Tensor, boi: int, eot: int) -> None:
    """Bias random weights so most replies are an image: hidden dimension 0 is large in every
    embedding, and the head's column 0 favours <boi> first, then the end of the turn."""
    embed[:, 0] = 10.0
    head[:, 0] = 0.0
    head[boi, 0] = 1.5
    head[eot, 0] = 1.0
