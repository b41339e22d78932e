"""Sessions saved on disk after every completed change (`--data-dir`): atomic writes, checked
reads, and the API and the UI bringing sessions back by their ids."""

import os

import gradio as gr
import pytest
from PIL import Image

from chatgen.api import ChatAPI
from chatgen.autosave import SessionFolder, browser_secret, new_session_id
from chatgen.conversation import Session, Turn
from chatgen.errors import ChatgenError
from chatgen.session_store import SessionStore
from chatgen.ui import ChatUI, UIState


def session_with(n: int) -> Session:
    s = Session(system="be brief")
    for i in range(1, n + 1):
        s.append(Turn(id=f"t{i}", parent=None, user_text=f"turn {i}", assistant_text="ok", assistant_image=Image.new("RGB", (8, 8), (i * 20, 0, 0)), params={"seed": i}, created=1000.0 + i))
    return s


def same(a: Session, b: Session) -> bool:
    return a.to_dict() == b.to_dict() and list(a._files()) == list(b._files())


def test_save_is_atomic_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    folder = SessionFolder(tmp_path)
    sid = new_session_id()
    folder.save(sid, session_with(1))
    assert [p.name for p in tmp_path.iterdir()] == [f"{sid}.zip"]  # no temporary file after success
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    folder.save(sid, session_with(2))
    assert len(synced) == 2  # the archive, then the folder
    assert same(folder.load(sid), session_with(2))

    # a crash between the write and the rename: the previous complete state is what is read
    def crash(src, dst):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        folder.save(sid, session_with(3))
    assert same(folder.load(sid), session_with(2))
    # a kill -9 leaves the temporary file behind: opening the folder again removes it
    (tmp_path / f".{sid}.abc.partial").write_bytes(b"PK\x03\x04half")
    assert same(SessionFolder(tmp_path).load(sid), session_with(2))
    assert [p.name for p in tmp_path.iterdir()] == [f"{sid}.zip"]


def test_ids_never_leave_the_folder_and_damaged_files_are_refused(tmp_path):
    folder = SessionFolder(tmp_path / "d")
    for bad in ("../../etc/passwd", "", None, 3, "short", "a/" + "b" * 20):
        assert folder.load(bad) is None
    with pytest.raises(ChatgenError, match="bad session id"):
        folder.save("../" + "x" * 20, Session())
    assert folder.load(new_session_id()) is None  # well-formed, never saved
    sid = new_session_id()
    (tmp_path / "d" / f"{sid}.zip").write_bytes(b"not a zip")
    with pytest.raises(ChatgenError, match="not a zip archive"):
        folder.load(sid)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ChatgenError, match="is a file"):
        SessionFolder(tmp_path / "file")


def test_store_brings_sessions_back_after_a_restart_or_a_drop(tmp_path):
    store = SessionStore(capacity=1, saved=SessionFolder(tmp_path))
    a = store.new(session_with(1))
    b = store.new()  # a is dropped from memory, not from disk
    assert a not in store and len(a) == 32
    session, lock = store.get(a)
    assert same(session, session_with(1))
    with lock:
        session.undo()
        store.save(a, session)
    again = SessionStore(saved=SessionFolder(tmp_path))  # a restart
    assert again.get(a)[0].head is None and again.get(a)[0].can_redo and again.get(b)[0].turns == {}
    with pytest.raises(ChatgenError, match="unknown session id"):
        again.get(new_session_id())


def test_api_sessions_survive_a_restart_with_identical_pngs(assistant, tmp_path):
    api = ChatAPI(assistant, folder=tmp_path / "out1", data_dir=tmp_path / "data")
    sid = api.new_session()
    pngs = {}
    for seed in range(1, 4):
        _, image, info = api.chat(sid, "draw a dog", seed=seed)
        if image:
            pngs[info["turn_id"]] = open(image, "rb").read()
    assert pngs
    again = ChatAPI(assistant, folder=tmp_path / "out2", data_dir=tmp_path / "data")
    assert again.history(sid) == api.history(sid)
    for tid, data in pngs.items():
        assert open(again.image(sid, tid), "rb").read() == data
    with pytest.raises(ChatgenError, match="no reply image"):
        again.image(sid, "t99")
    # without a data folder nothing is written but the reply PNGs
    plain = ChatAPI(assistant, folder=tmp_path / "out3")
    plain.chat(plain.new_session(), "draw a dog", seed=1)
    assert plain.store.saved is None and not list((tmp_path / "out3").rglob("*.zip"))


def test_ui_tab_gets_its_session_back_by_the_browser_id(assistant, tmp_path, monkeypatch):
    monkeypatch.setattr("chatgen.ui.state.FILES_ROOT", tmp_path / "ui-files")
    ui = ChatUI(assistant, saved=SessionFolder(tmp_path / "ui"))
    st = UIState()
    *_, sid = ui.restore(st, None)  # a first visit: a new id for the browser to keep
    assert len(sid) == 32 and st.sid == sid
    list(ui.send(st, {"text": "draw a dog", "files": []}, None, None, 1, None, None, None, False))
    saved = (tmp_path / "ui" / f"{sid}.zip").read_bytes()
    # a stopped reply stores nothing, and writes nothing
    monkeypatch.setattr(ui.models, "stream", lambda *a, **k: iter([]))
    list(ui.send(st, {"text": "make the dog a cat", "files": []}, None, None, 2, None, None, None, False))
    assert (tmp_path / "ui" / f"{sid}.zip").read_bytes() == saved
    ui.undo(st)
    # a restarted server: the tab sends its id on load and gets the session back
    st2 = UIState()
    *_, sid2 = ChatUI(assistant, saved=SessionFolder(tmp_path / "ui")).restore(st2, sid)
    assert sid2 == sid and same(st2.session, st.session) and st2.session.can_redo
    # an id that names no saved session is never adopted
    st3 = UIState()
    *_, sid3 = ui.restore(st3, new_session_id())
    assert sid3 != sid and st3.session.turns == {}


def test_build_demo_with_a_data_dir(assistant, tmp_path):
    from chatgen.ui import build_demo

    demo = build_demo(assistant, data_dir=tmp_path / "data")
    assert (tmp_path / "data" / "ui").is_dir() and (tmp_path / "data" / "api").is_dir()
    assert "image" in {d.api_name for d in demo.fns.values()}
    # The browser's copy of the tab's id is encrypted with a key that outlives the server: a
    # restarted app (a new demo on the same folder) can read it (gradio's default key is new at
    # every start, which lost every tab's session after a restart in a real browser).
    again = build_demo(assistant, data_dir=tmp_path / "data")
    keys = [[b.secret for b in d.blocks.values() if isinstance(b, gr.BrowserState)] for d in (demo, again)]
    assert keys[0] == keys[1] and len(keys[0]) == 1 and len(keys[0][0]) == 64
    assert browser_secret(tmp_path / "data") == keys[0][0]
    assert (tmp_path / "data" / "browser_secret").stat().st_mode & 0o777 == 0o600


def test_ui_cli_data_dir_must_be_a_folder(tmp_path, capsys):
    from chatgen.cli import main

    (tmp_path / "file").write_text("x")
    assert main(["ui", "--data-dir", str(tmp_path / "file")]) == 2
    assert "--data-dir must be a folder" in capsys.readouterr().err
