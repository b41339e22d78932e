"""Masked edits: the person paints part of the picture and asks for a change there.

A turn's `mask` is the slots the person painted (`WorldTurn.mask`); the prompt names them
(`<mask> top left`, `chatgen.images.region_text`), and at chat time a painted mask is read
into the same words (`chatgen.images.mask_regions`). What a mask means:

1. the painted thing is the one meant: "make the cat a dog" with two cats edits the painted
   one and asks nothing; "make this a dog", "remove this", "remove this cat" too;
2. a painted empty place is where a new thing goes: "add a balloon", "put a balloon here";
3. honest replies, no picture: "remove this" over an empty place (nothing there), an edit
   that names a thing outside the painted part, "add a balloon here" over a taken place.

The edit changes only the painted slots (the decoder locks the rest), so masked moves and
background changes are not masked turns.
"""

from __future__ import annotations

import random

from chatgen.mask_claims import NOTHING_PAINTED, outside_reply, taken_reply  # noqa: F401 (the world's honest sentences for masks)
from chatgen.world.dialogue import Dialogue, WorldTurn
from chatgen.world.edits import Edit
from chatgen.world.message_style import style
from chatgen.world.replies import with_article
from chatgen.world.scene import CLASSES, GRID, MAX_OBJECTS, MAX_PER_CLASS, Obj, Scene, random_scene
from chatgen.world.turn_makers import State, draw_turn, next_turn, possible_kinds
from chatgen.world.user_phrasing import _polite, say_add, say_edit

MASK_KINDS: tuple[str, ...] = ("masked_edit",)  # the turn kind, for `--focus` and bench-world

_THIS_REPLACE = ("make this {n}", "turn this into {n}", "change this to {n}", "replace this with {n}", "this should be {n}",
                 "swap this for {n}", "make that {n}", "turn that into {n}", "make the painted thing {n}",
                 "change the marked one to {n}", "{n} here instead", "make this one {n}", "change what i painted to {n}")
_THIS_REMOVE = ("remove this", "delete this", "get rid of this", "erase this", "take this out", "remove that",
                "remove the painted thing", "remove what i painted", "delete that one", "get rid of the marked one",
                "take that away", "remove this one")
_HERE_ADD = ("add {n} here", "put {n} here", "draw {n} here", "{n} here", "place {n} there", "add {n} in the painted spot",
             "put {n} in the marked area", "{n} here please", "add {n} there", "i want {n} here")

def _neighbours(slot: tuple[int, int]) -> list[tuple[int, int]]:
    r, c = slot
    return [(r + dr, c + dc) for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)) if 0 <= r + dr < GRID and 0 <= c + dc < GRID]


def _painted(rng: random.Random, scene: Scene, slot: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    """The slot, and now and then an empty neighbour painted too (people paint roughly)."""
    spill = [s for s in _neighbours(slot) if scene.at(*s) is None]
    if spill and rng.random() < 0.15:
        return tuple(sorted({slot, rng.choice(spill)}))
    return (slot,)


def _this(rng: random.Random, phrases: tuple[str, ...], **fmt) -> str:
    return _polite(rng, rng.choice(phrases).format(**fmt))


def masked_turn(rng: random.Random, scene: Scene) -> WorldTurn | None:
    """One masked turn on `scene` (see the module doc), or None when `scene` allows none of
    the kinds drawn."""
    objs, free = list(scene.objects), scene.free_slots()
    roll = rng.random()
    # 1. The painted thing: replace or remove it, named ("the cat", "this cat") or not ("this").
    if roll < 0.55 and objs:
        target = rng.choice(objs)
        if rng.random() < 0.5 and any(scene.count(o.cls) > 1 for o in objs):
            target = rng.choice([o for o in objs if scene.count(o.cls) > 1])  # a repeated class: the mask says which
        news = [c for c in CLASSES if c != target.cls and scene.count(c) < MAX_PER_CLASS]
        edit = Edit("replace", target, new_cls=rng.choice(news)) if rng.random() < 0.6 else Edit("remove", target)
        how = rng.random()
        if how < 0.4:
            user = say_edit(rng, edit, with_place=False)
        elif how < 0.55:
            user = say_edit(rng, edit, with_place=False).replace(f"the {target.cls}", f"this {target.cls}", 1)
        elif edit.kind == "replace":
            user = _this(rng, _THIS_REPLACE, n=with_article(edit.new_cls))
        else:
            user = _this(rng, _THIS_REMOVE)
        return WorldTurn(style(rng, user), None, edit.reply(), edit.apply(scene), "masked_edit",
                         {"edit": edit.to_meta()}, mask=_painted(rng, scene, target.slot))
    # 2. A painted empty place: the new thing goes there.
    addable = [c for c in CLASSES if scene.count(c) < MAX_PER_CLASS]
    if roll < 0.85 and free and len(objs) < MAX_OBJECTS:
        slot = rng.choice(free)
        edit = Edit("add", Obj(rng.choice(addable), *slot))
        user = say_add(rng, edit.target.cls, None) if rng.random() < 0.4 else _this(rng, _HERE_ADD, n=with_article(edit.target.cls))
        return WorldTurn(style(rng, user), None, edit.reply(), edit.apply(scene), "masked_edit",
                         {"edit": edit.to_meta()}, mask=(slot,))
    # 3. Honest: nothing painted there, the named thing is elsewhere, or the place is taken.
    honest = rng.random()
    if honest < 0.4 and free and objs:
        user = _this(rng, _THIS_REMOVE) if rng.random() < 0.5 else _this(rng, _THIS_REPLACE, n=with_article(rng.choice(CLASSES)))
        return WorldTurn(style(rng, user), None, NOTHING_PAINTED, None, "masked_edit", {"honest": "nothing"}, mask=(rng.choice(free),))
    if honest < 0.75 and len(objs) >= 2:
        target = rng.choice(objs)
        others = [o for o in objs if o.cls != target.cls]
        if others:
            news = [c for c in CLASSES if c != target.cls]
            edit = Edit("replace", target, new_cls=rng.choice(news)) if rng.random() < 0.5 else Edit("remove", target)
            painted = rng.choice(others)
            return WorldTurn(style(rng, say_edit(rng, edit, with_place=False)), None, outside_reply(target.cls), None, "masked_edit",
                             {"honest": "outside"}, mask=(painted.slot,))
    if objs:
        painted = rng.choice(objs)
        user = _this(rng, _HERE_ADD, n=with_article(rng.choice(addable)))
        return WorldTurn(style(rng, user), None, taken_reply(painted.cls), None, "masked_edit", {"honest": "taken"}, mask=(painted.slot,))
    return None


def generate_masked_dialogue(rng: random.Random, n_turns: int | None = None) -> Dialogue:
    """A drawing (a repeated class half the time), then 1-3 turns, most of them masked edits
    and the rest ordinary turns without a mask, all on the latest picture."""
    turn, state = draw_turn(rng, State(), random_scene(rng, n_objects=rng.randint(2, 4), repeat_prob=0.5 if rng.random() < 0.5 else 0.1))
    turns = [turn]
    for _ in range(n_turns or rng.randint(1, 3)):
        turn = masked_turn(rng, state.scene) if state.pending is None and rng.random() < 0.7 else None
        if turn is None:
            options = ["resolve"] if state.pending else [k for k in possible_kinds(state) if k in ("replace", "add", "remove", "ask_what", "ask_count", "ask_where")]
            turn, state = next_turn(rng, state, rng.choice(options))
        elif turn.reply_scene is not None:
            state = State(turn.reply_scene)
        turns.append(turn)
    if state.pending is not None:
        turns.append(next_turn(rng, state, "resolve")[0])
    return Dialogue(turns)


def generate_masked_turn(rng: random.Random) -> Dialogue:
    """A drawing and one masked turn on it, for evals."""
    while True:
        turn, state = draw_turn(rng, State(), random_scene(rng, n_objects=rng.randint(2, 4), repeat_prob=0.5 if rng.random() < 0.5 else 0.1))
        final = masked_turn(rng, state.scene)
        if final is not None:
            return Dialogue([turn, final])
