"""`chatgen train`: retrain the embedded model (tokenizer, VQ-VAE, language model) on the world."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ChatgenError
from .common import comma_list


def _focus(kinds_text: str, share: float, kinds_flag: str, share_flag: str) -> tuple[str, ...]:
    """Turn kinds from `KIND,...` text, checked, and a checked share of the data for them."""
    from ..world import KINDS, MASK_KINDS, PEOPLE_KINDS

    kinds = KINDS + PEOPLE_KINDS + MASK_KINDS
    focus = comma_list(kinds_text)
    bad = [k for k in focus if k not in kinds]
    if bad:
        raise ChatgenError(f"{kinds_flag}: unknown turn kind {bad[0]!r}; the kinds are {', '.join(kinds)}.")
    if not 0.0 < share <= 1.0:
        raise ChatgenError(f"{share_flag} must be above 0 and at most 1 (got {share}).")
    return focus


def restart_spec(spec: str) -> "LMRestart":
    """`MINUTES[:KIND,...[@SHARE]][/LR]` -> a warm restart, with its own focus and peak
    learning rate if given."""
    from ..train.pipeline import LMRestart

    head, _, lr = spec.partition("/")
    minutes, _, rest = head.partition(":")
    kinds_text, _, share = rest.partition("@")
    try:
        given = {"focus_share": float(share)} if share else {}
        given |= {"lr": float(lr)} if lr else {}
        r = LMRestart(minutes=float(minutes), **given)  # LMRestart's defaults for the rest
    except ValueError:
        raise ChatgenError(f"--restart {spec!r}: write MINUTES or MINUTES:KIND,...[@SHARE][/LR], e.g. 15:ask_is_there@1.0 or 20:clarify@0.7/5e-4.") from None
    if r.minutes <= 0 or r.lr <= 0:
        raise ChatgenError(f"--restart {spec!r}: MINUTES and LR must be above 0.")
    r.focus = _focus(kinds_text, r.focus_share, f"--restart {spec!r}", f"--restart {spec!r}: SHARE")
    return r


def _lm_size(lm, args) -> None:
    """--layers / --hidden / --batch-tokens into the language model's config (heads 32 wide,
    half as many key/value heads, MLP 3x the width, as in the shipped model)."""
    if (args.layers is not None or args.hidden is not None) and args.init_from:
        raise ChatgenError("--layers and --hidden size a new model; a model continued with --init-from keeps its own size.")
    if args.layers is not None:
        if args.layers < 1:
            raise ChatgenError(f"--layers must be at least 1; got {args.layers}.")
        lm.layers = args.layers
    if args.hidden is not None:
        if args.hidden < 64 or args.hidden % 64:
            raise ChatgenError(f"--hidden must be a multiple of 64 (attention heads are 32 wide); got {args.hidden}.")
        lm.hidden, lm.heads, lm.kv_heads, lm.intermediate = args.hidden, args.hidden // 32, args.hidden // 64, 3 * args.hidden
    if args.max_len is not None:
        if not 64 <= args.max_len <= lm.max_context:
            raise ChatgenError(f"--max-len must be between 64 and the model's {lm.max_context} positions; got {args.max_len}.")
        lm.max_len = args.max_len
    if args.batch_tokens is not None:
        if args.batch_tokens < lm.max_len:
            raise ChatgenError(f"--batch-tokens must be at least {lm.max_len} (one dialogue); got {args.batch_tokens}.")
        lm.batch_tokens = args.batch_tokens


def cmd_train_refiner(args) -> int:
    """`chatgen train --stage refiner`: the embedded refiner for --init-from's VQ-VAE."""
    from ..defaults import SHIPPED
    from ..evals.refiner import measure_refiner
    from ..refiner import load_refiner
    from ..train.refiner import RefinerTrainConfig, train_refiner

    cfg = RefinerTrainConfig()
    if args.minutes is not None:
        cfg.minutes = args.minutes
    if args.seed is not None:
        cfg.seed = args.seed
    if cfg.minutes <= 0:
        raise ChatgenError("--minutes must be above 0.")
    tokenizer = train_refiner(args.init_from or str(SHIPPED), args.out, cfg)
    figures = measure_refiner(load_refiner(args.out).refine, tokenizer, 200)
    (Path(args.out) / "figures.json").write_text(json.dumps(figures, indent=1) + "\n")
    print(json.dumps(figures, indent=1))
    return 0


def cmd_train(args) -> int:
    if args.stage == "refiner":
        return cmd_train_refiner(args)
    from ..train.lm import LMTrainConfig
    from ..train.pipeline import TrainConfig, train_all

    cfg = TrainConfig()
    if args.lm_steps:
        cfg.lm = LMTrainConfig(steps=args.lm_steps)
    if args.minutes:
        cfg.lm.minutes = args.minutes
    if args.lr:
        cfg.lm.lr = args.lr
    if args.warmup is not None:
        cfg.lm.warmup = args.warmup
    if args.seed is not None:
        cfg.seed = cfg.lm.seed = args.seed
    _lm_size(cfg.lm, args)
    if not 0.0 <= args.people_share <= 1.0:
        raise ChatgenError(f"--people-share must be between 0 and 1 (got {args.people_share}).")
    cfg.lm.people_share = args.people_share  # restarts inherit it
    if args.workers < 0:
        raise ChatgenError(f"--workers must be 0 or more (got {args.workers}).")
    cfg.lm.workers = args.workers  # restarts inherit it
    focus = _focus(args.focus or "", args.focus_share, "--focus", "--focus-share")
    cfg.restarts = [restart_spec(r) for r in args.restart or []]
    last = cfg.restarts[-1] if cfg.restarts else cfg.lm  # the last LM run gets --focus
    if focus and last.focus:
        raise ChatgenError("--focus goes to the last restart, which has its own focus; give the focus in one place.")
    if focus:
        last.focus, last.focus_share = focus, args.focus_share
    if args.init_from and Path(args.init_from).resolve() == Path(args.out).resolve():
        raise ChatgenError("--init-from and --out must be different folders (write the continued model next to the old one).")
    train_all(args.out, args.run_dir or f"{args.out}.run", cfg, device=args.device, init_from=args.init_from)
    return 0




def add_parser(sub) -> None:
    from ..world import KINDS, MASK_KINDS, PEOPLE_KINDS

    p = sub.add_parser("train", help="train the embedded model from scratch", description="Train the tokenizer, the tile VQ-VAE and the language model on the synthetic world and write a native checkpoint. Uses a CUDA GPU when one is present. A run folder keeps every stage, so an interrupted run resumes.")
    p.add_argument("--stage", choices=["model", "refiner"], default="model", help="model: the tokenizer, VQ-VAE and language model (default); refiner: the embedded refiner, a 16 px -> 64 px tile dictionary for --init-from's VQ-VAE (default: the embedded model) learned from clean 384 px renders of 20,000 scenes (--minutes caps it, default 20; --seed), written to --out")
    p.add_argument("--out", required=True, help="the checkpoint folder to write")
    p.add_argument("--run-dir", help="where stages and LM checkpoints are kept (default: OUT.run)")
    p.add_argument("--lm-steps", type=int, help="language model optimiser steps (default 3000)")
    p.add_argument("--minutes", type=float, help="stop the language model after this many minutes")
    p.add_argument("--lr", type=float, help="language model peak learning rate (default 1.5e-3)")
    p.add_argument("--warmup", type=int, help="language model warm-up steps (default 150)")
    p.add_argument("--seed", type=int, help="data sampling seed (default 0; held-out seeds start at 10,000,000)")
    p.add_argument("--restart", action="append", metavar="MINUTES[:KIND,...[@SHARE]][/LR]", help="after the first run, train the language model further with a warm restart of the schedule (peak lr LR, default 8e-4) for MINUTES, optionally focused on turn kinds (SHARE of the data, default 0.5), e.g. 15:ask_is_there@1.0 or 24:clarify@0.7/5e-4; repeatable")
    p.add_argument("--focus-share", type=float, default=0.5, metavar="P", help="the share of training samples that are focused turns (default 0.5)")
    p.add_argument("--focus", metavar="KIND,...", help="sample these turn kinds more often (--focus-share of the data: single turns, question kinds as a drawing and 1-4 questions about it), e.g. ask_count,ask_is_there,clarify; with --restart only the last restart does; kinds: " + ", ".join(KINDS + PEOPLE_KINDS + MASK_KINDS))
    p.add_argument("--people-share", type=float, default=0.0, metavar="P", help="rewrite this share of the dialogues as people type (other words for things, typos in class names, chatty wrappers) and add questions after edits to the mixture (default 0)")
    p.add_argument("--init-from", metavar="FOLDER", help="continue from this native checkpoint: keep its tokenizer and VQ-VAE, train its language model further")
    p.add_argument("--layers", type=int, help="transformer blocks of a new language model (default 6)")
    p.add_argument("--hidden", type=int, help="width of a new language model, a multiple of 64 (default 256; heads are 32 wide)")
    p.add_argument("--max-len", type=int, help="longest dialogue trained on, in tokens (default 640; up to the model's 1024 positions: long edit chains need it)")
    p.add_argument("--batch-tokens", type=int, help="padded tokens per optimiser step (default 6144; a GPU takes more)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--workers", type=int, default=0, metavar="N", help="data worker processes, for a GPU machine; 0 builds batches in the training process as before (default 0)")
    p.set_defaults(func=cmd_train)
