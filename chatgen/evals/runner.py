"""Run scripted dialogues through an `Assistant` and score every turn.

The runner drives the same `Assistant.respond(session, message, params)` every front end uses.

Modes
-----
* iterative (default): one `Session` for the whole dialogue; each turn sees the model's own
  previous replies, so errors compound as they would for a person chatting.
* independent: each turn starts from a reference picture, so it measures that turn alone.
  The turn's message is sent in a fresh `Session` with the reference as its upload (how a
  person would start over from a known-good picture). The reference is the turn's own
  `image:`, else the rendered expected scene of the latest picture when that scene is pinned
  (see suite.py). Two kinds of turn continue the running session instead: the answer to a
  clarifying question (it needs the question in context), and a turn after a picture whose
  expected scene is not pinned (there is nothing exact to start from). A turn before any
  picture starts a fresh session without upload. The drift baseline is likewise the pinned
  expected picture of the dialogue's first image when there is one.

An undo turn (`undo: true` or `user: /undo`) calls `session.undo()` on the running session
and steps the runner's own record of expected scenes back by one turn; it is not scored.

Per turn the runner checks the reply (checks.py), measures preservation against the picture
the turn started from and drift against the dialogue's first picture (or its latest upload),
each outside the changed regions (regions.py), optionally CLIP scores (clip.py), and the
latency of `respond`. Turn i (0-based) is sampled with seed `dialogue seed + i`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from PIL import Image

from chatgen.conversation import Message, Session
from chatgen.errors import ChatgenError
from chatgen.world import Scene, describe, render

from .checks import Check, check_answer, check_max, check_min, check_reply, check_scene, verdict
from .clip import ClipScorer
from .grid import ALL_SLOTS, Grid
from .regions import Region, changed_region, distance_outside, heat_map, union
from .suite import MODES, EvalDialogue, Limits, ScriptedTurn


@dataclass
class RunConfig:
    """How a suite is run."""

    mode: str | None = None  # force every dialogue into this mode; None: each dialogue's own (default iterative)
    seed: int = 0  # seed of dialogues that set none
    params: dict = field(default_factory=dict)  # generation parameters for every turn (temperature, ...)
    clip: ClipScorer | None = None  # CLIP-T / CLIP-I / DINO-style scores when given


@dataclass
class TurnResult:
    """One scored turn (one line of results.jsonl)."""

    dialogue: str  # dialogue id
    turn: int  # 1-based position in the dialogue
    kind: str  # turn kind (draw, replace, ask_count, undo, ...)
    mode: str  # iterative | independent
    tags: list[str]  # the dialogue's tags
    user: str  # the message sent
    correct: bool | None  # every check passed; None: not scored (no expect, or an undo)
    reason: str  # "ok", "not scored", or the failed checks in words
    checks: dict[str, dict] = field(default_factory=dict)  # name -> {"passed": bool | None, "detail": str}
    metrics: dict[str, Any] = field(default_factory=dict)  # l1, l2, drift_l1, drift_l2, changed_slots, slot_accuracy, clip_*
    latency_s: float | None = None  # wall time of respond(); None for an undo
    reply_text: str = ""  # the reply's text
    model_text: str | None = None  # the model's own words when the assistant replaced them (a corrected answer or a contradicted claim)
    detected: dict | None = None  # what the detector saw in the reply image
    start: str = ""  # where the turn started: session | upload | expected | fresh
    error: str | None = None  # a ChatgenError the turn raised
    images: dict[str, Image.Image] = field(default_factory=dict, repr=False)  # input, reply, expected, heat (the report saves them)

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "images"}
        d["image"] = None  # the reply image's file, filled in by the report
        return d


@dataclass(frozen=True)
class _Step:
    """The dialogue after one turn of the current path (an undo goes back one)."""

    expected: Scene | None = None  # pinned expected scene of the latest picture; None: unknown
    first: Image.Image | None = None  # drift baseline: the first picture (or the latest upload)
    changed: Region = frozenset()  # slots changed since `first`; None: the whole picture
    asked: bool = False  # the last turn was expected to be a clarifying question


def run_suite(assistant, dialogues: list[EvalDialogue], config: RunConfig = RunConfig(), progress: Callable[[int, EvalDialogue, list[TurnResult]], None] | None = None) -> list[TurnResult]:
    """Every turn of every dialogue, in order; `progress(i, dialogue, results)` after each dialogue."""
    out: list[TurnResult] = []
    for i, dlg in enumerate(dialogues):
        res = run_dialogue(assistant, dlg, config)
        out += res
        if progress is not None:
            progress(i, dlg, res)
    return out


def run_dialogue(assistant, dlg: EvalDialogue, config: RunConfig = RunConfig()) -> list[TurnResult]:
    """Run one dialogue through `assistant.respond` and score each turn."""
    mode = config.mode or dlg.mode or "iterative"
    if mode not in MODES:
        raise ChatgenError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    seed = dlg.seed if dlg.seed is not None else config.seed
    session = Session()
    steps = [_Step()]
    results = []
    for i, turn in enumerate(dlg.turns):
        res = TurnResult(dialogue=dlg.id, turn=i + 1, kind=turn.kind_name, mode=mode, tags=list(dlg.tags), user=turn.user, correct=None, reason="not scored")
        if turn.undo:
            _undo(session, steps, res)
        else:
            session = _turn(assistant, session, steps, turn, res, mode, {**config.params, "seed": seed + i}, config.clip)
        results.append(res)
    return results


def _undo(session: Session, steps: list[_Step], res: TurnResult) -> None:
    try:
        session.undo()
    except ChatgenError as e:
        res.correct, res.reason, res.error = False, f"error: {e}", str(e)
        return
    if len(steps) > 1:
        steps.pop()
    res.reason = "undo"


def _turn(assistant, session: Session, steps: list[_Step], turn: ScriptedTurn, res: TurnResult, mode: str, params: dict, clip: ClipScorer | None) -> Session:
    """Run and score one user turn; returns the session the dialogue continues in."""
    state, e = steps[-1], turn.expect
    # 1. Where the turn starts: the running session, or a fresh one with a reference upload.
    upload, start = turn.image, "upload" if turn.image is not None else "session"
    if mode == "independent" and upload is None and not state.asked:
        if state.expected is not None:
            upload, start = render(state.expected), "expected"
        elif session.last_image() is None:
            start = "fresh"
    if start != "session":
        session = Session()
    prev_image = upload if upload is not None else session.last_image()
    prev = None  # what the picture the turn starts from shows
    if prev_image is not None:
        prev = Grid.of_scene(state.expected) if start in ("expected", "session") and state.expected is not None else Grid.of_image(prev_image)
    res.start = start
    # 2. Ask the assistant.
    t0 = time.perf_counter()
    try:
        reply = assistant.respond(session, Message(turn.user, image=upload), params)
    except ChatgenError as err:
        res.latency_s = round(time.perf_counter() - t0, 4)
        res.error = str(err)
        res.correct, res.reason = (False if e is not None else None), f"error: {err}"
        return session
    res.latency_s = round(time.perf_counter() - t0, 4)
    res.reply_text = reply.text or ""
    meta = reply.metadata or {}
    res.model_text = meta.get("corrected_answer", meta.get("contradicted_claim", meta.get("first_reply")))
    image = reply.image
    grid = Grid.of_image(image) if image is not None else None
    res.detected = grid.to_dict() if grid is not None else None
    # 3. Checks on the reply itself.
    checks: list[Check] = []
    spec = e.scene if e is not None else None
    pinned = spec.pinned() if spec is not None else None
    if e is not None:
        if e.reply is not None or e.wants_image:
            checks.append(check_reply(e.reply or "image", reply.text, image))
        if spec is not None and grid is not None:
            checks += check_scene(spec, grid)
        checks += check_answer(e, reply.text)
    # 4. Pixel change outside the changed regions: preservation and drift.
    region: Region = frozenset()
    preserve = drift = None  # (L1, L2) each
    why = "no reply image" if image is None else "no earlier picture"
    if image is not None and prev is not None:
        region = changed_region(prev, spec, grid)
        preserve = distance_outside(image, prev_image, region)
        res.metrics["changed_slots"] = "all" if region is None else [list(s) for s in sorted(region)]
        baseline, so_far = (upload, region) if start == "upload" else (state.first, union(state.changed, region))
        if baseline is not None:
            drift = distance_outside(image, baseline, so_far)
        why = "the background changed" if region is None else "the whole picture changed"
        res.images["heat"] = heat_map(image, prev_image, region)
    for name, value in (("", preserve), ("drift_", drift)):
        if value is not None:
            res.metrics[name + "l1"], res.metrics[name + "l2"] = round(value[0], 6), round(value[1], 6)
    if e is not None:
        checks += _limit_checks("preserve", preserve, e.preserve, why) + _limit_checks("drift", drift, e.drift, why)
    # 5. Agreement with the pinned scene, and CLIP scores.
    if pinned is not None and grid is not None:
        wrong = grid.differing_slots(Grid.of_scene(pinned))
        res.metrics["slot_accuracy"] = round((len(ALL_SLOTS) - len(wrong)) / len(ALL_SLOTS), 4)
    if clip is not None and image is not None:
        scores = clip.scores(image, caption=describe(pinned) if pinned is not None else turn.user, target=render(pinned) if pinned is not None else None)
        res.metrics.update({k: round(v, 6) for k, v in scores.items()})
    if e is not None and e.clip is not None:
        no_clip = "no --clip model" if clip is None else ("no reply image" if image is None else "no pinned expected scene")
        out = [check_min(k, res.metrics.get(k), lim, no_clip) for k, lim in (("clip_t", e.clip.min_t), ("clip_i", e.clip.min_i))]
        checks += [c for c in out if c is not None]
    for c in checks:
        res.checks[_unique(c.name, res.checks)] = c.to_dict()
    if e is not None:
        res.correct, res.reason = verdict(checks)
    # 6. Remember what the picture should be now, for the next turn.
    if e is not None:
        expected = pinned if e.wants_image else (None if start == "upload" else state.expected)
    else:
        expected = None if (image is not None or start == "upload") else state.expected
    if start == "upload":
        first, changed = upload, (region if image is not None else frozenset())
    elif state.first is None:
        first = render(pinned) if (mode == "independent" and pinned is not None) else image
        changed = frozenset()
    else:
        first, changed = state.first, (union(state.changed, region) if image is not None else state.changed)
    steps.append(_Step(expected, first, changed, e is not None and e.reply == "clarify"))
    # 7. Pictures for the report.
    shown = pinned if pinned is not None else (expected if e is None or not e.wants_image else None)
    for name, im in (("input", prev_image), ("reply", image), ("expected", render(shown) if shown is not None else None)):
        if im is not None:
            res.images[name] = im
    return session


def _limit_checks(name: str, value: tuple[float, float] | None, limits: Limits | None, why: str) -> list[Check]:
    """"<name> l1" / "<name> l2" checks of a measured (L1, L2) against the limits that are set."""
    if limits is None:
        return []
    out = [check_max(f"{name} {k}", value[i] if value else None, lim, why) for i, (k, lim) in enumerate((("l1", limits.max_l1), ("l2", limits.max_l2)))]
    return [c for c in out if c is not None]


def _unique(name: str, taken: dict) -> str:
    """"include dog", "include dog (2)", ... so two entries never share a key."""
    if name not in taken:
        return name
    k = 2
    while f"{name} ({k})" in taken:
        k += 1
    return f"{name} ({k})"
