"""Session import refuses hostile archives and folders in one sentence (`session_files`)."""

import json
import zipfile

import pytest
from PIL import Image

from chatgen import session_files
from chatgen.conversation import Session, Turn
from chatgen.errors import ChatgenError
from tests.helpers_fuzz import declare_size, encode, one_sentence, with_json, zip_bytes, zip_members


@pytest.fixture()
def archive(tmp_path) -> bytes:
    s = Session(system="be brief")
    t = s.append(Turn(id="t1", parent=None, user_text="draw", assistant_text="ok", assistant_image=Image.new("RGB", (8, 8), "red")))
    s.append(Turn(id="t2", parent=t.id, user_text="edit", user_image=Image.new("RGB", (8, 8)), user_mask=Image.new("L", (8, 8), 255)))
    return s.write_zip(tmp_path / "good.zip").read_bytes()


def refused(tmp_path, data: bytes, match: str) -> str:
    p = tmp_path / "up.zip"
    p.write_bytes(data)
    with pytest.raises(ChatgenError, match=match) as e:
        Session.read_zip(p)
    return one_sentence(e.value)


def test_a_good_archive_round_trips(tmp_path, archive):
    p = tmp_path / "a.zip"
    p.write_bytes(archive)
    s = Session.read_zip(p)
    assert [t.user_text for t in s.path()] == ["draw", "edit"] and s.turns["t2"].user_mask.mode == "L"


@pytest.mark.parametrize("name", ["../evil.png", "/etc/passwd", "a/../../b", "C:/x.png", "..\\\\x.png", "x/..\\\\..\\\\y"])
def test_members_that_leave_their_folder(tmp_path, archive, name):
    refused(tmp_path, zip_bytes(zip_members(archive) + [(name, b"x")]), "unsafe path")


def test_sizes_and_counts(tmp_path, archive, monkeypatch):
    refused(tmp_path, declare_size(archive, 0, 2**32 - 1), "over the 64 MiB limit")
    refused(tmp_path, declare_size(archive, 0, 10), "damaged zip archive")  # the read stops, the CRC fails
    monkeypatch.setattr(session_files, "MAX_MEMBERS", 3)
    refused(tmp_path, archive, "holds 4 files; a session archive holds at most 3")
    monkeypatch.setattr(session_files, "MAX_MEMBERS", 100)
    monkeypatch.setattr(session_files, "MAX_TOTAL_BYTES", 1000)
    refused(tmp_path, zip_bytes(zip_members(archive) + [("pad", b"\0" * 2000)]), "unpacks to more than")
    monkeypatch.setattr(session_files, "MAX_SESSION_PIXELS", 100)
    refused(tmp_path, archive, "add up to more than")


def test_zip_bomb_is_stopped_by_the_capped_read(tmp_path, archive, monkeypatch):
    monkeypatch.setattr(session_files, "MAX_MEMBER_BYTES", 1 << 20)
    bomb = zip_bytes([(n, d if n != "t1_assistant_image.png" else d + b"\0" * (4 << 20)) for n, d in zip_members(archive)])
    refused(tmp_path, bomb, "over the 1 MiB limit")
    refused(tmp_path, declare_size(bomb, 0, 100), "damaged zip archive|unpacks to more than")


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda d: "{not json", "it is not JSON"),
        (lambda d: b"\xff\xfe", "it is not JSON"),
        (lambda d: [1, 2], "holds a list"),
        (lambda d: {**d, "format": 99}, "format 99"),
        (lambda d: {**d, "head": "t9"}, "names a turn 't9'"),
        (lambda d: {**d, "turns": [{**d["turns"][0], "parent": "t2"}, {**d["turns"][1]}]}, "cycle"),
        (lambda d: {**d, "turns": [{**d["turns"][0], "id": 5}]}, "wrong type"),
        (lambda d: {**d, "turns": [{**d["turns"][0], "colour": 1}]}, "unknown field"),
        (lambda d: {**d, "turns": [{**d["turns"][0], "assistant_image": "../../etc/passwd"}]}, "plain .png file name"),
        (lambda d: {**d, "turns": [{**d["turns"][0], "reply_ids": [1, -4]}]}, "not token ids"),
        (lambda d: {**d, "turns": [{**d["turns"][0], "assistant_image": "nothere.png"}, d["turns"][1]]}, "is missing nothere.png"),
    ],
)
def test_session_json_of_the_wrong_shape(tmp_path, archive, change, match):
    refused(tmp_path, with_json(archive, change), match)


def test_a_png_member_that_is_not_a_png(tmp_path, archive):
    members = [(n, encode(Image.new("RGB", (8, 8)), "JPEG") if n.endswith(".png") else d) for n, d in zip_members(archive)]
    refused(tmp_path, zip_bytes(members), "is not a PNG file")
    members = [(n, d[: len(d) // 2] if n.endswith(".png") else d) for n, d in zip_members(archive)]
    refused(tmp_path, zip_bytes(members), "truncated or corrupt|not an image")


def test_other_archives(tmp_path, archive):
    refused(tmp_path, b"PK\x03\x04garbage", "not a zip archive|damaged")
    refused(tmp_path, archive[: len(archive) // 2], "not a zip archive|damaged")
    p = tmp_path / "enc.zip"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("session.json", "{}")
    data = bytearray(p.read_bytes())
    data[6] |= 1  # the local header's "encrypted" flag
    cd = data.index(b"PK\x01\x02")
    data[cd + 8] |= 1  # and the central directory's
    refused(tmp_path, bytes(data), "encrypted")


def test_folders_are_checked_too(tmp_path, archive):
    folder = tmp_path / "sess"
    folder.mkdir()
    for n, d in zip_members(archive):
        (folder / n).write_bytes(d)
    assert len(Session.load(folder).turns) == 2
    d = json.loads((folder / "session.json").read_text())
    d["turns"][0]["assistant_image"] = "../secret.png"
    (folder / "session.json").write_text(json.dumps(d))
    with pytest.raises(ChatgenError, match="plain .png file name"):
        Session.load(folder)
