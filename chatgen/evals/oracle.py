"""A perfect model for a suite: it passes every check, so running it proves a suite is passable.

`OracleAssistant(dialogues)` answers the turns of those dialogues in the order the runner
sends them: an image reply renders the expected scene (the pinned one, else the picture it
starts from with the checked changes made), a text reply says the expected words. A suite
on which the oracle fails has a contradictory or unreachable expectation; tests run it on the
shipped suite.
"""

from __future__ import annotations

from chatgen.assistant import Reply
from chatgen.conversation import Message, Session, Turn
from chatgen.world import Obj, Scene, render

from .grid import Grid
from .suite import EvalDialogue, Expect


def oracle_scene(e: Expect, prev: Scene | None) -> Scene:
    """A scene passing `e.scene`: the pinned one, else the previous scene with the excluded
    classes removed and each unmet include placed in the first free slot of its position."""
    spec = e.scene
    if spec is None:
        return prev if prev is not None else Scene("grass")
    pinned = spec.pinned()
    if pinned is not None:
        return pinned
    bg = spec.background or (prev.background if prev else "grass")
    objs = [o for o in (prev.objects if prev else ()) if not any(x.cls == o.cls and o.slot in x.slots for x in spec.exclude)]
    for inc in spec.include:
        have = [o for o in objs if o.cls == inc.cls and o.slot in inc.slots]
        free = [s for s in inc.slots if s not in {o.slot for o in objs}]
        objs += [Obj(inc.cls, *s) for s in free[: inc.count - len(have)]]
    return Scene(bg, tuple(objs))


class OracleAssistant:
    """Passes every check of the dialogues it is given (a perfect model): image replies render
    the expected scene, text replies say the expected words."""

    def __init__(self, dialogues: list[EvalDialogue]):
        self.expects: list[Expect | None] = [t.expect for d in dialogues for t in d.turns if not t.undo]

    def respond(self, session: Session, message: Message, params=None) -> Reply:
        e = self.expects.pop(0)
        before = message.image if message.image is not None else session.last_image()
        prev = Grid.of_image(before) if before is not None else None
        prev_scene = Scene(prev.background, tuple(Obj(c, *s) for s, c in prev.objects())) if prev else None
        image, text = None, "ok"
        if e is not None and e.wants_image:
            image = render(oracle_scene(e, prev_scene))
        elif e is not None:
            text = " ".join(list(e.answer_any[:1]) + list(e.answer_all)) or "ok"
            if e.reply == "clarify":
                text += "?"
        turn = Turn(id=session.new_turn_id(), parent=session.head, user_text=message.text, user_image=message.image, assistant_text=text, assistant_image=image)
        session.append(turn)
        return Reply(text=text, image=image, turn=turn, metadata={})
