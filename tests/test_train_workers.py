"""Training batches from DataLoader workers (`LMTrainConfig.workers`), and the in-process
stream that stays as it was without them."""

import itertools
import math
import pickle
import random

import pytest
import torch
from test_train import TINY_LM, untrained_backend

from chatgen.train.batches import DialogueBatches, batches, loader
from chatgen.train.data import DialogueEncoder, TileCodebook, collate, sample_dialogue
from chatgen.train.lm import LMTrainConfig, train_lm
from chatgen.train.tokenizer import train_tokenizer, world_sentences

CFG = LMTrainConfig(**{**TINY_LM.__dict__, "people_share": 0.4, "focus": ("absent_edit", "ask_count"), "focus_share": 0.4})


@pytest.fixture(scope="module")
def enc():
    sp = train_tokenizer(world_sentences(200, 1), 400)
    b = untrained_backend(sp)
    return DialogueEncoder(sp, b.vocab, TileCodebook(b.image_tokenizer))


def reference_batches(enc, rng, cfg, n):
    """The first `n` batches as `train_lm` built them before workers existed (pools of 512
    dialogues, sorted by length, cut where one more would pass `batch_tokens` padded tokens,
    shuffled, taken from the end), written out anew from `sample_dialogue`."""
    out, pending = [], []
    while len(out) < n:
        if not pending:
            drawn = (enc.encode(sample_dialogue(rng, cfg.focus, cfg.focus_share, cfg.people_share)) for _ in itertools.count())
            pool = sorted(itertools.islice((e for e in drawn if len(e.ids) <= cfg.max_len), 512), key=lambda e: len(e.ids))
            for e in pool:
                if pending and len(e.ids) * (len(pending[-1]) + 1) <= cfg.batch_tokens:
                    pending[-1].append(e)  # it fits
                else:
                    pending.append([e])
            rng.shuffle(pending)
        out.append(collate(pending.pop(), enc.vocab.pad))
    return out


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_without_workers_the_batches_and_the_stream_are_as_before(enc, tmp_path):
    ref_rng = random.Random(CFG.seed)
    ref = reference_batches(enc, ref_rng, CFG, 5)
    stream = batches(enc, random.Random(CFG.seed), CFG)
    assert all(same(r, next(stream)) for r in ref)
    # train_lm draws that stream: after a few steps its saved random state is the reference's
    train_lm(LMTrainConfig(**{**CFG.__dict__, "steps": 3}), enc, tmp_path, log=lambda s: None)
    assert torch.load(tmp_path / "state.pt", weights_only=False)["rng"].getstate() == ref_rng.getstate()


def test_workers_draw_their_own_streams(enc):
    it = iter(loader(enc, LMTrainConfig(**{**CFG.__dict__, "workers": 2}), 0, torch.device("cpu")))
    first, second = next(it), next(it)  # the DataLoader takes batches from the workers in turn
    assert first[0].dtype == torch.long and first[0].shape == first[1].shape == first[2].shape
    assert not same(first, second)
    # worker 0 is the dataset's stream in this process; a resumed run (another start) draws anew
    here = iter(DialogueBatches(enc, CFG, 0))
    assert same(first, next(here))
    assert not torch.equal(next(iter(DialogueBatches(enc, CFG, 100)))[0], first[0])


def test_the_dataset_pickles_for_spawned_workers(enc):
    copy = pickle.loads(pickle.dumps(DialogueBatches(enc, CFG, 7)))
    assert same(next(iter(copy)), next(iter(DialogueBatches(enc, CFG, 7))))


def test_training_with_workers_saves_reloads_and_resumes(enc, tmp_path):
    from transformers import AutoModelForCausalLM

    logs = []
    cfg = LMTrainConfig(**{**CFG.__dict__, "workers": 2, "steps": 4})
    report = train_lm(cfg, enc, tmp_path, log=logs.append)
    losses = [float(l.split("loss ")[1].split()[0]) for l in logs if "loss" in l]
    assert report["steps"] == 4 and losses and all(math.isfinite(x) for x in losses)
    assert torch.load(tmp_path / "state.pt", weights_only=False)["rng"] is None  # workers reseed from the step
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "lm")
    assert sum(p.numel() for p in model.parameters()) == report["params"]
    report2 = train_lm(LMTrainConfig(**{**cfg.__dict__, "steps": 6}), enc, tmp_path, log=logs.append)
    assert report2["steps"] == 6 and any("steps 4->6" in l for l in logs)
