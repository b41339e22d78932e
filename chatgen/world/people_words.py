"""How people write the same requests: other words for things, typos in any word, chatty wrappers.

`people_text` rewrites one user message of a generated dialogue after the fact, so the
generators' random streams (and every figure measured on them) stay as they are; training
applies it to a share of its dialogues (`--people-share`). The assistant's replies keep the
canonical words ("Done: the dog is now a cat."), so the model learns to map "doggo",
"kitty" or "catt" onto the class it draws.
"""

from __future__ import annotations

import random
import re

from chatgen.world.scene import CLASSES, plural

# Other words people use for each class (nicknames, diminutives, near synonyms the world draws the same).
CLASS_WORDS: dict[str, tuple[str, ...]] = {
    "dog": ("doggo", "puppy", "pup", "doggy", "doggie", "pooch"), "cat": ("kitty", "kitten", "kitty cat", "moggy"),
    "rabbit": ("bunny", "bunny rabbit", "hare"), "fox": ("little fox", "foxy"), "bear": ("grizzly", "brown bear"),
    "panda": ("panda bear", "giant panda"), "frog": ("froggy", "toad"), "chicken": ("hen", "chick", "rooster"),
    "bird": ("birdie", "little bird", "songbird"), "fish": ("fishy", "goldfish"), "tree": ("oak tree", "big tree"),
    "cactus": ("cactus plant", "succulent"), "flower": ("blossom", "daisy", "little flower"), "house": ("home", "cottage", "hut"),
    "car": ("auto", "automobile", "motor car"), "bicycle": ("bike", "cycle", "push bike"), "boat": ("ship", "sailboat", "dinghy"),
    "sun": ("sunshine", "bright sun"), "moon": ("crescent moon", "full moon"), "star": ("little star", "shining star"),
    "cloud": ("fluffy cloud", "raincloud"), "apple": ("red apple", "green apple"), "balloon": ("party balloon", "air balloon"),
    "ball": ("football", "soccer ball", "beach ball"),
}
# Other words for the backgrounds, as they appear inside the user's phrases.
BACKGROUND_WORDS: dict[str, tuple[str, ...]] = {
    "grass": ("meadow", "lawn", "field"), "sky": ("blue sky", "open sky"), "beach": ("seaside", "shore", "sandy beach"),
    "snow": ("winter snow", "snowfield"), "night": ("nighttime", "dark night"), "sea": ("ocean", "open sea", "waves"),
}
# Words of the world's background phrases ("on water", "on the sand", "make it dark") that name a background.
BACKGROUND_PHRASE_WORDS: dict[str, str] = {
    "water": "sea", "ocean": "sea", "sand": "beach", "sandy": "beach", "lawn": "grass", "field": "grass", "grassy": "grass",
    "meadow": "grass", "dark": "night", "nighttime": "night", "nite": "night", "winter": "snow", "snowy": "snow",
}


def aliases() -> dict[str, str]:
    """Every other word the world's people use for a class or background -> its name (a checkpoint's
    scene reader carries them, to read what a message names: `chatgen.reply_fit`)."""
    out = {w: c for c, ws in CLASS_WORDS.items() for w in ws} | {w: b for b, ws in BACKGROUND_WORDS.items() for w in ws}
    return out | {w: b for w, b in BACKGROUND_PHRASE_WORDS.items() if w not in out}


SPELLINGS: dict[str, str] = {"center": "centre", "color": "colour", "gray": "grey"}
WRAPPERS: tuple[str, ...] = (
    "hey! so i was wondering if you could {x}? thanks a lot", "ok next: {x}", "{x} pls", "could u {x}",
    "hmm, {x} maybe?", "so, um, {x}", "alright, now {x}. that would be great", "{x} lol", "please please {x}",
    "my kid asked me for this: {x}", "i'd love it if you could {x}", "{x}, thank you so much!",
)

# Pieces of longer, chattier messages: a few words of context before the request and after it.
PREAMBLES: tuple[str, ...] = (
    "ok so", "right,", "alright so", "um", "so basically", "hi again!", "next thing:", "one more thing,", "here's what i want:",
    "this is for my daughter's birthday card.", "my son loves this one.", "i'm making a poster for school.", "for my niece:",
    "i've been thinking and", "sorry to bother you again, but", "quick one:", "ok, let's try something.", "so i changed my mind.",
    "honestly", "if it's not too much trouble,", "i know this is silly but", "ok here goes:", "bit of a weird request, but",
    "we're making a story together.", "my little brother wants this:", "love it so far!", "hmm, looking at it again,",
)
EPILOGUES: tuple[str, ...] = (
    "thanks!", "thank you so much", "if you can", "when you get a chance", "that would be great", "cheers", "ty",
    "no rush", "please and thank you", "if that's ok", "that's all for now", "you're the best", "it'll look great",
    "i think that would look nice", "my kid will love it", "let's see how it looks", "fingers crossed", ":)", "haha",
)
REQUEST_LEADS: tuple[str, ...] = (
    "could you", "can you", "would you mind if you", "i'd like you to", "i was hoping you could", "maybe you could", "please",
    "can you maybe", "would you", "i want you to", "is it possible to", "do you think you could", "", "", "",
)


def verbose(rng: random.Random, core: str) -> str:
    """A long chatty message around a request: context, a lead-in, the request, a sign-off."""
    lead = rng.choice(REQUEST_LEADS)
    parts = [rng.choice(PREAMBLES) if rng.random() < 0.8 else "", f"{lead} {core}".strip(), rng.choice(EPILOGUES) if rng.random() < 0.7 else ""]
    text = parts[0] + " " + parts[1] + ("?" if lead.startswith(("could", "can", "would", "is", "do")) else ".")
    return (text + " " + parts[2]).strip()


def _plural_of(word: str) -> str:
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return plural(word) if word in CLASSES else word + ("es" if word.endswith(("s", "x", "sh", "ch")) else "s")


def class_typo(rng: random.Random, word: str) -> str:
    """A typo inside a class name that keeps its first letter: "catt", "dgo", "balon"."""
    if len(word) < 4:
        k = rng.randrange(1, len(word))
        return word[:k] + word[k] + word[k:]
    k = rng.randrange(1, len(word) - 1)
    op = rng.choice(["swap", "drop", "double"])
    if op == "swap":
        return word[:k] + word[k + 1] + word[k] + word[k + 2 :]
    if op == "drop":
        return word[:k] + word[k + 1 :]
    return word[:k] + word[k] + word[k:]


def people_text(rng: random.Random, text: str, synonym_rate: float = 0.4, typo_rate: float = 0.2, wrapper_rate: float = 0.2) -> str:
    """The same request as a person might type it."""
    words = {**{c: CLASS_WORDS[c] for c in CLASSES}, **BACKGROUND_WORDS}
    pattern = re.compile(r"\b(" + "|".join(sorted([*words, *[plural(c) for c in CLASSES]], key=len, reverse=True)) + r")\b", re.IGNORECASE)
    singular = {plural(c): c for c in CLASSES}
    typo_done = [False]

    def swap(m: re.Match) -> str:
        found = m.group(0)
        base = singular.get(found.lower(), found.lower())
        out = found
        if base in words and rng.random() < synonym_rate:
            out = rng.choice(words[base])
            if found.lower() in singular and found.lower() != base:  # "dogs" -> "doggos" ("fish" stays one)
                out = _plural_of(out)
        elif base in CLASSES and not typo_done[0] and rng.random() < typo_rate:
            typo_done[0] = True
            out = class_typo(rng, found)
        return out

    # 1. Other words and typos in class and background names.
    text = pattern.sub(swap, text)
    # 2. British spellings.
    for us, uk in SPELLINGS.items():
        if rng.random() < 0.5:
            text = re.sub(rf"\b{us}\b", uk, text)
    # 3. A chatty wrapper around the request.
    if rng.random() < wrapper_rate:
        core = re.sub(r"^(ok,? |now,? |please,? |can you |could you |would you )+", "", text.rstrip(".!?").lower())
        text = rng.choice(WRAPPERS).format(x=core) if rng.random() < 0.4 else verbose(rng, core)
    return text
