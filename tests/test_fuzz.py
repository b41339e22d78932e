"""Property-based fuzz (hypothesis) of every boundary: text, bytes-as-images, odd modes and sizes,
masks and session archives. Every case is a valid result or a one-sentence `ChatgenError`, no
other exception, and a refused message leaves the session as it was.

The default run draws a small sample (a few hundred cases); `test_fuzz_10k` (slow: CHATGEN_SLOW=1)
draws over 10,000 and prints its count. Generation is the slow part, so most cases fuzz
`read_image`, `read_zip` and `Assistant.prepare` directly, and a smaller sample runs full turns.
"""

from __future__ import annotations

import base64
import json
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import HumanMessage
from PIL import Image

from chatgen.api import ChatAPI
from chatgen.conversation import Message, Session
from chatgen.errors import ChatgenError
from chatgen.images import read_image, to_rgb
from chatgen.langchain import session_from_messages
from chatgen.ui.inputs import mask_from_editor
from tests.helpers_fuzz import MODES, ODD_SIZES, animated, declare_size, encode, odd_image, one_sentence, png_header_bomb, with_json, zip_bytes, zip_members

PARAMS = {"seed": 0, "max_new_tokens": 24}


# ---- strategies ------------------------------------------------------------------------------
any_char = st.characters(codec=None, exclude_categories=())  # surrogates and control characters included
texts = st.one_of(
    st.text(max_size=80),
    st.text(any_char, max_size=200),
    st.builds(lambda s, n: s * n, st.text(any_char, min_size=1, max_size=4), st.integers(100, 3000)),  # up to 12,000 characters
    st.sampled_from(["", " ", "\n\t\r", "\x00draw\x07", "\ud800", "draw a dog on the grass", "🐶" * 500]),
)


@st.composite
def odd_images(draw) -> Image.Image | bytes:
    """A valid image of an odd mode and size: the PIL image itself or a file of a format that stores the mode."""
    mode = draw(st.sampled_from(sorted(MODES)))
    size = draw(st.sampled_from(ODD_SIZES) | st.tuples(st.integers(1, 48), st.integers(1, 48)))
    img = odd_image(mode, size, draw(st.integers(0, 255)))
    fmt = draw(st.sampled_from([None, *MODES[mode]]))
    return img if fmt is None else encode(img, fmt)


SAMPLES = [encode(Image.new("RGB", (24, 16), "teal"), f) for f in ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")] + [animated(f) for f in ("GIF", "WEBP", "PNG")]


@st.composite
def damaged(draw) -> bytes:
    """A real file cut short or with bytes overwritten."""
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    if draw(st.booleans()):
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


image_inputs = st.one_of(st.binary(max_size=600), damaged(), odd_images(), st.sampled_from([*SAMPLES, png_header_bomb(), png_header_bomb(8000, 7000), png_header_bomb(1, 10**6)]))

mask_inputs = st.one_of(
    st.builds(lambda size, mode, fill: Image.new(mode, size, fill), st.sampled_from([(8, 8), (32, 32), (96, 96), (16, 32), (32, 16), (1, 1), (33, 32)]), st.sampled_from(["L", "1", "RGB", "RGBA", "LA", "P", "I;16", "F"]), st.sampled_from([0, 1, 255])),
    odd_images(),
    st.binary(max_size=200),
)

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(any_char, max_size=20), lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=8)
TURN_KEYS = ["id", "parent", "user_text", "assistant_text", "user_ids", "reply_ids", "token_model", "params", "created", "user_image", "user_mask", "assistant_image", "extra"]
TOP_KEYS = ["format", "system", "head", "redo", "next", "turns"]
UNSAFE = ["../x.png", "/abs.png", "a/../../x", "C:\\x.png", "..\\..\\x", "ok/../../../etc/passwd", "dir/session.json"]


def archives(good: bytes):
    """Session archives: random bytes and zips, and the good one with a member, a declared size,
    session.json or an image spoiled."""

    def set_key(path, value):
        def change(d):
            where = d
            if path[0] == "turn" and isinstance(d.get("turns"), list) and d["turns"]:
                where = d["turns"][path[1] % len(d["turns"])]
            where[path[2]] = value
            return d

        return change

    members = zip_members(good)
    return st.one_of(
        st.binary(max_size=400),
        st.builds(zip_bytes, st.lists(st.tuples(st.text(st.characters(codec="utf-8"), min_size=1, max_size=20).filter(lambda s: "\x00" not in s), st.binary(max_size=100)), max_size=4)),
        st.builds(lambda name: zip_bytes(members + [(name, b"x")]), st.sampled_from(UNSAFE)),
        st.builds(lambda i, n: declare_size(good, i, n), st.integers(0, len(members) - 1), st.sampled_from([0, 1, 10, 2**16, 2**26 + 1, 2**31, 2**32 - 1])),
        st.builds(lambda v: with_json(good, lambda d: v), json_values | st.text(any_char, max_size=50).map(lambda s: s.encode("utf-8", "surrogatepass"))),
        st.builds(lambda k, v: with_json(good, set_key(("top", 0, k), v)), st.sampled_from(TOP_KEYS), json_values),
        st.builds(lambda i, k, v: with_json(good, set_key(("turn", i, k), v)), st.integers(0, 3), st.sampled_from(TURN_KEYS), json_values | st.sampled_from(["t1", "t2", "t9", "t1_user_image.png", "../a.png", [10**9], [-1, 5]])),
        st.builds(lambda i, data: zip_bytes([(n, data if j == i else d) for j, (n, d) in enumerate(members)]), st.integers(0, len(members) - 1), image_inputs.map(lambda x: x if isinstance(x, bytes) else encode(to_rgb(x), "JPEG"))),
        st.builds(lambda cut: good[:cut], st.integers(0, len(good) - 1)),
    )


# ---- the properties ---------------------------------------------------------------------------
def snapshot(session: Session) -> str:
    return json.dumps(session.to_dict(), sort_keys=True) + repr([(t.id, id(t.user_image), id(t.assistant_image)) for t in session.turns.values()])


def attempt(fn, *args, **kwargs):
    """fn's result, or None after a one-sentence ChatgenError; any other exception fails the case."""
    try:
        return fn(*args, **kwargs)
    except ChatgenError as e:
        one_sentence(e)
        return None


class Fuzz:
    """The properties, over a tiny-model assistant and a few sessions to send to."""

    def __init__(self, assistant, folder: Path):
        self.assistant, self.folder = assistant, folder
        self.empty = Session()
        self.with_image = Session()
        assistant.respond(self.with_image, Message("what is this?", image=Image.new("RGB", (32, 32), "red")), PARAMS)
        self.good_zip = self.with_image.write_zip(folder / "good.zip").read_bytes()
        self.api = ChatAPI(assistant, folder=folder / "api")
        self.cases = 0

    def prepare(self, session: Session, message: Message) -> None:
        before = snapshot(session)
        request = attempt(self.assistant.prepare, session, message)
        assert snapshot(session) == before
        if request is not None:
            m = request.message
            assert m.image is None or m.image.mode == "RGB"
            assert m.mask is None or (m.mask.mode == "L" and m.mask.getextrema()[1] == 255)

    def text(self, text: str) -> None:
        self.cases += 1
        self.prepare(self.with_image, Message(text))
        attempt(session_from_messages, [HumanMessage(content=text)])

    def image(self, source, text: str) -> None:
        self.cases += 1
        img = attempt(read_image, source, "uploaded image")
        if img is not None:
            assert img.mode == "RGB" and img.width * img.height <= 50_000_000
            self.prepare(self.empty, Message(text, image=img))
        if isinstance(source, bytes):  # the same bytes through the LangChain boundary
            block = {"type": "image", "base64": base64.b64encode(source).decode(), "mime_type": "image/png"}
            attempt(session_from_messages, [HumanMessage(content=[{"type": "text", "text": text}, block])])

    def mask(self, source, with_upload: bool, text: str) -> None:
        self.cases += 1
        session = self.with_image if not with_upload else self.empty
        upload = Image.new("RGB", (32, 32)) if with_upload else None
        mask = attempt(read_image, source, "mask", mask=True)
        if mask is not None:
            self.prepare(session, Message(text, image=upload, mask=mask))
        if isinstance(source, Image.Image):
            self.prepare(session, Message(text, image=upload, mask=source))
            attempt(mask_from_editor, {"layers": [source]})

    def archive(self, data: bytes) -> None:
        self.cases += 1
        p = self.folder / "upload.zip"
        p.write_bytes(data)
        s = attempt(Session.read_zip, p)
        if s is not None:
            s.path(), s.branches(), s.last_image()
            self.prepare(s, Message("make it blue"))
            attempt(self.assistant.backend.prompt, s, Message("make it blue"))

    def turn(self, text: str, source, mask, front: str, archive: bytes | None) -> None:
        """A whole turn through the API or the assistant, on a fresh or an imported session."""
        self.cases += 1
        if front == "api":
            sid = self.api.new_session()
            if archive is not None:
                p = self.folder / "turn.zip"
                p.write_bytes(archive)
                sid = attempt(self.api.import_session, str(p)) or sid
            session = self.api.store.get(sid)[0]
            paths = []
            for name, x in (("image.png", source), ("mask.png", mask)):
                if x is None:
                    paths.append(None)
                    continue
                (self.folder / name).write_bytes(x if isinstance(x, bytes) else encode(x if x.mode in ("RGB", "RGBA", "L") else to_rgb(x), "PNG"))
                paths.append(str(self.folder / name))
            before = snapshot(session)
            if attempt(self.api.chat, sid, text, paths[0], paths[1], seed=0) is None:
                assert snapshot(session) == before
            return
        session = Session()
        if archive is not None:
            p = self.folder / "turn.zip"
            p.write_bytes(archive)
            session = attempt(Session.read_zip, p) or session
        upload = attempt(read_image, source, "uploaded image") if source is not None else None
        before = snapshot(session)
        reply = attempt(self.assistant.respond, session, Message(text, image=upload, mask=mask if isinstance(mask, Image.Image) else None), PARAMS)
        if reply is None:
            assert snapshot(session) == before
        else:
            assert reply.turn is not None and session.head == reply.turn_id


def run(prop, strategy, n: int) -> None:
    """Run `prop` over `n` examples of `strategy` (hypothesis stops early when the space is exhausted)."""
    settings(max_examples=n, deadline=None, database=None, derandomize=False, suppress_health_check=list(HealthCheck))(given(strategy)(lambda args: prop(*args)))()


def fuzz_all(fuzz: Fuzz, n: int, turns: int) -> None:
    run(fuzz.text, st.tuples(texts), n)
    run(fuzz.image, st.tuples(image_inputs, st.sampled_from(["", "make it blue", "\x00"])), 2 * n)
    run(fuzz.mask, st.tuples(mask_inputs, st.booleans(), st.sampled_from(["make it blue", ""])), n)
    run(fuzz.archive, st.tuples(archives(fuzz.good_zip)), 2 * n)
    opt = lambda s: st.none() | s  # noqa: E731
    run(fuzz.turn, st.tuples(texts, opt(image_inputs), opt(mask_inputs), st.sampled_from(["assistant", "api"]), opt(archives(fuzz.good_zip))), turns)


def test_fuzz_sample(assistant, tmp_path):
    fuzz = Fuzz(assistant, tmp_path)
    fuzz_all(fuzz, n=50, turns=12)
    assert fuzz.cases >= 250


@pytest.mark.slow
def test_fuzz_10k(assistant):
    with tempfile.TemporaryDirectory() as d:
        fuzz = Fuzz(assistant, Path(d))
        t0 = time.perf_counter()
        fuzz_all(fuzz, n=1600, turns=400)
        print(f"\nfuzz: {fuzz.cases} cases, 0 failures, {time.perf_counter() - t0:.0f} s")
    assert fuzz.cases >= 10_000
