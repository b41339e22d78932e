"""Turns in the language people use once a conversation is going: "it", two edits in one
message, "all the dogs", "the cat next to the tree"; with the turns in words of
`people_talk.py` (yes/no, looser questions, praise), whole dialogues of them.

Each maker takes the latest scene (and the object the conversation last touched, for "it")
and returns a `WorldTurn` or None when its kind is not possible on that scene. The replies
stay in the world's one canonical wording (`edits.py`, `replies.py`), so the model learns to
map many ways of asking onto the same facts. `generate_people_dialogue` strings them together
with ordinary turns (`turn_makers.next_turn`); training samples it (`train.data`), and
`world.people_words` then rewrites the user's words as people type.
"""

from __future__ import annotations

import random
import re

from chatgen.scene_text import the_group
from chatgen.world.dialogue import EDIT_KINDS, Dialogue, WorldTurn
from chatgen.world.edits import Edit, random_edit
from chatgen.world.message_style import style
from chatgen.world.people_talk import (
    followup_question_turn, make_turn, praise_turn, question_turn_people, terse_draw_turn, unknown_thing_turn, yesno_turn,
)
from chatgen.world.replies import NUMBERS, join, object_phrase, with_article
from chatgen.world.scene import (
    CATEGORIES, CLASSES, GRID, MAX_OBJECTS, MAX_PER_CLASS, Obj, Scene, plural, random_scene,
)
from chatgen.world.turn_makers import State, draw_turn, next_turn, possible_kinds
from chatgen.world.user_phrasing import _POLITE, _polite, place_variants, say_edit, say_ref, to_variants

PEOPLE_KINDS: tuple[str, ...] = ("pronoun_edit", "multi_edit", "quantifier_edit", "relative_edit", "yesno", "question", "praise", "unknown_thing")
_POLITE_PATTERNS = [re.compile("^" + re.escape(f).replace(r"\{x\}", "(.+)") + "$") for f, _ in sorted(_POLITE, key=lambda p: -len(p[0])) if f != "{x}"]


def core_of(text: str) -> str:
    """A request without its polite wrapper: "can you remove the dog?" -> "remove the dog"."""
    for p in _POLITE_PATTERNS:
        m = p.match(text)
        if m:
            return m.group(1)
    return text


def done(edit_texts: list[str]) -> str:
    """One "Done: ..." text for several changes: "Done: removed the dog and added a cat on the left."."""
    return "Done: " + join([t.removeprefix("Done: ").rstrip(".") for t in edit_texts]) + "."


def touched(edit: Edit) -> Obj | None:
    """The object an edit leaves the conversation talking about ("it" next), or None."""
    if edit.kind == "add":
        return edit.target
    if edit.kind == "replace":
        return Obj(edit.new_cls, *edit.target.slot)
    if edit.kind == "move":
        return Obj(edit.target.cls, *edit.to)
    return None


def _safe_ref(rng: random.Random, scene: Scene, obj: Obj) -> bool:
    """Whether the user says where `obj` is: always when its class is repeated."""
    return scene.count(obj.cls) > 1 or rng.random() < 0.2


# ---- "it": the object the conversation last touched ------------------------------------------

_IT_REPLACE = ("make it {n}", "turn it into {n}", "change it to {n}", "{n} instead", "now make it {n}", "actually, make it {n}",
               "switch it to {n}", "can it be {n}", "make that {n}", "change that into {n}", "let's make it {n}", "hmm, {n} instead",
               "maybe {n} instead", "turn that into {n}", "swap it for {n}", "it should be {n}", "no wait, {n}", "replace it with {n}")
_IT_MOVE = ("move it {go}", "put it {at}", "now move it {go}", "shift it {go}", "move that {go}", "drag it {go}",
            "it should be {at}", "move it over {go}", "put that one {at}", "slide it {go}", "i want it {at}")
_IT_REMOVE = ("remove it", "get rid of it", "delete it", "take it out", "take it away", "actually remove it", "erase it",
              "lose it", "never mind, remove it", "remove that", "delete that one", "no, take it out again", "scrap it")


def pronoun_turn(rng: random.Random, scene: Scene, last: Obj | None) -> WorldTurn | None:
    """"make it a cat", "move it to the left", "remove it": an edit of the object last touched."""
    if last is None or scene.at(*last.slot) != last:
        return None
    kind = rng.choice(["replace", "replace", "move", "remove"] if scene.free_slots() else ["replace", "remove"])
    edit, _ = random_edit(rng, scene, kind, last)
    if kind == "replace":
        text = rng.choice(_IT_REPLACE).format(n=with_article(edit.new_cls))
    elif kind == "move":
        at = rng.choice([p for p in place_variants(*edit.to) if p.split()[0] in ("on", "in", "at")])
        text = rng.choice(_IT_MOVE).format(go=rng.choice(to_variants(*edit.to)), at=at)
    else:
        text = rng.choice(_IT_REMOVE)
    if rng.random() < 0.3:
        text = _polite(rng, text)
    return make_turn(style(rng, text), edit.reply(), edit.apply(scene), "pronoun_edit", edit=edit.to_meta())


# ---- several edits in one message ------------------------------------------------------------

_JOINERS = (" and ", " and ", ", and ", ", then ", " and then ", ". also ", ", plus ", " & ", "; ", " and also ", ", ")


def multi_edit_turn(rng: random.Random, scene: Scene) -> WorldTurn | None:
    """Two (sometimes three) edits in one message, done in the order said, on different objects."""
    n = 3 if rng.random() < 0.15 else 2
    cur, busy, edits, parts = scene, set(), [], []
    for _ in range(n):
        kinds = [k for k in possible_kinds(State(cur)) if k in EDIT_KINDS]
        kinds = [k for k in kinds if not (k == "background" and any(e.kind == "background" for e in edits))]
        free_targets = [o for o in cur.objects if o.slot not in busy]
        if not free_targets:
            kinds = [k for k in kinds if k in ("add", "background")]
        if not kinds:
            break
        kind = rng.choice(kinds)
        target = rng.choice(free_targets) if kind in ("replace", "remove", "move") else None
        edit, explicit = random_edit(rng, cur, kind, target)
        if kind == "add" and edit.target.slot in busy:
            break  # back where something was just removed from: no net change to see
        with_place = explicit if kind in ("add", "background") else _safe_ref(rng, cur, edit.target)
        text = core_of(say_edit(rng, edit, with_place))
        if parts and rng.random() < 0.3:
            text = re.sub(r"^(?:now |also )", "", text)
        parts.append(text)
        edits.append(edit)
        cur = edit.apply(cur)
        busy.update(s for s in (edit.target.slot if edit.target else None, edit.to) if s)
    if len(edits) < 2:
        return None
    text = parts[0]
    for p in parts[1:]:
        joiner = rng.choice(_JOINERS)
        text += joiner + (p.removeprefix("also ") if "also" in joiner else p)
    if rng.random() < 0.25:
        text = _polite(rng, text)
    return make_turn(style(rng, text), done([e.reply() for e in edits]), cur, "multi_edit", edits=[e.to_meta() for e in edits])


# ---- all, both, every, numbers ----------------------------------------------------------------


def _the(objs: list[Obj]) -> str:
    """"the dogs and the fox": the objects grouped by class."""
    return the_group([o.cls for o in objs])


def quantifier_turn(rng: random.Random, scene: Scene) -> WorldTurn | None:
    """"make all the dogs cats", "remove both cats", "remove every animal", "clear it", "add two stars"."""
    options = []
    repeated = [c for c in dict.fromkeys(o.cls for o in scene.objects) if scene.count(c) > 1]
    groups = [(c, list(scene.find(c))) for c in repeated]
    groups += [(cat, [o for o in scene.objects if o.cls in CATEGORIES[cat]]) for cat in ("animals", "plants", "vehicles")
               if scene.count(cat) >= 1 and rng.random() < 0.5]
    if len(scene.objects) >= 2:
        groups.append(("them", list(scene.objects)))
    for name, objs in groups:
        options += [("replace", name, objs), ("remove", name, objs)]
    if scene.objects:
        options.append(("clear", None, list(scene.objects)))
    addable = [c for c in CLASSES if scene.count(c) + 2 <= MAX_PER_CLASS] if len(scene.objects) + 2 <= MAX_OBJECTS else []
    if addable:
        options += [("add", None, [])] * 2
    if not options:
        return None
    what, name, objs = rng.choice(options)
    n = len(objs)
    if what == "add":
        cls = rng.choice(addable)
        k = rng.choice([k for k in (2, 3) if scene.count(cls) + k <= MAX_PER_CLASS and len(scene.objects) + k <= MAX_OBJECTS])
        cur, added = scene, []
        for _ in range(k):
            o = Obj(cls, *cur.default_slot())
            cur, added = cur.with_object(o), added + [o]
        many = f"{NUMBERS[k] if rng.random() < 0.7 else k} {plural(cls)}"
        more = " more" if scene.count(cls) and rng.random() < 0.5 else ""
        text = rng.choice(["add {m}", "put {m} in", "draw {m}", "add {m} please", "i want {m}", "{m} too", "and {m}",
                           "can you add {m}", "give me {m}", "add another {m}"]).format(m=many + more)
        reply = "Done: added " + join([object_phrase(o) for o in added]) + "."
        return make_turn(style(rng, text), reply, cur, "quantifier_edit", op="add", cls=cls, n=k)
    if what == "clear":
        text = rng.choice(["remove everything", "clear the picture", "delete everything", "get rid of everything",
                           "remove all the things", "take everything out", "empty the picture", "remove it all", "clear it all"])
        return make_turn(style(rng, _polite(rng, text)), "Done: removed everything.", Scene(scene.background, ()), "quantifier_edit", op="clear")
    if name == "them":
        group = rng.choice(["them all", "all of them", "them both" if n == 2 else "all three" if n == 3 else "all four", "everything"])
    elif name in CATEGORIES:
        group = rng.choice([f"all the {name}", f"every {name[:-1]}", f"the {name}", f"all {name}", f"each {name[:-1]}"])
    else:
        word = plural(name)
        group = rng.choice([f"all the {word}", f"both {word}" if n == 2 else f"all three {word}", f"every {name}",
                            f"the {word}", f"all {word}", f"both the {word}" if n == 2 else f"the three {word}"])
    if what == "remove":
        cur = Scene(scene.background, tuple(o for o in scene.objects if o not in objs))
        text = rng.choice(["remove {g}", "get rid of {g}", "delete {g}", "take away {g}", "take out {g}", "erase {g}", "lose {g}"]).format(g=group)
        reply = "Done: removed everything." if not cur.objects else f"Done: removed {_the(objs)}."
        return make_turn(style(rng, _polite(rng, text)), reply, cur, "quantifier_edit", op="remove", group=name)
    others = [o for o in scene.objects if o not in objs]
    new = rng.choice([c for c in CLASSES if sum(o.cls == c for o in others) + n <= MAX_PER_CLASS and not all(o.cls == c for o in objs)] or [None])
    if new is None:
        return None
    cur = Scene(scene.background, tuple(others) + tuple(Obj(new, *o.slot) for o in objs))
    target = plural(new) if rng.random() < 0.6 else with_article(new)
    text = rng.choice(["make {g} {t}", "turn {g} into {t}", "change {g} to {t}", "replace {g} with {t}", "make {g} into {t}",
                       "swap {g} for {t}"]).format(g=group, t=target)
    if name == "them" and rng.random() < 0.5:
        text = rng.choice([f"make them all {plural(new)}", f"turn them all into {plural(new)}", f"make everything {with_article(new)}"])
    reply = f"Done: {_the(objs)} {'is' if n == 1 else 'are'} now {with_article(new) if n == 1 else plural(new)}."
    return make_turn(style(rng, _polite(rng, text)), reply, cur, "quantifier_edit", op="replace", group=name, new_cls=new)


# ---- places said relative to another object ---------------------------------------------------

_STEPS = {"above": (-1, 0), "below": (1, 0), "left": (0, -1), "right": (0, 1)}
_REL_WORDS = {
    "above": ("above", "over", "just above", "right above", "directly above"),
    "below": ("below", "under", "beneath", "underneath", "just below", "right under"),
    "left": ("to the left of", "left of", "on the left of", "just left of", "on the left side of"),
    "right": ("to the right of", "right of", "on the right of", "just right of", "on the right side of"),
    "next": ("next to", "beside", "by", "right next to"),
}


def _neighbour(slot: tuple[int, int], rel: str) -> tuple[int, int] | None:
    r, c = slot[0] + _STEPS[rel][0], slot[1] + _STEPS[rel][1]
    return (r, c) if 0 <= r < GRID and 0 <= c < GRID else None


def _free_places(rng: random.Random, scene: Scene, anchor: Obj) -> list[tuple[str, tuple[int, int], str]]:
    """(words, free slot, relation) a new or moved object can take relative to `anchor`."""
    free = set(scene.free_slots())
    out = []
    around = {rel: _neighbour(anchor.slot, rel) for rel in _STEPS}
    for rel, slot in around.items():
        if slot in free:
            out.append((rng.choice(_REL_WORDS[rel]) + f" the {anchor.cls}", slot, rel))
    open_ = [s for s in around.values() if s in free]
    if len(open_) == 1:
        out.append((rng.choice(_REL_WORDS["next"]) + f" the {anchor.cls}", open_[0], "next"))
    for other in scene.objects:
        mid = ((anchor.row + other.row) // 2, (anchor.col + other.col) // 2)
        straight = anchor.row == other.row or anchor.col == other.col
        if other != anchor and straight and abs(anchor.row - other.row) + abs(anchor.col - other.col) == 2 and mid in free and scene.count(other.cls) == 1:
            word = rng.choice(["between", "in between"])
            out.append((f"{word} the {anchor.cls} and the {other.cls}", mid, "between"))
    return out


def relative_turn(rng: random.Random, scene: Scene) -> WorldTurn | None:
    """"add a bird above the house", "move the cat next to the dog", "remove the dog left of the tree"."""
    anchors = [o for o in scene.objects if scene.count(o.cls) == 1]
    rng.shuffle(anchors)
    for anchor in anchors:
        roll = rng.random()
        places = _free_places(rng, scene, anchor)
        movers = [o for o in scene.objects if o != anchor]
        if roll < 0.45 and places and len(scene.objects) < MAX_OBJECTS:
            words, slot, _ = rng.choice(places)
            cls = rng.choice([c for c in CLASSES if scene.count(c) < MAX_PER_CLASS])
            text = rng.choice(["add {n} {w}", "put {n} {w}", "draw {n} {w}", "and {n} {w}", "place {n} {w}",
                               "{n} {w} please", "i want {n} {w}", "stick {n} {w}"]).format(n=with_article(cls), w=words)
            edit = Edit("add", Obj(cls, *slot))
        elif roll < 0.75 and places and movers:
            words, slot, _ = rng.choice(places)
            mover = rng.choice(movers)
            ref = say_ref(rng, mover, _safe_ref(rng, scene, mover))
            text = rng.choice(["move {r} {w}", "put {r} {w}", "shift {r} {w}", "place {r} {w}", "bring {r} {w}"]).format(r=ref, w=words)
            edit = Edit("move", mover, to=slot)
        else:
            # One of a repeated class, told apart by where it is relative to the anchor.
            picks = []
            for cls in dict.fromkeys(o.cls for o in scene.objects if scene.count(o.cls) > 1):
                for rel in _REL_WORDS:
                    hits = [o for o in scene.find(cls) if _related(o, anchor, rel)]
                    if len(hits) == 1:
                        picks.append((hits[0], rel))
            if not picks:
                continue
            target, rel = rng.choice(picks)
            ref = f"the {target.cls} {rng.choice(_REL_WORDS[rel])} the {anchor.cls}"
            edit, _ = random_edit(rng, scene, rng.choice(["replace", "remove"] + (["move"] if scene.free_slots() else [])), target)
            text = core_of(say_edit(rng, edit, False).replace(f"the {target.cls}", ref, 1))
            text = _polite(rng, text) if rng.random() < 0.3 else text
        return make_turn(style(rng, text), edit.reply(), edit.apply(scene), "relative_edit", edit=edit.to_meta())
    return None


def _related(obj: Obj, anchor: Obj, rel: str) -> bool:
    """Whether `obj` is `rel` ("above", ..., "next") of `anchor` on the grid."""
    if rel == "next":
        return abs(obj.row - anchor.row) + abs(obj.col - anchor.col) == 1
    return _neighbour(anchor.slot, rel) == obj.slot


# ---- whole dialogues ----------------------------------------------------------------------------

_PLAIN_LATER = {"replace": 10, "add": 8, "remove": 7, "move": 7, "background": 6, "ask_what": 5, "ask_count": 7, "ask_where": 6,
                "ask_is_there": 4, "ask_background": 3, "clarify": 4, "absent_edit": 3, "impossible_edit": 3, "smalltalk": 2,
                "out_of_world": 2}
_PEOPLE_WEIGHTS = {"pronoun_edit": 8, "multi_edit": 8, "quantifier_edit": 6, "relative_edit": 7, "yesno": 9, "question": 9, "praise": 2, "unknown_thing": 2}


def people_turn(rng: random.Random, kind: str, scene: Scene, last: Obj | None) -> WorldTurn | None:
    """One turn of a `PEOPLE_KINDS` kind on `scene`, or None when it is not possible there."""
    if kind not in _PEOPLE_MAKERS:
        raise ValueError(f"kind={kind!r} is not one of {PEOPLE_KINDS}")
    return _PEOPLE_MAKERS[kind](rng, scene, last)


# Each kind's maker, called with (rng, scene, last).
_PEOPLE_MAKERS = {
    "pronoun_edit": pronoun_turn, "yesno": yesno_turn,
    "multi_edit": lambda rng, scene, last: multi_edit_turn(rng, scene),
    "quantifier_edit": lambda rng, scene, last: quantifier_turn(rng, scene),
    "relative_edit": lambda rng, scene, last: relative_turn(rng, scene),
    "question": lambda rng, scene, last: question_turn_people(rng, scene),
    "praise": lambda rng, scene, last: praise_turn(rng),
    "unknown_thing": lambda rng, scene, last: unknown_thing_turn(rng, scene),
}


def _last_after(turn: WorldTurn, scene: Scene | None, last: Obj | None) -> Obj | None:
    """What "it" means after `turn`: the object it touched or asked about, else what it meant before."""
    meta = turn.meta
    if "edit" in meta:
        edit = Edit.from_meta(meta["edit"])
        return touched(edit) if edit.kind != "background" else last
    if turn.kind in ("multi_edit", "quantifier_edit"):
        return None
    if turn.kind == "draw" and scene is not None:
        return scene.objects[0] if len(scene.objects) == 1 else None
    target = meta.get("target")
    if turn.kind in ("ask_where", "yesno", "question") and scene is not None and target in CLASSES and scene.count(target) == 1:
        return scene.find(target)[0]
    return last if turn.reply_scene is None else None


def generate_people_dialogue(rng: random.Random, kinds: tuple[str, ...] = PEOPLE_KINDS, n_turns: int | None = None) -> Dialogue:
    """A drawing (or an upload) and then `n_turns` turns (2..7), about half of them of `kinds`
    ("it", several edits, all/both, relative places, yes/no, praise), the rest ordinary edits,
    questions and honest turns, all on the latest image."""
    roll = rng.random()
    if roll < 0.1:
        turn, state = next_turn(rng, State(), rng.choice(["upload_edit", "upload_describe"]))
    elif roll < 0.3:
        turn = terse_draw_turn(rng)
        state = State(turn.reply_scene)
    else:
        turn, state = draw_turn(rng, State())
    turns = [turn]
    last = _last_after(turn, state.scene, None)
    for _ in range(n_turns or rng.randint(2, 7)):
        turn = None
        if state.pending is None and rng.random() < 0.5:
            kind = rng.choices(list(kinds), weights=[_PEOPLE_WEIGHTS.get(k, 5) for k in kinds])[0]
            turn = people_turn(rng, kind, state.scene, last)
            if turn is not None and turn.reply_scene is not None:
                state = State(turn.reply_scene)
        if turn is None:
            options = ["resolve"] if state.pending else [k for k in possible_kinds(state) if k in _PLAIN_LATER]
            kind = rng.choices(options, weights=[_PLAIN_LATER.get(k, 1) for k in options])[0]
            turn, state = next_turn(rng, state, kind)
        turns.append(turn)
        last = _last_after(turn, state.scene, last)
        asked = turn.meta.get("question")
        if asked and state.pending is None and rng.random() < 0.35:  # "and the cat?" right after a question
            follow = followup_question_turn(rng, state.scene, asked, turn.meta.get("target"))
            if follow is not None:
                turns.append(follow)
    if state.pending is not None:
        turns.append(next_turn(rng, state, "resolve")[0])
    return Dialogue(turns)


def generate_people_turn(rng: random.Random, kind: str) -> Dialogue:
    """A short dialogue that ends with one turn of a `PEOPLE_KINDS` kind, for evals: a drawing
    (with a repeated class half the time), for "it" an edit that names the object first, then
    the turn."""
    for _ in range(200):
        turn, state = draw_turn(rng, State(), random_scene(rng, repeat_prob=0.5 if rng.random() < 0.5 else 0.0))
        turns = [turn]
        last = _last_after(turn, state.scene, None)
        if kind == "pronoun_edit":
            options = [k for k in possible_kinds(state) if k in ("replace", "add", "move")]
            turn, state = next_turn(rng, state, rng.choice(options), allow_clarify=False)
            turns.append(turn)
            last = _last_after(turn, state.scene, last)
        final = people_turn(rng, kind, state.scene, last)
        if final is not None:
            return Dialogue(turns + [final])
    raise ValueError(f"found no scene for kind={kind!r}")
