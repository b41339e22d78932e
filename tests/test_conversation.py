import json

import pytest
from PIL import Image

from chatgen.conversation import Session, Turn
from chatgen.errors import ChatgenError


def add(s: Session, text: str, image: bool = False) -> Turn:
    img = Image.new("RGB", (8, 8), (len(text) * 20 % 255, 10, 200)) if image else None
    return s.append(Turn(id=s.new_turn_id(), parent=None, user_text=text, assistant_text="ok " + text, assistant_image=img, user_ids=[1, 2], reply_ids=[3, 4], token_model="m", params={"seed": 1}))


def texts(s):
    return [t.user_text for t in s.path()]


def test_undo_redo_walks_back_and_forth():
    s = Session()
    for w in ("a", "b", "c"):
        add(s, w)
    s.undo()
    s.undo()
    assert texts(s) == ["a"]
    s.redo()
    assert texts(s) == ["a", "b"]
    s.redo()
    assert texts(s) == ["a", "b", "c"]
    with pytest.raises(ChatgenError, match="nothing to redo"):
        s.redo()


def test_undo_on_empty_session_is_a_clear_error():
    with pytest.raises(ChatgenError, match="nothing to undo"):
        Session().undo()


def test_new_message_after_undo_starts_a_branch_and_keeps_the_old_one():
    s = Session()
    for w in ("a", "b", "c"):
        add(s, w)
    s.undo()
    add(s, "c2")
    assert texts(s) == ["a", "b", "c2"]
    assert not s.can_redo  # a new message clears redo
    assert sorted(b[-1].user_text for b in s.branches()) == ["c", "c2"]


def test_branch_from_an_earlier_turn():
    s = Session()
    for w in ("a", "b", "c"):
        add(s, w)
    s.branch(1)
    assert texts(s) == ["a"]
    s.redo()  # redo walks back toward the old branch
    assert texts(s) == ["a", "b"]
    s.branch(1)
    add(s, "x")
    assert [[t.user_text for t in b] for b in s.branches()] == [["a", "b", "c"], ["a", "x"]]
    s.branch(0)
    assert texts(s) == []
    with pytest.raises(ChatgenError, match="between 0 and"):
        s.branch(7)


def test_checkout_continues_from_any_turn():
    s = Session()
    a = add(s, "a")
    add(s, "b")
    s.checkout(a.id)
    assert texts(s) == ["a"]
    with pytest.raises(ChatgenError, match="no turn"):
        s.checkout("t99")


def test_last_image_and_images_follow_the_current_branch():
    s = Session()
    t1 = add(s, "a", image=True)
    add(s, "b")
    t3 = add(s, "cc", image=True)
    assert s.last_image() is t3.assistant_image
    assert [tid for tid, _ in s.images()] == [t1.id, t3.id]
    s.undo()
    assert s.last_image() is t1.assistant_image


def test_save_load_round_trip(tmp_path):
    s = Session(system="be brief")
    add(s, "a", image=True)
    add(s, "b")
    s.turns["t1"].user_image = Image.new("RGB", (5, 7), (1, 2, 3))
    s.turns["t1"].user_mask = Image.new("L", (5, 7), 255)
    s.undo()
    add(s, "c", image=True)
    s.undo()
    s.save(tmp_path / "sess")
    r = Session.load(tmp_path / "sess")
    assert json.dumps(r.to_dict(), sort_keys=True) == json.dumps(s.to_dict(), sort_keys=True)
    for tid, t in s.turns.items():
        for k in Turn._IMAGES:
            a, b = getattr(t, k), getattr(r.turns[tid], k)
            assert (a is None) == (b is None)
            if a is not None:
                assert a.mode == b.mode and a.tobytes() == b.tobytes()
    # the loaded session behaves like the saved one
    r.redo()
    assert texts(r) == ["a", "c"]


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(ChatgenError, match="session.json is missing"):
        Session.load(tmp_path)
    (tmp_path / "session.json").write_text("{not json")
    with pytest.raises(ChatgenError, match="not a valid chatgen session"):
        Session.load(tmp_path)
