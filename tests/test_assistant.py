import json

import pytest
import torch
from PIL import Image

from chatgen.params import GenerationParams
from chatgen.conversation import Message, Session
from chatgen.errors import ChatgenError


def image_reply(assistant, session, text, **kw):
    """Respond with seeds until the (random, image-steered) tiny model returns an image."""
    for seed in range(20):
        before = session.head
        r = assistant.respond(session, text, GenerationParams(seed=seed, max_new_tokens=40, **kw))
        if r.image is not None:
            return r
        session.undo()
        session.checkout(before)
    raise AssertionError("no image in 20 seeds")


def test_respond_stores_a_turn_with_metadata(assistant):
    s = Session()
    r = image_reply(assistant, s, "draw a dog on the grass")
    t = s.turns[r.turn_id]
    assert s.head == r.turn_id and t.assistant_image is r.image
    assert t.user_text == "draw a dog on the grass" and t.reply_ids[-1] == assistant.backend.vocab.eot
    md = r.metadata
    assert md["seed"] == md["params"]["seed"] and md["tokens"]["image_tokens"] == assistant.backend.vocab.image_tokens
    assert md["timings"]["total_s"] > 0 and md["model"].startswith("native:")
    assert json.loads(r.turn.png_text()["chatgen"])["seed"] == md["seed"]


def test_a_seed_is_always_recorded(assistant):
    r = assistant.respond(Session(), "draw a cat", {"max_new_tokens": 30})
    assert isinstance(r.metadata["seed"], int)


def test_upload_sits_in_context_as_image_tokens(assistant):
    s = Session()
    up = Image.new("RGB", (64, 64), (0, 200, 0))
    r = assistant.respond(s, Message("make the dog a cat", image=up), {"seed": 1, "max_new_tokens": 30})
    ids = s.turns[r.turn_id].user_ids
    v = assistant.backend.vocab
    assert v.boi in ids and v.eoi in ids
    assert sum(v.is_image(i) for i in ids) == v.image_tokens


@pytest.mark.parametrize(
    "message, match",
    [
        (Message("   "), "the message is empty"),
        (Message(""), "the message is empty"),
        (Message("edit", mask=Image.new("L", (8, 8), 255)), "a mask needs an image"),
        (Message("edit", image=Image.new("RGB", (8, 8)), mask=Image.new("L", (8, 8), 0)), "the mask is empty"),
        (Message("hi", image="not an image"), "must be a PIL image"),
    ],
)
def test_bad_messages_leave_the_session_unchanged(assistant, message, match):
    s = Session()
    assistant.respond(s, "draw a dog", {"seed": 0, "max_new_tokens": 30})
    before = json.dumps(s.to_dict(), sort_keys=True)
    with pytest.raises(ChatgenError, match=match):
        assistant.respond(s, message)
    assert json.dumps(s.to_dict(), sort_keys=True) == before


@pytest.mark.parametrize(
    "params, match",
    [({"temperature": -1}, "temperature"), ({"top_p": 0}, "top_p"), ({"max_new_tokens": 0}, "max_new_tokens"), ({"seed": -3}, "seed"), ({"top_k": 1.5}, "top_k"), ({"colour": 1}, "unknown generation parameter")],
)
def test_bad_parameters_are_named(assistant, params, match):
    s = Session()
    with pytest.raises(ChatgenError, match=match):
        assistant.respond(s, "draw", params)
    assert len(s.turns) == 0


def test_huge_upload_is_refused_without_decoding(assistant, monkeypatch):
    big = Image.new("1", (8000, 7000))  # 56 MP
    with pytest.raises(ChatgenError, match="limit is 50 megapixels"):
        assistant.respond(Session(), Message("edit", image=big))


def test_masked_edit_keeps_every_code_outside_the_mask(assistant):
    s = Session()
    first = image_reply(assistant, s, "draw a dog")
    v = assistant.backend.vocab
    src = v.ids_to_codes(v.split_spans(s.turns[first.turn_id].reply_ids)[1][0])
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (16, 0, 32, 16))  # the top right quarter may change
    changed = torch.zeros(v.grid_h, v.grid_w, dtype=torch.bool)
    changed[:2, 2:] = True
    for seed in range(10):
        r = assistant.respond(s, Message("make the dog a cat", mask=mask), {"seed": seed, "max_new_tokens": 40, "temperature": 2.0})
        spans = v.split_spans(s.turns[r.turn_id].reply_ids)[1]
        if spans:
            new = v.ids_to_codes(spans[0])
            assert torch.equal(new[~changed], src[~changed])
        s.undo()


def test_a_picture_equal_to_the_one_it_edits_is_not_called_a_change(assistant, monkeypatch):
    """"Done: removed the fish." over the very same picture claims a change nobody can see: the
    turn keeps one sentence saying nothing changed, no picture and no image tokens; a picture
    that differs in one code is kept as it is."""
    from dataclasses import replace as dc_replace

    from chatgen.assistant import UNCHANGED
    from chatgen.events import ReplyDone

    s = Session()
    first = image_reply(assistant, s, "draw a dog")
    old = s.turns[first.turn_id]
    v = assistant.backend.vocab
    real_stream = assistant.backend.stream

    def replay(reply_ids):
        def stream(prompt, params, cancel=None):
            for ev in real_stream(prompt, params, cancel=cancel):
                if isinstance(ev, ReplyDone):
                    yield dc_replace(ev, text="Done: removed the fish.", image=old.assistant_image, reply_ids=list(reply_ids))
                else:
                    yield ev
        return stream

    monkeypatch.setattr(assistant.backend, "stream", replay(old.reply_ids))
    r = assistant.respond(s, "remove the fish", {"seed": 3, "max_new_tokens": 40})
    t = s.turns[r.turn_id]
    assert r.text == UNCHANGED and r.image is None and t.assistant_image is None and r.metadata["unchanged_picture"]
    assert t.reply_ids == [*assistant.backend.encode_text(UNCHANGED), v.eot] and s.last_image() is old.assistant_image
    # one code different: a real change, kept with the model's own words
    ids = list(old.reply_ids)
    k = next(i for i, t_ in enumerate(ids) if v.is_image(t_))
    ids[k] = v.image_offset + (ids[k] - v.image_offset + 1) % v.codebook_size
    monkeypatch.setattr(assistant.backend, "stream", replay(ids))
    r2 = assistant.respond(s, "remove the fish", {"seed": 3, "max_new_tokens": 40})
    assert r2.text == "Done: removed the fish." and r2.image is not None and "unchanged_picture" not in r2.metadata
