"""How people word things and how the assistant answers, for the scene world.

Two halves:

* canonical assistant texts (`describe`, `draw_reply`, `answer_*`, `clarify_question`,
  `out_of_world_reply`): one fixed wording per fact, so a model can learn them exactly and
  evals can compare strings;
* user phrasings (`say_*`): many wordings per intent, picked with a `random.Random`, plus
  `style` for casing, punctuation, politeness and the occasional typo.

Places always follow one mapping. A single word names the middle of that edge ("left" is
the middle left slot, "top" the top center slot), "center" is the middle slot, two words
name a corner ("top left"). The same words appear in every text the assistant writes.
"""

from __future__ import annotations

import random

from chatgen.world.scene import (
    BACKGROUNDS, CATEGORIES, CLASSES, COLS, ROWS, Obj, Scene, article, plural, slot_name,
)

# Things people ask for that the world cannot draw.
OUT_OF_WORLD: tuple[str, ...] = (
    "giraffe", "elephant", "airplane", "robot", "pizza", "dragon", "lion", "tiger", "horse",
    "cow", "pig", "sheep", "monkey", "penguin", "dinosaur", "unicorn", "train", "truck",
    "rocket", "castle", "guitar", "umbrella", "banana", "cake", "computer", "shark", "owl",
    "butterfly", "snake", "mushroom",
)

NUMBERS = ("no", "one", "two", "three", "four")

# Canonical background phrase used after an object list: "..., on grass."
BG_PHRASE: dict[str, str] = {
    "grass": "on grass", "sky": "in the sky", "beach": "on the beach",
    "snow": "in the snow", "night": "at night", "sea": "at sea",
}

_CATEGORY_SINGULAR = {"animals": "animal", "plants": "plant", "vehicles": "vehicle", "objects": "object"}


# ---- canonical assistant texts -----------------------------------------------------------


def join(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def object_phrase(obj: Obj) -> str:
    """"a dog on the left"."""
    return f"{article(obj.cls)} {obj.cls} {obj.phrase}"


def describe(scene: Scene) -> str:
    """Canonical description: "There is a dog on the left and a tree in the top right, on
    grass." Objects in reading order; "There are no objects, only the grass background."
    for an empty scene."""
    if not scene.objects:
        return f"There are no objects, only the {scene.background} background."
    return f"There is {join([object_phrase(o) for o in scene.objects])}, {BG_PHRASE[scene.background]}."


def draw_reply(scene: Scene) -> str:
    """Reply to a drawing request: "Here is a dog on the left, on grass."."""
    if not scene.objects:
        return f"Here is an empty picture {BG_PHRASE[scene.background]}."
    return f"Here is {join([object_phrase(o) for o in scene.objects])}, {BG_PHRASE[scene.background]}."


def _noun(what: str, n: int) -> str:
    if what in CATEGORIES:
        return what if n != 1 else _CATEGORY_SINGULAR[what]
    return what if n == 1 else plural(what)


def answer_count(scene: Scene, what: str) -> str:
    """"There are two dogs." / "There is one animal." / "There are no cats."."""
    n = scene.count(what)
    return f"There is one {_noun(what, 1)}." if n == 1 else f"There are {NUMBERS[n]} {_noun(what, n)}."


def answer_where(scene: Scene, cls: str) -> str:
    """"The dog is on the left." / "There are dogs on the left and at the top." /
    "There is no dog."."""
    found = scene.find(cls)
    if not found:
        return f"There is no {cls}."
    if len(found) == 1:
        return f"The {cls} is {found[0].phrase}."
    return f"There are {plural(cls)} {join([o.phrase for o in found])}."


def answer_is_there(scene: Scene, cls: str) -> str:
    """"Yes, there is one dog." / "Yes, there are two dogs." / "No, there is no dog."."""
    n = scene.count(cls)
    if n == 0:
        return f"No, there is no {cls}."
    return f"Yes, {answer_count(scene, cls)[0].lower()}{answer_count(scene, cls)[1:]}"


def answer_background(scene: Scene) -> str:
    """"The background is grass."."""
    return f"The background is {scene.background}."


def answer_question(scene: Scene, kind: str, target: str | None = None) -> str:
    """The canonical answer to a question kind about a scene, without parsing any text.

    kind: ask_what | ask_count | ask_where | ask_is_there | ask_background. target: the
    class (or, for ask_count, a category in CATEGORIES) asked about.
    """
    if kind == "ask_what":
        return describe(scene)
    if kind == "ask_background":
        return answer_background(scene)
    if target is None:
        raise ValueError(f"kind={kind!r} needs a target class")
    if kind == "ask_count":
        return answer_count(scene, target)
    if kind == "ask_where":
        return answer_where(scene, target)
    if kind == "ask_is_there":
        return answer_is_there(scene, target)
    raise ValueError(f"kind={kind!r} is not a question kind")


def distinguishing_labels(objs: tuple[Obj, ...]) -> list[str]:
    """Shortest words that tell same-class objects apart: their columns ("left", "right")
    when those differ, else their rows ("top", "bottom"), else slot names ("top left")."""
    if len({o.col for o in objs}) == len(objs):
        return [COLS[o.col] for o in objs]
    if len({o.row for o in objs}) == len(objs):
        return [ROWS[o.row] for o in objs]
    return ["center" if o.slot == (1, 1) else slot_name(*o.slot) for o in objs]


def clarify_question(cls: str, labels: list[str]) -> str:
    """"Which dog, the left one or the right one?"."""
    options = [f"the {label} one" for label in labels]
    return f"Which {cls}, {', '.join(options[:-1])} or {options[-1]}?"


def out_of_world_reply(name: str) -> str:
    """"I can't draw a giraffe; I can draw: dog, cat, ..."."""
    return f"I can't draw {article(name)} {name}; I can draw: {', '.join(CLASSES)}."


def limit_reply(cls: str, reason: str) -> str:
    """Refusal of an add that breaks a scene limit."""
    if reason == "too_many_objects":
        return f"I can't add {article(cls)} {cls}: a picture holds at most 4 objects."
    return f"I can't add another {cls}: a picture holds at most 3 of one kind."


# ---- user phrasings ----------------------------------------------------------------------


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
_BG_SCENE: dict[str, list[str]] = {
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
    forms = [(f, w) for f, w in _POLITE if allow_now or "now" not in f]
    form = rng.choices([f for f, _ in forms], weights=[w for _, w in forms])[0]
    return form.format(x=core)


def _a(cls: str) -> str:
    return f"{article(cls)} {cls}"


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
        parts.append(_a(cls) if slot is None else f"{_a(cls)} {rng.choice(place_variants(*slot))}")
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
        return _polite(rng, f"{rng.choice(_DRAW_VERBS[:6])} {_a(rng.choice(_BG_SCENE[background]))} {kind} with {objs}", False)
    if roll < 0.42:
        return f"{rng.choice(_DRAW_STATEMENT_VERBS)} {objs}{tail}"
    if roll < 0.5:
        return f"{rng.choice(['a picture of', 'an image of', 'a drawing of'])} {objs}{tail}"
    if roll < 0.54:
        return f"{objs}{tail}"
    return _polite(rng, f"{rng.choice(_DRAW_VERBS)} {objs}{tail}", False)


def say_replace(rng: random.Random, ref: str, new_cls: str) -> str:
    """"make the dog a cat", "turn the dog into a cat", ..."""
    n = _a(new_cls)
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
    n = _a(cls)
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
        forms = [f"what is the background", "what's the background", "where is this", "what's the setting",
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
        forms = [f"is there {_a(target)}", f"is there {_a(target)} in {pic}", f"do you see {_a(target)}",
                 f"are there any {plural(target)}", f"any {plural(target)}", f"does {pic} have {_a(target)}",
                 f"can you see {_a(target)}", f"is there {_a(target)} in {img}"]
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
    if request == "draw":
        where = "" if background is None else " " + rng.choice(_BG_WHERE[background])
        return say_draw_core(rng, f"{_a(name)}{where}")
    if request == "add":
        return rng.choice([f"add {_a(name)}", f"put {_a(name)} in the picture", f"can you add {_a(name)}?",
                           f"i want {_a(name)} too", f"add {_a(name)} please"])
    assert ref is not None
    return rng.choice([f"make {ref} {_a(name)}", f"turn {ref} into {_a(name)}", f"replace {ref} with {_a(name)}",
                       f"change {ref} to {_a(name)}"])


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


# ---- style: casing, punctuation, typos ---------------------------------------------------

PROTECTED: frozenset[str] = frozenset(
    list(CLASSES) + [plural(c) for c in CLASSES] + list(OUT_OF_WORLD) + list(BACKGROUNDS)
    + [w for ws in _BG_SCENE.values() for w in ws] + list(CATEGORIES) + ["things"]
)


def typo(rng: random.Random, text: str) -> str:
    """One human typo (swap two letters, drop or double a letter) in one word of 4+ letters
    that is not a class, background or category name; the first letter is never touched."""
    words = text.split(" ")
    cands = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha() and w.lower() not in PROTECTED]
    if not cands:
        return text
    i = rng.choice(cands)
    w = words[i]
    k = rng.randrange(1, len(w) - 1)
    op = rng.choice(["swap", "drop", "double"])
    if op == "swap":
        w = w[:k] + w[k + 1] + w[k] + w[k + 2 :]
    elif op == "drop":
        w = w[:k] + w[k + 1 :]
    else:
        w = w[:k] + w[k] + w[k:]
    words[i] = w
    return " ".join(words)


def style(rng: random.Random, text: str, question: bool = False, typo_rate: float = 0.05) -> str:
    """Casing, end punctuation and the occasional typo of a user message."""
    # 1. Typo.
    if rng.random() < typo_rate:
        text = typo(rng, text)
    # 2. End punctuation ("can you ...?" already has its own).
    if not text.endswith("?"):
        if question:
            text += rng.choices(["?", "", " ?"], weights=[75, 22, 3])[0]
        else:
            text += rng.choices(["", ".", "!"], weights=[55, 33, 12])[0]
    # 3. Casing.
    roll = rng.random()
    if roll < 0.25:
        text = " ".join("I" if w == "i" else ("I" + w[1:] if w.startswith("i'") else w) for w in text.split(" "))
        text = text[0].upper() + text[1:]
    elif roll < 0.27:
        text = text.upper()
    return text
