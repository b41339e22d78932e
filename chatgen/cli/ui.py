"""`chatgen ui`: serve the chat UI (and its API) with Gradio."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from ..errors import ChatgenError


def add_parser(sub) -> None:
    """`chatgen ui [--model PATH ...] [--host H] [--port N] [--share] [--mcp] [--concurrency N] [--data-dir DIR]
    [--max-upload-bytes N] [--queue-size N] [--turns-per-minute N] [--refiner ID|PATH] [--safety] [--safety-checker PATH] [--c2pa-cert PEM --c2pa-key PEM]`."""
    from ..limits import Limits
    from .common import add_refiner_args, add_safety_args

    limits = Limits()
    p = sub.add_parser("ui", help="open the chat UI in the browser", description="Serve the chat UI (and its API) with Gradio.")
    p.add_argument("--model", metavar="PATH", action="append", help="model folder or Hub id (default: the embedded model); repeat to offer several models")
    p.add_argument("--quantize", choices=["4bit", "8bit"], help="load the language model quantized with bitsandbytes")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for everyone on the network)")
    p.add_argument("--port", type=int, default=None, help="port (default 7860, or the next free one)")
    p.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    p.add_argument("--mcp", action="store_true", help="also serve the API endpoints as MCP tools (needs: pip install -e '.[mcp]')")
    p.add_argument("--concurrency", type=int, default=1, metavar="N", help="how many replies are generated at once (default 1); more requests wait in the queue")
    p.add_argument("--api-sessions", type=int, default=256, metavar="N", help="how many API sessions the server keeps in memory (least recently used dropped)")
    p.add_argument("--data-dir", metavar="DIR", help="save every session in DIR after each turn and restore them on restart (default: nothing is written)")
    p.add_argument("--max-upload-bytes", type=int, default=limits.max_upload_bytes, metavar="N", help=f"the largest file a visitor may upload, in bytes (default {limits.max_upload_bytes}); larger ones are refused unread")
    p.add_argument("--queue-size", type=int, default=limits.queue_size, metavar="N", help=f"how many requests may wait in the queue (default {limits.queue_size}); one more is told to try again")
    p.add_argument("--turns-per-minute", type=int, default=limits.turns_per_minute, metavar="N", help=f"how many turns one visitor (browser tab or API session) may start in any minute (default {limits.turns_per_minute}; 0 = no limit)")
    add_refiner_args(p)
    add_safety_args(p)
    p.set_defaults(func=cmd_ui)


def model_set_from_paths(paths: list[str] | None, quantize: str | None = None, hooks: dict | None = None, refiner=None):
    """Named loaders for the given model folders (the first is loaded now, the others on first use);
    `hooks`: the assistants' safety= and provenance= (`common.hooks_from_args`); `refiner`: one
    diffusion refiner shared by every model (None: off)."""
    from ..assistant import Assistant
    from ..backends import load_backend
    from ..defaults import default_model_path
    from ..models import ModelSet

    paths = list(paths or []) or [str(default_model_path())]
    entries: dict = {}
    for path in paths:
        name = Path(path).name or str(path)
        if name in entries:
            name = str(path)
        entries[name] = (lambda p=path: Assistant(load_backend(p, quantization=quantize), refiner=refiner, **(hooks or {})))
    models = ModelSet(entries)
    print(f"loading model {paths[0]} ...", file=sys.stderr, flush=True)
    models.get()
    return models


def cmd_ui(args) -> int:
    from ..limits import Limits
    from ..ui import build_demo, launch_options

    if args.concurrency < 1:
        raise ChatgenError(f"--concurrency must be at least 1, got {args.concurrency}")
    if args.port is not None and not 0 < args.port < 65536:
        raise ChatgenError(f"--port must be between 1 and 65535, got {args.port}")
    for flag, value, low in (("--max-upload-bytes", args.max_upload_bytes, 1), ("--queue-size", args.queue_size, 1), ("--turns-per-minute", args.turns_per_minute, 0)):
        if value < low:
            raise ChatgenError(f"{flag} must be at least {low}, got {value}")
    limits = Limits(max_upload_bytes=args.max_upload_bytes, queue_size=args.queue_size, turns_per_minute=args.turns_per_minute)
    if args.mcp and importlib.util.find_spec("mcp") is None:
        raise ChatgenError("--mcp needs the MCP extra: pip install 'mcp>=1.21,<2' (or pip install -e '.[mcp]')")
    if args.data_dir is not None and Path(args.data_dir).exists() and not Path(args.data_dir).is_dir():
        raise ChatgenError(f"--data-dir must be a folder, but {args.data_dir} is a file")
    from .common import hooks_from_args, refiner_from_args

    from ..refiner import embedded_shipped

    hooks = hooks_from_args(args)
    if args.refiner is None and not args.model and embedded_shipped():
        args.refiner = "embedded"  # the embedded model's 96 px pictures, refined to 384 px (--refiner off: the plain decode)
    refiner = refiner_from_args(args)
    demo = build_demo(model_set_from_paths(args.model, args.quantize, hooks, refiner), concurrency_limit=args.concurrency, api_sessions=args.api_sessions, data_dir=args.data_dir, limits=limits)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, mcp_server=args.mcp, **launch_options())
    return 0
