"""`chatgen space export DIR`: a folder that can be pushed as a Hugging Face Space as is."""

from __future__ import annotations


def add_parser(sub) -> None:
    """`chatgen space export DIR [--model PATH] [--force]`."""
    p = sub.add_parser("space", help="export a ready Hugging Face Space", description="Write a folder that can be pushed as a Hugging Face Space as is.")
    ssub = p.add_subparsers(dest="space_command", metavar="ACTION", required=True)
    e = ssub.add_parser("export", help="write app.py, README.md, requirements.txt, the chatgen package and the model into DIR", description="Write app.py, README.md, requirements.txt, the chatgen package (and the model with --model) into DIR.")
    e.add_argument("dir", metavar="DIR", help="the folder to write (new or empty)")
    e.add_argument("--model", metavar="PATH", help="a chatgen model folder to copy into DIR/model (default: the embedded model inside the package)")
    e.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    e.set_defaults(func=cmd_space_export)


def cmd_space_export(args) -> int:
    from ..space import export_space

    folder = export_space(args.dir, args.model, force=args.force)
    print(folder)
    if args.model is None and not (folder / "chatgen" / "weights" / "default" / "config.json").is_file():
        print("note: no trained model is shipped in this checkout; the Space will use a tiny random one (pass --model PATH)")
    print(f"push it with: hf upload YOUR_NAME/chatgen {folder} --repo-type space")
    return 0
