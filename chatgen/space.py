"""Hugging Face Spaces: the Space app and the folder `chatgen space export DIR` writes.

`chatgen space export DIR [--model PATH]` writes a folder that can be pushed as a Space as is:

    DIR/app.py            a few lines: build the UI on the model and launch it
    DIR/README.md         the Space card (front matter: sdk gradio, sdk_version, app_file, ...)
    DIR/requirements.txt  chatgen's dependencies (the Space installs gradio itself)
    DIR/chatgen/          the chatgen package source, so `import chatgen` works on the Space
    DIR/prompts/          the prompt templates chatgen reads (next to the package, as in the repository)
    DIR/model/            the model weights, when --model is given (else the embedded model in chatgen/weights)

The same three files live in the repository's `spaces/` folder (`write_space_files` writes both).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .errors import ChatgenError
from .zerogpu import on_zero_gpu

GRADIO_VERSION = "6.31.0"  # pinned in pyproject.toml; the Space's sdk_version
PYTHON_VERSION = "3.11"  # the Space's python_version

APP_PY = '''"""chatgen on a Hugging Face Space: draw, edit and ask in one chat."""

try:  # on ZeroGPU hardware `spaces` must be imported before torch
    import spaces  # noqa: F401
except ImportError:
    pass

from pathlib import Path

from chatgen.space import launch_options, space_demo

demo = space_demo(Path(__file__).parent / "model")

if __name__ == "__main__":
    demo.launch(**launch_options())
'''

README_MD = f"""---
title: chatgen
emoji: 🎨
colorFrom: indigo
colorTo: pink
sdk: gradio
sdk_version: {GRADIO_VERSION}
python_version: "{PYTHON_VERSION}"
app_file: app.py
pinned: false
license: apache-2.0
short_description: Chat to draw, edit and ask about emoji pictures
tags:
  - image-generation
  - image-editing
  - autoregressive
---

# chatgen

Chat with one small autoregressive transformer that reads and writes text and pictures in a
single token stream: ask it to **draw** ("draw a cat on the left and a tree on the right, on the
beach"), to **edit** ("add a balloon", "make the cat a dog", "now at night"), or **ask** about
the picture ("what's in the picture?"). It runs on a CPU, about a second per picture.

**What it can draw.** Its own small world of emoji pictures: 24 kinds of things (dog, cat,
rabbit, fox, bear, panda, frog, chicken, bird, fish, tree, cactus, flower, house, car, bicycle,
boat, sun, moon, star, cloud, apple, balloon, ball) on one of 6 backgrounds (grass, sky, beach,
snow, night, sea), at most 4 of them, in a 3x3 grid of places (top / middle / bottom × left /
center / right). Anything else it declines in words. Click an example next to the chat to start.

- The image grows row by row as its tokens arrive; **Stop** cancels cleanly.
- **Undo**, **Redo**, **Retry** (new seed); edit an earlier message to start a new branch; click
  an image in the version strip to continue from it.
- Paint a **mask** over the current image so the next edit changes only that region.
- Every image downloads as a PNG carrying its generation parameters; whole sessions export and
  import as zip files.
- Requests for sexual content, gore or hate symbols are refused in one sentence (a short list of
  blocked words).
- The API (`/new_session`, `/chat`, `/undo`, `/redo`, `/branch`, `/checkout`, `/history`,
  `/export_session`, `/import_session`) works from `gradio_client`: see the "Use via API" link
  at the bottom of the app.
"""

REQUIREMENTS = """# chatgen's dependencies; the Space installs gradio {gradio} itself (README front matter).
# The chatgen package source sits next to app.py (written by `chatgen space export`).
torch>=2.1
transformers>=5.24,<5.40
diffusers>=0.35
sentencepiece>=0.2
langchain-core>=1.0,<2
pillow>=10,<13
safetensors>=0.4
numpy>=1.26
pyyaml>=6
tqdm>=4.60
""".format(gradio=GRADIO_VERSION)

SPACE_FILES = {"app.py": APP_PY, "README.md": README_MD, "requirements.txt": REQUIREMENTS}


# ---- the Space app --------------------------------------------------------------------------------
def space_demo(model: str | Path | None = None, concurrency_limit: int = 1, data_dir: str | Path | None = None, safety_words: bool | str | Path = True, safety_checker: str | Path | None = None, c2pa_cert: str | Path | None = None, c2pa_key: str | Path | None = None, refiner: str | None = "auto"):
    """The UI on `model` when that folder exists, else on the embedded default model;
    `refiner`: "auto" (the embedded refiner for the embedded model, when shipped; none for
    another model), "off", or what `--refiner` takes; `data_dir`
    keeps the sessions across restarts (e.g. a Space's persistent storage, /data), as `chatgen ui --data-dir`.

    Safety (`chatgen.safety`): the blocked-word prompt filter is ON by default here, while every
    local front end leaves it off. A public Space takes prompts from anyone and shows its replies
    under the owner's name; the list is short and matched on whole words, so no request the
    embedded model can fulfil (its emoji world) trips it, and a refusal is one sentence. The
    embedded model cannot draw anything outside that world, so no image classifier runs by
    default; give `safety_checker` (a StableDiffusionSafetyChecker folder or Hub id) when the
    Space serves a checkpoint that can. `safety_words`: True (chatgen's list), a path to your own
    list, or False (off). `c2pa_cert` + `c2pa_key`: sign every reply PNG with a C2PA manifest
    (`chatgen.provenance`; needs c2pa-python).

    The model is loaded at start-up, before the ZeroGPU worker is forked (ZeroGPU needs that);
    `ModelSet` decorates its turn function for the GPU when it is made."""
    import torch

    from .assistant import Assistant
    from .backends import load_backend
    from .defaults import SHIPPED, default_model_path
    from .models import ModelSet
    from .refiner import embedded_shipped, load_refiner
    from .provenance import Provenance
    from .safety import safety_from_options
    from .ui import build_demo

    if bool(c2pa_cert) != bool(c2pa_key):
        raise ChatgenError("c2pa_cert and c2pa_key go together: give both to sign reply images")
    hooks = {"safety": safety_from_options(safety_words, safety_checker), "provenance": Provenance(c2pa_cert, c2pa_key) if c2pa_cert else None}
    path = Path(model) if model is not None and (Path(model) / "config.json").is_file() else default_model_path()
    device = "cuda" if (torch.cuda.is_available() or on_zero_gpu()) else None
    if refiner == "auto":
        refiner = "embedded" if path == SHIPPED and embedded_shipped() else "off"
    hooks["refiner"] = load_refiner(refiner)  # on the CPU: the embedded refiner is a small UNet
    return build_demo(ModelSet(Assistant(load_backend(path, device=device), **hooks)), concurrency_limit=concurrency_limit, data_dir=data_dir)


def launch_options() -> dict:
    """Theme, CSS and allowed paths for `demo.launch(...)` (gradio 6 takes them at launch)."""
    from .ui import launch_options as ui_launch_options

    return ui_launch_options()


# ---- export ---------------------------------------------------------------------------------------
def write_space_files(folder: str | Path) -> Path:
    """Write app.py, README.md and requirements.txt into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in SPACE_FILES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def export_space(folder: str | Path, model: str | Path | None = None, force: bool = False) -> Path:
    """A folder that can be pushed as a Space as is: the three files, the package, the weights."""
    # 1. Check inputs.
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ChatgenError(f"{folder} is a file; give a folder to export the Space into")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise ChatgenError(f"{folder} is not empty; choose a new folder or pass --force")
    if model is not None:
        model = Path(model)
        if not (model / "config.json").is_file():
            raise ChatgenError(f"no chatgen model at {model}: config.json is missing")
    # 2. The Space files.
    write_space_files(folder)
    # 3. The package source (with the embedded weights when they are shipped), no caches, and its prompts.
    package = Path(__file__).parent
    target = folder / "chatgen"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(package, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    prompts = package.parent / "prompts"
    if prompts.is_dir():
        shutil.copytree(prompts, folder / "prompts", dirs_exist_ok=True)
    # 4. The model weights next to app.py.
    if model is not None:
        if (folder / "model").exists():
            shutil.rmtree(folder / "model")
        shutil.copytree(model, folder / "model", ignore=shutil.ignore_patterns("__pycache__"))
    return folder
