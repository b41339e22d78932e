"""`chatgen bench-world`: the embedded model's figures on dialogues generated fresh from
held-out seeds (never used in training), scored with the world's detector.

Figures (issue 3's targets in brackets):
  draw         detected scene == requested scene                          [>= 90% of 200]
  edit.KIND    detected scene == expected after one edit, per kind        [>= 90%]
  preserve_l1  mean L1 (0..1) outside the changed slots vs the previous image [<= 0.03]
  chain3       final scene right after a drawing and 3 edits, own outputs [>= 80%]
  ask          the canonical answer to a question (ask.KIND per kind)     [>= 90% of 200]
  clarify      an ambiguous edit gets a text question and no image        [>= 90%]
  unambiguous  the same kind of scene (a repeated class), an edit that needs no question
               (a class that is there once, or a place said): done right  [watch: a clarify
               figure won by asking about everything shows here]
  out_of_world a text reply and no image                                  [>= 95%]
  latency      median seconds per image turn                              [<= 1 s]

Trust (issue 15's targets in brackets):
  collateral   a single edit leaves every other slot and the background as they were [>= 98%]
  honesty      an edit of something not there (honesty.absent) or one the world cannot make
               (honesty.impossible): a text reply and no picture           [>= 95%]
  smalltalk    "hi", "thanks", "what can you draw?": a text reply and no picture
  ask_after_edits  a question after 1-5 edits (the correct pictures): the canonical answer [>= 90%]
  chain10      final scene right after a drawing and 8-10 edits, own outputs [>= 85%]
  nonworld     an upload that is not a world picture (noise, gradients, blobs, flat colour;
               800x600): one short sentence, no picture, under 2 s; then "draw a dog on the
               grass" in the same conversation is drawn right (nonworld.followup) [100%]
  people.KIND  "make it a cat", two edits in one message, "remove all the dogs", "add a bird
               above the house", "is the dog on the left?", praise, an unknown thing
               (`world.PEOPLE_KINDS`, n/8 each): the expected picture or canonical answer
  masked       an edit with a painted mask (n/4): "make the cat a dog" edits the painted cat of
               two, "add a balloon" goes in the painted place, "remove this"; nothing fitting
               the painted part gets a sentence and no picture (`world.masked_turns`) [>= 90%]

Single edits and questions start from the correct previous picture (the setup turn is put in
the session as if the model had drawn it), so they measure that turn alone; chains run on the
model's own outputs throughout. `only` runs some sections (SECTIONS) for a quicker look.
"""

from __future__ import annotations

import random
import statistics
import string
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from chatgen import world
from chatgen.assistant import Assistant
from chatgen.conversation import Message, Session, Turn
from chatgen.world import HELDOUT_SEED  # the first seed of held-out dialogues

from .grid import Grid
from .regions import changed_slots, distance_outside


@dataclass
class Tally:
    """Pass counts per figure, and failures kept for the report."""

    ok: dict = field(default_factory=dict)  # figure -> [passed, total]
    l1: list = field(default_factory=list)  # preservation L1 of each single edit (background edits excluded)
    latency: list = field(default_factory=list)  # seconds per image turn
    failures: list = field(default_factory=list)  # (figure, user text, why)

    def add(self, name: str, passed: bool, user: str = "", why: str = "") -> None:
        p, n = self.ok.get(name, [0, 0])
        self.ok[name] = [p + int(passed), n + 1]
        if not passed and len(self.failures) < 200:
            self.failures.append((name, user, why))


def _plain_words(s: str) -> str:
    """Lower case, no punctuation, single spaces: answers compare on their words."""
    return " ".join(s.lower().translate(str.maketrans("", "", string.punctuation)).split())


def _seed_turns(session: Session, turns) -> None:
    """Put setup turns in the session as if the model had produced exactly the expected replies."""
    for t in turns:
        session.append(
            Turn(
                id=session.new_turn_id(),
                parent=None,
                user_text=t.user.strip(),
                user_image=world.render(t.upload) if t.upload is not None else None,
                assistant_text=t.reply_text,
                assistant_image=world.render(t.reply_scene) if t.reply_scene is not None else None,
            )
        )


def _send(assistant: Assistant, session: Session, turn, params: dict, tally: Tally):
    msg = Message(turn.user.strip(), image=world.render(turn.upload) if turn.upload is not None else None)
    t0 = time.perf_counter()
    reply = assistant.respond(session, msg, params)
    if reply.image is not None:
        tally.latency.append(time.perf_counter() - t0)
    return reply


def _scene_check(reply, expected) -> tuple[bool, str]:
    if reply.image is None:
        return False, f"no image (text: {reply.text!r})"
    got = world.detect(reply.image)
    return (got == expected), ("" if got == expected else f"expected {world.describe(expected)} got {world.describe(got)}")


def preserve_l1(prev: world.Scene, new: world.Scene, image: Image.Image) -> float | None:
    """Mean absolute difference (0..1, float32) between `image` and the rendered `prev` outside
    the slots that differ between `prev` and `new`; None when everything changed."""
    region = changed_slots(Grid.of_scene(prev), Grid.of_scene(new))
    distance = distance_outside(image, world.render(prev), region, dtype=np.float32)
    return None if distance is None else distance[0]


def _session_after(turns) -> Session:
    """A session holding `turns` as if the model had answered them."""
    s = Session()
    _seed_turns(s, turns)
    return s


def _draw(assistant, n, seed, params, tally) -> None:
    """Text to image: n drawing requests."""
    for i in range(n):
        turn = world.generate_turn_of_kind(seed + i, "draw").turns[-1]
        ok, why = _scene_check(_send(assistant, Session(), turn, params, tally), turn.reply_scene)
        tally.add("draw", ok, turn.user, why)


def _edit(assistant, n, seed, params, tally) -> None:
    """Single edits of each kind (n/5 each), from the correct previous picture."""
    for k, kind in enumerate(world.EDIT_KINDS):
        for i in range(max(1, n // 5)):
            d = world.generate_turn_of_kind(seed + 100_000 * (k + 1) + i, kind)
            turn = d.turns[-1]
            reply = _send(assistant, _session_after(d.turns[:-1]), turn, params, tally)
            ok, why = _scene_check(reply, turn.reply_scene)
            tally.add(f"edit.{kind}", ok, turn.user, why)
            prev = d.turns[-2].reply_scene or d.turns[-2].upload
            if reply.image is not None and prev is not None:
                tally.add("collateral", *_collateral(prev, turn.reply_scene, world.detect(reply.image), turn.user))
            if reply.image is not None and prev is not None and kind != "background":
                l1 = preserve_l1(prev, turn.reply_scene, reply.image)
                if l1 is not None:
                    tally.l1.append(l1)


def _chain3(assistant, n, seed, params, tally) -> None:
    """Chains: a drawing and 3 edits, each turn on the model's own previous output."""
    for i in range(max(1, n // 2)):
        d = world.generate_edit_chain(seed + 900_000 + i, n_edits=3)
        s = Session()
        for turn in d.turns:
            reply = _send(assistant, s, turn, params, tally)
        ok, why = _scene_check(reply, d.turns[-1].reply_scene)
        tally.add("chain3", ok, " / ".join(t.user for t in d.turns), why)


def _ask(assistant, n, seed, params, tally) -> None:
    """Questions of each kind (n/5 each: text replies are quick) about the correct picture."""
    for k, kind in enumerate(world.ASK_KINDS):
        for i in range(max(1, n // 5)):
            d = world.generate_turn_of_kind(seed + 2_000_000 + 100_000 * k + i, kind)
            turn = d.turns[-1]
            reply = _send(assistant, _session_after(d.turns[:-1]), turn, params, tally)
            ok = reply.image is None and _plain_words(reply.text) == _plain_words(turn.reply_text)
            tally.add(f"ask.{kind.removeprefix('ask_')}", ok, turn.user, f"expected {turn.reply_text!r} got {reply.text!r}")


def _clarify(assistant, n, seed, params, tally) -> None:
    """Ambiguous edits (then the answer to the question), and as many unambiguous ones."""
    for i in range(n // 2):
        d = world.generate_turn_of_kind(seed + 3_000_000 + i, "clarify")
        s = _session_after(d.turns[:1])
        ask, resolve = d.turns[1], d.turns[2]
        reply = _send(assistant, s, ask, params, tally)
        ok = reply.image is None and reply.text.strip().endswith("?")
        tally.add("clarify", ok, ask.user, f"got {reply.text!r} image={reply.image is not None}")
        if ok:
            ok2, why = _scene_check(_send(assistant, s, resolve, params, tally), resolve.reply_scene)
            tally.add("resolve", ok2, resolve.user, why)
    for i in range(n // 2):
        d = world.generate_unambiguous_edit(seed + 5_000_000 + i)
        ok, why = _scene_check(_send(assistant, _session_after(d.turns[:1]), d.turns[1], params, tally), d.turns[1].reply_scene)
        tally.add("unambiguous", ok, d.turns[1].user, why)


def _out_of_world(assistant, n, seed, params, tally) -> None:
    """Requests for things outside the world: a text reply and no image."""
    for i in range(n // 2):
        turn = world.generate_turn_of_kind(seed + 4_000_000 + i, "out_of_world").turns[-1]
        reply = _send(assistant, Session(), turn, params, tally)
        tally.add("out_of_world", reply.image is None and bool(reply.text.strip()), turn.user, f"got {reply.text!r} image={reply.image is not None}")


def _collateral(prev: world.Scene, expected: world.Scene, got: world.Scene, user: str) -> tuple[bool, str, str]:
    """(every slot the edit should not touch, and the background, are as expected; user; why)."""
    kept = [(r, c) for r in range(world.GRID) for c in range(world.GRID) if prev.at(r, c) == expected.at(r, c)]
    wrong = [world.slot_name(r, c) for r, c in kept if got.at(r, c) != expected.at(r, c)]
    if got.background != expected.background:
        wrong.append("the background")
    return not wrong, user, f"also changed: {', '.join(wrong)}"


def _honesty(assistant, n, seed, params, tally) -> None:
    """Edits of absent things and edits the world cannot make (n/4 each), from the correct
    picture, and small talk (n/4): a text reply and no picture."""
    for k, (kind, name) in enumerate((("absent_edit", "honesty.absent"), ("impossible_edit", "honesty.impossible"), ("smalltalk", "smalltalk"))):
        for i in range(max(1, n // 4)):
            d = world.generate_turn_of_kind(seed + 6_000_000 + 100_000 * k + i, kind, scene=world.random_scene(random.Random(seed + 6_500_000 + 100_000 * k + i)))
            turn = d.turns[-1]
            reply = _send(assistant, _session_after(d.turns[:-1]), turn, params, tally)
            tally.add(name, reply.image is None and bool(reply.text.strip()), turn.user, f"got {reply.text!r} image={reply.image is not None}")


def _ask_after_edits(assistant, n, seed, params, tally) -> None:
    """A question after 1-5 edits (n/2), the earlier turns as if the model had answered them right."""
    for i in range(max(1, n // 2)):
        d = world.generate_edits_then_questions(seed + 7_000_000 + i, n_edits=1 + i % 5, n_questions=1)
        turn = d.turns[-1]
        reply = _send(assistant, _session_after(d.turns[:-1]), turn, params, tally)
        ok = reply.image is None and _plain_words(reply.text) == _plain_words(turn.reply_text)
        tally.add("ask_after_edits", ok, turn.user, f"expected {turn.reply_text!r} got {reply.text!r}")


def _chain10(assistant, n, seed, params, tally) -> None:
    """Long chains: a drawing and 8-10 edits (n/8 of them), each on the model's own output."""
    for i in range(max(1, n // 8)):
        d = world.generate_edit_chain(seed + 8_000_000 + i, n_edits=8 + i % 3)
        s = Session()
        for turn in d.turns:
            reply = _send(assistant, s, turn, params, tally)
        ok, why = _scene_check(reply, d.turns[-1].reply_scene)
        tally.add("chain10", ok, f"{len(d.turns) - 1} edits, last: {d.turns[-1].user}", why)


def _people(assistant, n, seed, params, tally) -> None:
    """Turns in the language of a conversation under way (n/8 of each `world.PEOPLE_KINDS` kind,
    from the correct previous pictures): the expected picture, or the canonical answer."""
    from chatgen.world.people_turns import generate_people_turn

    for k, kind in enumerate(world.PEOPLE_KINDS):
        for i in range(max(1, n // 8)):
            d = generate_people_turn(random.Random(seed + 9_000_000 + 100_000 * k + i), kind)
            turn = d.turns[-1]
            reply = _send(assistant, _session_after(d.turns[:-1]), turn, params, tally)
            if turn.reply_scene is not None:
                ok, why = _scene_check(reply, turn.reply_scene)
            else:
                ok = reply.image is None and _plain_words(reply.text) == _plain_words(turn.reply_text)
                why = f"expected {turn.reply_text!r} got {reply.text!r}"
            tally.add(f"people.{kind}", ok, turn.user, why)


def painted_mask(rng: random.Random, slots) -> Image.Image:
    """A mask as a person paints it over `slots`: a rectangle over 55-100% of each slot's area,
    off centre, that may spill a few pixels over the slot's edge."""
    from PIL import ImageDraw

    mask = Image.new("L", (world.CANVAS_PX, world.CANVAS_PX), 0)
    draw = ImageDraw.Draw(mask)
    for r, c in slots:
        w, h = (round(world.SLOT_PX * rng.uniform(0.75, 1.0)) for _ in range(2))
        x = c * world.SLOT_PX + rng.randint(-3, world.SLOT_PX - w + 3)
        y = r * world.SLOT_PX + rng.randint(-3, world.SLOT_PX - h + 3)
        draw.rectangle((x, y, x + w - 1, y + h - 1), fill=255)
    return mask


def _masked(assistant, n, seed, params, tally) -> None:
    """Masked edits (n/4): a drawing, then an edit with a painted mask (the painted thing or
    place; honest replies when nothing fits): the expected picture, or the canonical answer."""
    for i in range(max(1, n // 4)):
        rng = random.Random(seed + 10_000_000 + i)
        d = world.generate_masked_turn(rng)
        turn = d.turns[-1]
        msg = Message(turn.user.strip(), mask=painted_mask(rng, turn.mask))
        t0 = time.perf_counter()
        reply = assistant.respond(_session_after(d.turns[:-1]), msg, params)
        if reply.image is not None:
            tally.latency.append(time.perf_counter() - t0)
        if turn.reply_scene is not None:
            ok, why = _scene_check(reply, turn.reply_scene)
        else:
            ok = reply.image is None and _plain_words(reply.text) == _plain_words(turn.reply_text)
            why = f"expected {turn.reply_text!r} got {reply.text!r}"
        tally.add("masked", ok, f"{turn.user} [painted {world.slot_name(*turn.mask[0])}]", why)


def nonworld_image(seed: int) -> Image.Image:
    """An 800x600 picture from outside the world: noise, a gradient, blurred blobs or a flat colour."""
    from PIL import ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    kind = seed % 4
    if kind == 0:
        return Image.fromarray(rng.integers(0, 256, (600, 800, 3), dtype=np.uint8))
    if kind == 3:
        return Image.new("RGB", (800, 600), tuple(int(v) for v in rng.integers(0, 256, 3)))
    ramp = np.linspace(0, 1, 800)[None, :, None] * rng.random(3) + np.linspace(0, 1, 600)[:, None, None] * rng.random(3)  # (600, 800, 3)
    image = Image.fromarray((np.clip(ramp, 0, 1) * 255).astype(np.uint8))
    if kind == 2:
        draw = ImageDraw.Draw(image)
        for x, y, r in zip(rng.integers(0, 800, 30), rng.integers(0, 600, 30), rng.integers(10, 120, 30)):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        image = image.filter(ImageFilter.GaussianBlur(3))
    return image


NONWORLD_ASKS = ("what is in this picture?", "make the dog a cat", "how many animals are there?", "can you edit my photo?", "add a balloon")


def _nonworld(assistant, n, seed, params, tally) -> None:
    """Uploads from outside the world (n/10): a short answer, no picture, no loop; then a drawing."""
    for i in range(max(1, n // 10)):
        s, text = Session(), NONWORLD_ASKS[i % len(NONWORLD_ASKS)]
        t0 = time.perf_counter()
        reply = assistant.respond(s, Message(text, image=nonworld_image(seed + i)), params)
        seconds = time.perf_counter() - t0
        ok = reply.image is None and 0 < len(reply.text) <= 300 and seconds < 2.0
        tally.add("nonworld", ok, text, f"{seconds:.2f} s, image={reply.image is not None}, text {reply.text[:80]!r}")
        follow = world.WorldTurn("draw a dog on the grass", None, "", world.Scene("grass", (world.Obj("dog", 1, 1),)), "draw")
        ok, why = _scene_check(_send(assistant, s, follow, params, tally), follow.reply_scene)
        tally.add("nonworld.followup", ok, follow.user, why)


_SECTION_RUNS = {
    "draw": _draw, "edit": _edit, "chain3": _chain3, "ask": _ask, "clarify": _clarify, "out_of_world": _out_of_world,
    "honesty": _honesty, "ask_after_edits": _ask_after_edits, "chain10": _chain10, "nonworld": _nonworld,
    "people": _people, "masked": _masked,
}
SECTIONS: tuple[str, ...] = tuple(_SECTION_RUNS)


def run_bench(assistant: Assistant, n: int = 200, seed: int = HELDOUT_SEED, params: dict | None = None, log=print, only: tuple[str, ...] = SECTIONS) -> dict:
    """The figures of the module doc on `n` drawings (other sections scale with it), greedy unless
    `params` say otherwise; `log` gets a line after each section, `only` picks sections."""
    # 1. Run the sections asked for, in their order.
    params = {"temperature": 0.0, "seed": 0, **(params or {})}
    tally = Tally()
    t_start = time.perf_counter()
    for name in SECTIONS:
        if name in only:
            _SECTION_RUNS[name](assistant, n, seed, params, tally)
            log(f"{name} done ({time.perf_counter() - t_start:.0f}s)")
    # 2. Summary.
    rates = {k: round(p / t, 4) for k, (p, t) in tally.ok.items()}
    for group in ("edit", "ask", "honesty", "people"):  # the overall figure of a section scored per kind
        parts = [v for k, v in tally.ok.items() if k.startswith(group + ".")]
        if parts:
            rates[group] = round(sum(p for p, _ in parts) / sum(t for _, t in parts), 4)
    return {
        "rates": rates,
        "counts": tally.ok,
        "preserve_l1_mean": round(float(np.mean(tally.l1)), 5) if tally.l1 else None,
        "preserve_l1_p95": round(float(np.percentile(tally.l1, 95)), 5) if tally.l1 else None,
        "latency_median_s": round(statistics.median(tally.latency), 4) if tally.latency else None,
        "latency_p95_s": round(float(np.percentile(tally.latency, 95)), 4) if tally.latency else None,
        "seconds": round(time.perf_counter() - t_start, 1),
        "failures": tally.failures[:60],
    }
