"""`ModelSet.stream`: a turn checked in the app's process, generated (on ZeroGPU) in a worker, stored by the caller."""

import pickle

import pytest

from chatgen import models as models_module
from chatgen.assistant import Reply
from chatgen.conversation import Session
from chatgen.errors import ChatgenError
from chatgen.models import ModelSet


def test_a_turn_is_stored_by_the_caller(assistant):
    ms, s = ModelSet(assistant), Session()
    *events, reply = ms.stream(s, "draw a dog", {"seed": 1, "max_new_tokens": 40})
    assert isinstance(reply, Reply) and len(s.turns) == 0  # the stream never changes the session
    s.append(reply.turn)
    assert s.head == reply.turn_id and s.turns[reply.turn_id].assistant_text == reply.text


def test_bad_input_raises_at_the_call_before_anything_runs(assistant):
    ms = ModelSet(assistant)
    with pytest.raises(ChatgenError, match="empty"):
        ms.stream(Session(), "   ")
    with pytest.raises(ChatgenError, match="temperature"):
        ms.stream(Session(), "draw a dog", {"temperature": -1})


def test_on_zerogpu_the_turn_crosses_a_process_boundary(assistant, monkeypatch):
    """A stand-in for spaces.GPU that pickles the arguments and every item, as ZeroGPU's worker does:
    the reply's turn is all the caller needs (no session copy is adopted)."""
    calls = []

    def fake_gpu(fn, duration=120):
        def in_worker(*args):
            calls.append(args[-1])  # the cancel flag: None, events cannot be pickled
            for item in fn(*pickle.loads(pickle.dumps(args))):
                yield pickle.loads(pickle.dumps(item))

        return in_worker

    monkeypatch.setattr(models_module, "gpu", fake_gpu)
    ms, s = ModelSet(assistant), Session()
    for text in ("draw a dog", "make the dog a cat"):
        *_, reply = ms.stream(s, text, {"seed": 3, "max_new_tokens": 40})
        s.append(reply.turn)
    assert calls == [None, None] and len(s) == 2 and s.path()[1].parent == s.path()[0].id
