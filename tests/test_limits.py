"""The server's limits: upload size, turns per minute per visitor, queue size; each refusal one sentence, nothing lost."""

import threading

import gradio as gr
import pytest
from PIL import Image

from chatgen.api import ChatAPI
from chatgen.errors import ChatgenError
from chatgen.limits import Limits, TurnLimiter, check_upload_size
from chatgen.ui import VIEW, ChatUI, UIState, build_demo



class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def settings():
    """The settings panel's values: the default model, seed 1, greedy."""
    return (None, 1, 0.0, 0, 1.0, False)


def test_limits_are_checked():
    assert Limits().turns_per_minute >= 30 and Limits().queue_size >= 64 and Limits().max_upload_bytes >= 2**20
    for bad in (dict(max_upload_bytes=0), dict(queue_size=0), dict(turns_per_minute=-1), dict(queue_size=1.5)):
        with pytest.raises(ChatgenError, match=next(iter(bad))):
            Limits(**bad)


def test_turn_limiter_sliding_window():
    clock = Clock()
    lim = TurnLimiter(3, clock=clock)
    for _ in range(3):  # turns at 0, 10 and 20 s
        lim.take("a")
        clock.now += 10
    with pytest.raises(ChatgenError, match="^you are sending messages faster than 3 a minute: please wait 30 seconds and send it again$"):
        lim.take("a")
    lim.take("b")  # another visitor is not affected
    lim.take(None)  # no visitor: never limited
    clock.now += 30  # at 60 s the first turn leaves the window
    lim.take("a")
    with pytest.raises(ChatgenError, match="wait 10 seconds"):
        lim.take("a")
    unlimited = TurnLimiter(0, clock=clock)
    for _ in range(1000):
        unlimited.take("a")


def test_turn_limiter_is_thread_safe_and_forgets_idle_visitors():
    clock = Clock()
    lim = TurnLimiter(50, clock=clock)
    admitted, refused = [], []

    def visitor():
        for _ in range(20):
            try:
                lim.take("same")
                admitted.append(1)
            except ChatgenError:
                refused.append(1)

    threads = [threading.Thread(target=visitor) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 50 and len(refused) == 110
    for i in range(1000):
        lim.take(f"old{i}")
    clock.now += 61
    for i in range(1100):  # a sweep (every 1024 turns) forgets everyone idle for a minute
        lim.take(f"new{i}")
    assert len(lim) == 1100


def test_upload_size_is_checked_before_reading(tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"x" * 3000)  # not even an image: the size alone refuses it
    with pytest.raises(ChatgenError, match=r"^big.png is 2.9 KB, over the upload limit of 1000 bytes: please send a smaller file$"):
        check_upload_size(big, 1000)
    check_upload_size(big, 3000)
    check_upload_size(tmp_path / "missing.png", 10)  # whoever opens it reports a missing file


def test_api_limits(assistant, tmp_path):
    api = ChatAPI(assistant, folder=tmp_path / "api", limits=Limits(max_upload_bytes=2000, turns_per_minute=2))
    sid = api.new_session()
    big = tmp_path / "photo.png"
    Image.effect_noise((64, 64), 50).convert("RGB").save(big)  # noise does not compress: > 2000 bytes
    with pytest.raises(ChatgenError, match="^photo.png is .* over the upload limit"):
        api.chat(sid, "what is this?", str(big))
    with pytest.raises(ChatgenError, match="over the upload limit"):
        api.chat(sid, "make it blue", None, str(big))
    assert api.history(sid)["turns"] == []
    api.chat(sid, "draw a dog", seed=1)
    api.chat(sid, "draw a cat", seed=2)
    with pytest.raises(ChatgenError, match=r"faster than 2 a minute: please wait \d+ seconds?"):
        api.chat(sid, "draw a tree", seed=3)
    assert [t["user"] for t in api.history(sid)["turns"]] == ["draw a dog", "draw a cat"]  # nothing lost, nothing added
    api.chat(api.new_session(), "draw a tree", seed=3)  # the limit is per session id
    archive = api.export_session(sid)
    small = ChatAPI(assistant, folder=tmp_path / "api2", limits=Limits(max_upload_bytes=100))
    with pytest.raises(ChatgenError, match="over the upload limit"):
        small.import_session(archive)


def test_ui_limits_keep_the_message(assistant, tmp_path, monkeypatch):
    warnings = []
    monkeypatch.setattr(gr, "Warning", lambda msg, *a, **k: warnings.append(msg))
    ui = ChatUI(assistant, limits=Limits(max_upload_bytes=2000, turns_per_minute=1))
    st = UIState()
    big = tmp_path / "photo.png"
    Image.effect_noise((64, 64), 50).convert("RGB").save(big)
    out = list(ui.send(st, {"text": "what is this?", "files": [str(big)]}, None, *settings(), visitor="tab1"))
    assert "over the upload limit" in warnings[-1] and not st.session.turns
    assert out[-1][VIEW.index("box")] == gr.skip()  # the typed message stays in the box
    list(ui.send(st, {"text": "draw a dog", "files": []}, None, *settings(), visitor="tab1"))
    assert len(st.session.turns) == 1
    out = list(ui.send(st, {"text": "draw a cat", "files": []}, None, *settings(), visitor="tab1"))
    assert "faster than 1 a minute" in warnings[-1] and len(st.session.turns) == 1
    assert out[-1][VIEW.index("box")]["value"] == {"text": "draw a cat", "files": []}  # the message goes back into the box
    head = st.session.head
    list(ui.retry(st, *settings(), visitor="tab1"))  # a refused retry leaves the turn as it was
    assert st.session.head == head and len(st.session.turns) == 1
    list(ui.send(UIState(), {"text": "draw a cat", "files": []}, None, *settings(), visitor="tab2"))  # another tab is not limited
    assert "faster" in warnings[-2] and len(warnings) == 3


def test_build_demo_takes_the_limits(assistant):
    from gradio.helpers import special_args

    demo = build_demo(assistant, limits=Limits(queue_size=7, turns_per_minute=5))
    assert demo._queue.max_size == 7
    send = next(fn for fn in demo.fns.values() if fn.api_name == "ui_send")
    inputs, *_ = special_args(send.fn, ["state", "box"], request=gr.Request(session_hash="abc"))
    assert isinstance(inputs[0], gr.Request) and inputs[0].session_hash == "abc"  # gradio hands the visitor in
