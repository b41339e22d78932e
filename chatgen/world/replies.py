"""The assistant's canonical texts in the scene world: the words a model must say.

One fixed wording per fact (`describe`, `draw_reply`, `answer_*`, `clarify_question`,
`out_of_world_reply`, `limit_reply`), so a model can learn them exactly and evals can
compare strings. The texts of done edits are `Edit.reply` in `edits.py`.

Places always follow one mapping. A single word names the middle of that edge ("left" is
the middle left slot, "top" the top center slot), "center" is the middle slot, two words
name a corner ("top left"). The same words appear in every text the assistant writes.
"""

from __future__ import annotations

from chatgen import scene_text
from chatgen.scene_text import BG_PHRASE, NUMBERS, counted_noun, join, limit_reply, with_article  # noqa: F401 (the world's wording)
from chatgen.world.scene import CATEGORIES, CLASSES, COLS, ROWS, Obj, Scene, article, slot_name


def object_phrase(obj: Obj) -> str:
    """"a dog on the left"."""
    return scene_text.object_phrase(obj)


def describe(scene: Scene) -> str:
    """Canonical description: "There is a dog on the left and a tree in the top right, on
    grass." Objects in reading order; "There are no objects, only the grass background."
    for an empty scene."""
    return scene_text.describe(scene.objects, scene.background)


def draw_reply(scene: Scene) -> str:
    """Reply to a drawing request: "Here is a dog on the left, on grass."."""
    if not scene.objects:
        return f"Here is an empty picture {BG_PHRASE[scene.background]}."
    return f"Here is {join([object_phrase(o) for o in scene.objects])}, {BG_PHRASE[scene.background]}."


def answer_count(scene: Scene, what: str) -> str:
    """"There are two dogs." / "There is one animal." / "There are no cats."."""
    scene.count(what)  # an unknown name raises here
    return scene_text.answer_count(scene.objects, what, CATEGORIES)


def answer_where(scene: Scene, cls: str) -> str:
    """"The dog is on the left." / "There are dogs on the left and at the top." /
    "There is no dog."."""
    return scene_text.answer_where(scene.objects, cls)


def answer_is_there(scene: Scene, cls: str) -> str:
    """"Yes, there is one dog." / "Yes, there are two dogs." / "No, there is no dog."."""
    return scene_text.answer_is_there(scene.objects, cls)


def answer_background(scene: Scene) -> str:
    """"The background is grass."."""
    return scene_text.answer_background(scene.background)


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


# ---- honest replies: what the assistant says instead of a picture it cannot make -----------------
CAN_DO = scene_text.CAN_DO  # every edit the world has


def absent_reply(cls: str) -> str:
    """An edit of something that is not there: "There is no tree in the picture, so I changed nothing."."""
    return f"There is no {cls} in the picture, so I changed nothing."


def impossible_reply(change: str) -> str:
    """An edit the world cannot make: "I can't make things bigger. I can add, remove, ..."."""
    return scene_text.impossible_reply(change)


# Short replies to messages that ask for nothing to be drawn.
SMALLTALK_REPLIES: dict[str, str] = {
    "greeting": scene_text.GREETING_REPLY,
    "thanks": scene_text.THANKS_REPLY,
    "capabilities": f"I draw small pictures of up to 4 things: {', '.join(CLASSES)}; on grass, sky, beach, snow, night or sea. {CAN_DO}",
    "bye": scene_text.BYE_REPLY,
}
