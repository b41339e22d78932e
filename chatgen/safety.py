"""Safety hooks: a filter on the prompt and a classifier on the output image.

`Assistant(backend, safety=Safety(...))` turns them on; `Assistant(backend)` checks nothing.

* The prompt filter (any callable `text -> str | None`: the blocked word found, or None) reads the
  message in `Assistant.check_message`, the one place inputs are checked. A blocked prompt is
  refused in one sentence (a `ChatgenError`) before anything is generated, and the session stays
  as it was. `WordFilter.default()` is the short list in `chatgen/blocked_words.txt`.
* The image classifier (any callable `PIL.Image -> str | None`: why the picture is withheld, or
  None) reads every reply image after decoding and refining. A flagged picture is neither shown
  nor stored: the reply is one sentence saying it was withheld, and the stored turn holds that
  sentence only (no image, no image tokens), so no later turn reads or edits the picture, and no
  turn claims one was made. While a classifier is on, the row-by-row previews are not streamed:
  a picture is shown only once it passed. `SafetyChecker.from_pretrained(path)` adapts diffusers'
  `StableDiffusionSafetyChecker` (a folder or Hub id, loaded from safetensors only).

Who turns them on (`safety_from_options` reads the flags):

* `chatgen ui|chat|generate|edit --safety-words [FILE]` (the default list, or your own in the
  same format) and `--safety-checker PATH` (a safety-checker folder or Hub id);
* `chatgen.space.space_demo`, the public Space: the word list is on by default there (see its
  docstring), the image classifier only when its weights are given.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from PIL import Image

from .errors import ChatgenError

WORDS_FILE = Path(__file__).with_name("blocked_words.txt")  # the default blocked-word list
WITHHELD = "The picture was withheld: {reason}."  # the whole reply when the image classifier flags a picture
FLAGGED = "the safety check flagged it"  # the reason when a classifier gives none in words
LEET = str.maketrans("013457@$", "oieastas")  # digits and symbols inside a word read as the letters they stand for


# ---- the prompt filter --------------------------------------------------------------------------
def words(text: str) -> list[str]:
    """The words of `text` for matching: lower-case, accents dropped, punctuation as spaces,
    digits and @/$ inside a word read as letters ("p0rn" -> "porn"), and runs of three or more
    single letters joined ("n.u.d.e" and "n u d e" -> "nude"; "a n u d e" -> "anude", "nude")."""
    # 1. Lower-case without accents ("Nüde" -> "nude").
    text = unicodedata.normalize("NFKD", str(text)).casefold()
    text = "".join(c for c in text if not unicodedata.combining(c))
    # 2. Words of letters, digits, @ and $; a word with letters in it reads its digits as letters.
    out = []
    for w in re.findall(r"[a-z0-9@$]+", text):
        w = w.translate(LEET) if re.search(r"[a-z]", w) else w
        out += [p for p in re.split(r"[@$]+", w) if p]
    # 3. Spaced-out letters become one word.
    joined, run = [], []
    for w in [*out, ""]:
        if len(w) == 1 and w.isalpha():
            run.append(w)
            continue
        joined += ["".join(run)] if len(run) >= 3 else run
        if len(run) >= 4 and run[0] in "ai":  # "a n u d e": the article is not part of the word
            joined.append("".join(run[1:]))
        run = []
        if w:
            joined.append(w)
    return joined


class WordFilter:
    """Blocked words and phrases, matched on whole words (plural -s/-es included); a prompt filter:
    `WordFilter(["nude"])("a NUDE figure!") == "nude"`, `WordFilter(["nude"])("a nudibranch") is None`."""

    def __init__(self, entries: Iterable[str]):
        phrases = {" ".join(words(e)) for e in entries if isinstance(e, str)} - {""}
        self.single = frozenset(p for p in phrases if " " not in p)  # one-word entries
        self.multi = tuple(sorted(p for p in phrases if " " in p))  # phrases, matched on word boundaries

    @classmethod
    def from_file(cls, path: str | Path | None = None) -> "WordFilter":
        """The list in `path` (one word or phrase a line, # comments), by default chatgen's own."""
        path = Path(path) if path is not None else WORDS_FILE
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ChatgenError(f"cannot read the blocked-word list {path} ({type(e).__name__}); give a UTF-8 text file with one word or phrase a line") from None
        entries = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not entries:
            raise ChatgenError(f"the blocked-word list {path} has no words; give one word or phrase a line")
        return cls(entries)

    @classmethod
    def default(cls) -> "WordFilter":
        return cls.from_file(WORDS_FILE)

    def __len__(self) -> int:
        return len(self.single) + len(self.multi)

    def __call__(self, text: str) -> str | None:
        """The first blocked entry in `text`, or None."""
        ws = words(text)
        for w in ws:
            for stem in (w, w[:-1] if w.endswith("s") else None, w[:-2] if w.endswith("es") else None):
                if stem and stem in self.single:
                    return stem
        line = f" {' '.join(ws)} "
        for p in self.multi:
            if f" {p} " in line or f" {p}s " in line or f" {p}es " in line:
                return p
        return None


# ---- the image classifier -----------------------------------------------------------------------
class SafetyChecker:
    """diffusers' `StableDiffusionSafetyChecker` (+ its `CLIPImageProcessor`) as an image classifier."""

    REASON = "the safety checker flagged it as not safe for work"  # what a flagged picture's reply says

    def __init__(self, checker, processor):
        self.checker = checker.eval()  # diffusers StableDiffusionSafetyChecker
        self.processor = processor  # transformers CLIPImageProcessor of the checker

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "SafetyChecker":
        """Load from a folder or Hub id: a checker folder (config.json + preprocessor_config.json,
        as CompVis/stable-diffusion-safety-checker), or a Stable Diffusion pipeline folder with
        `safety_checker/` and `feature_extractor/`. Safetensors weights only."""
        from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
        from transformers import CLIPImageProcessor

        from .safe_weights import safetensors_folder

        p = Path(path).expanduser()
        local = p.is_dir()
        if not local and (p.exists() or str(path).startswith(("/", ".", "~"))):
            raise ChatgenError(f"no safety checker at {path}: expected a folder (or Hub id) with a StableDiffusionSafetyChecker and its CLIPImageProcessor")
        model_sub = "safety_checker" if local and (p / "safety_checker").is_dir() else None
        proc_sub = "feature_extractor" if local and (p / "feature_extractor").is_dir() else None
        if local:
            safetensors_folder(p / model_sub if model_sub else p, "safety checker")
        where = str(p) if local else str(path)
        try:
            checker = StableDiffusionSafetyChecker.from_pretrained(where, subfolder=model_sub or "", use_safetensors=True)
            processor = CLIPImageProcessor.from_pretrained(where, subfolder=proc_sub or "")
        except Exception as e:  # missing files, offline, wrong model type: one line
            first = str(e).splitlines()[0][:160] if str(e) else ""
            raise ChatgenError(f"cannot load a safety checker from {path} ({type(e).__name__}: {first})") from None
        return cls(checker, processor)

    def __call__(self, image: Image.Image) -> str | None:
        import numpy as np
        import torch

        rgb = image.convert("RGB")
        param = next(self.checker.parameters())
        with torch.no_grad():
            clip_input = self.processor(images=rgb, return_tensors="pt").pixel_values.to(param.device, param.dtype)  # (1, 3, S, S)
            pixels = np.asarray(rgb, dtype=np.float32)[None] / 255.0  # (1, H, W, 3)
            _, flagged = self.checker(clip_input=clip_input, images=pixels)
        return self.REASON if bool(flagged[0]) else None


# ---- both ---------------------------------------------------------------------------------------
@dataclass
class Safety:
    """The two hooks `Assistant` runs; either may be None (off)."""

    prompt_filter: Callable[[str], str | None] | None = None  # message text -> the blocked word or phrase found, or None; None: prompts are not filtered
    image_classifier: Callable[[Image.Image], str | None] | None = None  # reply image -> why it is withheld, or None; None: images are not checked

    @classmethod
    def default(cls) -> "Safety":
        """The word list on the prompt, no image classifier."""
        return cls(prompt_filter=WordFilter.default())

    def check_prompt(self, text: str) -> None:
        """Raise a one-sentence ChatgenError when the prompt filter blocks `text`."""
        if self.prompt_filter is None or not text:
            return
        found = self.prompt_filter(text)
        if found:
            raise ChatgenError(f'this request was refused: "{found}" is on this assistant\'s list of blocked words, so rephrase it')

    def check_image(self, image: Image.Image) -> str | None:
        """The sentence that replaces the reply when the classifier flags `image`, else None."""
        if self.image_classifier is None or image is None:
            return None
        reason = self.image_classifier(image)
        if not reason:
            return None
        reason = " ".join(reason.split()).rstrip(".") if isinstance(reason, str) and reason.strip() else FLAGGED
        return WITHHELD.format(reason=reason)


def safety_from_options(words: bool | str | Path | None = None, checker: str | Path | None = None) -> Safety | None:
    """The safety hooks of the front ends' flags: `words` True for the default list or a path to
    one's own (None/False: off), `checker` a StableDiffusionSafetyChecker folder or Hub id (None: off).
    None when both are off."""
    prompt_filter = None
    if words is True:
        prompt_filter = WordFilter.default()
    elif words:
        prompt_filter = WordFilter.from_file(words)
    image_classifier = SafetyChecker.from_pretrained(checker) if checker else None
    if prompt_filter is None and image_classifier is None:
        return None
    return Safety(prompt_filter=prompt_filter, image_classifier=image_classifier)
