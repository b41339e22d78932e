"""The two model-side pieces transformers 5.24 lacks for drawing with a Chameleon-format checkpoint.

1. `ChameleonChat`: `ChameleonForConditionalGeneration` whose `forward` is the stock one but
   for the last line. The stock class sets every image-token logit to the minimum (Meta's
   released weights were not to draw). With `draw = False` this class masks the image tokens
   *and* `<racm3:break>` (the image start), so a reply is words only and never an empty
   picture; with `draw = True` nothing is masked (Anole, Lumina-mGPT: trained to draw).
2. `ChameleonVQDecoder`: the VQGAN decoder (codes -> pixels). transformers' `ChameleonVQVAE` has
   only the encoder; the decoder weights of a drawing checkpoint converted with the decoder
   (leloy/Anole-7b-v0.1-hf, transformers PR 32013's conversion) sit under
   `model.vqmodel.decoder.*`, the module names below, so `from_pretrained` loads them into
   `model.model.vqmodel.decoder` when `ChameleonChat.draw` is on. It reuses transformers' own
   encoder blocks (the taming-transformers VQGAN: the decoder mirrors the encoder).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import ChameleonForConditionalGeneration
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.models.chameleon.modeling_chameleon import (
    ChameleonVQVAEEncoderAttnBlock,
    ChameleonVQVAEEncoderResnetBlock,
)


class _Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # (B, C, 2h, 2w)


class ChameleonVQDecoder(nn.Module):
    """Latents (B, latent_channels, h, w) -> pixels (B, 3, h * 2**(levels-1), ...) in about [-1, 1]."""

    def __init__(self, config):
        super().__init__()
        levels, mult, base = len(config.channel_multiplier), config.channel_multiplier, config.base_channels
        block_in = base * mult[-1]
        res = config.resolution // 2 ** (levels - 1)
        attn_at = config.attn_resolutions or []
        vanilla = config.attn_type == "vanilla"
        self.conv_in = nn.Conv2d(config.latent_channels, block_in, kernel_size=3, stride=1, padding=1)
        self.mid = nn.Module()
        self.mid.block_1 = ChameleonVQVAEEncoderResnetBlock(config, block_in, block_in)
        self.mid.attn_1 = ChameleonVQVAEEncoderAttnBlock(block_in) if vanilla else nn.Identity()
        self.mid.block_2 = ChameleonVQVAEEncoderResnetBlock(config, block_in, block_in)
        self.up = nn.ModuleList()
        for level in reversed(range(levels)):
            up = nn.Module()
            up.block, up.attn = nn.ModuleList(), nn.ModuleList()
            for _ in range(config.num_res_blocks + 1):
                up.block.append(ChameleonVQVAEEncoderResnetBlock(config, block_in, base * mult[level]))
                block_in = base * mult[level]
                if res in attn_at and vanilla:
                    up.attn.append(ChameleonVQVAEEncoderAttnBlock(block_in))
            if level != 0:
                up.upsample = _Upsample(block_in)
                res *= 2
            self.up.insert(0, up)  # self.up[level], as the checkpoint names them
        self.norm_out = nn.GroupNorm(num_groups=32, num_channels=block_in, eps=1e-6, affine=True)
        self.conv_out = nn.Conv2d(block_in, config.in_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(self.conv_in(z))))  # (B, C, h, w)
        for level in reversed(range(len(self.up))):
            up = self.up[level]
            for i, block in enumerate(up.block):
                h = block(h)
                if len(up.attn):
                    h = up.attn[i](h)
            if level != 0:
                h = up.upsample(h)  # (B, C, 2h, 2w)
        h = self.norm_out(h)
        return self.conv_out(h * torch.sigmoid(h))  # (B, 3, H, W)


class ChameleonChat(ChameleonForConditionalGeneration):
    """`ChameleonForConditionalGeneration` with the image mask chosen by `draw` (module docstring)."""

    draw = False  # class attribute: set on a subclass before `from_pretrained` (see `model_class`)

    def __init__(self, config):
        super().__init__(config)
        if self.draw:
            self.model.vqmodel.decoder = ChameleonVQDecoder(config.vq_config)
        boi = (config.vocabulary_map or {}).get("<racm3:break>")
        self.masked = list(self.model.vocabulary_mapping.image_tokens) + ([boi] if boi is not None else [])  # ids a words-only reply may not hold

    def forward(self, input_ids=None, pixel_values=None, attention_mask=None, position_ids=None, cache=None, inputs_embeds=None,
                labels=None, use_cache=None, logits_to_keep=0, **kwargs) -> CausalLMOutputWithPast:
        out = self.model(input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask, position_ids=position_ids,
                         cache=cache, inputs_embeds=inputs_embeds, use_cache=use_cache, **kwargs)
        hidden = out[0]
        if isinstance(logits_to_keep, int) and logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden)  # (B, T, V)
        if not self.draw:  # words only: no image tokens, and no image start
            logits[:, :, self.masked] = torch.finfo(logits.dtype).min
        loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs) if labels is not None else None
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=out.cache, hidden_states=out.hidden_states, attentions=out.attentions)


class ChameleonDraw(ChameleonChat):
    """`ChameleonChat` that draws: no mask, and the VQ decoder loaded with the weights."""

    draw = True


def model_class(draw: bool) -> type[ChameleonChat]:
    return ChameleonDraw if draw else ChameleonChat
