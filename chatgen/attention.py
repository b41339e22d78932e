"""Packed grouped-query attention for multi-token masked passes (an `AttentionInterface` entry).

With grouped-query attention (the embedded model: 8 query heads, 4 key/value heads) and a 4-D
mask, transformers' stock `sdpa_attention_forward` runs a pass of more than one query token
(Jacobi windows, prompt-lookup drafts, right-padded batched rows) on `repeat_kv` copies of the
whole key/value cache, in every layer of every pass. Packing the query instead costs nothing:

1. the query heads that share one key/value head are stacked along the query axis, in
   transformers' head order h = kv * groups + r: (B, H, Q, D) -> (B, KV, groups * Q, D);
2. the mask, shared by all heads, is repeated the same way: (B|1, 1, Q, K) -> (B|1, 1, groups * Q, K);
3. one `scaled_dot_product_attention` over the unrepeated keys and values;
4. the output is unpacked to (B, H, Q, D) and returned as (B, Q, H, D), as the stock function does.

Every other case (no mask, one query token, no key/value groups, per-head masks, position
bias, softcap, attention weights asked for) goes to the stock function unchanged.

`register()` adds the function under `NAME` to transformers' `AttentionInterface` (and the
stock sdpa mask to `AttentionMaskInterface`); a loader calls it and passes
`attn_implementation=NAME` to `from_pretrained` (a config does not save the name).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

NAME = "chatgen_packed_sdpa"  # the attn_implementation name registered with transformers


def packed_sdpa_attention_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: torch.Tensor | None,
                                  dropout: float = 0.0, scaling: float | None = None, is_causal: bool | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    """transformers' sdpa attention, with the query packed instead of the keys and values repeated (module docstring)."""
    groups = getattr(module, "num_key_value_groups", 1)
    b, h, q, d = query.shape  # (B, H, Q, D)
    packable = (
        groups > 1 and q > 1
        and attention_mask is not None and attention_mask.dim() == 4 and attention_mask.shape[1] == 1 and attention_mask.shape[2] == q
        and key.shape[1] * groups == h
        and kwargs.get("position_bias") is None and kwargs.get("softcap") is None and not kwargs.get("output_attentions", False)
    )
    if not packable:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs)
    # 1. Stack the query heads of each key/value head along the query axis
    kv = key.shape[1]
    packed = query.reshape(b, kv, groups * q, d)  # (B, KV, groups * Q, D)
    # 2. Repeat the mask for each stacked head
    mb, k = attention_mask.shape[0], attention_mask.shape[-1]
    mask = attention_mask[:, :, None].expand(mb, 1, groups, q, k).reshape(mb, 1, groups * q, k)  # (B|1, 1, groups * Q, K)
    # 3. Attention over the unrepeated keys and values
    out = torch.nn.functional.scaled_dot_product_attention(packed, key, value, attn_mask=mask, dropout_p=dropout, scale=scaling)  # (B, KV, groups * Q, Dv)
    # 4. Unpack the heads: (B, H, Q, Dv) -> (B, Q, H, Dv)
    out = out.reshape(b, h, q, value.shape[-1])
    return out.transpose(1, 2).contiguous(), None


def register() -> str:
    """Register the packed attention (and the stock sdpa masks) with transformers under `NAME`;
    calling it again changes nothing. Returns `NAME`."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, packed_sdpa_attention_forward)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME


def implementation_for(folder: str | Path) -> str | None:
    """The registered `NAME` for the causal LM saved in `folder` when it would run on sdpa (its
    config names no implementation, or sdpa, and its class supports sdpa); None to keep what the
    config asks for (eager, flash attention, ...) or what the class falls back to."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    config = AutoConfig.from_pretrained(folder)
    if config._attn_implementation not in (None, "sdpa"):
        return None
    try:
        model_class = MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    except KeyError:  # a class transformers does not map: leave its attention alone
        return None
    return register() if getattr(model_class, "_supports_sdpa", False) else None
