"""Turns in words, as people put them once a conversation is going: yes/no questions ("is the
dog on the left?"), questions in looser words ("how many things have we got?"), drawings asked
for in a few words ("dog left, cat right, snowy"), praise, and things the world does not have.

The answers stay in the world's canonical wording (`replies.py`). `people_turns.py` mixes
these turns with edits into whole dialogues.
"""

from __future__ import annotations

import random
import re

from chatgen.scene_text import answer_at, yes_no
from chatgen.world.dialogue import WorldTurn
from chatgen.world.message_style import style
from chatgen.world.replies import (
    NUMBERS, answer_background, answer_count, answer_question, answer_where, draw_reply, join, out_of_world_reply, with_article,
)
from chatgen.world.scene import BACKGROUNDS, CLASSES, COLS, GRID, ROWS, Obj, Scene, plural, random_scene, slots_of
from chatgen.world.user_phrasing import place_variants, say_out_of_world, say_ref

# Things the world cannot draw beyond `user_phrasing.OUT_OF_WORLD`, so a refusal learns to name whatever was asked for.
UNKNOWN_THINGS: tuple[str, ...] = (
    "zebra", "kangaroo", "octopus", "whale", "dolphin", "turtle", "spider", "bee", "ladybug", "camel", "koala", "wolf",
    "deer", "duck", "goat", "parrot", "eagle", "crab", "squirrel", "hedgehog", "mouse", "snail", "llama", "hippo",
    "rhino", "gorilla", "volcano", "bridge", "lighthouse", "windmill", "tent", "bus", "tractor", "helicopter",
    "motorbike", "submarine", "spaceship", "skateboard", "kite", "tower", "pyramid", "island", "mountain", "rainbow",
    "snowman", "ghost", "witch", "wizard", "princess", "pirate", "knight", "clown", "astronaut", "mermaid", "fairy",
    "teddy bear", "chair", "table", "lamp", "clock", "phone", "book", "pencil", "cup", "bottle", "hat", "shoe",
    "sandwich", "burger", "donut", "cookie", "ice cream", "carrot", "strawberry", "pumpkin", "lemon", "cherry",
    "piano", "drum", "violin", "candle", "present", "crown", "sword", "shield", "anchor", "key", "ring", "heart",
)
PRAISE_REPLY = "Glad you like it! Tell me what to change next."
PRAISE_WORDINGS = ("nice", "cool", "wow", "love it", "looks great", "perfect", "haha nice", "good job", "that's cute",
                   "awesome", "great", "ok cool", "i like it", "beautiful", "very nice", "amazing", "sweet", "neat")


def make_turn(user: str, reply: str, scene: Scene | None, kind: str, **meta) -> WorldTurn:
    return WorldTurn(user, None, reply, scene, kind, meta)


# ---- yes/no questions -----------------------------------------------------------------------

_BG_IS = {"grass": ("on grass", "on the grass", "grassy"), "sky": ("in the sky", "up in the sky"), "beach": ("on the beach", "at the beach"),
          "snow": ("in the snow", "snowy"), "night": ("at night", "nighttime", "dark"), "sea": ("at sea", "on the sea", "on the water")}


def asked_area(slot: tuple[int, int], where: str) -> set[tuple[int, int]]:
    """The slots a question's place words mean: "on the right" is the right side (any row), as
    people mean it; "in the middle right" or "top left" one slot."""
    r, c = slot
    side = (r == 1) != (c == 1) and not re.search(r"middle|cent", where)
    return set(slots_of(COLS[c] if r == 1 else ROWS[r])) if side else {slot}


def yesno_turn(rng: random.Random, scene: Scene, last: Obj | None) -> WorldTurn:
    """"is the dog on the left?", "are there two cats?", "is it snowy?", "is the fox gone?": the
    answer starts with Yes or No and then says what is there."""
    kind = rng.choices(["place", "count", "background", "still", "gone"], weights=[35, 25, 15, 15, 10])[0]
    present = [o.cls for o in scene.objects]
    if rng.random() < 0.06:
        name = rng.choice(UNKNOWN_THINGS)
        text = rng.choice(["is there {a}", "do you see {a}", "is there {a} in it", "any {a} in the picture"]).format(a=with_article(name))
        return make_turn(style(rng, text, question=True), f"No, there is no {name}.", None, "yesno", question="unknown", target=name)
    cls = rng.choice(present) if present and rng.random() < 0.75 else rng.choice(CLASSES)
    ref = "it" if last is not None and last.cls == cls and scene.at(*last.slot) == last and rng.random() < 0.3 else f"the {cls}"
    if kind == "place":
        found = scene.find(cls)
        slot = rng.choice([o.slot for o in found]) if found and rng.random() < 0.5 else (rng.randrange(GRID), rng.randrange(GRID))
        where = rng.choice(place_variants(*slot))
        text = rng.choice(["is {r} {p}", "is {r} still {p}", "{r} is {p}, right", "is {r} {p} now", "did {r} end up {p}",
                           "is there a {c} {p}", "so {r} is {p}?", "{r} is {p}, isn't it", "{r}'s {p}, yeah", "{r} is {p}, correct",
                           "{r} is still {p}, no", "{p} is {r}, right", "am i right that {r} is {p}"]).format(r=ref, p=where, c=cls)
        area = asked_area(slot, where)
        hit = [o for o in found if o.slot in area]
        if not found:
            reply = f"No, there is no {cls}."
        elif hit:
            reply = f"Yes, the {cls} is {hit[0].phrase}." if len(found) == 1 else f"Yes, there is {with_article(cls)} {hit[0].phrase}."
        else:
            reply = yes_no(False, answer_where(scene, cls))
    elif kind == "count":
        n = scene.count(cls) if rng.random() < 0.45 else rng.randint(1, 3)
        said = NUMBERS[n] if rng.random() < 0.75 else str(n)
        text = (rng.choice(["is there only one {c}", "just one {c}", "is there exactly one {c}", "only one {c}, right"]).format(c=cls) if n == 1
                else rng.choice(["are there {k} {cs}", "are there exactly {k} {cs}", "do you see {k} {cs}", "so there are {k} {cs}",
                                 "{k} {cs} now?", "are there {k} {cs} now", "there are {k} {cs}, aren't there", "{k} {cs}, yeah",
                                 "so that's {k} {cs}, right", "we have {k} {cs} now, correct"]).format(k=said, cs=plural(cls)))
        reply = yes_no(scene.count(cls) == n, answer_count(scene, cls))
    elif kind == "background":
        bg = scene.background if rng.random() < 0.5 else rng.choice(BACKGROUNDS)
        text = rng.choice([f"is the background {bg}", f"is it {rng.choice(_BG_IS[bg])}", f"is it {rng.choice(_BG_IS[bg])} now",
                           f"is this {rng.choice(_BG_IS[bg])}", f"still {rng.choice(_BG_IS[bg])}?"])
        reply = yes_no(scene.background == bg, answer_background(scene))
    elif kind == "still":
        text = rng.choice(["is {r} still there", "is there still a {c}", "do we still have a {c}", "is {r} still in the picture",
                           "still got a {c}?", "is there a {c} anymore"]).format(r=ref, c=cls, cs=plural(cls))
        reply = yes_no(scene.count(cls) > 0, answer_count(scene, cls))
    else:
        text = rng.choice(["is {r} gone", "is {r} gone now", "did {r} go away", "has {r} disappeared", "is {r} removed"]).format(r=ref)
        reply = yes_no(scene.count(cls) == 0, answer_count(scene, cls))
    return make_turn(style(rng, text, question=True), reply, None, "yesno", question=kind, target=cls)


# ---- questions and drawings in fewer, looser words ----------------------------------------------

_ASK_FORMS = {
    "ask_count": ("how many {t} have we got", "how many {t} altogether", "how many {t} in total",
                  "what's the count of {t}", "number of {t} now?", "and how many {t}", "how many {t} do we have now", "{t}: how many?",
                  "how many {t} at this point", "tell me how many {t} there are", "how many {t} does it have"),
    "ask_where": ("where is the {x} now", "where's the {x} at", "which side is the {x} on", "tell me where the {x} is",
                  "and the {x}, where is it", "so where's the {x}", "where abouts is the {x}", "where can i see the {x}", "what spot is the {x} in"),
    "ask_what": ("what have we got now", "what's in the picture at this point", "what does it look like now", "list everything",
                 "what's in the pic", "so what's in there", "what have you drawn", "tell me everything in it", "what things are there",
                 "describe it for me", "what's on it now"),
    "ask_background": ("what background is it now", "where are they now", "what's behind them", "what setting is it",
                       "what's the scenery now", "which background did you use", "what's the backdrop"),
    "ask_is_there": ("is there any {x} at all", "got a {x} in there?", "do i see a {x}", "is a {x} in there", "has it got a {x}"),
}


_COUNT_ALL = ("how many now", "how many are there now", "how many in total now", "count them for me", "how many altogether now",
              "and how many now", "how many is that", "so how many now")


def question_turn_people(rng: random.Random, scene: Scene) -> WorldTurn:
    """A question as people ask it mid-conversation ("how many things now?", "where'd the dog go"),
    with the canonical answer about the latest picture."""
    if rng.random() < 0.15:
        return ask_at_turn(rng, scene)
    kind = rng.choices(list(_ASK_FORMS), weights=[30, 25, 15, 10, 10])[0]
    present = [o.cls for o in scene.objects]
    x = rng.choice(present) if present and rng.random() < 0.8 else rng.choice(CLASSES)
    target = x
    t = plural(x)
    if kind == "ask_count" and rng.random() < 0.4:
        target = rng.choice(["objects", "animals", "plants", "vehicles", "objects"])
        t = "things" if target == "objects" else target
    forms = _ASK_FORMS[kind]
    if kind == "ask_count" and target == "objects" and rng.random() < 0.4:
        forms = _COUNT_ALL  # "how many now?": the things in the picture
    text = rng.choice(forms).format(x=x, t=t)
    target = None if kind in ("ask_what", "ask_background") else target
    return make_turn(style(rng, text, question=True), answer_question(scene, kind, target), None, "question", question=kind, target=target)


_AT_FORMS = ("what is {p}", "anything {p}?", "what did you put {p}", "what's there {p}", "and {p}?",
             "what have we got {p}", "tell me what's {p}", "whats {p} now", "is anything {p}", "what can i see {p}")


def ask_at_turn(rng: random.Random, scene: Scene) -> WorldTurn:
    """"what's in the top right?", "anything at the bottom?": what is in that place, each thing at
    its own place, or "There is nothing in the top right."."""
    taken = [o.slot for o in scene.objects]
    slot = rng.choice(taken) if taken and rng.random() < 0.7 else (rng.randrange(GRID), rng.randrange(GRID))
    where = rng.choice([v for v in place_variants(*slot) if v.split()[0] in ("in", "on", "at")])
    text = rng.choice(_AT_FORMS).format(p=where)
    reply = answer_at(scene.objects, asked_area(slot, where), slot)
    return make_turn(style(rng, text, question=True), reply, None, "question", question="ask_at", target=None)


_FOLLOW = {
    "ask_count": ("and {ts}?", "what about {ts}?", "and how about {ts}", "and the {ts}?", "{ts}?", "ok and {ts}"),
    "ask_where": ("and the {t}?", "what about the {t}?", "and the {t}, where?", "how about the {t}", "ok and the {t}", "the {t}?"),
    "ask_is_there": ("and {a}?", "what about {a}?", "and any {ts}?", "how about {a}", "or {a}?"),
}
_FOLLOW_BACKGROUND = ("and the background?", "what about the background?", "and the setting?", "and what's behind them?", "and the backdrop?")


def followup_question_turn(rng: random.Random, scene: Scene, kind: str, target: str | None) -> WorldTurn | None:
    """A question in a few words that means the last question again about something else:
    after "how many dogs?", "and cats?"; after "where is the dog?", "what about the cat?"; after
    either, "and the background?". None when the last question has no such follow-up."""
    if rng.random() < 0.2 or kind in ("ask_what", "ask_background"):
        if kind == "ask_background":
            return None
        return make_turn(style(rng, rng.choice(_FOLLOW_BACKGROUND), question=True), answer_background(scene), None, "question",
                         question="ask_background", target=None, followup=True)
    if kind not in _FOLLOW:
        return None
    present = [o.cls for o in scene.objects if o.cls != target]
    other = rng.choice(present) if present and rng.random() < 0.75 else rng.choice([c for c in CLASSES if c != target])
    text = rng.choice(_FOLLOW[kind]).format(t=other, ts=plural(other), a=with_article(other))
    return make_turn(style(rng, text, question=True), answer_question(scene, kind, other), None, "question", question=kind, target=other, followup=True)


_BG_ADJ = {"grass": ("grassy", "on grass", "in a field"), "sky": ("in the sky", "sky background", "up in the sky"),
           "beach": ("at the beach", "beachy", "on the sand"), "snow": ("snowy", "in the snow", "wintery"),
           "night": ("at night", "nighttime", "night sky"), "sea": ("at sea", "on the water", "ocean")}


def terse_draw_turn(rng: random.Random) -> WorldTurn:
    """A drawing asked for in few words: "dog left, cat right, snowy please", "just a boat at sea"."""
    scene = random_scene(rng)
    parts = []
    for o in rng.sample(list(scene.objects), len(scene.objects)):
        place = rng.choice([p for p in place_variants(*o.slot) if len(p.split()) <= 3])
        parts.append(f"{o.cls if rng.random() < 0.6 else with_article(o.cls)} {place}")
    objs = ", ".join(parts) if rng.random() < 0.6 else join(parts)
    bg = rng.choice(_BG_ADJ[scene.background])
    text = rng.choice(["{o}, {b}", "{o}, {b} please", "{o} - {b}", "{b}: {o}", "just {o}, {b}", "{o} ({b})", "ok {o}, {b}", "{o}. {b}"]).format(o=objs, b=bg)
    return WorldTurn(style(rng, text), None, draw_reply(scene), scene, "draw", {"explicit_places": True, "explicit_background": True, "terse": True})


def praise_turn(rng: random.Random) -> WorldTurn:
    """"nice!", "love it": a thank-you and an invitation, never a picture."""
    return make_turn(style(rng, rng.choice(PRAISE_WORDINGS)), PRAISE_REPLY, None, "praise")


_SYLLABLES = ("ba", "blo", "da", "fen", "gar", "glim", "ko", "lu", "mar", "nop", "pim", "quo", "ra", "snu", "tef",
              "vo", "wib", "zan", "zor", "ki", "mo", "trel", "dax", "yun", "esh", "ol", "ul", "ink", "rop", "fli")


def _distance(a: str, b: str) -> int:
    """Levenshtein distance (short words only)."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def made_up_word(rng: random.Random) -> str:
    """A word nobody has a picture for ("glimzor", "tefoldax"), at least 3 edits from every
    class name and other word for one, so it is never read as a typo of a thing the world has:
    a refusal trained on these learns to copy the name it was given, not to recall a list."""
    from chatgen.world.people_words import CLASS_WORDS

    known = [w for c in CLASSES for w in (c, *CLASS_WORDS[c])] + list(BACKGROUNDS)
    while True:
        word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
        if len(word) >= 4 and all(_distance(word, k) >= 3 for k in known):
            return word


def unknown_thing_turn(rng: random.Random, scene: Scene) -> WorldTurn:
    """A drawing, an add or a replace with a thing the world does not have: the refusal names
    it. Half the names are made up (`made_up_word`)."""
    name = rng.choice(UNKNOWN_THINGS) if rng.random() < 0.5 else made_up_word(rng)
    request = rng.choice(["draw", "add", "replace"] if scene.objects else ["draw", "add"])
    ref = say_ref(rng, rng.choice(scene.objects), False) if request == "replace" else None
    text = say_out_of_world(rng, name, request, ref=ref)
    return make_turn(style(rng, text, typo_rate=0.0), out_of_world_reply(name), None, "unknown_thing", cls=name)
