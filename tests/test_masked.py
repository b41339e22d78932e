"""A painted mask reaches the model: the prompt names the painted cells, the lock frees whole
cells, and the world's masked turns change only what was painted."""

import random

import pytest
import torch
from PIL import Image

from chatgen import world
from chatgen.assistant import Assistant
from chatgen.backends.native import NativeBackend
from chatgen.conversation import Message, Session, Turn
from chatgen.evals.bench_world import painted_mask
from chatgen.images import mask_regions, region_text
from chatgen.tiny import TinySpec, build_tiny
from chatgen.train.data import DialogueEncoder

from tests.test_assistant import image_reply


def _paint(box, size=96):
    m = Image.new("L", (size, size), 0)
    m.paste(255, box)
    return m


def test_mask_regions_reads_roughly_painted_cells():
    assert mask_regions(_paint((2, 2, 30, 30))) == [(0, 0)]  # most of the top left cell
    assert mask_regions(_paint((70, 40, 80, 50))) == [(1, 2)]  # a small dot: the cell painted most
    assert mask_regions(_paint((20, 64, 76, 96))) == [(2, 0), (2, 1), (2, 2)]  # a stroke along the bottom
    assert mask_regions(Image.new("L", (96, 96), 0)) == []
    assert mask_regions(_paint((0, 0, 200, 100), size=300)) == [(0, 0), (0, 1)]  # any size: shares, not pixels
    assert region_text([(0, 0), (1, 1)]) == "top left, middle center"
    assert [world.slot_name(r, c) for r in range(3) for c in range(3)] == [region_text([(r, c)]) for r in range(3) for c in range(3)]


class _BlankCodes:
    """Reply pictures as code 0 everywhere: only the user's part is compared here."""

    def __init__(self, vocab):
        self.vocab = vocab

    def codes(self, scene):
        return torch.zeros(self.vocab.grid_h, self.vocab.grid_w, dtype=torch.long)


@pytest.fixture(scope="module")
def masked_backend(tmp_path_factory):
    """A tiny 6x6-code checkpoint that says it was trained with masks, saved and loaded back."""
    b = build_tiny(TinySpec(image_size=48, grid=6))
    b.config.mask_regions = True
    return NativeBackend.from_pretrained(b.save_pretrained(tmp_path_factory.mktemp("masked") / "model"))


def test_the_prompt_names_the_painted_cells_as_training_writes_them(masked_backend):
    b, v = masked_backend, masked_backend.vocab
    enc = DialogueEncoder(b.sp, v, codebook=_BlankCodes(v))
    for seed in range(40):
        rng = random.Random(seed)
        turn = world.generate_masked_turn(rng).turns[-1]
        msg = Message(turn.user.strip(), mask=painted_mask(rng, turn.mask))
        user = b.encode_user(msg)
        trained = enc.encode(world.Dialogue([turn])).ids
        assert trained[1 : 1 + len(user)] == user, turn.user
        assert user[-2 - len(b.encode_text(region_text(list(turn.mask))))] == v.special("<mask>")  # <mask> names <eot>


def test_a_model_not_trained_with_masks_gets_no_mask_in_its_prompt(backend):
    ids = backend.encode_user(Message("remove this", mask=_paint((0, 0, 10, 10), size=32)))
    assert backend.vocab.special("<mask>") not in ids
    assert ids == backend.encode_user(Message("remove this"))


def test_a_stored_turn_rebuilt_from_its_pictures_keeps_its_mask(masked_backend):
    b = masked_backend
    mask = _paint((0, 0, 20, 20), size=48)
    turn = Turn(id="t1", parent=None, user_text="remove this", user_mask=mask, assistant_text="Done: removed the cat.")
    assert b.turn_ids(turn)[: len(b.encode_user(Message("remove this", mask=mask)))] == b.encode_user(Message("remove this", mask=mask))


def test_a_masked_edit_may_change_the_whole_painted_cells_and_nothing_else(masked_backend):
    a, v = Assistant(masked_backend), masked_backend.vocab
    s = Session()
    first = image_reply(a, s, "draw a dog")
    spans = v.split_spans(s.turns[first.turn_id].reply_ids)[1]
    src = v.ids_to_codes(spans[0])
    mask = _paint((2, 2, 10, 10), size=48)  # a quarter of the top left cell
    free = masked_backend.edit_cells(mask)
    expected = torch.zeros(6, 6, dtype=torch.bool)
    expected[:2, :2] = True  # the whole cell: a stroke over part of a thing frees all of it
    assert torch.equal(free, expected)
    edited = 0
    for seed in range(6):
        r = a.respond(s, Message("make this a cat", mask=mask), {"seed": seed, "max_new_tokens": 60, "temperature": 2.0})
        spans = v.split_spans(s.turns[r.turn_id].reply_ids)[1]
        if spans:
            new = v.ids_to_codes(spans[0])
            assert torch.equal(new[~free], src[~free])
            edited += not torch.equal(new, src)
        s.undo()
    assert edited, "the painted cells were sampled anew at least once"


def test_masked_turns_change_only_the_painted_slots_and_say_so_honestly():
    kinds = set()
    for seed in range(400):
        d = world.generate_masked_turn(random.Random(seed))
        before, turn = d.turns[0].reply_scene, d.turns[-1]
        assert turn.kind == "masked_edit" and turn.mask
        if turn.reply_scene is None:
            assert turn.reply_text.endswith("so I changed nothing.")
            kinds.add(turn.meta["honest"])
            continue
        changed = {(r, c) for r in range(3) for c in range(3) if before.at(r, c) != turn.reply_scene.at(r, c)}
        assert changed and changed <= set(turn.mask), turn.user
        assert turn.reply_scene.background == before.background
        kinds.add(turn.meta["edit"]["kind"])
    assert kinds == {"replace", "remove", "add", "nothing", "outside", "taken"}


def test_a_masked_turn_round_trips_through_json():
    d = world.generate_masked_dialogue(random.Random(5), n_turns=3)
    assert world.Dialogue.from_dict(d.to_dict()).to_dict() == d.to_dict()
