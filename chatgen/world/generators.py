"""Whole dialogues of the scene world: the training mixtures and the evals' dialogues.

* `generate_dialogue`: a random mixed dialogue, kinds drawn with the weights below;
* `generate_turn_of_kind`: a short dialogue that ends with one turn of a chosen kind (evals);
* `generate_edit_chain`: a drawing and then N edits, each on the latest image;
* `generate_questions`: a drawing and N questions about it;
* `generate_unambiguous_edit`: the counterpart of a clarifying question, an edit on a scene
  with a repeated class that must be done without asking;
* `scene_for_kind`: a random scene on which a turn of a kind is possible.

Everything is deterministic given the `random.Random` (or int seed) passed in; one turn is
made by `turn_makers.next_turn`.
"""

from __future__ import annotations

import random

from chatgen.world.dialogue import ASK_KINDS, EDIT_KINDS, KINDS, Dialogue, WorldTurn
from chatgen.world.scene import MAX_OBJECTS, Scene, random_scene
from chatgen.world.turn_makers import State, as_rng, draw_turn, next_turn, possible_kinds, question_turn

# How often each kind is picked in `generate_dialogue` (before and after the first image).
FIRST_TURN_WEIGHTS: dict[str, float] = {"draw": 80, "upload_describe": 7, "upload_edit": 7, "out_of_world": 6}
LATER_TURN_WEIGHTS: dict[str, float] = {
    "draw": 5, "replace": 14, "add": 11, "remove": 8, "move": 10, "background": 8,
    "ask_what": 6, "ask_count": 6, "ask_where": 5, "ask_is_there": 5, "ask_background": 3,
    "clarify": 8, "out_of_world": 4, "upload_describe": 2, "upload_edit": 3,
}


def generate_dialogue(rng: random.Random | int, max_turns: int = 6) -> Dialogue:
    """A random dialogue of 1..max_turns turns (a clarifying question is always followed by
    its answer, so the last turn is never "clarify")."""
    rng = as_rng(rng)
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
    rng = as_rng(rng)
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
    rng = as_rng(rng)
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not a kind; use one of {KINDS}")
    turns: list[WorldTurn] = []
    state = State()
    if kind == "draw":
        return Dialogue([draw_turn(rng, state, scene)[0]])
    if kind in ("upload_describe", "upload_edit") or (kind in ("out_of_world", "smalltalk") and scene is None):
        return Dialogue([next_turn(rng, state, kind)[0]])
    # 1. Set up the image the turn works on.
    scene = scene if scene is not None else scene_for_kind(rng, kind)
    need = "clarify" if kind == "resolve" else kind
    if need not in possible_kinds(State(scene)):
        raise ValueError(f"kind={kind!r} is not possible on scene={scene}")
    first, state = draw_turn(rng, state, scene)
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
    rng = as_rng(rng)
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
    rng = as_rng(rng)
    bad = [k for k in kinds if k not in ASK_KINDS]
    if bad or not kinds or n < 1:
        raise ValueError(f"kinds={kinds!r}, n={n}: need n >= 1 and question kinds from {ASK_KINDS}")
    turn, state = draw_turn(rng, State(), random_scene(rng))
    turns = [turn]
    for _ in range(n):
        turn, state = question_turn(rng, state, rng.choice(kinds))
        turns.append(turn)
    return Dialogue(turns)


def generate_edit_chain(rng: random.Random | int, n_edits: int = 3, allow_clarify: bool = False) -> Dialogue:
    """A drawing followed by `n_edits` edits of random kinds, each on the latest image.
    With `allow_clarify`, an edit may take two turns (question and answer)."""
    rng = as_rng(rng)
    turn, state = draw_turn(rng, State())
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


def generate_edits_then_questions(rng: random.Random | int, n_edits: int = 3, n_questions: int = 2) -> Dialogue:
    """A drawing, `n_edits` edits, then `n_questions` questions about the edited picture: the
    model must read the latest picture after a chain of edits, not remember the drawing."""
    rng = as_rng(rng)
    chain = generate_edit_chain(rng, n_edits=n_edits)
    state = State(chain.turns[-1].reply_scene)
    turns = list(chain.turns)
    for _ in range(n_questions):
        turn, state = question_turn(rng, state, rng.choice(ASK_KINDS))
        turns.append(turn)
    return Dialogue(turns)
