"""Dialogues in the scene world: a user draws, edits and asks; the assistant answers.

A dialogue is a list of `DTurn`s. Each turn carries the user's text (and optionally an
uploaded scene the caller renders as an image), the assistant's reply text and, when the
reply is an image, the exact scene it must show. The generator keeps a `State` (the
latest image and any edit waiting for a clarifying answer) so every edit applies to the
latest image, uploads included.

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

Entry points: `generate_dialogue` (a random mixed dialogue), `generate_turn_of_kind` (a
dialogue that ends with one turn of a chosen kind, for evals), `generate_edit_chain`
(a drawing and then N edits), `next_turn` (one step, for callers that drive the state).
Everything is deterministic given the `random.Random` (or int seed) passed in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from chatgen.world.phrasing import (
    OUT_OF_WORLD, answer_question, clarify_question, distinguishing_labels, draw_reply,
    limit_reply, out_of_world_reply, say_add, say_background, say_draw, say_move,
    say_out_of_world, say_question, say_ref, say_remove, say_replace, say_resolve, say_upload,
    style,
)
from chatgen.world.scene import (
    BACKGROUNDS, CATEGORIES, CLASSES, DEFAULT_SLOTS, MAX_OBJECTS, MAX_PER_CLASS, Obj, Scene,
    article, random_classes, random_scene, slot_phrase,
)

EDIT_KINDS: tuple[str, ...] = ("replace", "add", "remove", "move", "background")
ASK_KINDS: tuple[str, ...] = ("ask_what", "ask_count", "ask_where", "ask_is_there", "ask_background")
KINDS: tuple[str, ...] = (
    ("draw",) + EDIT_KINDS + ASK_KINDS
    + ("clarify", "resolve", "out_of_world", "upload_describe", "upload_edit")
)
DEFAULT_BACKGROUND = "grass"  # background of a drawing request that names none

# How often each kind is picked in `generate_dialogue` (before and after the first image).
FIRST_TURN_WEIGHTS: dict[str, float] = {"draw": 80, "upload_describe": 7, "upload_edit": 7, "out_of_world": 6}
LATER_TURN_WEIGHTS: dict[str, float] = {
    "draw": 5, "replace": 14, "add": 11, "remove": 8, "move": 10, "background": 8,
    "ask_what": 6, "ask_count": 6, "ask_where": 5, "ask_is_there": 5, "ask_background": 3,
    "clarify": 8, "out_of_world": 4, "upload_describe": 2, "upload_edit": 3,
}


def _scene_dict(scene: Scene | None) -> dict | None:
    return None if scene is None else scene.to_dict()


def _scene_from(d: dict | None) -> Scene | None:
    return None if d is None else Scene.from_dict(d)


@dataclass
class DTurn:
    """One exchange: the user's message and the assistant's reply."""

    user: str  # what the user types
    upload: Scene | None  # scene the user uploads with this message (the caller renders it), or None
    reply_text: str  # the assistant's text
    reply_scene: Scene | None  # the scene the assistant's image must show; None for a text-only reply
    kind: str  # one of KINDS
    meta: dict = field(default_factory=dict)  # JSON-friendly facts: the edit, the question, the answer

    def to_dict(self) -> dict:
        return {"user": self.user, "upload": _scene_dict(self.upload), "reply_text": self.reply_text,
                "reply_scene": _scene_dict(self.reply_scene), "kind": self.kind, "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict) -> "DTurn":
        return cls(d["user"], _scene_from(d.get("upload")), d["reply_text"], _scene_from(d.get("reply_scene")),
                   d["kind"], dict(d.get("meta", {})))


@dataclass
class Dialogue:
    """A whole conversation."""

    turns: list[DTurn]  # in order

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
        return cls([DTurn.from_dict(t) for t in d["turns"]])


# ---- edits -------------------------------------------------------------------------------


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
        """The assistant's canonical text for a done edit."""
        t = self.target
        if self.kind == "background":
            return f"Done: the background is now {self.background}."
        if self.kind == "add":
            return f"Done: added {article(t.cls)} {t.cls} {t.phrase}."
        if self.kind == "remove":
            return f"Done: removed the {t.cls}."
        if self.kind == "replace":
            return f"Done: the {t.cls} is now {article(self.new_cls)} {self.new_cls}."
        if self.kind == "move":
            return f"Done: the {t.cls} is now {slot_phrase(*self.to)}."
        raise ValueError(f"kind={self.kind!r} is not an edit kind; use one of {EDIT_KINDS}")

    def to_meta(self) -> dict:
        return {"kind": self.kind, "target": None if self.target is None else self.target.to_dict(),
                "new_cls": self.new_cls, "to": None if self.to is None else list(self.to),
                "background": self.background}


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


def _rng(rng: random.Random | int) -> random.Random:
    if isinstance(rng, random.Random):
        return rng
    if isinstance(rng, int):
        return random.Random(rng)
    raise ValueError(f"rng must be a random.Random or an int seed, got {type(rng).__name__}")


def possible_kinds(state: State) -> list[str]:
    """Kinds that can come next in this state."""
    if state.pending is not None:
        return ["resolve"]
    kinds = ["draw", "out_of_world", "upload_describe", "upload_edit"]
    s = state.scene
    if s is None:
        return kinds
    kinds += ["background", *ASK_KINDS]
    if len(s.objects) < MAX_OBJECTS:
        kinds.append("add")
    if s.objects:
        kinds += ["replace", "remove", "move"]
    if any(s.count(o.cls) > 1 for o in s.objects):
        kinds.append("clarify")
    return kinds


# ---- turn makers: each returns (turn, next state) ----------------------------------------


def _draw_turn(rng: random.Random, state: State, scene: Scene | None = None) -> tuple[DTurn, State]:
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
    turn = DTurn(style(rng, text), None, draw_reply(scene), scene, "draw", meta)
    return turn, State(scene)


def _pick_edit(rng: random.Random, scene: Scene, kind: str, target: Obj | None = None) -> tuple[Edit, bool]:
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


def _say_edit(rng: random.Random, edit: Edit, with_place: bool, ref_suffix: str = "") -> str:
    """User text asking for an edit; `with_place` says which object when it has a target;
    `ref_suffix` follows the object ("the dog" + " in this picture")."""
    if edit.kind == "background":
        return say_background(rng, edit.background)
    if edit.kind == "add":
        return say_add(rng, edit.target.cls, edit.target.slot if with_place else None)
    ref = say_ref(rng, edit.target, with_place) + ref_suffix
    if edit.kind == "remove":
        return say_remove(rng, ref)
    if edit.kind == "replace":
        return say_replace(rng, ref, edit.new_cls)
    return say_move(rng, ref, edit.to)


def _edit_turn(rng: random.Random, state: State, kind: str, clarify: str = "maybe") -> tuple[DTurn, State]:
    """An edit of `kind`. clarify: "maybe" (an ambiguous request gets a clarifying question
    half the time), "never" (the user always says which), "always" (the user names an
    ambiguous class without saying which; kind must be replace, remove or move)."""
    scene = state.scene
    target = None
    if clarify == "always":
        target = rng.choice([o for o in scene.objects if scene.count(o.cls) > 1])
    edit, explicit = _pick_edit(rng, scene, kind, target)
    if edit.kind in ("add", "background"):
        user = style(rng, _say_edit(rng, edit, explicit))
        meta = {"edit": edit.to_meta(), "explicit_place": explicit}
        new = edit.apply(scene)
        return DTurn(user, None, edit.reply(), new, kind, meta), State(new)
    same = scene.find(edit.target.cls)
    if len(same) > 1:
        with_place = {"always": False, "never": True, "maybe": rng.random() < 0.5}[clarify]
    else:
        with_place = rng.random() < 0.2
    user = style(rng, _say_edit(rng, edit, with_place))
    if len(same) > 1 and not with_place:
        labels = distinguishing_labels(same)
        meta = {"edit_kind": kind, "cls": edit.target.cls, "candidates": [list(o.slot) for o in same],
                "labels": labels}
        pending = Pending(edit, same, tuple(labels))
        return DTurn(user, None, clarify_question(edit.target.cls, labels), None, "clarify", meta), State(scene, pending)
    new = edit.apply(scene)
    meta = {"edit": edit.to_meta(), "explicit_place": with_place}
    return DTurn(user, None, edit.reply(), new, kind, meta), State(new)


def _resolve_turn(rng: random.Random, state: State) -> tuple[DTurn, State]:
    """The user's answer to a clarifying question, and the edit done."""
    p = state.pending
    label = p.labels[p.candidates.index(p.edit.target)]
    user = style(rng, say_resolve(rng, label, p.edit.target.cls), typo_rate=0.02)
    new = p.edit.apply(state.scene)
    meta = {"edit": p.edit.to_meta(), "label": label}
    return DTurn(user, None, p.edit.reply(), new, "resolve", meta), State(new)


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


def _question_turn(rng: random.Random, state: State, kind: str, upload: Scene | None = None) -> tuple[DTurn, State]:
    """A question about the latest image (or about `upload`, which then becomes it)."""
    scene = upload if upload is not None else state.scene
    target = _question_target(rng, scene, kind)
    text = say_question(rng, kind, target, upload=upload is not None)
    if upload is not None:
        text = say_upload(rng, text)
    meta = {"question": kind, "target": target, "answer": _answer_value(scene, kind, target)}
    turn = DTurn(style(rng, text, question=True), upload, answer_question(scene, kind, target), None,
                 "upload_describe" if upload is not None else kind, meta)
    return turn, State(scene)


def _upload_edit_turn(rng: random.Random, state: State) -> tuple[DTurn, State]:
    """The user uploads an image and asks for an edit of it (always saying which object)."""
    upload = random_scene(rng)
    kinds = [k for k in possible_kinds(State(upload)) if k in EDIT_KINDS]
    kind = rng.choice(kinds)
    edit, explicit = _pick_edit(rng, upload, kind)
    if kind in ("replace", "remove", "move"):
        with_place = upload.count(edit.target.cls) > 1 or rng.random() < 0.2  # never ambiguous
    else:
        with_place = explicit
    suffix = rng.choice([" in this picture", " in my image", " in this image"]) if rng.random() < 0.3 else ""
    text = _say_edit(rng, edit, with_place, suffix)
    new = edit.apply(upload)
    meta = {"edit": edit.to_meta(), "explicit_place": with_place}
    return DTurn(style(rng, say_upload(rng, text)), upload, edit.reply(), new, "upload_edit", meta), State(new)


def _out_of_world_turn(rng: random.Random, state: State) -> tuple[DTurn, State]:
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
            return DTurn(user, None, limit_reply(cls, reason), None, "out_of_world", meta), state
    # 2. Unknown things: draw, add or replace with a thing not in the world.
    name = rng.choice(OUT_OF_WORLD)
    requests = ["draw"] if scene is None else ["draw", "add"] + (["replace"] if scene.objects else [])
    request = rng.choice(requests)
    ref = say_ref(rng, rng.choice(scene.objects), False) if request == "replace" else None
    bg = rng.choice(BACKGROUNDS) if request == "draw" and rng.random() < 0.5 else None
    user = style(rng, say_out_of_world(rng, name, request, ref=ref, background=bg))
    meta = {"reason": "unknown_class", "cls": name, "request": request}
    return DTurn(user, None, out_of_world_reply(name), None, "out_of_world", meta), state


def next_turn(rng: random.Random | int, state: State, kind: str, allow_clarify: bool = True) -> tuple[DTurn, State]:
    """One turn of `kind` in `state`, and the state after it.

    An edit kind (replace/remove/move) on an ambiguous class may come back as a "clarify"
    turn when `allow_clarify`; the next turn must then be "resolve". Asking for "clarify"
    forces such a question.
    """
    rng = _rng(rng)
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not a kind; use one of {KINDS}")
    if kind not in possible_kinds(state):
        raise ValueError(f"kind={kind!r} is not possible now; possible: {possible_kinds(state)}")
    if kind == "draw":
        return _draw_turn(rng, state)
    if kind in EDIT_KINDS:
        return _edit_turn(rng, state, kind, "maybe" if allow_clarify else "never")
    if kind == "clarify":
        return _edit_turn(rng, state, rng.choice(["replace", "remove", "move"]), "always")
    if kind == "resolve":
        return _resolve_turn(rng, state)
    if kind in ASK_KINDS:
        return _question_turn(rng, state, kind)
    if kind == "upload_describe":
        return _question_turn(rng, state, rng.choice(ASK_KINDS), upload=random_scene(rng))
    if kind == "upload_edit":
        return _upload_edit_turn(rng, state)
    return _out_of_world_turn(rng, state)


# ---- whole dialogues ---------------------------------------------------------------------


def generate_dialogue(rng: random.Random | int, max_turns: int = 6) -> Dialogue:
    """A random dialogue of 1..max_turns turns (a clarifying question is always followed by
    its answer, so the last turn is never "clarify")."""
    rng = _rng(rng)
    if max_turns < 1:
        raise ValueError(f"max_turns={max_turns} must be >= 1")
    n = rng.randint(1, max_turns)
    state, turns = State(), []
    while len(turns) < n:
        left = n - len(turns)
        if state.pending is not None:
            kind = "resolve"
        else:
            weights = FIRST_TURN_WEIGHTS if state.scene is None else LATER_TURN_WEIGHTS
            kinds = [k for k in possible_kinds(state) if k in weights and (k != "clarify" or left >= 2)]
            kind = rng.choices(kinds, weights=[weights[k] for k in kinds])[0]
        turn, state = next_turn(rng, state, kind, allow_clarify=left >= 2)
        turns.append(turn)
    return Dialogue(turns)


def scene_for_kind(rng: random.Random | int, kind: str) -> Scene:
    """A random scene on which a turn of `kind` is possible (for "clarify"/"resolve": one
    with a repeated class)."""
    rng = _rng(rng)
    need = "clarify" if kind == "resolve" else kind
    for _ in range(1000):
        if need == "clarify":
            scene = random_scene(rng, n_objects=rng.randint(2, MAX_OBJECTS), repeat_prob=0.8)
        else:
            scene = random_scene(rng)
        if need in possible_kinds(State(scene)):
            return scene
    raise ValueError(f"found no scene for kind={kind!r}")


def generate_turn_of_kind(rng: random.Random | int, kind: str, scene: Scene | None = None) -> Dialogue:
    """A short dialogue that ends with one turn of `kind`, for evals.

    * draw, upload_describe, upload_edit: that one turn (draw shows `scene` if given);
    * edits and questions: a draw turn of `scene` (or of a fitting random scene), then the
      turn; the user always says which object, so no clarifying question comes between;
    * clarify / resolve: a draw turn, the clarifying question and its answer;
    * out_of_world: the refusal, after a draw turn of `scene` when one is given.
    """
    rng = _rng(rng)
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not a kind; use one of {KINDS}")
    turns: list[DTurn] = []
    state = State()
    if kind == "draw":
        return Dialogue([_draw_turn(rng, state, scene)[0]])
    if kind in ("upload_describe", "upload_edit") or (kind == "out_of_world" and scene is None):
        return Dialogue([next_turn(rng, state, kind)[0]])
    # 1. Set up the image the turn works on.
    scene = scene if scene is not None else scene_for_kind(rng, kind)
    need = "clarify" if kind == "resolve" else kind
    if need not in possible_kinds(State(scene)):
        raise ValueError(f"kind={kind!r} is not possible on scene={scene}")
    first, state = _draw_turn(rng, state, scene)
    turns.append(first)
    # 2. The turn itself (plus the answer to a clarifying question).
    turn, state = next_turn(rng, state, need, allow_clarify=False)
    turns.append(turn)
    if state.pending is not None:
        turns.append(next_turn(rng, state, "resolve")[0])
    return Dialogue(turns)


def generate_unambiguous_edit(rng: random.Random | int) -> Dialogue:
    """The counterpart of a "clarify" dialogue: a drawing with a repeated class, then a
    replace/remove/move edit that must be done without a question: two times in three on a
    class that is there once (the user need not say which), else on the repeated class with
    its place said."""
    rng = _rng(rng)
    unique = rng.random() < 2 / 3
    for _ in range(50):
        scene = scene_for_kind(rng, "clarify")
        d = generate_turn_of_kind(rng, rng.choice(("replace", "remove", "move")), scene=scene)
        if (scene.count(d.turns[-1].meta["edit"]["target"]["cls"]) == 1) == unique:
            break
    return d


def generate_questions(rng: random.Random | int, kinds: tuple[str, ...] = ASK_KINDS, n: int = 3) -> Dialogue:
    """A drawing of a random scene, then `n` questions about it, each of a kind from `kinds`:
    several readings of one picture (the drawing's cost is shared by all of them)."""
    rng = _rng(rng)
    bad = [k for k in kinds if k not in ASK_KINDS]
    if bad or not kinds or n < 1:
        raise ValueError(f"kinds={kinds!r}, n={n}: need n >= 1 and question kinds from {ASK_KINDS}")
    turn, state = _draw_turn(rng, State(), random_scene(rng))
    turns = [turn]
    for _ in range(n):
        turn, state = _question_turn(rng, state, rng.choice(kinds))
        turns.append(turn)
    return Dialogue(turns)


def generate_edit_chain(rng: random.Random | int, n_edits: int = 3, allow_clarify: bool = False) -> Dialogue:
    """A drawing followed by `n_edits` edits of random kinds, each on the latest image.
    With `allow_clarify`, an edit may take two turns (question and answer)."""
    rng = _rng(rng)
    turn, state = _draw_turn(rng, State())
    turns = [turn]
    for _ in range(n_edits):
        kinds = [k for k in possible_kinds(state) if k in EDIT_KINDS]
        kind = rng.choices(kinds, weights=[LATER_TURN_WEIGHTS[k] for k in kinds])[0]
        turn, state = next_turn(rng, state, kind, allow_clarify=allow_clarify)
        turns.append(turn)
        if state.pending is not None:
            turn, state = next_turn(rng, state, "resolve")
            turns.append(turn)
    return Dialogue(turns)
