"""A dialogue of the scene world: scripted turns, the kinds of turn, and their JSON form.

A `Dialogue` is a list of `WorldTurn`s. Each turn carries the user's text (and optionally
an uploaded scene the caller renders as an image), the assistant's reply text and, when the
reply is an image, the exact scene it must show. `turn_makers.py` makes one turn of each
kind, `generators.py` whole dialogues.

Kinds of turn (`KINDS`):

* draw: a drawing request, answered with an image;
* edits (`EDIT_KINDS`): replace, add, remove, move, background, answered with the edited image;
* questions (`ASK_KINDS`): about the latest image, answered in words;
* clarify: an edit that names a repeated class without saying which one, answered with a
  clarifying question; resolve: the user's answer to it, answered with the edited image;
* out_of_world: a request the world cannot fulfil, answered in words;
* upload_describe, upload_edit: a question about, or an edit of, an image the user uploads;
* honest turns (`HONEST_KINDS`, `honest_turns.py`), answered in words and never with a picture:
  absent_edit (an edit of something not there), impossible_edit (size, colour, clothes,
  style, ...), smalltalk (greetings, thanks, "what can you draw?").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chatgen.world.scene import Scene

# Edits of the latest image, questions about it, and every kind of turn.
EDIT_KINDS: tuple[str, ...] = ("replace", "add", "remove", "move", "background")
ASK_KINDS: tuple[str, ...] = ("ask_what", "ask_count", "ask_where", "ask_is_there", "ask_background")
HONEST_KINDS: tuple[str, ...] = ("absent_edit", "impossible_edit", "smalltalk")
KINDS: tuple[str, ...] = (
    ("draw",) + EDIT_KINDS + ASK_KINDS
    + ("clarify", "resolve", "out_of_world", "upload_describe", "upload_edit") + HONEST_KINDS
)


def _scene_to_dict(scene: Scene | None) -> dict | None:
    return None if scene is None else scene.to_dict()


def _scene_from_dict(d: dict | None) -> Scene | None:
    return None if d is None else Scene.from_dict(d)


@dataclass
class WorldTurn:
    """One scripted turn of a world dialogue: the user's message (text, optionally an
    uploaded scene) and the assistant's reply (text, and the scene its image must show)."""

    user: str  # what the user types
    upload: Scene | None  # scene the user uploads with this message (the caller renders it), or None
    reply_text: str  # the assistant's text
    reply_scene: Scene | None  # the scene the assistant's image must show; None for a text-only reply
    kind: str  # one of KINDS
    meta: dict = field(default_factory=dict)  # JSON-friendly facts: the edit, the question, the answer
    mask: tuple[tuple[int, int], ...] | None = None  # slots the user painted over the latest image (`masked_turns.py`), or None

    def to_dict(self) -> dict:
        d = {"user": self.user, "upload": _scene_to_dict(self.upload), "reply_text": self.reply_text,
             "reply_scene": _scene_to_dict(self.reply_scene), "kind": self.kind, "meta": self.meta}
        if self.mask is not None:
            d["mask"] = [list(s) for s in self.mask]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "WorldTurn":
        return cls(d["user"], _scene_from_dict(d.get("upload")), d["reply_text"],
                   _scene_from_dict(d.get("reply_scene")), d["kind"], dict(d.get("meta", {})),
                   tuple(tuple(s) for s in d["mask"]) if d.get("mask") is not None else None)


@dataclass
class Dialogue:
    """A whole conversation."""

    turns: list[WorldTurn]  # in order

    def latest_scene(self) -> Scene | None:
        """The latest image of the conversation (a reply image or an upload), or None."""
        latest = None
        for t in self.turns:
            if t.upload is not None:
                latest = t.upload
            if t.reply_scene is not None:
                latest = t.reply_scene
        return latest

    def to_dict(self) -> dict:
        return {"turns": [t.to_dict() for t in self.turns]}

    @classmethod
    def from_dict(cls, d: dict) -> "Dialogue":
        return cls([WorldTurn.from_dict(t) for t in d["turns"]])

