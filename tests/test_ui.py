"""The UI handlers as plain functions: a UIState in, view values out; no browser, no server."""

import copy
import time
import zipfile

import pytest
from PIL import Image

from chatgen.api import ModelSet
from chatgen.conversation import Message
from chatgen.errors import ChatgenError
from chatgen.ui import VIEW, ChatUI, Settings, UIState, build_demo, mask_from_editor, read_box


def view(out) -> dict:
    return dict(zip(VIEW, out))


def good_seed(assistant, session, text, image=None, mask=None, start=1):
    """A seed whose reply to `text` holds an image (the tiny random model sometimes answers with text only)."""
    for seed in range(start, start + 40):
        reply = assistant.respond(copy.deepcopy(session), Message(text, image, mask), {"seed": seed})
        if reply.image is not None:
            return seed
    raise AssertionError("no seed gave an image")


def kept(box, text) -> bool:
    """The message box was left alone, or given back the typed text."""
    return box == {"__type__": "update"} or box.get("value", {}).get("text") == text


def settings(seed=-1, model=None):
    return (model, seed, None, None, None, False)


def send(ui, st, text, seed, editor=None, files=()):
    outs = list(ui.send(st, {"text": text, "files": list(files)}, editor, *settings(seed)))
    return outs


def draw(ui, st, assistant, text, **kw):
    seed = good_seed(assistant, st.session, text, **kw)
    outs = send(ui, st, text, seed)
    assert st.session.path()[-1].assistant_image is not None
    return outs


@pytest.fixture(autouse=True)
def _files_in_tmp(tmp_path, monkeypatch):
    """The PNGs the handlers write go to the test's temporary folder."""
    monkeypatch.setattr("chatgen.ui.state.FILES_ROOT", tmp_path / "ui-files")


@pytest.fixture()
def ui(assistant):
    return ChatUI(assistant)


def test_send_streams_rows_and_stores_the_turn(ui, assistant):
    st = UIState()
    outs = draw(ui, st, assistant, "draw a dog on the grass")
    frames = [view(o) for o in outs]
    # the image grows: a progress bar per row and a preview image while drawing
    rows = assistant.backend.vocab.grid_h
    labels = [f["progress"] for f in frames[:-1]]
    assert any(f"1 of {rows} rows" in p for p in labels) and any("cg-progress" in p for p in labels)
    previews = [f["image"] for f in frames[:-1] if isinstance(f["image"], str)]
    assert previews and all(Image.open(p).size == (32, 32) for p in previews)  # the partial image, as a PNG file
    # while generating the box is locked and empty; at the end it is unlocked and empty
    assert frames[0]["box"]["interactive"] is False
    last = frames[-1]
    assert last["box"]["interactive"] is True and last["box"]["value"] is None
    assert last["progress"] == ""
    # the stored turn is shown: chat, current image, version strip, download
    assert len(st.session) == 1 and not st.busy
    assert [m["role"] for m in last["chat"]] == ["user", "assistant"]
    assert last["chat"][0]["content"] == "draw a dog on the grass"
    assert len(last["versions"]) == 1
    png = Image.open(last["image"])
    assert png.format == "PNG" and "chatgen" in png.text  # generation parameters in the PNG text chunk
    assert '"seed"' in png.text["chatgen"]
    assert last["download"]["value"] == last["image"]
    assert "1 turn" in last["status"]


def test_bad_input_warns_and_changes_nothing(ui, assistant, tmp_path):
    st = UIState()
    draw(ui, st, assistant, "draw a dog")
    before = (st.session.head, len(st.session.turns))
    with pytest.warns(UserWarning, match="the message is empty"):
        out = view(send(ui, st, "   ", 1)[-1])
    assert kept(out["box"], "   ")  # not cleared: the typed text stays
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.warns(UserWarning, match="broken.png"):
        out = view(send(ui, st, "make it a cat", 1, files=[str(broken)])[-1])
    assert kept(out["box"], "make it a cat")  # not cleared: the text is not lost
    with pytest.warns(UserWarning, match="seed"):
        list(ui.send(st, {"text": "hello", "files": []}, None, None, 1.5, None, None, None, False))
    with pytest.warns(UserWarning, match="unknown model"):
        list(ui.send(st, {"text": "hello", "files": []}, None, "nope", 1, None, None, None, False))
    assert (st.session.head, len(st.session.turns)) == before


def test_a_mask_without_an_image_is_refused(ui):
    st = UIState()
    layer = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    layer.paste((255, 0, 0, 255), (10, 10, 30, 30))
    with pytest.warns(UserWarning, match="a mask needs an image"):
        list(ui.send(st, {"text": "make it red", "files": []}, {"background": None, "layers": [layer], "composite": None}, *settings(1)))
    assert len(st.session.turns) == 0


def test_mask_from_editor():
    assert mask_from_editor(None) is None
    empty = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    assert mask_from_editor({"background": None, "layers": [empty], "composite": None}) is None
    painted = empty.copy()
    painted.paste((255, 45, 85, 150), (0, 0, 20, 20))
    m = mask_from_editor({"background": Image.new("RGB", (40, 40)), "layers": [painted], "composite": None})
    assert m.mode == "L" and m.getpixel((5, 5)) == 255 and m.getpixel((30, 30)) == 0
    with pytest.raises(ChatgenError):
        mask_from_editor(42)


def test_masked_edit_is_stored_with_its_mask(ui, assistant):
    st = UIState()
    draw(ui, st, assistant, "draw a dog")
    layer = Image.new("RGBA", (384, 384), (0, 0, 0, 0))
    layer.paste((255, 45, 85, 150), (0, 0, 192, 192))
    editor = {"background": ui.editor_value(st)["background"], "layers": [layer], "composite": None}
    outs = list(ui.send(st, {"text": "make the dog a cat", "files": []}, editor, *settings(3)))
    t = st.session.path()[-1]
    assert len(st.session) == 2 and t.user_mask is not None and t.user_mask.getextrema() == (0, 255)
    last = view(outs[-1])
    assert "painted region" in str(last["chat"][2]["content"])
    assert last["editor"]["layers"] == []  # the paint is cleared after the reply


def test_upload_is_shown_and_stored(ui, assistant, tmp_path):
    st = UIState()
    path = tmp_path / "photo.png"
    Image.new("RGB", (50, 40), (200, 30, 30)).save(path)
    out = view(send(ui, st, "what is this?", 2, files=[str(path)])[-1])
    t = st.session.path()[-1]
    assert t.user_image is not None and t.user_image.size == (50, 40)
    assert isinstance(out["chat"][0]["content"], list) and out["chat"][0]["content"][1]["path"].endswith(".png")


def test_undo_redo_retry(ui, assistant):
    st = UIState()
    draw(ui, st, assistant, "draw a dog")
    draw(ui, st, assistant, "make the dog a cat")
    s = st.session
    first, second = [t.id for t in s.path()]
    out = view(ui.undo(st))
    assert [t.id for t in s.path()] == [first] and len(out["versions"]) == 1 and len(out["chat"]) == 2
    view(ui.redo(st))
    assert [t.id for t in s.path()] == [first, second]
    with pytest.warns(UserWarning, match="nothing to redo"):
        ui.redo(st)
    # retry answers the last message again with a new seed; the old answer stays as a branch
    outs = list(ui.retry(st, *settings(seed=5)))
    path = s.path()
    assert len(path) == 2 and path[-1].id not in (first, second) and path[-1].user_text == "make the dog a cat"
    assert path[-1].params["seed"] != 5  # retry ignores the fixed seed: a new one each time
    assert len(s.branches()) == 2
    assert len(view(outs[-1])["branches"]["choices"]) == 2
    with pytest.warns(UserWarning, match="nothing to retry"):
        list(ui.retry(UIState(), *settings()))


def test_editing_an_earlier_message_starts_a_branch(ui, assistant):
    st = UIState()
    draw(ui, st, assistant, "draw a dog")
    draw(ui, st, assistant, "make the dog a cat")
    s = st.session
    old = [t.id for t in s.path()]
    # message index 2 is the second user message (one user + one assistant message per turn)
    outs = list(ui.edit(st, 2, "make the dog a fox", *settings(4)))
    path = s.path()
    assert [t.user_text for t in path] == ["draw a dog", "make the dog a fox"]
    assert path[0].id == old[0] and path[1].id != old[1]
    assert old[1] in s.turns and len(s.branches()) == 2
    assert view(outs[-1])["chat"][2]["content"] == "make the dog a fox"
    # editing the very first message branches from the start
    list(ui.edit(st, 0, "draw a cat", *settings(6)))
    assert [t.user_text for t in s.path()] == ["draw a cat"] and len(s.branches()) == 3
    # switching back to the first branch by its last turn
    view(ui.checkout(st, old[1]))
    assert [t.id for t in s.path()] == old
    with pytest.warns(UserWarning, match="no longer"):
        list(ui.edit(st, 99, "x", *settings(1)))


def test_version_strip_click_continues_from_that_image(ui, assistant):
    st = UIState()
    draw(ui, st, assistant, "draw a dog")
    draw(ui, st, assistant, "make the dog a cat")
    first = st.session.path()[0].id
    out = view(ui.select_version(st, 0))
    assert st.session.head == first and len(out["versions"]) == 1
    assert st.session.can_redo  # the later image is one redo away
    out = view(ui.branch_at(st, 0))
    assert st.session.head is None and out["chat"] == [] and out["image"] is None
    with pytest.warns(UserWarning, match="branch point"):
        ui.branch_at(st, 7)


def test_export_and_import_round_trip(ui, assistant, tmp_path):
    st = UIState()
    draw(ui, st, assistant, "draw a dog")
    draw(ui, st, assistant, "make the dog a cat")
    list(ui.retry(st, *settings()))
    f = ui.export(st)
    assert f["visible"] and f["value"].endswith(".zip") and zipfile.is_zipfile(f["value"])
    other = UIState()
    out = view(ui.import_session(other, f["value"]))
    a, b = st.session, other.session
    assert b.head == a.head and set(b.turns) == set(a.turns) and len(b.branches()) == 2
    for tid, t in a.turns.items():
        got = b.turns[tid].assistant_image
        assert (got is None) == (t.assistant_image is None)
        assert got is None or (got.mode, got.size, got.tobytes()) == (t.assistant_image.mode, t.assistant_image.size, t.assistant_image.tobytes())
    assert len(out["chat"]) == 4 and len(out["versions"]) == len(a.images())
    # the imported conversation goes on
    draw(ui, other, assistant, "how many animals are there?")
    assert len(other.session) == 3
    # a file that is not a session archive changes nothing
    bad = tmp_path / "notes.zip"
    bad.write_text("hello")
    with pytest.warns(UserWarning, match="not a zip archive"):
        ui.import_session(other, str(bad))
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("readme.txt", "hi")
    with pytest.warns(UserWarning, match="session.json is missing"):
        ui.import_session(other, str(empty))
    assert len(other.session) == 3
    with pytest.warns(UserWarning, match="nothing to export"):
        assert ui.export(UIState())["visible"] is False


def test_stop_cancels_and_stores_nothing(ui, assistant, monkeypatch):
    lm = assistant.backend.lm
    forward = lm.forward

    def slow(*a, **k):
        time.sleep(0.05)
        return forward(*a, **k)

    monkeypatch.setattr(lm, "forward", slow)
    st = UIState()
    gen = ui.send(st, {"text": "draw a dog", "files": []}, None, *settings(1))
    first = view(next(gen))
    assert st.busy and first["box"]["interactive"] is False
    ui.stop(st)
    rest = list(gen)
    last = view(rest[-1])
    assert len(st.session.turns) == 0 and not st.busy
    assert last["box"]["value"] == {"text": "draw a dog", "files": []} and last["box"]["interactive"] is True  # the text comes back


def test_busy_state_refuses_a_second_message(ui):
    st = UIState()
    st.busy = True
    with pytest.warns(UserWarning, match="still being generated"):
        list(ui.send(st, {"text": "draw", "files": []}, None, *settings(1)))
    with pytest.warns(UserWarning, match="still being generated"):
        ui.undo(st)


def test_new_chat_and_state_isolation(ui, assistant):
    a, b = UIState(), copy.deepcopy(UIState())
    draw(ui, a, assistant, "draw a dog")
    assert len(b.session) == 0 and a.cancel is not b.cancel
    c = copy.deepcopy(a)  # what gr.State does with its initial value for each visitor
    assert c.session is not a.session and len(c.session) == 1
    view(ui.new_chat(a))
    assert len(a.session) == 0 and len(c.session) == 1


def test_model_choice_loads_on_first_use(assistant):
    calls = []

    def loader():
        calls.append(1)
        return assistant

    models = ModelSet({"main": assistant, "other": loader})
    ui = ChatUI(models)
    st = UIState()
    assert calls == []
    seed = good_seed(assistant, st.session, "draw a dog")
    list(ui.send(st, {"text": "draw a dog", "files": []}, None, *settings(seed, model="other")))
    assert calls == [1] and len(st.session) == 1
    list(ui.send(st, {"text": "again", "files": []}, None, *settings(2, model="other")))
    assert calls == [1]


def test_read_box():
    assert read_box(None) == ("", [])
    assert read_box("hi") == ("hi", [])
    assert read_box({"text": "x", "files": [{"path": "/a.png"}, "/b.png"]}) == ("x", ["/a.png", "/b.png"])
    with pytest.raises(ChatgenError):
        read_box(3)


def test_settings_params():
    assert Settings(seed=-1).params() == {}
    assert Settings(seed=7, temperature=0.5, top_k=12.0, cfg_scale=3).params() == {"seed": 7, "temperature": 0.5, "top_k": 12, "cfg_scale": 3.0}


def test_build_demo_has_the_named_api(assistant):
    demo = build_demo(assistant, concurrency_limit=2)
    names = {d.api_name for d in demo.fns.values() if d.api_visibility == "public"}
    assert {"new_session", "chat", "undo", "redo", "branch", "checkout", "history", "export_session", "import_session"} <= names
    assert not any(n.startswith("ui_") for n in names)
    chat = next(d for d in demo.fns.values() if d.api_name == "chat")
    assert chat.concurrency_limit == 2 and chat.concurrency_id == "generate"


def test_after_an_edit_a_hint_points_at_undo_and_retry(ui, assistant):
    from chatgen.ui.handlers import UNDO_HINT

    st = UIState()
    first = view(draw(ui, st, assistant, "draw a dog")[-1])
    assert first["progress"] == ""  # a first picture: nothing to take back yet
    edited = view(draw(ui, st, assistant, "make the dog a cat")[-1])
    assert edited["progress"] == UNDO_HINT and "Undo" in UNDO_HINT and "Retry" in UNDO_HINT
    assert view(ui.undo(st))["progress"] == ""  # gone once the visitor acts


def test_a_clicked_example_is_sent_and_keeps_the_typed_text(ui, assistant):
    st = UIState()
    seed = good_seed(assistant, st.session, "draw a dog on the grass")
    frames = [view(o) for o in ui.example("draw a dog on the grass", st, *settings(seed))]
    assert st.session.path()[-1].user_text == "draw a dog on the grass"
    assert frames[0]["box"] == {"__type__": "update", "interactive": False}  # locked, its text left alone
    assert frames[-1]["box"] == {"__type__": "update", "interactive": True}
    assert frames[-1]["chat"][0]["content"] == "draw a dog on the grass"


def test_capability_card_only_for_world_models(assistant):
    from chatgen.ui import world_card

    def example_buttons(demo):
        return [b for b in demo.blocks.values() if "cg-example" in (getattr(b, "elem_classes", None) or [])]

    assert not example_buttons(build_demo(assistant))  # the tiny random model draws noise: no card, no examples
    demo = build_demo(assistant, card=True)
    assert [b.value for b in example_buttons(demo)] == [e.text for e in world_card.EXAMPLES]
    mask = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "cg-mask")
    assert mask.open is False  # the mask panel starts closed
    box = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "cg-box")
    assert not box.autofocus  # focusing the box scrolled the page down on load


def test_retry_after_a_greedy_reply_samples_a_new_one(ui, assistant):
    """The world model's UI starts greedy (the figures' setting); Retry must still give another answer."""
    st = UIState()
    greedy = (None, -1, 0.0, None, None, False)  # model, seed, temperature 0, ...
    list(ui.send(st, {"text": "draw a dog on the grass", "files": []}, None, *greedy))
    first = st.session.turns[st.session.head]
    assert first.params["temperature"] == 0.0
    list(ui.retry(st, *greedy))
    again = st.session.turns[st.session.head]
    assert again.id != first.id and again.parent == first.parent  # a new branch next to the old answer
    assert again.params["temperature"] == 0.7 and again.params["seed"] != first.params["seed"]
