"""A load test: N concurrent gradio_client sessions x T turns against the app on loopback.

Every session draws with its own seeds and names itself in its messages; every reply is then
checked against that session's `/history` (its text, seed and turn id) and every reply image
against `/image` and its PNG's parameters, so a reply that landed in another session is counted.
The default suite runs 8 x 3; `CHATGEN_SLOW=1 pytest tests/test_load.py -s` also runs 64 x 5.
"""

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from test_api import free_port

KINDS = ("dog", "cat", "tree", "car", "house", "bird", "fish", "flower")


@pytest.fixture(scope="module")
def server(tiny_dir):
    from chatgen.assistant import Assistant
    from chatgen.backends.native import NativeBackend
    from chatgen.ui import build_demo, launch_options

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo = build_demo(Assistant(NativeBackend.from_pretrained(tiny_dir)), concurrency_limit=4, api_sessions=1024)  # default limits
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options())
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def one_session(url: str, i: int, turns: int, start: threading.Barrier) -> dict:
    """Session i: T turns with seeds 1000*i + t; returns its latencies and how many replies were not its own."""
    from gradio_client import Client
    from PIL import Image

    c = Client(url, verbose=False)
    sid = c.predict(api_name="/new_session")
    start.wait(120)  # every session sends its first message at once
    sent, latencies = [], []
    for t in range(turns):
        text, seed = f"draw a {KINDS[(i + t) % len(KINDS)]}, session {i} turn {t}", 1000 * i + t
        t0 = time.perf_counter()
        reply_text, image, info = c.predict(sid, text, None, None, seed, api_name="/chat")
        latencies.append(time.perf_counter() - t0)
        sent.append((text, seed, reply_text, image, info))
    # every reply against this session's own history and images
    h = c.predict(sid, api_name="/history")
    wrong = int(h["session_id"] != sid or len(h["turns"]) != turns)
    for (text, seed, reply_text, image, info), turn in zip(sent, h["turns"]):
        ok = (turn["user"], turn["seed"], turn["id"], turn["assistant"], turn["image"]) == (text, seed, info["turn_id"], reply_text, image is not None)
        ok = ok and info["seed"] == seed
        if ok and image is not None:
            again = c.predict(sid, info["turn_id"], api_name="/image")
            with open(image, "rb") as a, open(again, "rb") as b:
                ok = a.read() == b.read()
            ok = ok and json.loads(Image.open(image).text["chatgen"]).get("seed") == seed
        wrong += not ok
    return {"latencies": latencies, "wrong": wrong, "images": sum(x[3] is not None for x in sent)}


def run_load(url: str, sessions: int, turns: int) -> dict:
    start = threading.Barrier(sessions)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(sessions) as pool:
        futures = [pool.submit(one_session, url, i, turns, start) for i in range(sessions)]
    results, errors = [], []
    for f in futures:
        try:
            results.append(f.result())
        except Exception as e:  # noqa: BLE001 - counted and shown below
            errors.append(f"{type(e).__name__}: {e}")
    lat = sorted(x for r in results for x in r["latencies"])
    p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else float("nan")
    out = {"sessions": sessions, "turns": turns, "errors": errors, "wrong": sum(r["wrong"] for r in results), "replies": len(lat), "images": sum(r["images"] for r in results), "p50_s": lat[len(lat) // 2] if lat else float("nan"), "p95_s": p95, "wall_s": time.perf_counter() - t0}
    print(f"\nload {sessions} sessions x {turns} turns: {out['replies']} replies ({out['images']} with an image), {len(errors)} errors, {out['wrong']} in the wrong session, p50 {out['p50_s']:.2f} s, p95 {p95:.2f} s, wall {out['wall_s']:.1f} s")
    return out


def check(out: dict) -> None:
    assert not out["errors"], out["errors"][:5]
    assert out["wrong"] == 0
    assert out["replies"] == out["sessions"] * out["turns"]


def test_load_sample(server):
    check(run_load(server, 8, 3))


@pytest.mark.slow
def test_load_64_sessions_x_5_turns(server):
    check(run_load(server, 64, 5))
