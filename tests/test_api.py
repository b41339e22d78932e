"""The API: ChatAPI as plain functions, then the real server driven by gradio_client."""

import os
import socket
import threading

import pytest
from PIL import Image

from chatgen.api import ChatAPI, make_params
from chatgen.models import ModelSet
from chatgen.session_store import SessionStore
from chatgen.conversation import Session
from chatgen.errors import ChatgenError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chat_until_image(call, undo, text, start=1):
    """Send `text` with seeds start, start+1, ... until the reply holds an image (the tiny random
    model sometimes answers with text only); replies without one are undone."""
    for seed in range(start, start + 40):
        reply_text, image, info = call(text, seed)
        if image:
            return reply_text, image, info
        undo()
    raise AssertionError("no seed gave an image")


# ---- plain functions --------------------------------------------------------------------------
def test_session_store_drops_the_least_recently_used():
    dropped = []
    store = SessionStore(capacity=2, on_drop=dropped.append)
    a, b = store.new(), store.new()
    store.get(a)  # a is now the most recent
    c = store.new()
    assert dropped == [b] and a in store and c in store and len(store) == 2
    with pytest.raises(ChatgenError, match="unknown session id"):
        store.get(b)
    with pytest.raises(ChatgenError):
        SessionStore(capacity=0)


def test_make_params():
    assert make_params(-1) == {} and make_params(None) == {}
    assert make_params(3.0, 0.7, 5.0, 2) == {"seed": 3, "temperature": 0.7, "top_k": 5, "cfg_scale": 2.0}
    with pytest.raises(ChatgenError, match="whole number"):
        make_params(1.5)
    with pytest.raises(ChatgenError, match="numbers"):
        make_params(1, "hot")


def test_chat_api_functions(assistant, tmp_path):
    api = ChatAPI(assistant, folder=tmp_path / "api", capacity=4)
    sid = api.new_session()
    text, image, info = chat_until_image(lambda t, s: api.chat(sid, t, None, None, s), lambda: api.undo(sid), "draw a dog")
    png = Image.open(image)
    assert png.format == "PNG" and f'"seed": {info["seed"]}' in png.text["chatgen"] and info["turn_id"]
    h = api.history(sid)
    assert h["turns"][-1]["image"] and h["head"] == info["turn_id"]
    # an edit with an upload and a mask
    src = tmp_path / "src.png"
    Image.new("RGB", (32, 32), (0, 120, 0)).save(src)
    mask = tmp_path / "mask.png"
    m = Image.new("L", (32, 32), 0)
    m.paste(255, (0, 0, 16, 16))
    m.save(mask)
    api.chat(sid, "make the left half red", str(src), str(mask), 2)
    t = api.history(sid)["turns"][-1]
    assert t["user_image"] and t["masked"]
    # undo / redo / branch / checkout
    first = api.history(sid)["turns"][0]["id"]
    assert len(api.undo(sid)["turns"]) == len(h["turns"])
    assert api.redo(sid)["can_redo"] is False
    assert api.branch(sid, 0)["turns"] == []
    assert [x["id"] for x in api.checkout(sid, first)["turns"]] == [first]
    # export / import
    zipped = api.export_session(sid)
    sid2 = api.import_session(zipped)
    assert sid2 != sid and api.history(sid2)["head"] == first
    # one-sentence errors
    with pytest.raises(ChatgenError, match="unknown session id"):
        api.chat("nope", "hi")
    with pytest.raises(ChatgenError, match="empty"):
        api.chat(sid, "  ")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    with pytest.raises(ChatgenError, match="^bad.png is not an image"):
        api.chat(sid, "edit this", str(bad))
    with pytest.raises(ChatgenError, match="whole number"):
        api.branch(sid, 1.5)
    with pytest.raises(ChatgenError, match="unknown model"):
        api.chat(sid, "hi", model="nope")


def test_session_archives(tmp_path):
    s = Session()
    path = s.write_zip(tmp_path / "empty.zip")
    assert Session.read_zip(path).turns == {}
    with pytest.raises(ChatgenError, match="not found"):
        Session.read_zip(tmp_path / "missing.zip")
    import zipfile

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../outside/session.json", "{}")
    with pytest.raises(ChatgenError, match="unsafe path"):
        Session.read_zip(evil)


def test_model_set(assistant):
    ms = ModelSet(assistant)
    assert ms.names == ["tiny-random"] and ms.get() is assistant and ms.get(refine=False) is assistant
    with pytest.raises(ChatgenError, match="unknown model"):
        ms.get("other")
    with pytest.raises(ChatgenError, match="not an Assistant"):
        ModelSet({"x": lambda: 3}).get()


# ---- the real server --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tiny_dir):
    from chatgen.assistant import Assistant
    from chatgen.backends.native import NativeBackend
    from chatgen.ui import build_demo, launch_options

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo = build_demo(Assistant(NativeBackend.from_pretrained(tiny_dir)), concurrency_limit=2)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options())
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def test_three_turn_conversation_over_gradio_client(server):
    from gradio_client import Client

    c = Client(server, verbose=False)
    sid = c.predict(api_name="/new_session")
    assert isinstance(sid, str) and len(sid) == 32

    def call(text, seed):
        return c.predict(sid, text, None, None, seed, api_name="/chat")

    def undo():
        c.predict(sid, api_name="/undo")

    # 1. draw, 2. edit: both come back as PNG files carrying their parameters
    images = []
    for text, start in (("draw a dog on the grass", 1), ("make the dog a cat", 11)):
        reply_text, image, info = chat_until_image(call, undo, text, start)
        png = Image.open(image)
        assert png.format == "PNG" and "chatgen" in png.text
        assert isinstance(reply_text, str) and info["turn_id"] and info["seed"] >= start
        images.append(image)
    assert images[0] != images[1]
    # 3. a question: a reply (text and/or image) is stored as the third turn
    reply_text, image, info = call("how many animals are there?", 21)
    assert isinstance(reply_text, str) and info["turn_id"]
    h = c.predict(sid, api_name="/history")
    assert [t["user"] for t in h["turns"]] == ["draw a dog on the grass", "make the dog a cat", "how many animals are there?"]
    assert h["turns"][0]["image"] and h["turns"][1]["image"]
    # undo, export, import into a new session
    assert len(c.predict(sid, api_name="/undo")["turns"]) == 2
    from gradio_client import handle_file

    archive = c.predict(sid, api_name="/export_session")
    sid2 = c.predict(handle_file(archive), api_name="/import_session")
    assert len(c.predict(sid2, api_name="/history")["turns"]) == 2


def test_errors_reach_the_client_as_one_sentence(server):
    from gradio_client import Client

    c = Client(server, verbose=False)
    sid = c.predict(api_name="/new_session")
    with pytest.raises(Exception, match="the message is empty"):
        c.predict(sid, "", None, None, 1, api_name="/chat")
    with pytest.raises(Exception, match="unknown session id"):
        c.predict("nope", api_name="/history")
    with pytest.raises(Exception, match="nothing to undo"):
        c.predict(sid, api_name="/undo")


def test_two_clients_never_see_each_other(server):
    from gradio_client import Client

    results, errors = {}, []

    def visitor(name):
        try:
            c = Client(server, verbose=False)
            sid = c.predict(api_name="/new_session")
            for i in range(3):
                c.predict(sid, f"{name} message {i}", None, None, i + 1, api_name="/chat")
            results[name] = c.predict(sid, api_name="/history")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=visitor, args=(n,)) for n in ("alice", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for name, other in (("alice", "bob"), ("bob", "alice")):
        texts = [t["user"] for t in results[name]["turns"]]
        assert texts == [f"{name} message {i}" for i in range(3)]
        assert not any(other in t for t in texts)
    assert results["alice"]["session_id"] != results["bob"]["session_id"]


def test_mcp_server_lists_the_endpoints_as_tools(tiny_dir):
    """`chatgen ui --mcp`: gradio serves the public endpoints as MCP tools (needs the `mcp` extra)."""
    pytest.importorskip("mcp", reason="the MCP extra is not installed (pip install -e '.[mcp]')")
    import httpx

    from chatgen.assistant import Assistant
    from chatgen.backends.native import NativeBackend
    from chatgen.ui import build_demo, launch_options

    demo = build_demo(Assistant(NativeBackend.from_pretrained(tiny_dir)))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, mcp_server=True, **launch_options())
    try:
        tools = httpx.get(f"http://127.0.0.1:{port}/gradio_api/mcp/schema", timeout=30).json()
        names = {t["name"] for t in tools}
        assert {"new_session", "chat", "undo", "history"} <= names and not any(n.startswith("ui_") for n in names)
    finally:
        demo.close()
