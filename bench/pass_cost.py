"""What one forward pass of a native model's language model costs, against the tokens it reads.

    python bench/pass_cost.py                    # the shipped model, one thread, 300 cached tokens
    python bench/pass_cost.py --model DIR --context 800 --threads 2

Steps:

1. load the model (`chatgen.backends.load_backend`) and set the thread count;
2. for each shape (B rows x W new tokens): fill a cache of `--context` tokens per row, then time
   `--repeats` passes of W new tokens per row over it (left-padding mask as the batch decoder
   passes it, the cache cropped back after each), and print the median;
3. fit cost = fixed + per_token x tokens by least squares and print both: serial decoding pays the
   fixed part once per token it keeps (or per Jacobi / lookup pass), a batch of concurrent replies
   pays it once per pass for all rows, so (fixed + per_token) / per_token bounds what batching can
   gain over one reply at a time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from transformers import DynamicCache

SHAPES = ((1, 1), (1, 4), (1, 8), (1, 16), (1, 40), (2, 1), (4, 1), (8, 1), (8, 3), (8, 5))  # (rows, new tokens per row)


@torch.no_grad()
def pass_ms(model, rows: int, width: int, context: int, repeats: int) -> float:
    """Median milliseconds of one pass of `width` new tokens per row over `context` cached ones."""
    cache = DynamicCache()
    model(input_ids=torch.randint(0, 1000, (rows, context)), cache=cache, use_cache=True)
    new = torch.randint(0, 1000, (rows, width))  # (B, W)
    mask = torch.ones(rows, context + width, dtype=torch.long)  # (B, L + W)
    positions = torch.arange(context, context + width).expand(rows, width)  # (B, W)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(input_ids=new, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True)
        times.append(time.perf_counter() - t0)
        cache.crop(-width)  # back to the `context` cached tokens
    return 1000 * statistics.median(times)


def main() -> None:
    from chatgen.backends import load_backend
    from chatgen.defaults import default_model_path

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="a native checkpoint folder (default: the shipped model)")
    p.add_argument("--context", type=int, default=300, help="cached tokens per row (default 300)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    p.add_argument("--repeats", type=int, default=30, help="passes timed per shape (default 30)")
    args = p.parse_args()
    # 1. The model and the threads.
    model = load_backend(args.model or default_model_path()).lm
    torch.set_num_threads(args.threads)
    # 2. Each shape.
    tokens, costs = [], []
    for rows, width in SHAPES:
        ms = pass_ms(model, rows, width, args.context, args.repeats)
        tokens.append(rows * width)
        costs.append(ms)
        print(f"rows {rows}  new tokens per row {width:2d}  tokens {rows * width:3d}  {ms:7.2f} ms")
    # 3. cost = fixed + per_token x tokens.
    per_token, fixed = np.polyfit(tokens, costs, 1)
    print(f"fit: {fixed:.2f} ms per pass + {per_token:.3f} ms per token; one token alone {fixed + per_token:.2f} ms, "
          f"so a batch, however wide, reads a token at most {(fixed + per_token) / per_token:.1f}x cheaper than a pass of one token")


if __name__ == "__main__":
    main()
