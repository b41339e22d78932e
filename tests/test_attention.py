"""Packed grouped-query attention equals transformers' stock sdpa attention."""

import json
import types

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from chatgen.attention import (
    NAME,
    implementation_for,
    packed_sdpa_attention_forward,
    register,
)
from chatgen.tiny import build_tiny


def _mask(b: int, q: int, k: int, holes: bool) -> torch.Tensor:
    """A (B, 1, Q, K) boolean mask: causal over the last Q keys, row i left-padded by i keys, and
    with `holes` a few keys dropped in the middle (rejected drafts)."""
    cols = torch.arange(k)
    rows = torch.arange(q)[:, None] + (k - q)  # (Q, 1) absolute positions of the queries
    m = (cols[None, :] <= rows).expand(b, q, k).clone()  # (B, Q, K)
    for i in range(b):
        m[i, :, :i] = False
        if holes:
            m[i, :, k // 2 : k // 2 + 2] = False
    return m[:, None]  # (B, 1, Q, K)


@pytest.mark.parametrize("b", [1, 3])
@pytest.mark.parametrize("q", [1, 5])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("holes", [False, True])
@pytest.mark.parametrize("float_mask", [False, True])
def test_packed_equals_stock_sdpa(b, q, groups, holes, float_mask):
    torch.manual_seed(b * 100 + q * 10 + groups)
    kv, d, k = 4, 32, 23
    query = torch.randn(b, kv * groups, q, d)  # (B, H, Q, D)
    key, value = torch.randn(b, kv, k, d), torch.randn(b, kv, k, d)  # (B, KV, K, D)
    mask = _mask(b, q, k, holes)
    if float_mask:
        mask = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)
    module = types.SimpleNamespace(num_key_value_groups=groups, is_causal=True)
    want, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=d**-0.5)
    got, _ = packed_sdpa_attention_forward(module, query, key, value, mask, scaling=d**-0.5)
    assert got.shape == want.shape == (b, q, kv * groups, d) and got.is_contiguous()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_a_mask_shared_by_the_batch_and_no_mask():
    module = types.SimpleNamespace(num_key_value_groups=2, is_causal=True)
    query, key, value = torch.randn(3, 8, 5, 16), torch.randn(3, 4, 12, 16), torch.randn(3, 4, 12, 16)
    for mask in (_mask(1, 5, 12, True), None):
        want, _ = sdpa_attention_forward(module, query, key, value, mask)
        got, _ = packed_sdpa_attention_forward(module, query, key, value, mask)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_register_is_idempotent():
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    assert register() == register() == NAME
    assert AttentionInterface._global_mapping[NAME] is packed_sdpa_attention_forward
    assert AttentionMaskInterface._global_mapping[NAME] is sdpa_mask


def _tiny_llama(tmp_path):
    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=4,
                                      max_position_embeddings=256, pad_token_id=0, bos_token_id=1, eos_token_id=2))
    lm.save_pretrained(tmp_path / "lm")
    return tmp_path / "lm"


def test_a_saved_model_greedy_and_logits_equal_sdpa_on_a_padded_batch_with_a_cache(tmp_path):
    folder = _tiny_llama(tmp_path)
    # the config does not keep the name: the loader asks for it each time
    assert implementation_for(folder) == NAME
    packed = LlamaForCausalLM.from_pretrained(folder, attn_implementation=NAME).eval()
    stock = LlamaForCausalLM.from_pretrained(folder, attn_implementation="sdpa").eval()
    assert packed.config._attn_implementation == NAME
    packed.save_pretrained(tmp_path / "again")
    assert LlamaForCausalLM.from_pretrained(tmp_path / "again").config._attn_implementation == "sdpa"
    # a left-padded batch: a prefill, then passes of 5 tokens over the cache
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 64, (3, 20), generator=g)
    attn = torch.ones(3, 20, dtype=torch.long)
    attn[1, :4] = 0
    attn[2, :9] = 0
    with torch.no_grad():
        runs = {}
        for name, lm in (("packed", packed), ("stock", stock)):
            out = lm(input_ids=ids, attention_mask=attn, use_cache=True)
            cache, mask, logits = out.past_key_values, attn, [out.logits]
            for step in range(3):
                window = torch.randint(3, 64, (3, 5), generator=torch.Generator().manual_seed(10 + step))
                mask = torch.cat([mask, torch.ones(3, 5, dtype=torch.long)], 1)
                positions = (mask.cumsum(1) - 1)[:, -5:]
                out = lm(input_ids=window, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True)
                cache = out.past_key_values
                logits.append(out.logits)
            greedy = lm.generate(ids, attention_mask=attn, max_new_tokens=12, do_sample=False, pad_token_id=0)
            runs[name] = (logits, greedy)
    for got, want in zip(runs["packed"][0], runs["stock"][0]):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert torch.equal(runs["packed"][1], runs["stock"][1])


def test_a_config_that_asks_for_eager_keeps_it(tmp_path):
    folder = _tiny_llama(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "attn_implementation": "eager"}))  # save_pretrained does not write it; a user can
    assert implementation_for(folder) is None


def test_tiny_native_checkpoints_load_with_the_packed_attention(tmp_path):
    from chatgen.backends.native import NativeBackend

    backend = NativeBackend.from_pretrained(build_tiny().save_pretrained(tmp_path / "m"))
    assert backend.lm.config._attn_implementation == NAME
