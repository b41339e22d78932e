"""The crash test (issue 18): `chatgen ui --data-dir D` killed with SIGKILL while a turn is being
generated, then started again on D: every completed turn of every session is back, with
byte-identical images, and the half turn is not."""

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from chatgen.tiny import TinySpec, make_tiny_checkpoint

from test_api import free_port

SLOW = TinySpec(image_size=64, grid=16, hidden=128, layers=8, max_context=4096, steer_images=False)  # about 1 s of text a turn on one core (a picture would be drawn several codes a pass): a turn to kill


def start(data_dir, models, log):
    """`chatgen ui` as a subprocess on loopback; returns (process, url) once it answers."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "chatgen", "ui", "--host", "127.0.0.1", "--port", str(port), "--concurrency", "2", "--data-dir", str(data_dir)]
    for m in models:
        cmd += ["--model", str(m)]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"chatgen ui exited with code {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("chatgen ui did not answer within 90 s")


def snapshot(c, sid) -> list:
    """(turn id, user text, reply text, PNG bytes or None) of every turn of the current branch."""
    out = []
    for t in c.predict(sid, api_name="/history")["turns"]:
        png = open(c.predict(sid, t["id"], api_name="/image"), "rb").read() if t["image"] else None
        out.append((t["id"], t["user"], png))
    return out


def test_sigkill_mid_turn_then_restart_restores_every_completed_turn(tiny_dir, tmp_path):
    from gradio_client import Client
    from gradio_client.utils import Status

    slow = make_tiny_checkpoint(tmp_path / "slow", SLOW)
    data = tmp_path / "data"
    log = open(tmp_path / "server.log", "wb")
    proc, url = start(data, [tiny_dir, slow], log)
    try:
        # 1. Two sessions with a few turns each on the default model (their PNGs as the API returned them),
        #    a third with one completed turn on the slow model; an undo in the first (its head is saved too).
        c = Client(url, verbose=False)
        sessions = {}
        for texts in (["draw a dog on the grass", "make the dog a cat", "how many animals are there?"], ["draw a tree on the beach", "add a sun"]):
            sid = c.predict(api_name="/new_session")
            sessions[sid] = []
            for seed, text in enumerate(texts, 1):
                _, image, info = c.predict(session_id=sid, text=text, seed=seed, api_name="/chat")
                sessions[sid].append((info["turn_id"], text, open(image, "rb").read() if image else None))
        first = next(iter(sessions))
        c.predict(first, api_name="/undo")
        undone = sessions[first].pop()
        third = c.predict(api_name="/new_session")
        _, image, info = c.predict(session_id=third, text="draw a fox", seed=1, model="slow", api_name="/chat")
        sessions[third] = [(info["turn_id"], "draw a fox", open(image, "rb").read() if image else None)]
        assert sum(png is not None for turns in sessions.values() for *_, png in turns) >= 3
        for sid, turns in sessions.items():
            assert snapshot(c, sid) == turns
        # 2. A slow turn in the third session, killed while it is being generated.
        job = c.submit(session_id=third, text="make the fox a bear", seed=2, model="slow", api_name="/chat")
        deadline = time.monotonic() + 30
        while job.status().code != Status.PROCESSING and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        assert not job.done(), "the slow turn finished before the kill"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert not job.done() or job.exception() is not None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    # 3. Start again on the same data folder: every completed turn is back, byte for byte; the half turn is not.
    assert not list((data / "api").glob(".*")), "a temporary file outlived the restart"
    proc, url = start(data, [tiny_dir, slow], log)
    try:
        c = Client(url, verbose=False)
        for sid, turns in sessions.items():
            assert snapshot(c, sid) == turns
        assert "make the fox a bear" not in [t["user"] for t in c.predict(third, api_name="/history")["turns"]]
        assert c.predict(first, api_name="/redo")["turns"][-1]["id"] == undone[0]
        with pytest.raises(Exception, match="unknown session id"):
            c.predict("0" * 32, api_name="/history")
    finally:
        proc.kill()
        proc.wait(10)
        log.close()
