"""`chatgen bench`: how fast a turn is, as ratios measured in one run (shared machines are noisy;
ratios of figures taken side by side are not).

On a scripted 10-turn conversation (a drawing, edits and questions), repeated `repeats` times:

1. per turn: latency (p50/p95 over the repeats), time to the first image row, new tokens per
   second; each repeat starts with an empty key/value cache pool, so turn 1 pays its prompt;
2. the bare forward step: one token through the language model with a cache of the
   conversation's length (median of `steps` calls), the floor a generated token stands on;
3. time per generated image token: the time between the image span's first and last row
   events over the codes in between, against the bare step;
4. the naive baseline, in the same process: stock `transformers` `generate` on the whole
   conversation re-encoded each turn (every picture through the VQ again, the text through the
   tokenizer), no cache reused, greedy, forced to the same number of new tokens;
5. concurrency: `concurrent` conversations at different points of the script (conversation i
   holds the script's first i turns and sends turn i + 1: drawings, edits and questions) send
   their next turn at the same moment (threads released by one barrier), against the same turns
   one after another (total throughput ratio), and whether every reply is the one it got alone;
   the same for `concurrent` first turns (drawings) alone;
6. visitors, a closed loop: `concurrent` independent conversations, each its own 10-turn script
   (the script's template with other things, `VISITORS`), each a thread that sends its next turn
   as soon as its previous reply arrived (all released by one barrier), against the same
   conversations one after another (total throughput ratio), each measurement from an empty
   cache pool, and whether every reply is the one it got alone;
7. the peak resident memory of the process.

Ratio keys end in `_ratio` (lower is better) or `_speedup` (higher is better).
"""

from __future__ import annotations

import copy
import functools
import resource
import statistics
import threading
import time
from typing import Callable

import numpy as np
import torch
from transformers import DynamicCache

from chatgen.assistant import Assistant
from chatgen.conversation import Message, Session
from chatgen.events import ImageDone, ImageRow, ImageStart, ReplyDone

# The scripted conversation: one drawing, edits and questions, each on the latest picture.
SCRIPT: tuple[str, ...] = (
    "draw a dog on the left, a cat in the center and a tree in the top right, on the grass",
    "make the dog a fox",
    "how many animals are there?",
    "add a balloon in the bottom right",
    "where is the cat?",
    "remove the tree",
    "move the cat to the top left",
    "what is in the picture?",
    "now at night",
    "add a sun at the top",
)

# The visitors' conversations: (animal, animal, thing, background, what the first animal becomes).
VISITORS: tuple[tuple[str, str, str, str, str], ...] = (
    ("dog", "cat", "tree", "grass", "fox"),
    ("rabbit", "bear", "house", "snow", "panda"),
    ("frog", "fish", "boat", "sea", "chicken"),
    ("bird", "panda", "cloud", "sky", "fox"),
    ("cat", "fox", "car", "beach", "dog"),
    ("bear", "rabbit", "flower", "grass", "cat"),
    ("chicken", "dog", "cactus", "beach", "bear"),
    ("fox", "frog", "house", "night", "rabbit"),
)


def visitor_script(animal: str, other: str, thing: str, background: str, becomes: str) -> tuple[str, ...]:
    """`SCRIPT` with other things (`visitor_script(*VISITORS[0]) == SCRIPT`)."""
    return (
        f"draw a {animal} on the left, a {other} in the center and a {thing} in the top right, on the {background}",
        f"make the {animal} a {becomes}",
        "how many animals are there?",
        "add a balloon in the bottom right",
        f"where is the {other}?",
        f"remove the {thing}",
        f"move the {other} to the top left",
        "what is in the picture?",
        "now at night" if background != "night" else "now on the grass",
        "add a sun at the top",
    )


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def _turn(assistant: Assistant, session: Session, text: str, params: dict) -> dict:
    """One turn, timed from its events."""
    t0 = time.perf_counter()
    first_row = img_start = img_end = None
    rows = 0
    done = None
    for item in assistant.stream(session, Message(text), params):
        now = time.perf_counter() - t0
        if isinstance(item, ImageStart):
            img_start = now
        elif isinstance(item, ImageRow):
            rows += 1
            first_row = now if first_row is None else first_row
        elif isinstance(item, ImageDone):
            img_end = now
        elif isinstance(item, ReplyDone):
            done = item
        elif getattr(item, "turn", None) is not None:
            session.append(item.turn)
    total = time.perf_counter() - t0
    new = int(done.stats.get("new_tokens", len(done.reply_ids))) if done is not None else 0
    v = assistant.backend.vocab
    per_image_token = (img_end - img_start) / v.image_tokens if img_start is not None and img_end is not None else None
    return {"seconds": total, "first_row_s": first_row, "new_tokens": new, "per_image_token_s": per_image_token,
            "reply_ids": list(done.reply_ids) if done is not None else []}


def serial_vs_together(assistant: Assistant, make_jobs: Callable[[], list[Callable[[], list]]]) -> tuple[float, float, bool]:
    """Seconds for the jobs of `make_jobs()` (fresh ones each call, their sessions copied before
    the clock starts) one after another, then all together (one thread each, all released by one
    barrier), each from an empty cache pool; and whether every job's replies together equal its
    replies alone."""
    pool = getattr(assistant.backend, "pool", None)
    if pool is not None:
        pool.clear()
    jobs = make_jobs()
    t0 = time.perf_counter()
    alone = [job() for job in jobs]
    serial_s = time.perf_counter() - t0
    if pool is not None:
        pool.clear()
    jobs = make_jobs()
    together: list[list | None] = [None] * len(jobs)
    start = threading.Barrier(len(jobs) + 1)

    def run(i: int) -> None:
        start.wait()
        together[i] = jobs[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    together_s = time.perf_counter() - t0
    return serial_s, together_s, alone == together


def concurrent_vs_serial(assistant: Assistant, sessions: list[Session], texts: list[str], params: dict) -> tuple[float, float, bool]:
    """The burst: the next turn of every session, one after another and all arriving together."""

    def next_turn(session: Session, text: str) -> list[int]:
        return _turn(assistant, session, text, params)["reply_ids"]

    return serial_vs_together(assistant, lambda: [functools.partial(next_turn, copy.deepcopy(s), t) for s, t in zip(sessions, texts)])


def visitors_vs_serial(assistant: Assistant, scripts: list[tuple[str, ...]], params: dict) -> tuple[float, float, bool]:
    """The visitors: one conversation per script, turn after turn (a visitor sends its next turn as
    soon as its previous reply arrived), one after another and all together."""

    def conversation(script: tuple[str, ...]) -> list[list[int]]:
        session = Session()
        return [_turn(assistant, session, text, params)["reply_ids"] for text in script]

    return serial_vs_together(assistant, lambda: [functools.partial(conversation, script) for script in scripts])


@torch.no_grad()
def bare_step_seconds(model, context: int, steps: int = 50) -> float:
    """Median seconds of one cached forward step of one token after `context` tokens."""
    ids = torch.randint(0, 100, (1, context), device=model.device)  # (1, T)
    cache = DynamicCache()
    model(input_ids=ids, cache=cache, use_cache=True)
    tok = ids[:, -1:]  # (1, 1)
    times = []
    for i in range(steps):
        t0 = time.perf_counter()
        model(input_ids=tok, cache=cache, use_cache=True)
        times.append(time.perf_counter() - t0)
        cache.crop(-1)  # back to `context` tokens: every step at the same length
    return statistics.median(times[5:] if steps > 10 else times)


@torch.no_grad()
def naive_turn_seconds(assistant: Assistant, session: Session, text: str, new_tokens: int) -> float:
    """The naive baseline for the next turn of `session`: re-encode the whole conversation
    (pictures through the VQ, text through the tokenizer, as a fresh prompt would) and run
    stock `generate` without a cache, greedy, for exactly `new_tokens` tokens."""
    b = assistant.backend
    t0 = time.perf_counter()
    ids = [b.vocab.special("<bos>")]
    for t in session.path():
        ids += b.encode_user(Message(t.user_text, t.user_image))
        ids += [b.vocab.special("<assistant>"), *b.encode_text(t.assistant_text)]
        if t.assistant_image is not None:
            ids += b.vocab.codes_to_ids(b.encode_image(t.assistant_image))
        ids.append(b.vocab.eot)
    ids += b.encode_user(Message(text)) + [b.vocab.special("<assistant>")]
    x = torch.tensor([ids], device=b.lm.device)  # (1, T)
    b.lm.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=max(1, new_tokens), min_new_tokens=max(1, new_tokens), do_sample=False, use_cache=True, pad_token_id=b.vocab.pad)
    return time.perf_counter() - t0


def run_speed(assistant: Assistant, repeats: int = 3, concurrent: int = 8, log=print) -> dict:
    """The figures of the module doc for `assistant` (greedy, fixed seed)."""
    params = {"temperature": 0.0, "seed": 0}
    b = assistant.backend
    pool = getattr(b, "pool", None)
    # 1. The conversation, `repeats` times from an empty cache pool.
    per_turn: list[list[dict]] = [[] for _ in SCRIPT]
    session = Session()
    for rep in range(repeats):
        if pool is not None:
            pool.clear()
        session = Session()
        for i, text in enumerate(SCRIPT):
            per_turn[i].append(_turn(assistant, session, text, params))
        log(f"repeat {rep + 1}/{repeats} done")
    # 2. The bare step at the length of the finished conversation.
    context = len(b.prompt(session, Message("where is the dog?")).ids)
    bare = bare_step_seconds(b.lm, context) if hasattr(b, "lm") else None
    # 4. The naive baseline on the last repeat's conversation, turn by turn.
    naive: list[float] = []
    replay = Session()
    for i, text in enumerate(SCRIPT):
        naive.append(naive_turn_seconds(assistant, replay, text, per_turn[i][-1]["new_tokens"]))
        _turn(assistant, replay, text, params)
    log("naive baseline done")
    # 5. Concurrency: `concurrent` conversations at different turns of the script send their next
    #    turn together, against one after another; then `concurrent` first turns (drawings).
    path = replay.path()
    sessions, texts = [], []
    for i in range(concurrent):
        k = i % len(SCRIPT)
        s = copy.deepcopy(replay)
        s.checkout(path[k - 1].id if k else None)
        sessions.append(s)
        texts.append(SCRIPT[k])
    serial_s, together_s, same = concurrent_vs_serial(assistant, sessions, texts, params)
    draw_serial_s, draw_together_s, draw_same = concurrent_vs_serial(assistant, [Session() for _ in range(concurrent)], [SCRIPT[0]] * concurrent, params)
    log("concurrency done")
    # 6. Visitors: `concurrent` conversations of their own, turn after turn, together and one after another.
    scripts = [visitor_script(*VISITORS[i % len(VISITORS)]) for i in range(concurrent)]
    visitors_serial_s, visitors_together_s, visitors_same = visitors_vs_serial(assistant, scripts, params)
    log("visitors done")
    # 7. Summary.
    turns = []
    for i, runs in enumerate(per_turn):
        secs = [r["seconds"] for r in runs]
        rows = [r["first_row_s"] for r in runs if r["first_row_s"] is not None]
        toks = sum(r["new_tokens"] for r in runs)
        turns.append({"turn": i + 1, "text": SCRIPT[i], "p50_s": round(statistics.median(secs), 4), "p95_s": round(_pct(secs, 95), 4),
                      "first_row_s": round(statistics.median(rows), 4) if rows else None, "new_tokens": runs[-1]["new_tokens"],
                      "tokens_per_s": round(toks / sum(secs), 1), "naive_s": round(naive[i], 4)})
    image_tok = [r["per_image_token_s"] for runs in per_turn for r in runs if r["per_image_token_s"] is not None]
    image_turns = [t["p50_s"] for t in turns if t["first_row_s"] is not None]
    report = {
        "model": b.name,
        "threads": torch.get_num_threads(),
        "turns": turns,
        "bare_step_s": round(bare, 5) if bare else None,
        "image_token_s": round(statistics.median(image_tok), 5) if image_tok else None,
        "image_turn_p50_s": round(statistics.median(image_turns), 4) if image_turns else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "concurrent": concurrent,
        "serial_s": round(serial_s, 3),
        "concurrent_s": round(together_s, 3),
        "concurrent_replies_equal": same and draw_same and visitors_same,  # every reply together (burst and visitors) is the reply it got alone
        "drawings_serial_s": round(draw_serial_s, 3),
        "drawings_concurrent_s": round(draw_together_s, 3),
        "visitors_serial_s": round(visitors_serial_s, 3),
        "visitors_concurrent_s": round(visitors_together_s, 3),
    }
    report["image_token_vs_bare_step_ratio"] = round(report["image_token_s"] / bare, 3) if bare and image_tok else None
    report["turn10_vs_turn1_ratio"] = round(turns[-1]["p50_s"] / turns[0]["p50_s"], 3)
    report["turn10_vs_naive_speedup"] = round(turns[-1]["naive_s"] / turns[-1]["p50_s"], 3)
    report["concurrent_throughput_speedup"] = round(serial_s / together_s, 3)
    report["concurrent_drawings_speedup"] = round(draw_serial_s / draw_together_s, 3)
    report["visitors_throughput_speedup"] = round(visitors_serial_s / visitors_together_s, 3)
    return report


def format_table(report: dict) -> str:
    """The per-turn table and the ratios, as printed by `chatgen bench`."""
    lines = [f"{'turn':>4}  {'p50 s':>7}  {'p95 s':>7}  {'1st row s':>9}  {'tok/s':>6}  {'naive s':>7}  request"]
    for t in report["turns"]:
        row = "-" if t["first_row_s"] is None else f"{t['first_row_s']:.3f}"
        lines.append(f"{t['turn']:>4}  {t['p50_s']:>7.3f}  {t['p95_s']:>7.3f}  {row:>9}  {t['tokens_per_s']:>6.0f}  {t['naive_s']:>7.3f}  {t['text'][:48]}")
    lines.append("")
    for k in ("bare_step_s", "image_token_s", "image_turn_p50_s", "peak_rss_mb", "serial_s", "concurrent_s", "drawings_serial_s", "drawings_concurrent_s", "visitors_serial_s", "visitors_concurrent_s", "concurrent_replies_equal"):
        lines.append(f"{k:<34} {report[k]}")
    for k, v in report.items():
        if k.endswith(("_ratio", "_speedup")):
            lines.append(f"{k:<34} {v}")
    return "\n".join(lines)
