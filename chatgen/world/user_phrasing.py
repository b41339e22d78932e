"""How users word their requests in the scene world: many wordings per intent.

Each `say_*` function picks one wording with the `random.Random` passed in: drawing
requests, edits, questions, answers to a clarifying question, uploads and requests for
things outside the world. Places are said in many ways too (`place_variants`), all
following the one mapping of `replies.py` ("left" is the middle left slot, "top left" a
corner). Casing, punctuation and typos come afterwards, from `message_style.style`.
"""

from __future__ import annotations

import random

from chatgen.world.edits import Edit
from chatgen.world.replies import NUMBERS, join, with_article
from chatgen.world.scene import CATEGORIES, COLS, ROWS, Obj, plural

# Things people ask for that the world cannot draw.
OUT_OF_WORLD: tuple[str, ...] = (
    "giraffe", "elephant", "airplane", "robot", "pizza", "dragon", "lion", "tiger", "horse",
    "cow", "pig", "sheep", "monkey", "penguin", "dinosaur", "unicorn", "train", "truck",
    "rocket", "castle", "guitar", "umbrella", "banana", "cake", "computer", "shark", "owl",
    "butterfly", "snake", "mushroom",
)


def place_variants(row: int, col: int) -> list[str]:
    """Ways to say where: "on the left", "in the top right corner", "top right", ..."""
    if (row, col) == (1, 1):
        return ["in the center", "in the middle", "center", "in the middle of the picture", "in the centre"]
    if row == 1:
        c = COLS[col]
        return [f"on the {c}", f"on the {c} side", f"at the {c}", f"in the middle {c}", f"middle {c}", c]
    if col == 1:
        r = ROWS[row]
        return [f"at the {r}", f"in the {r} center", f"at the {r} middle", f"{r} center", f"at the {r} of the picture"]
    r, c = ROWS[row], COLS[col]
    up = {"top": "upper", "bottom": "lower"}[r]
    return [f"in the {r} {c}", f"{r} {c}", f"at the {r} {c}", f"in the {r} {c} corner", f"in the {up} {c}", f"{r}-{c}"]


def to_variants(row: int, col: int) -> list[str]:
    """Ways to say where to: "to the left", "to the top right corner", ..."""
    out = []
    for p in place_variants(row, col):
        words = p.split()
        if words[0] in ("on", "in", "at"):
            out.append("to " + " ".join(words[1:]))
        elif p in ("center",):
            out.append("to the center")
        else:
            out.append("to the " + p)
    return list(dict.fromkeys(out))


def adjective_variants(row: int, col: int) -> list[str]:
    """Words before a noun: "the left dog", "the top right dog"."""
    if (row, col) == (1, 1):
        return ["center", "middle"]
    if row == 1:
        return [COLS[col], f"middle {COLS[col]}"]
    if col == 1:
        return [ROWS[row], f"{ROWS[row]} center"]
    r, c = ROWS[row], COLS[col]
    up = {"top": "upper", "bottom": "lower"}[r]
    return [f"{r} {c}", f"{up} {c}", f"{r}-{c}"]


def say_ref(rng: random.Random, obj: Obj, with_place: bool) -> str:
    """How the user points at an object: "the dog", "the dog on the left", "the left dog"."""
    if not with_place:
        return f"the {obj.cls}"
    if rng.random() < 0.6:
        places = [p for p in place_variants(obj.row, obj.col) if p.split()[0] in ("on", "in", "at")]
        return f"the {obj.cls} {rng.choice(places)}"
    return f"the {rng.choice(adjective_variants(obj.row, obj.col))} {obj.cls}"


# Background wordings.
_BG_WHERE: dict[str, list[str]] = {
    "grass": ["on grass", "on the grass", "on a grass background", "with a grass background", "in a grassy field", "on a green lawn", "in a meadow"],
    "sky": ["in the sky", "on a sky background", "with a sky background", "against a blue sky", "with a blue sky behind", "up in the sky"],
    "beach": ["on the beach", "at the beach", "on a beach background", "on sand", "on the sand", "with a beach background"],
    "snow": ["in the snow", "on snow", "on a snowy background", "with a snow background", "in winter snow", "on white snow"],
    "night": ["at night", "at nighttime", "on a night background", "in the night", "under the night sky", "with a night background"],
    "sea": ["at sea", "on the sea", "on the ocean", "on a sea background", "on water", "over the sea"],
}
BG_SCENE_WORDS: dict[str, list[str]] = {
    "grass": ["grassy", "grass", "meadow"], "sky": ["sky", "blue sky"], "beach": ["beach", "sandy"],
    "snow": ["snowy", "snow", "winter"], "night": ["night", "nighttime"], "sea": ["sea", "ocean"],
}
_BG_CHANGE: dict[str, list[str]] = {
    "grass": ["make it grassy", "put it on grass", "now on grass", "move it to the grass", "put everything on the grass"],
    "sky": ["put it in the sky", "now in the sky", "make the sky the background", "move everything to the sky"],
    "beach": ["put it on the beach", "now at the beach", "move everything to the beach", "make it a beach"],
    "snow": ["make it snowy", "now in the snow", "put it in the snow", "make it winter", "let it snow"],
    "night": ["make it night", "now at night", "make it nighttime", "turn it into night", "make it dark"],
    "sea": ["put it at sea", "now on the sea", "make it the ocean", "move it to the sea", "put everything on the water"],
}
_BG_NOUN: dict[str, str] = {"grass": "grass", "sky": "the sky", "beach": "the beach", "snow": "snow", "night": "night", "sea": "the sea"}
_BG_GENERIC = [
    "change the background to {noun}", "make the background {bg}", "switch the background to {noun}",
    "set the background to {bg}", "use a {bg} background", "change the background to {bg}",
]
_BG_GENERIC_STATEMENT = ["i want a {bg} background", "{bg} background instead", "background: {bg}", "the background should be {bg}"]

_DRAW_VERBS = [
    "draw", "paint", "make", "create", "show me", "generate", "sketch", "give me", "render",
    "draw me", "paint me", "make me", "picture", "illustrate",
]
_DRAW_STATEMENT_VERBS = ["i want", "i'd like", "i would like", "let's see", "i need"]
_LEAD_VERBS = ["put", "draw", "place", "paint", "i want", "add"]

# Request wrappers for imperative wordings.
_POLITE = [
    ("{x}", 40), ("please {x}", 8), ("{x} please", 6), ("can you {x}?", 8), ("could you {x}?", 5),
    ("{x}, thanks", 3), ("{x}, thank you", 2), ("please, {x}", 2), ("can you please {x}?", 3),
    ("would you {x}?", 2), ("ok, {x}", 2), ("hey, {x}", 2), ("now {x}", 4), ("{x} now", 2),
    ("please {x} please", 1), ("i'd like you to {x}", 2),
]


def _polite(rng: random.Random, core: str, allow_now: bool = True) -> str:
    """`core` in a request wrapper of _POLITE ("can you ...?"); `allow_now`: also the "now" ones."""
    forms = [(f, w) for f, w in _POLITE if allow_now or "now" not in f]
    form = rng.choices([f for f, _ in forms], weights=[w for _, w in forms])[0]
    return form.format(x=core)


def say_objects(rng: random.Random, mentions: list[tuple[str, tuple[int, int] | None]]) -> str:
    """An object list: "a dog on the left and a cat top right" or "two dogs and a cat"."""
    parts: list[str] = []
    i = 0
    while i < len(mentions):
        cls, slot = mentions[i]
        j = i
        while j + 1 < len(mentions) and mentions[j + 1][0] == cls:
            j += 1
        group = mentions[i : j + 1]
        if slot is None and len(group) > 1:
            parts.append(f"{NUMBERS[len(group)]} {plural(cls)}")  # "two dogs"
            i = j + 1
            continue
        if slot is not None and len(group) > 1 and rng.random() < 0.3:
            places = [rng.choice(place_variants(*s)) for _, s in group]  # "two dogs, one on the left and one at the top"
            parts.append(f"{NUMBERS[len(group)]} {plural(cls)}, " + join([f"one {p}" for p in places]))
            i = j + 1
            continue
        parts.append(with_article(cls) if slot is None else f"{with_article(cls)} {rng.choice(place_variants(*slot))}")
        i += 1
    if len(parts) > 2 and rng.random() < 0.3:
        return ", ".join(parts)
    if len(parts) > 1 and rng.random() < 0.15:
        return ", ".join(parts[:-1]) + ", and " + parts[-1]
    return join(parts)


def say_draw(rng: random.Random, mentions: list[tuple[str, tuple[int, int] | None]], background: str | None) -> str:
    """A drawing request for these mentions (class, slot or None) and background (None:
    the user does not say)."""
    objs = say_objects(rng, mentions)
    where = rng.choice(_BG_WHERE[background]) if background else ""
    tail = "" if not where else rng.choice([" ", " ", ", "]) + where
    roll = rng.random()
    if background and roll < 0.2:
        return f"{where}, {rng.choice(_LEAD_VERBS)} {objs}"  # "on a grass background, put a dog left"
    if background and roll < 0.32:
        kind = rng.choice(["scene", "picture", "image"])
        verb = rng.choice(_DRAW_VERBS[:6])  # picked before the setting: the random stream is fixed
        setting = with_article(rng.choice(BG_SCENE_WORDS[background]))  # "a snowy"
        return _polite(rng, f"{verb} {setting} {kind} with {objs}", False)
    if roll < 0.42:
        return f"{rng.choice(_DRAW_STATEMENT_VERBS)} {objs}{tail}"
    if roll < 0.5:
        return f"{rng.choice(['a picture of', 'an image of', 'a drawing of'])} {objs}{tail}"
    if roll < 0.54:
        return f"{objs}{tail}"
    return _polite(rng, f"{rng.choice(_DRAW_VERBS)} {objs}{tail}", False)


def say_replace(rng: random.Random, ref: str, new_cls: str) -> str:
    """"make the dog a cat", "turn the dog into a cat", ..."""
    n = with_article(new_cls)
    imperative = [
        f"make {ref} {n}", f"turn {ref} into {n}", f"swap {ref} for {n}", f"replace {ref} with {n}",
        f"change {ref} to {n}", f"change {ref} into {n}", f"transform {ref} into {n}", f"switch {ref} to {n}",
        f"draw {n} instead of {ref}", f"put {n} where {ref} is", f"exchange {ref} for {n}",
        f"swap out {ref} for {n}", f"make {ref} into {n}",
    ]
    statement = [f"i want {n} instead of {ref}", f"{ref} should be {n}", f"{n} instead of {ref}", f"let {ref} be {n}"]
    if rng.random() < 0.2:
        return rng.choice(statement)
    return _polite(rng, rng.choice(imperative))


def say_add(rng: random.Random, cls: str, slot: tuple[int, int] | None) -> str:
    """"add a cat", "put a cat in the top right", ..."""
    n = with_article(cls)
    p = "" if slot is None else " " + rng.choice(place_variants(*slot))
    imperative = [f"add {n}{p}", f"put {n}{p}", f"place {n}{p}", f"also draw {n}{p}", f"draw {n}{p} too",
                  f"insert {n}{p}", f"add {n}{p} as well", f"paint {n}{p}"]
    statement = [f"i want {n}{p} too", f"and {n}{p}", f"there should be {n}{p}", f"{n}{p} as well", f"now {n}{p}"]
    if rng.random() < 0.2:
        return rng.choice(statement)
    return _polite(rng, rng.choice(imperative))


def say_remove(rng: random.Random, ref: str) -> str:
    """"remove the dog", "get rid of the dog", ..."""
    imperative = [f"remove {ref}", f"delete {ref}", f"take away {ref}", f"get rid of {ref}", f"erase {ref}",
                  f"take out {ref}", f"drop {ref}", f"remove {ref} from the picture", f"make {ref} disappear"]
    statement = [f"i don't want {ref}", f"{ref} has to go", f"without {ref}"]
    if " " not in ref[4:]:  # "the dog", not "the dog on the left"
        statement.append(f"no more {ref[4:]}")
    if rng.random() < 0.15:
        return rng.choice(statement)
    return _polite(rng, rng.choice(imperative))


def say_move(rng: random.Random, ref: str, to: tuple[int, int]) -> str:
    """"move the dog to the right", "put the dog in the bottom left", ..."""
    go = rng.choice(to_variants(*to))
    at = rng.choice([p for p in place_variants(*to) if p.split()[0] in ("on", "in", "at")])
    imperative = [f"move {ref} {go}", f"put {ref} {at}", f"shift {ref} {go}", f"place {ref} {at}",
                  f"drag {ref} {go}", f"move {ref} over {go}", f"bring {ref} {go}"]
    statement = [f"{ref} should be {at}", f"i want {ref} {at}"]
    if rng.random() < 0.15:
        return rng.choice(statement)
    return _polite(rng, rng.choice(imperative))


def say_background(rng: random.Random, bg: str) -> str:
    """"make it snowy", "change the background to the beach", "now at night", ..."""
    roll = rng.random()
    if roll < 0.4:
        return _polite(rng, rng.choice(_BG_CHANGE[bg]), allow_now=False)
    if roll < 0.8:
        return _polite(rng, rng.choice(_BG_GENERIC).format(bg=bg, noun=_BG_NOUN[bg]))
    return rng.choice(_BG_GENERIC_STATEMENT).format(bg=bg)


def say_question(rng: random.Random, kind: str, target: str | None, upload: bool = False) -> str:
    """A question of one kind about a class or category `target`."""
    pic = "this picture" if upload else "the picture"
    img = "this image" if upload else "the image"
    if kind == "ask_what":
        forms = [f"what's in {pic}", f"what is in {img}", f"describe {pic}", "what do you see", f"describe {img}",
                 f"tell me what is in {pic}", f"what does {img} show", "what's there", f"what is shown in {pic}",
                 f"can you describe {pic}", "describe it", f"what's in {img}"]
        if upload:
            forms += ["what is this", "what do you see here", "tell me what this image shows"]
        return rng.choice(forms)
    if kind == "ask_background":
        forms = ["what is the background", "what's the background", "where is this", "what's the setting",
                 "which background is it", f"what background does {pic} have", f"what's the background of {img}",
                 "what is the scenery", "where are we"]
        return rng.choice(forms)
    assert target is not None
    if kind == "ask_count":
        t = "things" if target == "objects" and rng.random() < 0.5 else (target if target in CATEGORIES else plural(target))
        forms = [f"how many {t} are there", f"how many {t}", f"count the {t}", f"how many {t} do you see",
                 f"how many {t} are in {pic}", f"how many {t} can you see", f"number of {t}", f"how many {t} are in {img}"]
        return rng.choice(forms)
    if kind == "ask_where":
        forms = [f"where is the {target}", f"where's the {target}", f"where is the {target} in {pic}",
                 f"in which part is the {target}", f"where did you put the {target}", f"where can i find the {target}",
                 f"where's the {target} located"]
        return rng.choice(forms)
    if kind == "ask_is_there":
        one = with_article(target)  # "a dog"
        forms = [f"is there {one}", f"is there {one} in {pic}", f"do you see {one}",
                 f"are there any {plural(target)}", f"any {plural(target)}", f"does {pic} have {one}",
                 f"can you see {one}", f"is there {one} in {img}"]
        return rng.choice(forms)
    raise ValueError(f"kind={kind!r} is not a question kind")


def label_phrase(label: str) -> str:
    """"left" -> "on the left", "top" -> "at the top", "top left" -> "in the top left"."""
    if label in ("left", "right"):
        return f"on the {label}"
    if label in ("top", "bottom"):
        return f"at the {label}"
    return f"in the {label}"


def say_resolve(rng: random.Random, label: str, cls: str) -> str:
    """Answer to "Which dog, ...?": "the left one", "left", "the one on the right", ..."""
    forms = [f"the {label} one", f"the {label} {cls}", label, f"the {label}", f"the one {label_phrase(label)}",
             f"{label} one", f"i mean the {label} one", f"the {cls} {label_phrase(label)}", f"the {label} one please",
             f"{label_phrase(label)}", f"the one {label_phrase(label)}, please"]
    return rng.choice(forms)


def say_out_of_world(rng: random.Random, name: str, request: str, ref: str | None = None,
                     background: str | None = None) -> str:
    """A request for something outside the world: draw / add / replace with `name`."""
    thing = with_article(name)  # "a giraffe"
    if request == "draw":
        where = "" if background is None else " " + rng.choice(_BG_WHERE[background])
        return say_draw_core(rng, f"{thing}{where}")
    if request == "add":
        return rng.choice([f"add {thing}", f"put {thing} in the picture", f"can you add {thing}?",
                           f"i want {thing} too", f"add {thing} please"])
    assert ref is not None
    return rng.choice([f"make {ref} {thing}", f"turn {ref} into {thing}", f"replace {ref} with {thing}",
                       f"change {ref} to {thing}"])


def say_draw_core(rng: random.Random, what: str) -> str:
    """A drawing request for a free-form `what` ("a giraffe on the beach")."""
    if rng.random() < 0.2:
        return f"{rng.choice(_DRAW_STATEMENT_VERBS)} {what}"
    return _polite(rng, f"{rng.choice(_DRAW_VERBS)} {what}", False)


_UPLOAD_PREFIX = ["", "", "here is a picture. ", "look at this image: ", "i uploaded an image. ",
                  "this is my picture. ", "check this out: ", "here's my drawing. ", "see this image. "]


def say_upload(rng: random.Random, core: str) -> str:
    """A message that comes with an uploaded image."""
    return rng.choice(_UPLOAD_PREFIX) + core


def say_edit(rng: random.Random, edit: Edit, with_place: bool, ref_suffix: str = "") -> str:
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
