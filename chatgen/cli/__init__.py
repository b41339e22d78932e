"""`chatgen` command line: one module per subcommand, the shared arguments in `common`.

Every error a person can cause prints one line and exits with code 2; nothing is a traceback.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import ChatgenError
from . import bench, bench_world, chat, eval, generate, space, train, ui


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatgen", description="Chat with one model that draws, edits and answers.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    generate.add_parsers(sub)
    chat.add_parser(sub)
    train.add_parser(sub)
    bench_world.add_parser(sub)
    bench.add_parser(sub)
    ui.add_parser(sub)
    space.add_parser(sub)
    eval.add_parser(sub)
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
