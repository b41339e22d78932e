"""Whether a reply's text is about what the message asked: the faults a text plan shows on its face.

The embedded model states what it does before it draws ("Here is a cat in the center, on the
beach.", "Done: removed the car."), and that text can be read against the message it answers
without looking at any picture. A plan that names things the message never named, a background
other than the one asked for, a painted part when nothing was painted, a greeting to a question,
an edit to a question or a count to a request is not what the person asked, whatever it draws.
`faults` lists such mismatches; the assistant then prefers another plan of the same model that
shows fewer (see `Assistant._replan`). Every rule is one a reply in the world's own dialogues
never breaks (tests/test_reply_fit.py reads thousands of them), so a right plan is left alone.

The words come from the checkpoint's scene reader (`SceneReader.words`: class and background
names with the other words people use for them); a message word one slip from one of them counts
as that word ("catt", "hosue", "beech").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

from .scene_text import _one_slip, plural

SMALLTALK_STARTS = ("Hello!", "You're welcome", "Goodbye", "Glad you like it", "I draw small pictures")
QUESTION_WORDS = frozenset(("what", "what's", "whats", "where", "where's", "wheres", "which", "how", "is", "are", "does", "do", "did", "who", "whats", "any", "anything"))
REQUEST_WORDS = frozenset((
    "add", "put", "place", "draw", "paint", "make", "turn", "change", "swap", "switch", "replace", "remove", "delete", "erase",
    "move", "shift", "give", "get", "take", "ditch", "bin", "lose", "scrap", "drop", "nix", "chuck", "create", "show", "sketch",
    "render", "generate", "illustrate", "set", "use", "let", "want", "need", "like", "could", "would", "can", "please", "about",
    "instead", "rather", "become", "transform", "convert", "clear", "wipe", "keep", "slide", "bring", "stick", "pop", "plonk",
))
BACKGROUND_TALK = ("background", "backdrop", "setting", "scene", "behind", "where are we")
PLACE_WORDS = ("top", "bottom", "left", "right", "middle", "center", "centre", "corner", "up", "down", "above", "below", "under", "over", "next to", "beside", "between", "side", "near", "lower", "upper", "beneath", "underneath", "by", "behind", "front", "around", "edge", "side")
MOVE_TALK = ("move", "shift", "slide", "somewhere", "elsewhere", "swap places", "switch places", "where")
DRAW_TALK = ("draw", "paint", "picture", "sketch", "create", "render", "illustrate", "generate", "make", "show", "scene", "image", "give me", "new", "start", "again")
EDIT_VERBS = frozenset(("add", "put", "place", "remove", "delete", "erase", "move", "shift", "turn", "change", "swap", "switch", "replace", "ditch", "bin",
                        "rid", "take", "make", "draw", "paint", "give", "set", "ad", "lose", "scrap", "drop", "chuck", "clear", "empty", "wipe", "reset",
                        "start", "redo", "undo", "fill"))
REMOVAL_WORDS = frozenset((
    "remove", "delete", "erase", "rid", "take", "away", "off", "out", "ditch", "bin", "lose", "scrap", "drop", "nix", "chuck", "gone", "go",
    "without", "no", "don't", "dont", "clear", "empty", "wipe", "kill", "disappear", "vanish", "nothing", "less", "fewer", "only", "just",
    "leave", "except", "not", "hide", "toss", "axe", "cut", "zap", "banish", "yeet", "get", "dop", "ease", "loes", "delet", "remov", "rmv", "del", "drp",
))
WANT_WORDS = frozenset(("should", "want", "need", "let", "can", "could", "would", "please", "pls", "plz", "like", "wish"))
WRITING = frozenset(("write", "writing", "written", "text", "spell", "caption", "letters", "lettering", "words", "sign", "label", "title", "wrte", "wirte"))
TEXT_TALK = frozenset(("write", "writ", "text", "word", "words", "letter", "letters", "say", "says", "sas", "spell", "caption", "title", "label", "name", "sign"))
SMALLTALK_TALK = {  # a small-talk reply and the words of the messages it answers
    "You're welcome": ("thank", "thanks", "thx", "ty", "cheers", "ta", "appreciate", "grateful", "thank you", "tanks", "thnx", "thankyou"),
    "Goodbye": ("bye", "goodbye", "good night", "goodnight", "night night", "see you", "see ya", "cya", "later", "goodnight", "good night", "that's all", "that's it", "farewell", "bye-bye", "gtg", "leaving"),
}
COUNT_TALK = ("how many", "count", "number of", "many")
CAPABILITY_TALK = ("can", "do", "able", "help", "know", "what", "draw", "how", "who", "options", "list")


_NOT_MENDED = frozenset(("start", "bare", "bard", "boot", "three", "mouse", "horse", "there", "these", "those", "thee", "sunk", "fist", "cart", "card", "check", "chuck", "trhee", "thre", "cold", "son", "sum"))


def _slip(token: str, name: str, changed: bool, dropped: bool) -> int:
    """How `token` is `name` typed with one slip of the kinds `Words._mend` allows, the likelier the
    lower: 1 two letters swapped or one doubled, 2 one left out, 3 one too many, 4 one changed;
    0 when it is not."""
    if len(token) == len(name) + 1:  # a letter too many: only a doubled one for short names
        i = next((k for k in range(len(name)) if token[k] != name[k]), len(name))
        if token[:i] + token[i + 1:] != name:
            return 0
        return 1 if token[i] == token[i - 1] else (3 if len(name) > 3 else 0)
    if len(token) == len(name) - 1:  # a letter left out
        return 2 if (dropped or len(name) > 4) and _one_slip(token, name) else 0
    if len(token) == len(name) and token != name:
        i = next(k for k in range(len(name)) if token[k] != name[k])
        if token[i + 2:] == name[i + 2:] and token[i:i + 2] == name[i:i + 2][::-1]:
            return 1
        return 4 if changed and token[i + 1:] == name[i + 1:] else 0
    return 0


@dataclass(frozen=True)
class Words:
    """The names a reader knows: classes, backgrounds, category words, and other words for them."""

    classes: tuple[str, ...]
    backgrounds: tuple[str, ...]
    categories: tuple[str, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict)  # "kitty" -> "cat", "seaside" -> "beach"

    @cached_property
    def _names(self) -> dict[str, str]:
        """Every word or phrase -> the class or background it names (plurals included)."""
        names = {c: c for c in self.classes} | {plural(c): c for c in self.classes} | {b: b for b in self.backgrounds}
        for word, canon in self.aliases.items():
            names.setdefault(word, canon)
            if canon in self.classes and " " in word:
                names.setdefault(word + "s", canon)  # "panda bears"
            if canon in self.classes and " " not in word:
                names.setdefault(word[:-1] + "ies" if word.endswith("y") and word[-2] not in "aeiou" else word + "s", canon)
        return names

    @cached_property
    def _pattern(self) -> re.Pattern:
        return re.compile(r"\b(" + "|".join(re.escape(w) for w in sorted(self._names, key=len, reverse=True)) + r")\b")

    def named(self, text: str) -> set[str]:
        """The classes and backgrounds `text` names, in any of their words or one slip away from one."""
        words = re.findall(r"[a-z]+", text.lower())
        mended = " ".join(self._mend(w) for w in words)
        return {self._names[m.group(0)] for m in self._pattern.finditer(mended)}

    def _mend(self, token: str) -> str:
        """A word one slip from a name, as that name: two neighbours swapped ("dgo", "hosue"), a letter
        doubled ("catt", "carr"), one left out of a class name ("fsh", "balon"), or, in 5+ letters, one
        changed ("beech"); the
        first letter always right. Words of their own stay: "here" is not "hare", "card" not "car",
        "does" not "dogs", "show" not "snow"."""
        if token in self._names or len(token) < 3:
            return token
        if token in _NOT_MENDED:
            return token
        meant: dict[int, dict[str, str]] = {}  # how likely the slip -> the name it meant -> the word
        for name in self._names:
            if " " not in name and name[0] == token[0]:
                kind = _slip(token, name, changed=len(token) >= 5, dropped=self._names[name] in self.classes)
                if kind:
                    meant.setdefault(kind, {})[self._names[name]] = name
        likeliest = meant[min(meant)] if meant else {}
        return next(iter(likeliest.values())) if len(likeliest) == 1 else token  # "cas": cats or cars? neither

    def classes_in(self, text: str) -> set[str]:
        return {n for n in self.named(text) if n in self.classes}

    def backgrounds_in(self, text: str) -> set[str]:
        return {n for n in self.named(text) if n in self.backgrounds}


def _is_question(message: str) -> bool:
    """A message that asks about the picture and asks for no change ("is the fox left of the dog?")."""
    words = re.findall(r"[a-z']+", message.lower())
    while words and words[0] in ("and", "so", "ok", "okay", "hmm", "um", "now", "then", "but", "oh", "right", "cool", "great", "nice", "thanks", "wow"):
        words = words[1:]
    if message.rstrip().endswith("?") and "background" in words and not REQUEST_WORDS & set(words) and "should" not in words:
        return True  # "and the background then?"
    return bool(words) and words[0] in QUESTION_WORDS and words[:2] not in (["what", "about"], ["how", "about"], ["is", "it"], ["do", "you"], ["are", "you"]) and not REQUEST_WORDS & set(words)


def _asks(message: str) -> bool:
    """A message that asks something anywhere in it (a question mark, a question word, "how many")."""
    low = message.lower()
    said = re.findall(r"[a-z']+", low)
    return "?" in low or any(w in QUESTION_WORDS or (len(w) > 3 and any(_one_slip(w, q) for q in ("where", "which", "what's", "number"))) for w in said) or any(w in low for w in COUNT_TALK)


@dataclass(frozen=True)
class _Asked:
    """What a message names, read once for every rule."""

    low: str  # the message, lower case
    said: frozenset[str]  # its words
    classes: frozenset[str]  # the classes it names
    backgrounds: frozenset[str]  # the backgrounds it names
    went_on: frozenset[str]  # its classes and those of the message before it (a short answer goes on from it)
    general: bool  # it names a group, "something", or points with "it" / "them" / "this"
    refers: bool  # it points at a thing without naming it ("it", "that one", "them")
    removes: bool  # it (or the message before it) has a word of taking something away ("remove", "get rid", "no more", "remvoe")

    def has(self, *words: str) -> bool:
        return any((w in self.said) if " " not in w else (w in self.low) for w in words)


def read_message(message: str, words: Words, before: str = "") -> _Asked:
    """What `message` names and asks, read once for every rule."""
    low = message.lower()
    said = frozenset(re.findall(r"[a-z']+", low))
    named = words.named(re.sub(r"\bgood ?night\b|\bnight night\b", "goodbye", low))  # "good night!" names no background
    classes = frozenset(n for n in named if n in words.classes)
    refers = bool(said & {"it", "them", "this", "that", "these", "those", "one", "ones", "him", "her", "he", "she", "they", "its", "it's"})
    loose = set(re.findall(r"[a-z']+", re.sub(r"\bno (?:other |more )?[a-z]+", "", low)))  # "no other objects" names no group
    general = refers or bool(loose & {*words.categories, "things", "objects", "something", "anything", "stuff", "random", "whatever", "surprise", "same"})
    both = said | set(re.findall(r"[a-z']+", before.lower()))
    removes = bool(both & REMOVAL_WORDS) or any(len(w) > 2 and any(len(r) > 3 and w[0] == r[0] and _slip(w, r, changed=False, dropped=True) for r in REMOVAL_WORDS) for w in both)
    return _Asked(low, said, classes, frozenset(n for n in named if n in words.backgrounds), classes | words.classes_in(before), general, refers, removes)


def faults(reply: str, message: str, words: Words, picture: bool, mask: bool, before: str = "", present: frozenset[str] | None = None) -> list[str]:
    """What in `reply`'s text shows it does not answer `message` (see the module doc); [] when
    nothing does. `picture`: the conversation has a picture to change; `mask`: a part was painted;
    `before`: the previous user message (a short answer to a question goes on from it); `present`:
    the classes the picture holds, when it was read."""
    text, asked = reply.strip(), read_message(message, words, before)
    out = _kind_faults(text, message, asked, picture, mask)
    if text.startswith("Here is "):
        out += _drawing_faults(text, asked, words, picture)
    elif text.startswith("Done: "):
        out += _edit_faults(text, asked, words)
    else:
        out += _refusal_faults(text, asked, words, present) + _answer_faults(text, message, asked, words)
    return out


def _kind_faults(text: str, message: str, asked: _Asked, picture: bool, mask: bool) -> list[str]:
    """A reply of a kind the message does not call for."""
    out = []
    if "part you painted" in text and not mask:
        out.append("speaks of a painted part, but nothing was painted")
    if text.startswith(SMALLTALK_STARTS) and (asked.classes or asked.backgrounds):
        out.append("small talk to a message naming " + ", ".join(sorted(asked.classes | asked.backgrounds)))
    capabilities = asked.has("help", "what can", "wat can", "what do you", "how does", "which things", "what are you able") or any(sorted(w) == sorted("help") for w in asked.said)
    if text.startswith("I draw small pictures") and not capabilities and not asked.said & set(CAPABILITY_TALK):
        out.append("lists what it can do, unasked")
    if text.startswith(SMALLTALK_STARTS[:4]) and capabilities:
        out.append("small talk to a question about what it can do")
    for start, talk in SMALLTALK_TALK.items():
        if text.startswith(start) and not asked.has(*talk) and not any(len(w) > 3 and _one_slip(w, t) for w in asked.said for t in talk):
            out.append(f"answers {start!r} to a message that says nothing of the kind")
    if text.startswith("Done:") and not picture:
        out.append("edits a picture that is not there")
    if text.startswith("There is no picture") and picture:
        out.append("says there is no picture, but there is one")
    if text.startswith(("Done:", "Here is")) and _is_question(message):
        out.append("changes the picture for a question")
    if text.startswith("Which ") and asked.has("add", "another", "ad", "also"):
        out.append("asks which one to a request to add")
    return out


def _drawing_faults(text: str, asked: _Asked, words: Words, picture: bool) -> list[str]:
    """A drawing's things and background against the ones asked for; a new picture for an added thing."""
    out = []
    drawn = words.classes_in(text)
    general = asked.general and not asked.refers
    if asked.classes and not general and drawn - asked.classes:
        out.append("draws " + ", ".join(sorted(drawn - asked.classes)) + ", not asked for")
    if asked.classes and not drawn & asked.classes:
        out.append("draws none of " + ", ".join(sorted(asked.classes)))
    elif asked.classes - drawn and not general:
        out.append("leaves out " + ", ".join(sorted(asked.classes - drawn)))
    bg = words.backgrounds_in(text.rsplit(", ", 1)[-1])
    if asked.backgrounds and bg and not bg & asked.backgrounds:
        out.append(f"draws {', '.join(sorted(bg))} for {', '.join(sorted(asked.backgrounds))}")
    if not asked.classes and not asked.backgrounds and not asked.general and not asked.has(*DRAW_TALK):
        out.append("draws a picture nobody asked for")
    if picture and asked.has("add", "ad", "another", "also", "more", "too", "as well") and not asked.has(*DRAW_TALK[:8]):
        out.append("draws a new picture for a thing to add")
    return out


def _edit_faults(text: str, asked: _Asked, words: Words) -> list[str]:
    """A done edit's things, places and background against the message."""
    out = []
    new, old = set(), set()
    for m in re.finditer(r"(?:added|and) (?:an?|two|three) (\w+)|is now an? (\w+)|are now (\w+)", text):
        new |= words.classes_in(m.group(m.lastindex))
    if new - asked.went_on and not asked.general:
        out.append("adds " + ", ".join(sorted(new - asked.went_on)) + ", not asked for")
    for m in re.finditer(r"the (\w+) (?:is|are) now", text):
        old |= words.classes_in(m.group(1))
    others = asked.classes - new
    if old - asked.classes and others and not asked.refers:
        out.append("changes " + ", ".join(sorted(old - asked.classes)) + ", not the " + ", ".join(sorted(others)))
    if re.search(r"the \w+ (?:is|are) now (?:in|on|at) the", text) and not asked.has(*PLACE_WORDS, *MOVE_TALK) and not any(len(w) > 3 and _one_slip(w, p) for w in asked.said for p in PLACE_WORDS):
        out.append("moves a thing, but the message names no place")
    if re.search(r"(?:^Done: |, |and )removed ", text) and not asked.removes:
        out.append("takes a thing away, but the message asks for nothing to go")
    if asked.said & WRITING:
        out.append("changes the picture for a request to write")
    answers_which = asked.went_on and asked.has(*PLACE_WORDS)  # "in the centre": which one, after "make the apple a tree"
    if not asked.classes and not asked.backgrounds and not asked.refers and not answers_which and not asked.said & (EDIT_VERBS | WANT_WORDS):
        out.append("changes the picture, but the message asks for no change")
    m = re.search(r"the background is now (\w+)", text)
    if m and asked.backgrounds and m.group(1) not in asked.backgrounds:
        out.append(f"sets the background to {m.group(1)} for {', '.join(sorted(asked.backgrounds))}")
    if m and not asked.backgrounds and asked.classes and not asked.has(*BACKGROUND_TALK):
        out.append(f"sets the background to {m.group(1)}, not asked for")
    if m and asked.classes and not words.classes_in(text):
        out.append("changes only the background; the message asks about " + ", ".join(sorted(asked.classes)))
    return out


def _refusal_faults(text: str, asked: _Asked, words: Words, present: frozenset[str] | None) -> list[str]:
    """Refusals that name something other than what was asked, or deny what the picture holds."""
    out = []
    m = re.match(r"I can't draw an? ([a-z ]+);", text)
    if m and m.group(1) not in asked.low and plural(m.group(1)) not in asked.low:
        out.append(f"refuses a {m.group(1)}, not asked for")
    if text.startswith("I can't write text") and not asked.said & TEXT_TALK:
        out.append("refuses text, not asked for")
    m = re.match(r"There is no (\w+) in the picture", text)
    if m and asked.classes and m.group(1) not in asked.went_on:
        out.append(f"says there is no {m.group(1)}, not asked about")
    if m and present is not None and m.group(1) in present:
        out.append(f"says there is no {m.group(1)}, but the picture holds one")
    m = re.match(r"(?:No, t|T)here (?:is|are) no ([a-z]+)\.$", text)
    if m and m.group(1) not in asked.low and m.group(1) not in ("objects", "things", *words.categories) and not words.classes_in(m.group(1)) & (asked.classes or asked.went_on):
        out.append(f"says there is no {m.group(1)}, not asked about")
    return out


ANSWERS = re.compile(r"(?:The background is |There (?:is|are) |The \w+ is |Yes, |No, )")


def _answer_faults(text: str, message: str, asked: _Asked, words: Words) -> list[str]:
    """Answers of another kind than the question, or to a request."""
    out = []
    if re.match(r"The background is \w+\.$", text) and not asked.has(*BACKGROUND_TALK) and not asked.backgrounds and (asked.classes or asked.has(*words.categories, *PLACE_WORDS) or re.search(r"\bwhere(?:'s| is| did|'d| has)? (?:it|he|she)\b", asked.low)):
        out.append("answers with the background")
    if ANSWERS.match(text) and not _asks(message) and asked.said & EDIT_VERBS and "changed nothing" not in text and not text.startswith("There is no picture"):
        out.append("answers a request")
    m = re.match(r"There (?:is|are) (no|one|two|three|four) (\w+)\.$", text)
    if m and not asked.general and m.group(2) not in ("objects", "things") and words.classes_in(m.group(2)) and not words.classes_in(m.group(2)) & asked.classes:
        out.append(f"counts {m.group(2)}, not asked about")
    return out

