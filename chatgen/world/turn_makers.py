"""One turn of a world dialogue, of a chosen kind, and the generator state between turns.

The generator keeps a `State` (the latest image and any edit waiting for a clarifying
answer) so every edit applies to the latest image, uploads included. `next_turn` makes one
turn of a kind possible in that state and returns the state after it; the turn makers
behind it (`draw_turn`, `edit_turn`, `question_turn`, ...) each return (turn, next state).

Rules a model has to learn (all deterministic):

* an object with no place goes to the first free slot of DEFAULT_SLOTS (center, left,
  right, top, bottom, then the corners top left, top right, bottom left, bottom right);
  objects listed without places fill those slots in the order they are named;
* a drawing request with no background is drawn on DEFAULT_BACKGROUND (grass);
* an edit that names a class present more than once without saying which one gets a
  clarifying question ("Which dog, the left one or the right one?"); the next user turn
  answers it and the assistant then makes the edit;
* requests for things outside the world, or beyond the scene limits, get a text refusal
  and no image; the latest image stays what it was.

Everything is deterministic given the `random.Random` (or int seed) passed in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from chatgen.world.dialogue import ASK_KINDS, EDIT_KINDS, KINDS, WorldTurn
from chatgen.world.edits import Edit, random_edit
from chatgen.world.honest_turns import absent_edit_turn, impossible_edit_turn, smalltalk_turn
from chatgen.world.message_style import style
from chatgen.world.replies import (
    answer_question, clarify_question, distinguishing_labels, draw_reply, limit_reply, out_of_world_reply,
)
from chatgen.world.scene import (
    BACKGROUNDS, CATEGORIES, CLASSES, DEFAULT_SLOTS, MAX_OBJECTS, MAX_PER_CLASS, Obj, Scene,
    random_classes, random_scene,
)
from chatgen.world.user_phrasing import (
    OUT_OF_WORLD, say_add, say_draw, say_edit, say_out_of_world, say_question, say_ref, say_resolve,
    say_upload,
)

DEFAULT_BACKGROUND = "grass"  # background of a drawing request that names none


@dataclass(frozen=True)
class Pending:
    """An edit waiting for the user to say which object they meant."""

    edit: Edit  # the edit, with the object the user means (the generator knows it)
    candidates: tuple[Obj, ...]  # same-class objects the assistant asked about, reading order
    labels: tuple[str, ...]  # the word that names each candidate in the question


@dataclass(frozen=True)
class State:
    """What the generator remembers between turns."""

    scene: Scene | None = None  # the latest image, None before the first one
    pending: Pending | None = None  # set right after a clarifying question


def as_rng(rng: random.Random | int) -> random.Random:
    """`rng` itself, or a new `random.Random` seeded with the int `rng`."""
    if isinstance(rng, random.Random):
        return rng
    if isinstance(rng, int):
        return random.Random(rng)
    raise ValueError(f"rng must be a random.Random or an int seed, got {type(rng).__name__}")


def possible_kinds(state: State) -> list[str]:
    """Kinds that can come next in this state."""
    if state.pending is not None:
        return ["resolve"]
    kinds = ["draw", "out_of_world", "upload_describe", "upload_edit", "smalltalk"]
    s = state.scene
    if s is None:
        return kinds
    kinds += ["background", *ASK_KINDS, "absent_edit", "impossible_edit"]
    if len(s.objects) < MAX_OBJECTS:
        kinds.append("add")
    if s.objects:
        kinds += ["replace", "remove", "move"]
    if any(s.count(o.cls) > 1 for o in s.objects):
        kinds.append("clarify")
    return kinds


# ---- turn makers: each returns (turn, next state) ----------------------------------------


def draw_turn(rng: random.Random, state: State, scene: Scene | None = None) -> tuple[WorldTurn, State]:
    """A drawing request. With `scene`, that exact scene, places and background spelled out."""
    if scene is not None:
        placed, bg_said = True, True
    else:
        placed = rng.random() < 0.7
        bg_said = rng.random() < 0.85
        bg = rng.choice(BACKGROUNDS) if bg_said else DEFAULT_BACKGROUND
        if placed:
            scene = random_scene(rng, background=bg)
        else:
            n = rng.choices([1, 2, 3, 4], weights=[40, 30, 18, 12])[0]
            classes = random_classes(rng, n)
            first = {c: classes.index(c) for c in classes}
            classes = sorted(classes, key=first.__getitem__)  # group repeats: "two dogs and a cat"
            scene = Scene(bg, tuple(Obj(c, *s) for c, s in zip(classes, DEFAULT_SLOTS)))
    if placed:
        mentions = [(o.cls, o.slot) for o in scene.objects]
        rng.shuffle(mentions)
        order = list(dict.fromkeys(c for c, _ in mentions))
        mentions.sort(key=lambda m: order.index(m[0]))  # same classes side by side
    else:
        mentions = [(o.cls, None) for o in sorted(scene.objects, key=lambda o: DEFAULT_SLOTS.index(o.slot))]
    text = say_draw(rng, mentions, scene.background if bg_said else None)
    meta = {"explicit_places": placed, "explicit_background": bg_said}
    turn = WorldTurn(style(rng, text), None, draw_reply(scene), scene, "draw", meta)
    return turn, State(scene)


def edit_turn(rng: random.Random, state: State, kind: str, clarify: str = "maybe") -> tuple[WorldTurn, State]:
    """An edit of `kind`. clarify: "maybe" (an ambiguous request gets a clarifying question
    half the time), "never" (the user always says which), "always" (the user names an
    ambiguous class without saying which; kind must be replace, remove or move)."""
    scene = state.scene
    target = None
    if clarify == "always":
        target = rng.choice([o for o in scene.objects if scene.count(o.cls) > 1])
    edit, explicit = random_edit(rng, scene, kind, target)
    if edit.kind in ("add", "background"):
        user = style(rng, say_edit(rng, edit, explicit))
        meta = {"edit": edit.to_meta(), "explicit_place": explicit}
        new = edit.apply(scene)
        return WorldTurn(user, None, edit.reply(), new, kind, meta), State(new)
    same = scene.find(edit.target.cls)
    if len(same) > 1:
        with_place = {"always": False, "never": True, "maybe": rng.random() < 0.5}[clarify]
    else:
        with_place = rng.random() < 0.2
    user = style(rng, say_edit(rng, edit, with_place))
    if len(same) > 1 and not with_place:
        labels = distinguishing_labels(same)
        meta = {"edit_kind": kind, "cls": edit.target.cls, "candidates": [list(o.slot) for o in same],
                "labels": labels}
        pending = Pending(edit, same, tuple(labels))
        question = clarify_question(edit.target.cls, labels)
        return WorldTurn(user, None, question, None, "clarify", meta), State(scene, pending)
    new = edit.apply(scene)
    meta = {"edit": edit.to_meta(), "explicit_place": with_place}
    return WorldTurn(user, None, edit.reply(), new, kind, meta), State(new)


def resolve_turn(rng: random.Random, state: State) -> tuple[WorldTurn, State]:
    """The user's answer to a clarifying question, and the edit done."""
    p = state.pending
    label = p.labels[p.candidates.index(p.edit.target)]
    user = style(rng, say_resolve(rng, label, p.edit.target.cls), typo_rate=0.02)
    new = p.edit.apply(state.scene)
    meta = {"edit": p.edit.to_meta(), "label": label}
    return WorldTurn(user, None, p.edit.reply(), new, "resolve", meta), State(new)


def _question_target(rng: random.Random, scene: Scene, kind: str) -> str | None:
    """What a question asks about: a present class most of the time, else any class, and
    for counts sometimes a category ("animals")."""
    if kind in ("ask_what", "ask_background"):
        return None
    if kind == "ask_count" and rng.random() < 0.2:
        return rng.choice(list(CATEGORIES))
    if scene.objects and rng.random() < 0.65:
        return rng.choice(scene.objects).cls
    return rng.choice(CLASSES)


def _answer_value(scene: Scene, kind: str, target: str | None):
    """The structured answer (JSON-friendly) to a question."""
    if kind == "ask_what":
        return scene.to_dict()
    if kind == "ask_background":
        return scene.background
    if kind == "ask_count":
        return scene.count(target)
    if kind == "ask_where":
        return [list(o.slot) for o in scene.find(target)]
    return scene.count(target) > 0  # ask_is_there


def question_turn(rng: random.Random, state: State, kind: str, upload: Scene | None = None) -> tuple[WorldTurn, State]:
    """A question about the latest image (or about `upload`, which then becomes it)."""
    scene = upload if upload is not None else state.scene
    target = _question_target(rng, scene, kind)
    text = say_question(rng, kind, target, upload=upload is not None)
    if upload is not None:
        text = say_upload(rng, text)
    meta = {"question": kind, "target": target, "answer": _answer_value(scene, kind, target)}
    turn = WorldTurn(style(rng, text, question=True), upload, answer_question(scene, kind, target), None,
                     "upload_describe" if upload is not None else kind, meta)
    return turn, State(scene)


def upload_edit_turn(rng: random.Random, state: State) -> tuple[WorldTurn, State]:
    """The user uploads an image and asks for an edit of it (always saying which object)."""
    upload = random_scene(rng)
    kinds = [k for k in possible_kinds(State(upload)) if k in EDIT_KINDS]
    kind = rng.choice(kinds)
    edit, explicit = random_edit(rng, upload, kind)
    if kind in ("replace", "remove", "move"):
        with_place = upload.count(edit.target.cls) > 1 or rng.random() < 0.2  # never ambiguous
    else:
        with_place = explicit
    suffix = rng.choice([" in this picture", " in my image", " in this image"]) if rng.random() < 0.3 else ""
    text = say_edit(rng, edit, with_place, suffix)
    new = edit.apply(upload)
    meta = {"edit": edit.to_meta(), "explicit_place": with_place}
    return WorldTurn(style(rng, say_upload(rng, text)), upload, edit.reply(), new, "upload_edit", meta), State(new)


def out_of_world_turn(rng: random.Random, state: State) -> tuple[WorldTurn, State]:
    """A request the world cannot fulfil: an unknown thing, or an add past the limits."""
    scene = state.scene
    # 1. Limits: adding to a full scene, or a 4th of one class.
    if scene is not None and rng.random() < 0.2:
        full = len(scene.objects) >= MAX_OBJECTS
        at_limit = [c for c in CLASSES if scene.count(c) >= MAX_PER_CLASS]
        if full or at_limit:
            cls = rng.choice(CLASSES) if full else rng.choice(at_limit)
            reason = "too_many_objects" if full else "too_many_of_class"
            user = style(rng, say_add(rng, cls, None))
            meta = {"reason": reason, "cls": cls, "request": "add"}
            return WorldTurn(user, None, limit_reply(cls, reason), None, "out_of_world", meta), state
    # 2. Unknown things: draw, add or replace with a thing not in the world.
    name = rng.choice(OUT_OF_WORLD)
    requests = ["draw"] if scene is None else ["draw", "add"] + (["replace"] if scene.objects else [])
    request = rng.choice(requests)
    ref = say_ref(rng, rng.choice(scene.objects), False) if request == "replace" else None
    bg = rng.choice(BACKGROUNDS) if request == "draw" and rng.random() < 0.5 else None
    user = style(rng, say_out_of_world(rng, name, request, ref=ref, background=bg))
    meta = {"reason": "unknown_class", "cls": name, "request": request}
    return WorldTurn(user, None, out_of_world_reply(name), None, "out_of_world", meta), state


def next_turn(rng: random.Random | int, state: State, kind: str, allow_clarify: bool = True) -> tuple[WorldTurn, State]:
    """One turn of `kind` in `state`, and the state after it.

    An edit kind (replace/remove/move) on an ambiguous class may come back as a "clarify"
    turn when `allow_clarify`; the next turn must then be "resolve". Asking for "clarify"
    forces such a question.
    """
    rng = as_rng(rng)
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not a kind; use one of {KINDS}")
    if kind not in possible_kinds(state):
        raise ValueError(f"kind={kind!r} is not possible now; possible: {possible_kinds(state)}")
    if kind == "draw":
        return draw_turn(rng, state)
    if kind in EDIT_KINDS:
        return edit_turn(rng, state, kind, "maybe" if allow_clarify else "never")
    if kind == "clarify":
        return edit_turn(rng, state, rng.choice(["replace", "remove", "move"]), "always")
    if kind == "resolve":
        return resolve_turn(rng, state)
    if kind in ASK_KINDS:
        return question_turn(rng, state, kind)
    if kind == "upload_describe":
        return question_turn(rng, state, rng.choice(ASK_KINDS), upload=random_scene(rng))
    return _MAKERS[kind](rng, state)


# Kinds whose turn maker needs nothing but the state.
_MAKERS = {
    "upload_edit": upload_edit_turn, "out_of_world": out_of_world_turn,
    "absent_edit": absent_edit_turn, "impossible_edit": impossible_edit_turn, "smalltalk": smalltalk_turn,
}

