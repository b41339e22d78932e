"""Edits of the latest image: what each edit kind changes, and the assistant's text for it.

An `Edit` is one change (replace, add, remove, move, background). `Edit.apply` gives the
scene after it, `Edit.reply` the canonical text of a done edit ("Done: the dog is now a
cat."), and `random_edit` picks a random edit that the scene limits allow.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from chatgen.edit_claims import Claim, done_text
from chatgen.world.dialogue import EDIT_KINDS
from chatgen.world.scene import BACKGROUNDS, CLASSES, MAX_PER_CLASS, Obj, Scene


@dataclass(frozen=True)
class Edit:
    """One change to the latest image."""

    kind: str  # one of EDIT_KINDS
    target: Obj | None = None  # replace/remove/move: the object changed; add: the new object
    new_cls: str | None = None  # replace: the class the target becomes
    to: tuple[int, int] | None = None  # move: the destination slot (empty before the move)
    background: str | None = None  # background: the new background

    def apply(self, scene: Scene) -> Scene:
        """The scene after the edit."""
        if self.kind == "background":
            return scene.with_background(self.background)
        t = self.target
        if self.kind == "add":
            return scene.with_object(t)
        if self.kind == "remove":
            return scene.without(t.row, t.col)
        if self.kind == "replace":
            return scene.replaced(t.row, t.col, self.new_cls)
        if self.kind == "move":
            return scene.moved(t.row, t.col, *self.to)
        raise ValueError(f"kind={self.kind!r} is not an edit kind; use one of {EDIT_KINDS}")

    def reply(self) -> str:
        """The assistant's canonical text for a done edit (the words `chatgen.edit_claims` reads back)."""
        t = self.target
        if self.kind == "background":
            return done_text([Claim("background", new=self.background)])
        if self.kind in ("add", "remove", "replace", "move"):
            return done_text([Claim(self.kind, t.cls, new=self.new_cls, slot=(t.row, t.col) if self.kind == "add" else self.to)])
        raise ValueError(f"kind={self.kind!r} is not an edit kind; use one of {EDIT_KINDS}")

    def to_meta(self) -> dict:
        """The edit as JSON-friendly facts, for a turn's `meta`."""
        return {"kind": self.kind, "target": None if self.target is None else self.target.to_dict(),
                "new_cls": self.new_cls, "to": None if self.to is None else list(self.to),
                "background": self.background}

    @classmethod
    def from_meta(cls, meta: dict) -> "Edit":
        """The edit back from `to_meta`'s facts."""
        target = Obj.from_dict(meta["target"]) if meta.get("target") else None
        return cls(meta["kind"], target, meta.get("new_cls"), tuple(meta["to"]) if meta.get("to") else None, meta.get("background"))


def random_edit(rng: random.Random, scene: Scene, kind: str, target: Obj | None = None) -> tuple[Edit, bool]:
    """A random feasible edit of one kind, and whether the user names the place (add)."""
    if kind == "background":
        return Edit("background", background=rng.choice([b for b in BACKGROUNDS if b != scene.background])), False
    if kind == "add":
        present = [c for c in dict.fromkeys(o.cls for o in scene.objects) if scene.count(c) < MAX_PER_CLASS]
        cls = rng.choice(present) if present and rng.random() < 0.2 else rng.choice(
            [c for c in CLASSES if scene.count(c) < MAX_PER_CLASS])
        explicit = rng.random() < 0.6
        slot = rng.choice(scene.free_slots()) if explicit else scene.default_slot()
        return Edit("add", Obj(cls, *slot)), explicit
    target = target or rng.choice(scene.objects)
    if kind == "remove":
        return Edit("remove", target), False
    if kind == "replace":
        new = rng.choice([c for c in CLASSES if c != target.cls and scene.count(c) < MAX_PER_CLASS])
        return Edit("replace", target, new_cls=new), False
    if kind == "move":
        return Edit("move", target, to=rng.choice(scene.free_slots())), False
    raise ValueError(f"kind={kind!r} is not an edit kind; use one of {EDIT_KINDS}")
