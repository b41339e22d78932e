"""Train the joint-vocabulary causal LM (a small `LlamaForCausalLM`) on whole world dialogues.

Fresh dialogues are sampled for every batch (the world is infinite), so there are no epochs;
the batches come from `batches` (in worker processes with `workers`). Checkpoints (model +
optimiser + step) are written every `save_every` steps; a run resumes from the last one.
"""

from __future__ import annotations

import faulthandler
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .batches import batches, loader
from .data import DialogueEncoder
from .device import autocast, pick_device


@dataclass
class LMTrainConfig:
    """Model size and schedule of the language model."""

    hidden: int = 256  # model width
    layers: int = 6  # transformer blocks
    heads: int = 8  # attention heads
    kv_heads: int = 4  # key/value heads (grouped-query attention)
    intermediate: int = 768  # MLP width
    max_context: int = 1024  # positions
    steps: int = 3000  # optimiser steps
    batch_tokens: int = 6144  # padded tokens per step (batches group dialogues of similar length)
    max_len: int = 640  # longer dialogues are skipped
    lr: float = 1.5e-3  # peak learning rate
    warmup: int = 150  # linear warm-up steps
    weight_decay: float = 0.05  # AdamW weight decay
    save_every: int = 200  # steps between checkpoints
    seed: int = 0  # data sampling and init seed
    minutes: float = 0.0  # >0: also stop after this wall time; the cosine then ends at the budget or at `steps`, whichever comes first
    focus: tuple[str, ...] = ()  # turn kinds sampled more often (see data.sample_dialogue)
    focus_share: float = 0.5  # the share of samples that are focused turns
    people_share: float = 0.0  # the share of dialogues rewritten as people type (see data.sample_dialogue)
    workers: int = 0  # data worker processes (for a GPU machine); 0 builds batches in the training process
    stall_seconds: float = 600.0  # a step slower than this dumps the stacks of every thread (and a worker's batch times out)


def build_lm(cfg: LMTrainConfig, vocab):
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(
        LlamaConfig(
            vocab_size=vocab.size,
            hidden_size=cfg.hidden,
            intermediate_size=cfg.intermediate,
            num_hidden_layers=cfg.layers,
            num_attention_heads=cfg.heads,
            num_key_value_heads=cfg.kv_heads,
            max_position_embeddings=cfg.max_context,
            bos_token_id=vocab.special("<bos>"),
            eos_token_id=vocab.eot,
            pad_token_id=vocab.pad,
            tie_word_embeddings=False,
        )
    )


def train_lm(cfg: LMTrainConfig, encoder: DialogueEncoder, run_dir: str | Path, device: str | None = None, log=print, init: str | Path | None = None) -> dict:
    """Train (or resume) in `run_dir`; the model is saved in `run_dir/lm` (load it from there
    with `AutoModelForCausalLM.from_pretrained`); returns the report: steps, tokens, params, minutes.

    `init`: the folder of a trained causal LM to continue from (fresh optimiser and schedule)
    when the run has no checkpoint yet; its architecture replaces the one in `cfg`.

    Learning rate: `lr` times a linear warm-up over `warmup` steps, times a cosine from 100% to
    10% over the run's progress: `step / steps`, or with a time budget (`minutes`) the larger of
    that and the share of the budget spent (+ `start / steps` after a resume), so the cosine
    ends at `steps` or at the budget, whichever comes first (and training stops there)."""
    from transformers import AutoModelForCausalLM

    # 1. Model, optimiser, and the last checkpoint if there is one.
    dev = pick_device(device)
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    state_file = run / "state.pt"
    if state_file.is_file():
        model = AutoModelForCausalLM.from_pretrained(run / "lm").to(dev)
        state = torch.load(state_file, weights_only=False)
        start, rng = state["step"], state["rng"] or random.Random(f"{cfg.seed}/{state['step']}")  # no stream saved by a run with workers
    else:
        model = AutoModelForCausalLM.from_pretrained(init) if init is not None else build_lm(cfg, encoder.vocab)
        model, start, rng, state = model.to(dev), 0, random.Random(cfg.seed), None
    decay = [p for p in model.parameters() if p.dim() >= 2]  # matrices; norms and biases are not decayed
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    if state is not None:
        opt.load_state_dict(state["opt"])
        for g in opt.param_groups:
            g["initial_lr"] = cfg.lr  # the schedule's peak, not the rate the saved optimiser ended on
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls outside the bf16 autocast
    data = iter(loader(encoder, cfg, start, dev)) if cfg.workers else batches(encoder, rng, cfg)
    t0 = time.perf_counter()

    def lr_factor(i: int) -> float:
        """The multiple of `cfg.lr` at the i-th step of this call (step start + 1 + i); a
        `LambdaLR` because the cosine follows the wall clock too, which no step-based helper does."""
        step = start + 1 + i
        progress = step / cfg.steps
        if cfg.minutes:
            progress = max(progress, (time.perf_counter() - t0) / (cfg.minutes * 60) + start / cfg.steps)
        return min(1.0, step / cfg.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))

    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"lm: {n_params / 1e6:.2f}M parameters, steps {start}->{cfg.steps}, {cfg.batch_tokens} tokens per batch, device {dev}")
    model.train()
    tokens = 0

    def save(step):
        """Model, optimiser and step; the data stream too when it is the training process's own
        (workers reseed from the step on resume)."""
        model.save_pretrained(run / "lm")
        torch.save({"step": step, "rng": None if cfg.workers else rng, "opt": opt.state_dict(), "config": asdict(cfg)}, state_file)

    for step in range(start + 1, cfg.steps + 1):
        # 2. A batch of fresh dialogues of similar length (little padding). A step that takes
        #    longer than `stall_seconds` dumps every thread's stack to stderr (a stalled run
        #    on a rented GPU says where it stopped instead of burning the lease silently).
        faulthandler.dump_traceback_later(cfg.stall_seconds, exit=False)
        batch = next(data)
        tokens += int(batch[1].sum())  # counted on the CPU: no wait for the GPU
        ids, att, labels = (t.to(dev, non_blocking=True) for t in batch)
        # 3. Forward (bf16 autocast on CUDA, fp32 on the CPU: see device.autocast), loss on the
        #    assistant's tokens only; then the step and the next learning rate (see the docstring).
        lr = schedule.get_last_lr()[0]
        with autocast(dev):
            loss = model(input_ids=ids, attention_mask=att, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        schedule.step()
        if step % 20 == 0 or step == start + 1:
            el = time.perf_counter() - t0
            log(f"lm step {step}/{cfg.steps} loss {loss.item():.4f} lr {lr:.2e} {tokens / el:.0f} tok/s {el / 60:.1f} min{_memory()}")
        if step % cfg.save_every == 0:
            save(step)
        if cfg.minutes and time.perf_counter() - t0 > cfg.minutes * 60:
            log(f"lm: time budget reached at step {step}")
            break
    faulthandler.cancel_dump_traceback_later()
    save(step)
    return {"steps": step, "tokens": tokens, "params": n_params, "minutes": round((time.perf_counter() - t0) / 60, 1)}


def _memory() -> str:
    """", 41.2 GB free" from /proc/meminfo (Linux), else ""."""
    try:
        with open("/proc/meminfo") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return ""
    return f", {kb / 2**20:.1f} GB free"
