"""Real-size speed on random weights: how close one image comes to the memory-bandwidth floor.

    python bench/real_size.py --family janus            # Janus-Pro-1B, CFG (2 rows), 576 codes at 384 px
    python bench/real_size.py --family emu3 --tokens 512 # Emu3-Gen (8B): the first 512 of one 720 px image's 8,193 tokens

Nothing is downloaded: the model is built from the real configuration with random weights (the
speed of a decode step does not depend on the weights' values). Steps:

1. build the model in `--dtype` (bfloat16 by default) on the GPU when there is one, else the CPU;
2. measure the device's memory bandwidth (a large copy: bytes read + written / seconds);
3. decode `--tokens` tokens one at a time with a KV cache (Janus: the conditional and the
   unconditional row in one batch through the Llama, then its generation head, as
   chatgen's Janus loop does; Emu3: plain cached decoding) and time them;
4. print seconds per token, the image's extrapolated time, and the ratio to the floor: a decode
   step must read every weight of the language model once, so the floor is the bytes a step reads
   (the blocks and the sampling head) / bandwidth.
"""

from __future__ import annotations

import argparse
import time

import torch


def janus_pro_1b():
    from transformers import JanusConfig, JanusForConditionalGeneration, LlamaConfig

    text = LlamaConfig(hidden_size=2048, intermediate_size=5632, num_hidden_layers=24, num_attention_heads=16, num_key_value_heads=16,
                       vocab_size=102400, max_position_embeddings=16384)
    config = JanusConfig(text_config=text.to_dict())
    config.vq_config.image_token_embed_dim = 2048
    return JanusForConditionalGeneration(config), 576, 2  # model, tokens of one image, rows (CFG)


def emu3_gen():
    from transformers import Emu3Config, Emu3ForConditionalGeneration

    return Emu3ForConditionalGeneration(Emu3Config()), 8193, 1  # 90 x (90 + 1 row end) + 3 markers


def bandwidth(device: str, mb: int = 1024) -> float:
    """Bytes per second of a large device copy (read + write)."""
    x = torch.empty(mb * 2**20, dtype=torch.uint8, device=device)
    y = torch.empty_like(x)
    for _ in range(2):
        y.copy_(x)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(5):
        y.copy_(x)
    _sync(device)
    return 2 * 5 * x.numel() / (time.perf_counter() - t0)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@torch.no_grad()
def decode_seconds(model, family: str, tokens: int, rows: int, device: str) -> float:
    """Seconds per decode step over `tokens` steps after a 32-token prompt."""
    from transformers import DynamicCache

    lm = model.model.language_model if family == "janus" else model.model.text_model
    cache = DynamicCache()
    ids = torch.randint(0, 1000, (rows, 32), device=device)  # (rows, 32)
    h = lm(input_ids=ids, cache=cache, use_cache=True).last_hidden_state[:, -1:]  # (rows, 1, C)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(tokens):
        if family == "janus":
            logits = model.model.generation_head(h)  # (rows, 1, 16384): the image head, as in image mode
            code = logits[:1, -1].argmax(-1).expand(rows)  # (rows,)
            x = model.prepare_embeddings_for_image_generation(code[:, None])  # (rows, 1, C)
            h = lm(inputs_embeds=x, cache=cache, use_cache=True).last_hidden_state
        else:
            logits = model.lm_head(h)  # (1, 1, V)
            h = lm(input_ids=logits[:, -1].argmax(-1, keepdim=True), cache=cache, use_cache=True).last_hidden_state
    _sync(device)
    return (time.perf_counter() - t0) / tokens


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", choices=["janus", "emu3"], default="janus")
    p.add_argument("--tokens", type=int, help="decode steps to time (default: one whole image)")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    args = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # 1. The model, random weights, in the dtype asked for.
    torch.set_default_dtype(getattr(torch, args.dtype))
    t0 = time.perf_counter()
    with torch.device(device):
        model, image_tokens, rows = janus_pro_1b() if args.family == "janus" else emu3_gen()
    model.eval()
    torch.set_default_dtype(torch.float32)
    # The weights a step reads: every block of the language model and the head it samples from
    # (the input embedding table is looked up, one row, not read).
    lm = model.model.language_model if args.family == "janus" else model.model.text_model
    head = model.model.generation_head if args.family == "janus" else model.lm_head
    read = [p for n, p in lm.named_parameters() if "embed_tokens" not in n] + list(head.parameters())
    weight_bytes = sum(p.numel() * p.element_size() for p in read)
    print(f"{args.family}: built in {time.perf_counter() - t0:.0f} s on {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}; "
          f"a decode step reads {weight_bytes / 2**30:.2f} GiB of weights in {args.dtype}")
    # 2. Bandwidth; 3. decode.
    bw = bandwidth(device)
    tokens = args.tokens or image_tokens
    step = decode_seconds(model, args.family, tokens, rows, device)
    # 4. Report.
    floor = weight_bytes / bw
    print(f"bandwidth {bw / 1e9:.0f} GB/s; floor {floor * 1e3:.2f} ms a step (the weights read once)")
    print(f"decode {step * 1e3:.2f} ms a step over {tokens} steps ({rows} row{'s' if rows > 1 else ''}); "
          f"one image ({image_tokens} tokens) {step * image_tokens:.1f} s; ratio to the floor {step / floor:.2f}x")


if __name__ == "__main__":
    main()
