"""`chatgen generate PROMPT -o OUT.png` and `chatgen edit IMAGE INSTRUCTION -o OUT.png`."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import ChatgenError
from .common import add_model_args, add_safety_args, add_sampling_args, check_output_path, load_assistant, run_turn, sampling_from_args, save_reply_image


def cmd_generate(args) -> int:
    from ..conversation import Message, Session

    if not args.prompt.strip():
        raise ChatgenError("the prompt is empty: say what to draw")
    out = check_output_path(args.output)
    assistant = load_assistant(args)
    session = Session()
    reply = run_turn(assistant, session, Message(args.prompt), sampling_from_args(args))
    return _finish_image_reply(reply, out, assistant, session)


def cmd_edit(args) -> int:
    from ..conversation import Message, Session
    from ..images import read_image

    image = read_image(args.image)
    mask = read_image(args.mask, "mask", mask=True) if args.mask else None
    if not args.instruction.strip():
        raise ChatgenError("the instruction is empty: say how to change the image")
    out = check_output_path(args.output)
    assistant = load_assistant(args)
    session = Session()
    reply = run_turn(assistant, session, Message(args.instruction, image=image, mask=mask), sampling_from_args(args))
    return _finish_image_reply(reply, out, assistant, session)


def _finish_image_reply(reply, out: Path, assistant, session) -> int:
    if reply.text:
        print(reply.text)
    if reply.image is None:
        print("chatgen: the model answered in text only; no image was written", file=sys.stderr)
        return 1
    save_reply_image(reply, out, assistant, session)
    print(out)
    return 0




def add_parsers(sub) -> None:
    p = sub.add_parser("generate", help="draw an image from a prompt", description="Draw an image from a prompt and save it as PNG.")
    p.add_argument("prompt", help='what to draw, e.g. "a dog on the grass"')
    p.add_argument("-o", "--output", required=True, help="output PNG path")
    add_model_args(p)
    add_sampling_args(p)
    add_safety_args(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("edit", help="edit an image with an instruction", description="Edit an image with an instruction and save the result as PNG.")
    p.add_argument("image", help="the image to edit")
    p.add_argument("instruction", help='e.g. "make the dog a cat"')
    p.add_argument("-o", "--output", required=True, help="output PNG path")
    p.add_argument("--mask", metavar="PATH", help="an image whose painted pixels mark the only region that may change")
    add_model_args(p)
    add_sampling_args(p)
    add_safety_args(p)
    p.set_defaults(func=cmd_edit)

