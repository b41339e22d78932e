"""`chatgen` command line: generate, edit, chat (and the subcommands later issues add).

Every error a person can cause prints one line and exits with code 2; nothing is a traceback.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import threading
from pathlib import Path

from .errors import ChatgenError


# ---- shared options ---------------------------------------------------------------------------
def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", metavar="PATH", help="model folder or Hub id (default: the embedded model)")
    g.add_argument("--quantize", choices=["4bit", "8bit"], help="load the language model quantized with bitsandbytes")


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument("--seed", type=int, help="random seed (same seed, same result)")
    g.add_argument("--temperature", type=float, help="0 = greedy (default 1.0)")
    g.add_argument("--top-k", type=int, help="sample among the k most likely tokens (0 = off)")
    g.add_argument("--top-p", type=float, help="nucleus sampling mass (1 = off)")
    g.add_argument("--cfg", type=float, dest="cfg_scale", help="classifier-free guidance scale for images (1 = off)")
    g.add_argument("--max-new-tokens", type=int, help="cap on the reply length in tokens")


def sampling_from_args(args) -> dict:
    keys = ("seed", "temperature", "top_k", "top_p", "cfg_scale", "max_new_tokens")
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def load_assistant(args):
    """The assistant on --model (or the embedded default), with a progress line while loading."""
    from .assistant import Assistant
    from .backends import load_backend
    from .defaults import default_model_path

    path = args.model or default_model_path()
    print(f"loading model {path} ...", file=sys.stderr, flush=True)
    return Assistant(load_backend(path, quantization=args.quantize))


def run_turn(assistant, session, message, params: dict):
    """One turn with a progress bar over the image rows; Ctrl-C cancels cleanly."""
    from tqdm import tqdm

    from .assistant import Reply
    from .backends.base import ImageRow, ImageStart

    cancel = threading.Event()
    bar = None
    try:
        for ev in assistant.stream(session, message, params, cancel=cancel):
            if isinstance(ev, ImageStart):
                bar = tqdm(total=ev.rows, desc="drawing", unit="row", file=sys.stderr, leave=False)
            elif isinstance(ev, ImageRow) and bar is not None:
                bar.update(1)
            elif isinstance(ev, Reply):
                return ev
    except KeyboardInterrupt:
        cancel.set()
        raise ChatgenError("cancelled; the conversation is unchanged") from None
    finally:
        if bar is not None:
            bar.close()
    raise RuntimeError("no reply")


def save_reply_image(reply, path: Path) -> Path:
    from .images import save_png

    return save_png(reply.image, path, reply.png_text())


def check_output_path(path: str) -> Path:
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise ChatgenError(f"output must be a .png file, got {path}")
    if p.parent and not p.parent.exists():
        raise ChatgenError(f"output folder does not exist: {p.parent}")
    return p


# ---- subcommands ------------------------------------------------------------------------------
def cmd_generate(args) -> int:
    from .conversation import Message, Session

    if not args.prompt.strip():
        raise ChatgenError("the prompt is empty: say what to draw")
    out = check_output_path(args.output)
    assistant = load_assistant(args)
    reply = run_turn(assistant, Session(), Message(args.prompt), sampling_from_args(args))
    return _finish_image_reply(reply, out)


def cmd_edit(args) -> int:
    from .conversation import Message, Session
    from .images import load_image, load_mask

    image = load_image(args.image)
    mask = load_mask(args.mask) if args.mask else None
    if not args.instruction.strip():
        raise ChatgenError("the instruction is empty: say how to change the image")
    out = check_output_path(args.output)
    assistant = load_assistant(args)
    reply = run_turn(assistant, Session(), Message(args.instruction, image=image, mask=mask), sampling_from_args(args))
    return _finish_image_reply(reply, out)


def _finish_image_reply(reply, out: Path) -> int:
    if reply.text:
        print(reply.text)
    if reply.image is None:
        print("chatgen: the model answered in text only; no image was written", file=sys.stderr)
        return 1
    save_reply_image(reply, out)
    print(out)
    return 0


CHAT_HELP = """commands:
  /image PATH   attach an image to your next message     /mask PATH   edit only the painted region next
  /undo         take back the last turn                  /redo        put it back
  /branch N     continue from after turn N (a new branch) /branches   list branches
  /history      show the current branch                  /seed N      fix the seed (/seed off: random)
  /save DIR     save the conversation                    /load DIR    load a saved conversation
  /help         this text                                /quit        leave"""


def cmd_chat(args) -> int:
    from .conversation import Message, Session
    from .images import load_image, load_mask

    assistant = load_assistant(args)
    session = Session()
    out_dir = Path(args.out_dir)
    params = sampling_from_args(args)
    pending_image = pending_mask = None
    print("chatgen chat: type a request, /help for commands, /quit to leave.")
    while True:
        try:
            line = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not line:
            continue
        try:
            if line.startswith("/"):
                cmd, *rest = shlex.split(line)
                arg = " ".join(rest)
                if cmd in ("/quit", "/exit"):
                    return 0
                elif cmd == "/help":
                    print(CHAT_HELP)
                elif cmd == "/image":
                    pending_image = load_image(_need(arg, "/image PATH"))
                    print(f"attached {arg} to your next message")
                elif cmd == "/mask":
                    pending_mask = load_mask(_need(arg, "/mask PATH"))
                    print(f"the next edit changes only the painted region of {arg}")
                elif cmd == "/undo":
                    t = session.undo()
                    print(f"undid: {t.user_text!r}")
                elif cmd == "/redo":
                    t = session.redo()
                    print(f"redid: {t.user_text!r}")
                elif cmd == "/branch":
                    n = _int(_need(arg, "/branch N"), "/branch N")
                    session.branch(n)
                    print(f"continuing from after turn {n}; your next message starts a new branch")
                elif cmd == "/branches":
                    for i, b in enumerate(session.branches(), 1):
                        mark = "*" if session.head in {t.id for t in b} else " "
                        print(f"{mark}{i}. {len(b)} turns, last: {b[-1].user_text!r}")
                elif cmd == "/history":
                    for i, t in enumerate(session.path(), 1):
                        img = f" [image {out_dir / (t.id + '.png')}]" if t.assistant_image is not None else ""
                        print(f"{i}. you: {t.user_text}\n   chatgen: {t.assistant_text}{img}")
                elif cmd == "/seed":
                    if arg == "off":
                        params.pop("seed", None)
                    else:
                        params["seed"] = _int(_need(arg, "/seed N"), "/seed N")
                elif cmd == "/save":
                    print(f"saved to {session.save(_need(arg, '/save DIR'))}")
                elif cmd == "/load":
                    session = Session.load(_need(arg, "/load DIR"))
                    print(f"loaded {len(session)} turns")
                else:
                    print(f"unknown command {cmd}; /help lists them")
                continue
            reply = run_turn(assistant, session, Message(line, image=pending_image, mask=pending_mask), params)
            pending_image = pending_mask = None
            if reply.text:
                print(f"chatgen> {reply.text}")
            if reply.image is not None:
                path = save_reply_image(reply, out_dir / f"{reply.turn_id}.png")
                print(f"chatgen> [image saved to {path}]")
        except ChatgenError as e:
            print(f"error: {e}")


def comma_list(text: str | None) -> tuple[str, ...]:
    """"a, b,,c" -> ("a", "b", "c")."""
    return tuple(x.strip() for x in (text or "").split(",") if x.strip())


def _focus(kinds_text: str, share: float, kinds_flag: str, share_flag: str) -> tuple[str, ...]:
    """Turn kinds from `KIND,...` text, checked, and a checked share of the data for them."""
    from .world.dialogue import KINDS

    focus = comma_list(kinds_text)
    bad = [k for k in focus if k not in KINDS]
    if bad:
        raise ChatgenError(f"{kinds_flag}: unknown turn kind {bad[0]!r}; the kinds are {', '.join(KINDS)}.")
    if not 0.0 < share <= 1.0:
        raise ChatgenError(f"{share_flag} must be above 0 and at most 1 (got {share}).")
    return focus


def _restart_spec(spec: str) -> "LMRestart":
    """`MINUTES[:KIND,...[@SHARE]][/LR]` -> a warm restart, with its own focus and peak
    learning rate if given."""
    from .train.pipeline import LMRestart

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
    if args.batch_tokens is not None:
        if args.batch_tokens < lm.max_len:
            raise ChatgenError(f"--batch-tokens must be at least {lm.max_len} (one dialogue); got {args.batch_tokens}.")
        lm.batch_tokens = args.batch_tokens


def cmd_train(args) -> int:
    from .train.lm import LMTrainConfig
    from .train.pipeline import TrainConfig, train_all

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
    focus = _focus(args.focus or "", args.focus_share, "--focus", "--focus-share")
    cfg.restarts = [_restart_spec(r) for r in args.restart or []]
    last = cfg.restarts[-1] if cfg.restarts else cfg.lm  # the last LM run gets --focus
    if focus and last.focus:
        raise ChatgenError("--focus goes to the last restart, which has its own focus; give the focus in one place.")
    if focus:
        last.focus, last.focus_share = focus, args.focus_share
    if args.init_from and Path(args.init_from).resolve() == Path(args.out).resolve():
        raise ChatgenError("--init-from and --out must be different folders (write the continued model next to the old one).")
    train_all(args.out, args.run_dir or f"{args.out}.run", cfg, device=args.device, init_from=args.init_from)
    return 0


def cmd_bench_world(args) -> int:
    import json

    from .train.measure import SECTIONS, run_bench

    only = comma_list(args.only) if args.only else SECTIONS
    unknown = [x for x in only if x not in SECTIONS]
    if unknown or not only:
        raise ChatgenError(f"--only takes sections out of {', '.join(SECTIONS)}; got {args.only!r}.")
    assistant = load_assistant(args)
    report = run_bench(assistant, n=args.n, params=sampling_from_args(args), log=lambda m: print(m, file=sys.stderr, flush=True), only=only)
    text = json.dumps(report, indent=1)
    if args.out:
        Path(args.out).write_text(text)
    failures = report.pop("failures")
    print(json.dumps(report, indent=1))
    if failures and args.show_failures:
        for name, user, why in failures[: args.show_failures]:
            print(f"FAIL {name}: {user!r}: {why}")
    return 0


def _need(arg: str, usage: str) -> str:
    if not arg:
        raise ChatgenError(f"usage: {usage}")
    return arg


def _int(s: str, usage: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise ChatgenError(f"expected a number in {usage}, got {s!r}") from None


# ---- entry point ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatgen", description="Chat with one model that draws, edits and answers.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("generate", help="draw an image from a prompt", description="Draw an image from a prompt and save it as PNG.")
    p.add_argument("prompt", help='what to draw, e.g. "a dog on the grass"')
    p.add_argument("-o", "--output", required=True, help="output PNG path")
    add_model_args(p)
    add_sampling_args(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("edit", help="edit an image with an instruction", description="Edit an image with an instruction and save the result as PNG.")
    p.add_argument("image", help="the image to edit")
    p.add_argument("instruction", help='e.g. "make the dog a cat"')
    p.add_argument("-o", "--output", required=True, help="output PNG path")
    p.add_argument("--mask", metavar="PATH", help="an image whose painted pixels mark the only region that may change")
    add_model_args(p)
    add_sampling_args(p)
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser("chat", help="chat in the terminal", description="Chat in the terminal. " + CHAT_HELP.replace("\n", " "))
    p.add_argument("--out-dir", default="chatgen-out", help="where reply images are saved (default: chatgen-out)")
    add_model_args(p)
    add_sampling_args(p)
    p.set_defaults(func=cmd_chat)

    from .world.dialogue import KINDS

    p = sub.add_parser("train", help="train the embedded model from scratch", description="Train the tokenizer, the tile VQ-VAE and the language model on the synthetic world and write a native checkpoint. Uses a CUDA GPU when one is present. A run folder keeps every stage, so an interrupted run resumes.")
    p.add_argument("--out", required=True, help="the checkpoint folder to write")
    p.add_argument("--run-dir", help="where stages and LM checkpoints are kept (default: OUT.run)")
    p.add_argument("--lm-steps", type=int, help="language model optimiser steps (default 3000)")
    p.add_argument("--minutes", type=float, help="stop the language model after this many minutes")
    p.add_argument("--lr", type=float, help="language model peak learning rate (default 1.5e-3)")
    p.add_argument("--warmup", type=int, help="language model warm-up steps (default 150)")
    p.add_argument("--seed", type=int, help="data sampling seed (default 0; held-out seeds start at 10,000,000)")
    p.add_argument("--restart", action="append", metavar="MINUTES[:KIND,...[@SHARE]][/LR]", help="after the first run, train the language model further with a warm restart of the schedule (peak lr LR, default 8e-4) for MINUTES, optionally focused on turn kinds (SHARE of the data, default 0.5), e.g. 15:ask_is_there@1.0 or 24:clarify@0.7/5e-4; repeatable")
    p.add_argument("--focus-share", type=float, default=0.5, metavar="P", help="the share of training samples that are focused turns (default 0.5)")
    p.add_argument("--focus", metavar="KIND,...", help="sample these turn kinds more often (--focus-share of the data: single turns, question kinds as a drawing and 1-4 questions about it), e.g. ask_count,ask_is_there,clarify; with --restart only the last restart does; kinds: " + ", ".join(KINDS))
    p.add_argument("--init-from", metavar="FOLDER", help="continue from this native checkpoint: keep its tokenizer and VQ-VAE, train its language model further")
    p.add_argument("--layers", type=int, help="transformer blocks of a new language model (default 6)")
    p.add_argument("--hidden", type=int, help="width of a new language model, a multiple of 64 (default 256; heads are 32 wide)")
    p.add_argument("--batch-tokens", type=int, help="padded tokens per optimiser step (default 6144; a GPU takes more)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bench-world", help="measure the embedded model on fresh held-out world dialogues", description="Score drawing, single edits of each kind, 3-edit chains, questions, clarifying questions and out-of-world refusals on dialogues generated from held-out seeds, with the world detector; prints the figures as JSON. Greedy decoding unless sampling flags are given.")
    p.add_argument("--n", type=int, default=200, help="drawing prompts (other figures scale with it; default 200)")
    p.add_argument("--out", help="also write the full report (with failures) to this JSON file")
    p.add_argument("--show-failures", type=int, default=0, metavar="K", help="print the first K failures")
    p.add_argument("--only", metavar="SECTION,...", help="run only these sections, for a quicker look: draw, edit, chain3, ask, clarify (with its unambiguous counterpart), out_of_world")
    add_model_args(p)
    add_sampling_args(p)
    p.set_defaults(func=cmd_bench_world)

    from .space import add_space_parser
    from .ui import add_ui_parser

    add_ui_parser(sub)
    add_space_parser(sub)

    from .evals.cli import add_eval_parser

    add_eval_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ChatgenError as e:
        print(f"chatgen: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
