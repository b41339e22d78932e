"""The checks of one turn: reply kind, scene (background, include, exclude, exact), answer
text and thresholds. Each returns `Check`s whose `detail` says in words what was expected and
what was found ("expected cat at left, found dog").

These are plain functions of the reply and the expectation, so tests score them directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from PIL import Image

from chatgen.world import slot_name
from chatgen.world.scene import plural

from .grid import Grid
from .suite import Expect, ObjSpec, SceneSpec


@dataclass
class Check:
    """The outcome of one check."""

    name: str  # e.g. "reply", "background", "include cat at left", "preserve l1"
    passed: bool | None  # None: skipped (see detail)
    detail: str  # what was expected and found, in words

    def to_dict(self) -> dict:
        return {"passed": self.passed, "detail": self.detail}


def _quote(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= n else text[: n - 3] + "...")


def _how_many(cls: str, k: int) -> str:
    """"cat", "2 cats", "no cat"."""
    return "no " + cls if k == 0 else (cls if k == 1 else f"{k} {plural(cls)}")


# ---- reply kind ---------------------------------------------------------------------------------
def check_reply(expected: str, text: str, image: Image.Image | None) -> Check:
    """image: the reply has an image; text: text and no image; clarify: text, no image, ends with "?"."""
    text = (text or "").strip()
    got = "an image" if image is not None else ("a question" if text.endswith("?") else ("text" if text else "an empty reply"))
    if expected == "image":
        ok = image is not None
    elif expected == "text":
        ok = image is None and bool(text)
    else:  # clarify
        ok = image is None and text.endswith("?")
    want = {"image": "an image", "text": "a text reply", "clarify": "a clarifying question"}[expected]
    said = f" {_quote(text)}" if text and image is None else ""
    return Check("reply", ok, f"expected {want}, got {got}{said}")


# ---- scene --------------------------------------------------------------------------------------
def _found(grid: Grid, spec: ObjSpec) -> str:
    """What the slots of an entry hold: "dog", "dog, cat", "nothing"."""
    items = [grid.at(s) for s in spec.slots if grid.at(s) is not None]
    return ", ".join(items) if items else "nothing"


def check_include(spec: ObjSpec, grid: Grid) -> Check:
    k = sum(grid.at(s) == spec.cls for s in spec.slots)
    name = f"include {spec.cls}{spec.where}"
    want = f"expected {_how_many(spec.cls, spec.count)}{spec.where}"
    if k == spec.count:
        return Check(name, True, f"{want}, found it")
    if spec.count == 1 and k == 0:
        return Check(name, False, f"{want}, found {_found(grid, spec)}")
    return Check(name, False, f"{want}, found {_how_many(spec.cls, k)}")


def check_exclude(spec: ObjSpec, grid: Grid) -> Check:
    hits = [slot_name(*s) for s in spec.slots if grid.at(s) == spec.cls]
    name = f"exclude {spec.cls}{spec.where}"
    if not hits:
        return Check(name, True, f"expected no {spec.cls}{spec.where}, found none")
    return Check(name, False, f"expected no {spec.cls}{spec.where}, found {spec.cls} at {', '.join(hits)}")


def check_exact(spec: SceneSpec, grid: Grid) -> Check:
    """Every object in the picture is one an include entry asks for (class and position)."""
    extra = [f"{c} at {slot_name(*s)}" for s, c in grid.objects() if not any(o.cls == c and s in o.slots for o in spec.include)]
    if not extra:
        return Check("exact", True, "expected nothing else, found nothing else")
    return Check("exact", False, f"expected nothing else, found {', '.join(extra)}")


def check_scene(spec: SceneSpec, grid: Grid) -> list[Check]:
    """All checks of a scene spec against what the detector saw."""
    out = []
    if spec.background is not None:
        ok = grid.background == spec.background
        out.append(Check("background", ok, f"expected background {spec.background}, found {grid.background}"))
    out += [check_include(o, grid) for o in spec.include]
    out += [check_exclude(o, grid) for o in spec.exclude]
    if spec.exact:
        out.append(check_exact(spec, grid))
    return out


# ---- answer text --------------------------------------------------------------------------------
def _has_words(text: str, phrase: str) -> bool:
    """`phrase` occurs in `text` as whole words, ignoring case and spacing."""
    words = r"\s+".join(re.escape(w) for w in phrase.split())
    return re.search(rf"(?<!\w){words}(?!\w)", text, flags=re.IGNORECASE) is not None


def check_answer(expect: Expect, text: str) -> list[Check]:
    text = text or ""
    out = []
    if expect.answer_any:
        ok = any(_has_words(text, p) for p in expect.answer_any)
        opts = " or ".join(repr(p) for p in expect.answer_any)
        out.append(Check("answer", ok, f"expected an answer with {opts}, got {_quote(text)}"))
    if expect.answer_all:
        missing = [p for p in expect.answer_all if not _has_words(text, p)]
        detail = f"expected an answer with {', '.join(repr(p) for p in missing)}, got {_quote(text)}" if missing else "has every expected phrase"
        out.append(Check("answer all", not missing, detail))
    if expect.answer_none:
        found = [p for p in expect.answer_none if _has_words(text, p)]
        detail = f"expected no {', '.join(repr(p) for p in found)} in the answer, got {_quote(text)}" if found else "has none of the excluded phrases"
        out.append(Check("answer none", not found, detail))
    return out


# ---- thresholds ---------------------------------------------------------------------------------
def check_max(name: str, value: float | None, limit: float | None, skipped: str = "") -> Check | None:
    """value <= limit; None when no limit is set; skipped (passed=None) when there is no value."""
    if limit is None:
        return None
    if value is None:
        return Check(name, None, f"skipped: {skipped or 'no value'}")
    return Check(name, value <= limit, f"{name} {value:.4f} {'<=' if value <= limit else '>'} {limit:g}")


def check_min(name: str, value: float | None, limit: float | None, skipped: str = "") -> Check | None:
    """value >= limit; None when no limit is set; skipped when there is no value."""
    if limit is None:
        return None
    if value is None:
        return Check(name, None, f"skipped: {skipped or 'no value'}")
    return Check(name, value >= limit, f"{name} {value:.4f} {'>=' if value >= limit else '<'} {limit:g}")


def verdict(checks: list[Check]) -> tuple[bool | None, str]:
    """(correct, reason): correct when every check that ran passed; None when none ran."""
    ran = [c for c in checks if c.passed is not None]
    if not ran:
        return None, "not scored"
    failed = [c for c in ran if not c.passed]
    if not failed:
        return True, "ok"
    return False, "; ".join(c.detail for c in failed)
