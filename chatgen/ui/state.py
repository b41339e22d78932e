"""One browser tab's state: its conversation, its cancel flag and the PNG files it shows."""

from __future__ import annotations

import copy
import functools
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..api import make_params, make_refine
from ..conversation import Session, Turn
from ..images import save_png

FILES_ROOT = Path(tempfile.gettempdir()) / "chatgen-ui"  # reply PNGs per visitor (inside gradio's allowed temp dir)
PNG_FILES_KEPT = 512  # PNG files a tab remembers (previews come and go; older ones are written again if needed)


class _ByIdentity:
    """An image (or a turn) as a cache key: the same object, not equal pixels (it also keeps the object alive, so its id stays unique)."""

    def __init__(self, image: Image.Image):
        self.image = image

    def __hash__(self) -> int:
        return id(self.image)

    def __eq__(self, other) -> bool:
        return isinstance(other, _ByIdentity) and other.image is self.image


class UIState:
    """One browser tab's conversation: the session, the cancel flag, the PNG files shown."""

    def __init__(self, session: Session | None = None):
        self.session = session or Session()  # the branchable history
        self.sid: str | None = None  # the id it is saved under with a data folder (set on page load)
        self.cancel = threading.Event()  # set by Stop; a fresh one per reply
        self.busy = False  # a reply is being generated
        self.msg_turns: list[int] = []  # chat message index -> index of its turn in the branch
        self._folder: Path | None = None  # created on first use
        self._mask_bg: tuple | None = None  # (key, PNG path, source image) of the mask canvas
        self.reply_png = None  # (session, turn) -> signed PNG bytes of a reply image (set by ChatUI when images are signed); None: parameters only
        # Each image is written to a PNG file once (the same object, the same file): Gradio would
        # re-encode a PIL value into one cache file every time it is sent, racing the browser's
        # download of that file, while a path is copied into its cache once.
        self._png_file = functools.lru_cache(maxsize=PNG_FILES_KEPT)(self._write_png)
        self._signed_file = functools.lru_cache(maxsize=PNG_FILES_KEPT)(self._write_signed)

    def __deepcopy__(self, memo):  # gr.State deep-copies its initial value; events and locks cannot be
        new = UIState(copy.deepcopy(self.session, memo))
        new.sid = self.sid
        return new

    @property
    def folder(self) -> Path:
        if self._folder is None:
            self._folder = FILES_ROOT / uuid.uuid4().hex
            self._folder.mkdir(parents=True, exist_ok=True)
        return self._folder

    def replace(self, session: Session) -> None:
        """Start over on another session (new conversation, import)."""
        self.session = session

    def file(self, turn: Turn, kind: str) -> str:
        """The PNG of one of a turn's images (the reply image carries its generation parameters)."""
        if kind == "assistant_image":
            seed = turn.params.get("seed")
            name = f"chatgen-{turn.id}" + (f"-seed{seed}" if seed is not None else "") + ".png"
            if self.reply_png is not None:  # with a C2PA manifest naming the picture it was drawn from
                return self._signed_file(_ByIdentity(turn), name)
            text = tuple(turn.png_text().items())
        else:
            name, text = f"chatgen-{turn.id}-{kind.replace('_', '-')}.png", ()
        return self._png_file(_ByIdentity(getattr(turn, kind)), name, text)

    def png(self, image: Image.Image, name: str) -> str:
        """A PNG file of an in-memory image (a preview, an upload), written once per image."""
        return self._png_file(_ByIdentity(image), name, ())

    def _write_png(self, image: _ByIdentity, name: str, text: tuple) -> str:
        """Write a new PNG file (in a folder of its own, so the download keeps its name)."""
        return str(save_png(image.image, self.folder / uuid.uuid4().hex[:12] / name, dict(text)))

    def _write_signed(self, turn: _ByIdentity, name: str) -> str:
        """Write a new signed PNG file of a turn's reply image (the turn is `turn.image`)."""
        path = self.folder / uuid.uuid4().hex[:12] / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.reply_png(self.session, turn.image))
        return str(path)

    def delete_files(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)


def delete_state_files(state) -> None:
    """gr.State's delete callback: a closed tab's files go."""
    if isinstance(state, UIState):
        state.delete_files()


@dataclass
class Settings:
    """The sampling settings panel."""

    model: str | None = None  # which configured model answers (None: the default)
    seed: float | None = -1  # -1 = a random seed each turn
    temperature: float | None = None  # None: the model default
    top_k: float | None = None  # None: the model default
    cfg_scale: float | None = None  # None: the model default
    refine: bool = False  # run the diffusion refiner (only when the model has one)
    refine_strength: float | None = None  # how much the refiner redraws, (0, 1]; None: the refiner's own setting

    def params(self) -> dict:
        return make_params(self.seed, self.temperature, self.top_k, self.cfg_scale)

    def refine_choice(self) -> bool | float:
        """`ModelSet`'s refine=: False (off), True (as configured) or the slider's strength."""
        return make_refine(bool(self.refine), self.refine_strength) if self.refine else False

