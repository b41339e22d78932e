"""Peak memory of `chatgen ui` on the embedded model, through a scripted conversation.

    python bench/ui_memory.py                 # the UI as a newcomer starts it (the embedded refiner on when shipped)
    python bench/ui_memory.py --sessions 8    # 8 API sessions, each the 10-turn script

Steps:

1. start `chatgen ui` (extra flags after `--` go to it) on a free loopback port, wait until it answers;
2. run the scripted 10-turn conversation of `chatgen bench` (draw, edits, questions) in each of
   `--sessions` API sessions through `gradio_client`, one session after another;
3. read the server's peak resident memory (VmHWM in /proc/PID/status, Linux) and print it with the
   1.5 GB target of the performance issue, then stop the server.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time

TARGET_GB = 1.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_bytes(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2, help="API sessions, each the 10-turn script (default 2)")
    parser.add_argument("ui_args", nargs="*", help="flags for chatgen ui (after --)")
    args = parser.parse_args(argv)
    import httpx
    from gradio_client import Client

    from chatgen.evals.speed import SCRIPT

    # 1. The server.
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "chatgen", "ui", "--host", "127.0.0.1", "--port", str(port), "--turns-per-minute", "0", *args.ui_args],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"chatgen ui did not start (exit code {proc.poll()})")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        started = peak_rss_bytes(proc.pid)
        # 2. The conversations.
        client = Client(url, verbose=False)
        t0, turns = time.perf_counter(), 0
        for _ in range(args.sessions):
            sid = client.predict(api_name="/new_session")
            for i, text in enumerate(SCRIPT):
                client.predict(session_id=sid, text=text, seed=i, api_name="/chat")
                turns += 1
        # 3. The peak.
        peak = peak_rss_bytes(proc.pid)
        print(f"chatgen ui {' '.join(args.ui_args)}: {turns} turns in {time.perf_counter() - t0:.1f} s; peak RSS {peak / 1e9:.2f} GB "
              f"(after start-up {started / 1e9:.2f} GB); target <= {TARGET_GB} GB: {'✔' if peak <= TARGET_GB * 1e9 else '✘'}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
