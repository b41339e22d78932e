"""Tiny randomly initialised checkpoints of the real model families (Emu3, Janus), saved with
`save_pretrained` exactly as a Hub checkpoint is laid out, for the backend tests. Nothing is
downloaded: the tokenizers are trained here on a few sentences."""

from __future__ import annotations

from pathlib import Path

import torch

from chatgen.backends.janus_vocab import DEFAULT_CHAT_TEMPLATE

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


def bpe_tokenizer(special: list[str], vocab_size: int = 300, corpus: list[str] = CORPUS):
    """A byte-level BPE `tokenizers.Tokenizer` trained on `corpus`; `special` tokens are appended after the text ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus * 4, trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
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


JANUS_CHAT_TEMPLATE = DEFAULT_CHAT_TEMPLATE  # Janus-Pro's, as transformers' conversion script writes it into the processor
JANUS_SPECIALS = ["<\uff5cbegin\u2581of\u2581sentence\uff5c>", "<\uff5cend\u2581of\u2581sentence\uff5c>", "<\uff5c\u2581pad\u2581\uff5c>", "<image_placeholder>", "<begin_of_image>", "<end_of_image>"]


def make_janus(folder: str | Path, grid: int = 4, codebook: int = 32, hidden: int = 64, seed: int = 0) -> Path:
    """A tiny `JanusForConditionalGeneration` + `JanusProcessor` in `folder`: grid x grid codes,
    images of grid*8 px (a VQ with 4 channel multipliers downsamples by 8), a SigLIP of patch 8."""
    from transformers import JanusConfig, JanusForConditionalGeneration, JanusImageProcessor, JanusProcessor, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    folder = Path(folder)
    bos, eos, pad, image, boi, eoi = JANUS_SPECIALS
    raw = bpe_tokenizer(JANUS_SPECIALS, corpus=CORPUS + ["<|User|>: draw a dog\n\n<|Assistant|>: a dog."])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token=bos, eos_token=eos, pad_token=pad, extra_special_tokens={"image_token": image, "boi_token": boi, "eoi_token": eoi})
    px = grid * 8
    image_processor = JanusImageProcessor(size={"height": px, "width": px}, min_size=4, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor = JanusProcessor(image_processor, tokenizer, chat_template=JANUS_CHAT_TEMPLATE, num_image_tokens=grid * grid)
    config = JanusConfig(
        text_config=dict(model_type="llama", vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=px, patch_size=8, projection_dim=hidden, num_image_tokens=grid * grid),
        vq_config=dict(embed_dim=4, num_embeddings=codebook, latent_channels=8, base_channels=32, channel_multiplier=[1, 1, 1, 1], num_res_blocks=1, projection_dim=hidden, image_token_embed_dim=hidden),
        image_token_id=tokenizer.convert_tokens_to_ids(image),
    )
    model = JanusForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.guidance_scale = 5
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def image_reply(assistant, session, text, seeds=range(20), max_new_tokens: int = 60, **params):
    """The first seed whose reply holds an image (a random model sometimes answers in text); its
    turn is stored in `session`."""
    for seed in seeds:
        reply = list(assistant.stream(session, text, {"seed": seed, "max_new_tokens": max_new_tokens, **params}))[-1]
        if reply.image is not None:
            session.append(reply.turn)
            return reply
    raise AssertionError("no seed gave an image")


def chameleon_code_name(k: int) -> str:
    """Chameleon's vocabulary name of VQ code k: IMGIMG + its digits as letters (0 -> A) + Z."""
    return "IMGIMG" + "".join(chr(ord("A") + int(d)) for d in str(k)) + "Z"


def make_chameleon(folder: str | Path, grid: int = 4, codebook: int = 32, hidden: int = 64, seed: int = 0, draw: bool = True, steer: bool = True) -> Path:
    """A tiny `ChameleonForConditionalGeneration` + `ChameleonProcessor` in `folder`: grid x grid
    codes of grid*8 px. With `draw`, the VQ decoder weights are saved too (`model.vqmodel.decoder.*`,
    as in leloy/Anole-7b-v0.1-hf); without, the folder is like facebook/chameleon-7b (encoder only)."""
    from transformers import ChameleonConfig, ChameleonImageProcessor, ChameleonProcessor, PreTrainedTokenizerFast

    from chatgen.backends.chameleon_model import model_class

    torch.manual_seed(seed)
    folder = Path(folder)
    specials = ["<s>", "</s>", "<pad>", "<reserved08706>", "<image>", "<racm3:break>", "<eoss>"]
    raw = bpe_tokenizer(specials + [chameleon_code_name(k) for k in range(codebook)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>", pad_token="<pad>", sep_token="<reserved08706>",
                                        extra_special_tokens={"image_token": "<image>", "boi_token": "<racm3:break>", "eoi_token": "<eoss>"})
    px = grid * 8
    image_processor = ChameleonImageProcessor(size={"shortest_edge": px}, crop_size={"height": px, "width": px})
    processor = ChameleonProcessor(image_processor, tokenizer, image_seq_length=grid * grid)
    vocab_map = tokenizer.get_vocab()
    config = ChameleonConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        vocabulary_map=vocab_map,
        vq_config={"embed_dim": 4, "num_embeddings": codebook, "latent_channels": 4, "resolution": px, "base_channels": 32, "channel_multiplier": [1, 1, 1, 1], "num_res_blocks": 1, "attn_resolutions": []},
    )
    model = model_class(draw)(config).eval()
    if steer:
        _steer(model.get_input_embeddings().weight, model.lm_head.weight, vocab_map["<racm3:break>"], tokenizer.eos_token_id)
    model.config.architectures = ["ChameleonForConditionalGeneration"]
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


# GLM-Image's chat template as other tools write it (the source picture between the image start
# and end tokens, then the text); the processor appends the target grids and the image start.
GLM_IMAGE_CHAT_TEMPLATE = "{%- for m in messages -%}{%- for item in m.content -%}{%- if item.type == 'image' -%}<|dit_token_START|><|image|><|dit_token_END|>{%- elif item.type == 'text' -%}{{ item.text }}{%- endif -%}{%- endfor -%}{%- endfor -%}"


def make_glm_image(folder: str | Path, grid: int = 4, codebook: int = 32, seed: int = 0, hidden: int = 32) -> Path:
    """A tiny `GlmImagePipeline` in `folder` (as zai-org/GLM-Image is laid out): pictures of grid*32
    px, a grid x grid large token grid, a 16x16 preview; `<|dit_token_k|>` is id k (codes, then the
    image start and end), a vision encoder of patch 16 (its processor halves a picture first, so an
    upload is grid x grid tokens too), a T5 with ByT5's byte tokenizer, a DiT of patch 2 over a
    4-level VAE. `hidden`: the GLM text model's width (64 for bitsandbytes' 4-bit CPU kernel,
    whose blocks of 64 inputs need at least that many)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, GlmImagePipeline, GlmImageTransformer2DModel
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import ByT5Tokenizer, GlmImageConfig, GlmImageForConditionalGeneration, GlmImageImageProcessorPil, GlmImageProcessor, PreTrainedTokenizerFast, T5Config, T5EncoderModel

    torch.manual_seed(seed)
    px = grid * 32
    dit = [f"<|dit_token_{k}|>" for k in range(codebook + 2)]
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=[*dit, "<|endoftext|>", "<|image|>", "<sop>", "<eop>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    raw.train_from_iterator(CORPUS * 4, trainer)  # the specials first: <|dit_token_k|> gets id k
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token=dit[codebook], eos_token=dit[codebook + 1], pad_token="<|endoftext|>",
                                        extra_special_tokens={"image_token": "<|image|>", "grid_bos_token": "<sop>", "grid_eos_token": "<eop>"})
    template = GLM_IMAGE_CHAT_TEMPLATE.replace("START", str(codebook)).replace("END", str(codebook + 1))
    image_processor = GlmImageImageProcessorPil(patch_size=16, temporal_patch_size=1, merge_size=1, min_pixels=px * px, max_pixels=px * px, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    config = GlmImageConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                         vision_vocab_size=codebook + 8, rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [hidden // 8, hidden // 16, hidden // 16]}, pad_token_id=tokenizer.pad_token_id, eos_token_id=codebook + 1),
        vision_config=dict(depth=1, hidden_size=32, num_heads=2, image_size=px // 2, patch_size=16, intermediate_size=32),
        vq_config=dict(embed_dim=32, num_embeddings=codebook, latent_channels=32),
        image_token_id=tokenizer.convert_tokens_to_ids("<|image|>"), image_start_token_id=codebook, image_end_token_id=codebook + 1,
    )
    pipe = GlmImagePipeline(
        tokenizer=ByT5Tokenizer(),
        processor=GlmImageProcessor(image_processor, tokenizer, chat_template=template),
        text_encoder=T5EncoderModel(T5Config(vocab_size=384, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=2)).eval(),
        vision_language_encoder=GlmImageForConditionalGeneration(config).eval(),
        vae=AutoencoderKL(block_out_channels=(4, 8, 16, 16), down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4, latent_channels=4, norm_num_groups=4, sample_size=px, latents_mean=[0.0] * 4, latents_std=[1.0] * 4),
        transformer=GlmImageTransformer2DModel(patch_size=2, in_channels=4, out_channels=4, num_layers=1, attention_head_dim=8, num_attention_heads=2, text_embed_dim=32, time_embed_dim=16, condition_dim=8, prior_vq_quantizer_codebook_size=codebook),
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )
    pipe.save_pretrained(folder)
    return Path(folder)
