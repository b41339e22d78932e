"""`chatgen chat`: a conversation in the terminal, with slash commands."""

from __future__ import annotations

import shlex
from pathlib import Path

from ..errors import ChatgenError
from .common import add_model_args, add_safety_args, add_sampling_args, load_assistant, need, number, run_turn, sampling_from_args, save_reply_image

CHAT_HELP = """commands:
  /image PATH   attach an image to your next message     /mask PATH   edit only the painted region next
  /undo         take back the last turn                  /redo        put it back
  /branch N     continue from after turn N (a new branch) /branches   list branches
  /history      show the current branch                  /seed N      fix the seed (/seed off: random)
  /save DIR     save the conversation                    /load DIR    load a saved conversation
  /help         this text                                /quit        leave"""


def cmd_chat(args) -> int:
    from ..conversation import Message, Session
    from ..images import read_image

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
                    pending_image = read_image(need(arg, "/image PATH"))
                    print(f"attached {arg} to your next message")
                elif cmd == "/mask":
                    pending_mask = read_image(need(arg, "/mask PATH"), "mask", mask=True)
                    print(f"the next edit changes only the painted region of {arg}")
                elif cmd == "/undo":
                    t = session.undo()
                    print(f"undid: {t.user_text!r}")
                elif cmd == "/redo":
                    t = session.redo()
                    print(f"redid: {t.user_text!r}")
                elif cmd == "/branch":
                    n = number(need(arg, "/branch N"), "/branch N")
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
                        params["seed"] = number(need(arg, "/seed N"), "/seed N")
                elif cmd == "/save":
                    print(f"saved to {session.save(need(arg, '/save DIR'))}")
                elif cmd == "/load":
                    session = Session.load(need(arg, "/load DIR"))
                    print(f"loaded {len(session)} turns")
                else:
                    print(f"unknown command {cmd}; /help lists them")
                continue
            reply = run_turn(assistant, session, Message(line, image=pending_image, mask=pending_mask), params)
            pending_image = pending_mask = None
            if reply.text:
                print(f"chatgen> {reply.text}")
            if reply.image is not None:
                path = save_reply_image(reply, out_dir / f"{reply.turn_id}.png", assistant, session)
                print(f"chatgen> [image saved to {path}]")
        except ChatgenError as e:
            print(f"error: {e}")




def add_parser(sub) -> None:
    p = sub.add_parser("chat", help="chat in the terminal", description="Chat in the terminal. " + CHAT_HELP.replace("\n", " "))
    p.add_argument("--out-dir", default="chatgen-out", help="where reply images are saved (default: chatgen-out)")
    add_model_args(p)
    add_sampling_args(p)
    add_safety_args(p)
    p.set_defaults(func=cmd_chat)
