"""What every subcommand shares: the model and sampling arguments, loading the assistant, one
turn with a progress bar, output paths."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from ..errors import ChatgenError


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", metavar="PATH", help="model folder or Hub id (default: the embedded model)")
    g.add_argument("--quantize", choices=["4bit", "8bit"], help="load the language model quantized with bitsandbytes")
    g.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="weights dtype (default: the checkpoint's own)")
    g.add_argument("--device", metavar="DEV", help="cpu, cuda, cuda:1, mps ... (default: cpu)")
    g.add_argument("--offload", choices=["auto", "on", "off"], default="auto", help="the low-memory profile: weights larger than the free memory load with accelerate offload (the rest on the CPU, then the disk; slower). auto (default): only when they do not fit; on: always; off: refuse what does not fit")
    g.add_argument("--max-memory", metavar="SIZE", help="with --offload: the most the weights may take on --device, e.g. 6GB or 500MB (default: 85%% of the free memory)")
    add_refiner_args(p)


def add_refiner_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("diffusion refiner (off by default)")
    g.add_argument("--refiner", metavar="ID|PATH", help="redraw every reply picture with a diffusers img2img pipeline: a Hub id (e.g. stabilityai/sd-turbo), a pipeline folder, 'embedded' (chatgen's own: the 96 px picture to 384 px in one step) or 'off' (default; `chatgen ui` on the embedded model: embedded); it runs on --device in --dtype where the command has them")
    g.add_argument("--refiner-strength", type=float, metavar="F", help="how much the refiner redraws, above 0 and at most 1 (default 0.5; embedded: 1)")
    g.add_argument("--refiner-steps", type=int, metavar="N", help="refiner denoising steps at strength 1; it runs int(N x strength) of them (default 4; embedded: 1)")
    g.add_argument("--refiner-guidance", type=float, metavar="F", help="refiner guidance scale (default: the pipeline's own; 0 for SD-Turbo)")
    g.add_argument("--refiner-size", type=int, metavar="PX", help="longer side of the refined picture (default: the pipeline's native size, 512 for SD)")


def refiner_from_args(args):
    """The refiner the --refiner flags name (None when off); a bad flag is one sentence."""
    from ..refiner import RefinerConfig, load_refiner

    spec = (getattr(args, "refiner", None) or "off").strip()
    given = {k: getattr(args, f"refiner_{k}", None) for k in ("strength", "steps", "guidance", "size")}
    given = {k: v for k, v in given.items() if v is not None}
    if spec in ("off", "none", ""):
        if given:
            raise ChatgenError(f"--refiner-{sorted(given)[0]} needs --refiner ID|PATH: the refiner is off")
        return None
    RefinerConfig(**given).check()  # a bad value: one sentence before anything loads
    print(f"loading refiner {spec} ...", file=sys.stderr, flush=True)
    return load_refiner(spec, given, dtype=getattr(args, "dtype", None), device=getattr(args, "device", None))  # what was not given: the pipeline's defaults


def add_safety_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("safety and provenance (all off by default)")
    g.add_argument("--safety", action="store_true", help="refuse prompts with a word of chatgen's blocked-word list")
    g.add_argument("--blocked-words", metavar="FILE", help="refuse prompts with a word of your own list (one word or phrase a line); implies --safety")
    g.add_argument("--safety-checker", metavar="PATH", help="withhold reply pictures flagged by diffusers' StableDiffusionSafetyChecker at PATH (folder or Hub id, safetensors)")
    g.add_argument("--c2pa-cert", metavar="PEM", help="sign reply PNGs with a C2PA manifest marking them AI-generated: the signing certificate, then its chain (needs c2pa-python and --c2pa-key)")
    g.add_argument("--c2pa-key", metavar="PEM", help="the private key of --c2pa-cert")
    g.add_argument("--c2pa-alg", default="es256", choices=["es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519"], help="the key's signing algorithm (default es256)")


def hooks_from_args(args) -> dict:
    """`Assistant` keyword arguments (safety=, provenance=) from the safety and provenance flags."""
    from ..provenance import Provenance
    from ..safety import safety_from_options

    cert, key = getattr(args, "c2pa_cert", None), getattr(args, "c2pa_key", None)
    if bool(cert) != bool(key):
        raise ChatgenError("--c2pa-cert and --c2pa-key go together: give both to sign reply images")
    words = getattr(args, "blocked_words", None) or bool(getattr(args, "safety", False))
    return {
        "safety": safety_from_options(words, getattr(args, "safety_checker", None)),
        "provenance": Provenance(cert, key, getattr(args, "c2pa_alg", "es256")) if cert else None,
    }


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument("--seed", type=int, help="random seed (same seed, same result)")
    g.add_argument("--temperature", type=float, help="0 = greedy (default 1.0)")
    g.add_argument("--top-k", type=int, help="sample among the k most likely tokens (0 = off)")
    g.add_argument("--top-p", type=float, help="nucleus sampling mass (1 = off)")
    g.add_argument("--cfg", type=float, dest="cfg_scale", help="classifier-free guidance scale for images (1 = off)")
    g.add_argument("--max-new-tokens", type=int, help="cap on the reply length in tokens")
    g.add_argument("--jacobi", type=int, metavar="N", help="speculative Jacobi decoding of image spans: N draft codes verified per forward pass (default 16; 0 = off; greedy output is the same)")
    g.add_argument("--lookup", type=int, metavar="N", help="prompt-lookup drafts for text: up to N tokens copied from the conversation verified per forward pass (default 5; 0 = off; replies are the same)")


def sampling_from_args(args) -> dict:
    keys = ("seed", "temperature", "top_k", "top_p", "cfg_scale", "max_new_tokens", "jacobi", "lookup")
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def load_assistant(args):
    """The assistant on --model (or the embedded default) and --refiner, with a progress line while loading."""
    from ..assistant import Assistant
    from ..backends import load_backend
    from ..defaults import default_model_path

    hooks = hooks_from_args(args)  # a bad safety or signing flag is refused before the model loads
    refiner = refiner_from_args(args)  # and so is a refiner that is not there
    path = args.model or default_model_path()
    print(f"loading model {path} ...", file=sys.stderr, flush=True)
    memory = {"offload": getattr(args, "offload", None) or "auto", "max_memory": getattr(args, "max_memory", None)}
    return Assistant(load_backend(path, quantization=args.quantize, dtype=getattr(args, "dtype", None), device=getattr(args, "device", None), **memory), refiner=refiner, **hooks)


def run_turn(assistant, session, message, params: dict):
    """One turn with a progress bar over the image rows (then the refiner's steps), stored in `session`; Ctrl-C cancels cleanly."""
    from tqdm import tqdm

    from ..assistant import Reply
    from ..events import ImageRow, ImageStart, RefineStep

    cancel = threading.Event()
    bar = None
    try:
        for ev in assistant.stream(session, message, params, cancel=cancel):
            if isinstance(ev, ImageStart):
                bar = tqdm(total=ev.rows, desc="drawing", unit="row", file=sys.stderr, leave=False)
            elif isinstance(ev, ImageRow) and bar is not None:
                bar.update(1)
            elif isinstance(ev, RefineStep):
                if bar is None or bar.desc != "refining":
                    if bar is not None:
                        bar.close()
                    bar = tqdm(total=ev.steps, desc="refining", unit="step", file=sys.stderr, leave=False)
                bar.update(1)
            elif isinstance(ev, Reply):
                if ev.turn is not None:
                    session.append(ev.turn)
                return ev
    except KeyboardInterrupt:
        cancel.set()
        raise ChatgenError("cancelled; the conversation is unchanged") from None
    finally:
        if bar is not None:
            bar.close()
    raise RuntimeError("no reply")


def save_reply_image(reply, path: Path, assistant=None, session=None) -> Path:
    """Write the reply's picture as PNG: its parameters, and a C2PA manifest when `assistant` signs images."""
    from ..provenance import reply_png

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(assistant.reply_png(session, reply.turn) if assistant is not None else reply_png(session, reply.turn))
    return path


def check_output_path(path: str) -> Path:
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise ChatgenError(f"output must be a .png file, got {path}")
    if p.parent and not p.parent.exists():
        raise ChatgenError(f"output folder does not exist: {p.parent}")
    return p


def comma_list(text: str | None) -> tuple[str, ...]:
    """"a, b,,c" -> ("a", "b", "c")."""
    return tuple(x.strip() for x in (text or "").split(",") if x.strip())


def need(arg: str, usage: str) -> str:
    if not arg:
        raise ChatgenError(f"usage: {usage}")
    return arg


def number(s: str, usage: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise ChatgenError(f"expected a number in {usage}, got {s!r}") from None


