"""The training pipeline on tiny settings: every stage runs, and its pieces agree with chat time."""

import random
import re

import pytest
import torch

from chatgen import world
from chatgen.backends.native import NativeBackend, NativeConfig
from chatgen.conversation import Message, Session
from chatgen.train.data import DialogueEncoder, TileCodebook, collate, sample_dialogue
from chatgen.train.lm import LMTrainConfig, build_lm, train_lm
from chatgen.train.tokenizer import train_tokenizer, world_sentences
from chatgen.train.vq import VQTrainConfig, build_vq, collect_tiles
from chatgen.vocab import JointVocab

TINY_VQ = VQTrainConfig(channels=(32, 32, 32), codebook=1024, embed_dim=8, scenes=200, warmup=4, steps=8, batch=32, restart_every=4)
TINY_LM = LMTrainConfig(hidden=32, layers=1, heads=2, kv_heads=1, intermediate=64, steps=6, batch_tokens=600, warmup=2, save_every=3)


def untrained_backend(sp):
    """A native backend over an untrained tile VQ and a 1-layer LM (for prompts and image codes)."""
    vq = build_vq(TINY_VQ).eval()
    vocab = JointVocab(text_size=sp.get_piece_size(), codebook_size=TINY_VQ.codebook, grid_h=6, grid_w=6)
    lm = build_lm(LMTrainConfig(hidden=32, layers=1, heads=2, kv_heads=1, intermediate=32), vocab)
    config = NativeConfig(vocab=vocab, image_size=96, tile=16, unshuffle=TINY_VQ.unshuffle)
    return NativeBackend(lm, config.image_tokenizer(vq), sp, config)


def test_tokenizer_round_trips_world_text_and_anything_else():
    sp = train_tokenizer(world_sentences(300, 1), 400)
    for s in ["Make the dog a cat, please!", "drw a cat on teh grass", "ünïcödé 🐶 text"]:
        assert sp.decode(sp.encode(s)) == s


def test_world_tiles_are_few():
    tiles, counts = collect_tiles(300, seed=1)
    assert tiles.shape[1:] == (16, 16, 3) and len(tiles) <= 6 * (1 + 24 * 4)
    assert counts.sum() == 300 * 36


def test_tile_codes_equal_what_the_backend_encodes():
    sp = train_tokenizer(world_sentences(200, 1), 400)
    b = untrained_backend(sp)
    book = TileCodebook(b.image_tokenizer)
    rng = random.Random(4)
    for _ in range(5):
        scene = world.random_scene(rng)
        assert torch.equal(book.codes(scene), b.encode_image(world.render(scene)))
    whole = NativeConfig(vocab=b.vocab, image_size=96).image_tokenizer(b.image_tokenizer.vq)
    with pytest.raises(ValueError, match="image_tokenizer must read tiles"):
        TileCodebook(whole)


def test_training_sequences_match_chat_time_prompts():
    """Every user part of an encoded dialogue is what Backend.prompt builds for that message."""
    sp = train_tokenizer(world_sentences(200, 1), 400)
    b = untrained_backend(sp)
    enc = DialogueEncoder(sp, b.vocab, TileCodebook(b.image_tokenizer))
    rng = random.Random(7)
    for _ in range(20):
        d = sample_dialogue(rng)
        ex = enc.encode(d)
        t0 = d.turns[0]
        p = b.prompt(Session(), Message(t0.user.strip(), image=world.render(t0.upload) if t0.upload else None))
        assert ex.ids[: len(p.ids)] == p.ids
        assert not any(ex.loss[: len(p.ids)])  # no loss on the prompt
        assert ex.loss[-1] and ex.ids[-1] == b.vocab.eot  # the last reply is trained, ending with <eot>
        reply = [i for i, m in zip(ex.ids, ex.loss) if m]
        _, spans = b.vocab.split_spans(reply)
        assert len(spans) == sum(t.reply_scene is not None for t in d.turns)


def test_collate_masks_prompt_and_padding():
    ids, att, labels = collate([type("E", (), {"ids": [1, 2, 3], "loss": [False, True, True]})(), type("E", (), {"ids": [4], "loss": [True]})()], pad=0)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]] and att.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert labels.tolist() == [[-100, 2, 3], [4, -100, -100]]


def test_lm_training_lowers_the_loss_and_resumes(tmp_path):
    sp = train_tokenizer(world_sentences(200, 1), 400)
    b = untrained_backend(sp)
    enc = DialogueEncoder(sp, b.vocab, TileCodebook(b.image_tokenizer))
    logs = []
    cfg = LMTrainConfig(**{**TINY_LM.__dict__, "steps": 40, "lr": 5e-3})
    report = train_lm(cfg, enc, tmp_path, log=logs.append)
    losses = [float(l.split("loss ")[1].split()[0]) for l in logs if "loss" in l]
    assert losses[-1] < losses[0] - 0.5
    assert report["steps"] == 40 and (tmp_path / "state.pt").is_file() and (tmp_path / "lm" / "config.json").is_file()
    # a longer schedule resumes from step 40
    cfg2 = LMTrainConfig(**{**cfg.__dict__, "steps": 42})
    report2 = train_lm(cfg2, enc, tmp_path, log=logs.append)
    assert report2["steps"] == 42 and any("steps 40->42" in l for l in logs)


def test_train_all_writes_a_loadable_checkpoint(tmp_path):
    from chatgen.assistant import Assistant
    from chatgen.train.pipeline import LMRestart, TrainConfig, train_all

    cfg = TrainConfig(text_vocab=400, tokenizer_dialogues=200, vq=TINY_VQ, lm=TINY_LM, psnr_scenes=5, restarts=[LMRestart(minutes=5)])
    folder = train_all(tmp_path / "model", tmp_path / "run", cfg, log=lambda m: None)
    b = NativeBackend.from_pretrained(folder)
    assert b.config.tile == 16 and b.vocab.grid_h == 6 and "vq_psnr_db" in b.config.extra
    assert b.config.extra["lm"]["steps"] == 2 * TINY_LM.steps  # the first run and one warm restart
    # A rerun finds every stage finished and writes the same model without training.
    lines = []
    again = NativeBackend.from_pretrained(train_all(tmp_path / "model", tmp_path / "run", cfg, log=lines.append))
    assert not [m for m in lines if m.startswith("lm step")]
    assert all(torch.equal(p, q) for p, q in zip(b.lm.state_dict().values(), again.lm.state_dict().values()))
    r = Assistant(b).respond(Session(), "draw a dog", {"seed": 0, "max_new_tokens": 50})
    assert r.image is None or r.image.size == (96, 96)
    # Continuing from that checkpoint keeps its tokenizer and VQ-VAE, starts the LM from its
    # weights, and records the history.
    before = {n: p.clone() for n, p in b.lm.named_parameters()}
    folder2 = train_all(tmp_path / "model2", tmp_path / "run2", TrainConfig(lm=TINY_LM, psnr_scenes=5), log=lambda m: None, init_from=folder)
    b2 = NativeBackend.from_pretrained(folder2)
    assert (folder2 / "tokenizer.model").read_bytes() == (folder / "tokenizer.model").read_bytes()
    assert all(torch.equal(p, q) for p, q in zip(b.image_tokenizer.vq.state_dict().values(), b2.image_tokenizer.vq.state_dict().values()))
    moved = [torch.dist(p, before[n]).item() for n, p in b2.lm.named_parameters()]
    assert 0 < max(moved) < 1.0  # trained further from the old weights, not from a fresh init
    extra = b2.config.extra
    assert extra["continued_from"]["lm"]["steps"] == 2 * TINY_LM.steps and extra["lm"]["steps"] == TINY_LM.steps
    assert extra["total_train_minutes"] >= extra["train_minutes"]


def test_train_refuses_a_bad_init_folder(tmp_path, capsys):
    from chatgen.cli import main

    assert main(["train", "--out", str(tmp_path / "m"), "--init-from", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a chatgen native checkpoint" in err
    assert main(["train", "--out", str(tmp_path), "--init-from", str(tmp_path)]) == 2
    assert "different folders" in capsys.readouterr().err


def test_focus_weights_the_mixture_and_empty_focus_keeps_it():
    plain = [sample_dialogue(random.Random(3)) for _ in range(1)]
    assert sample_dialogue(random.Random(3), ()) == plain[0]  # the shipped recipe's stream is unchanged
    count = re.compile(r"There (is|are) (no|one|two|three|four) ")

    def focused(d):  # a drawing, then only count questions about it
        return len(d.turns) >= 2 and d.turns[0].kind == "draw" and all(t.kind == "ask_count" and count.match(t.reply_text) for t in d.turns[1:])

    rng = random.Random(0)
    single = [sample_dialogue(rng, ("ask_count",)) for _ in range(200)]
    assert sum(map(focused, single)) >= 85  # about half are focused (plus the mixture's own)
    assert sum(len(d.turns) - 1 for d in single if focused(d)) >= 2 * 85  # 1 to 4 questions per picture
    assert sum(1 for d in (sample_dialogue(rng) for _ in range(200)) if focused(d)) < 30
    heavy = [sample_dialogue(rng, ("ask_count",), share=0.9) for _ in range(200)]
    assert sum(map(focused, heavy)) >= 165


def test_questions_about_one_picture_read_that_picture():
    d = world.generate_questions(random.Random(5), ("ask_is_there", "ask_where"), n=4)
    scene = d.turns[0].reply_scene
    assert d.turns[0].kind == "draw" and len(d.turns) == 5
    for t in d.turns[1:]:
        assert t.kind in ("ask_is_there", "ask_where") and t.reply_scene is None
        assert t.reply_text == world.answer_question(scene, t.kind, t.meta["target"])
    with pytest.raises(ValueError, match="question kinds"):
        world.generate_questions(random.Random(5), ("draw",))


def test_clarify_focus_pairs_questions_with_edits_that_must_not_ask():
    rng = random.Random(0)
    turns = [sample_dialogue(rng, ("clarify",), share=1.0).turns for _ in range(200)]
    asks = [t for t in turns if t[1].kind == "clarify"]
    edits = [t for t in turns if t[1].kind in ("replace", "remove", "move")]
    assert 70 <= len(asks) <= 130 and len(asks) + len(edits) == 200
    for t in edits:  # the same kind of scene, and the reply is the edit, not a question
        scene, target = t[0].reply_scene, t[1].meta["edit"]["target"]["cls"]
        assert any(scene.count(o.cls) > 1 for o in scene.objects)
        assert t[1].reply_scene is not None and t[1].reply_text.startswith("Done")
        assert scene.count(target) == 1 or t[1].meta["explicit_place"]
    assert sum(1 for t in edits if t[0].reply_scene.count(t[1].meta["edit"]["target"]["cls"]) == 1) >= 50  # mostly a class that is there once


def test_train_refuses_an_unknown_focus_kind(tmp_path, capsys):
    from chatgen.cli import main

    assert main(["train", "--out", str(tmp_path / "m"), "--focus", "ask_count,juggling"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'juggling'" in err and "ask_count" in err
    assert main(["train", "--out", str(tmp_path / "m"), "--focus", "ask_count", "--focus-share", "1.5"]) == 2
    assert "--focus-share must be above 0 and at most 1" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_restart_takes_its_own_focus(tmp_path, capsys):
    from chatgen.cli import main
    from chatgen.cli.train import restart_spec

    plain = restart_spec("30")
    assert (plain.minutes, plain.focus) == (30.0, ())
    focused = restart_spec("15:ask_is_there,ask_count@1.0")
    assert (focused.minutes, focused.focus, focused.focus_share) == (15.0, ("ask_is_there", "ask_count"), 1.0)
    assert restart_spec("20:clarify").focus_share == 0.5 and plain.lr == 8e-4
    slow = restart_spec("24:ask_what,clarify@0.7/5e-4")
    assert (slow.minutes, slow.focus, slow.focus_share, slow.lr) == (24.0, ("ask_what", "clarify"), 0.7, 5e-4)
    assert restart_spec("10/1e-3").lr == 1e-3
    for bad, words in [("ten", "write MINUTES"), ("15:juggling", "'juggling'"), ("15:clarify@2", "at most 1"), ("0", "above 0"), ("10/fast", "[/LR]"), ("10/0", "LR must be above 0")]:
        assert main(["train", "--out", str(tmp_path / "m"), "--restart", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and words in err, err
    assert main(["train", "--out", str(tmp_path / "m"), "--focus", "clarify", "--restart", "15:ask_count"]) == 2
    assert "give the focus in one place" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_train_sizes_a_new_model_and_refuses_bad_sizes(tmp_path, capsys, monkeypatch):
    import chatgen.train.pipeline as pipeline
    from chatgen.cli import main

    seen = []
    monkeypatch.setattr(pipeline, "train_all", lambda out, run, cfg, **kw: seen.append(cfg))
    assert main(["train", "--out", str(tmp_path / "m"), "--layers", "12", "--hidden", "384", "--batch-tokens", "20000"]) == 0
    lm = seen[0].lm
    assert (lm.layers, lm.hidden, lm.heads, lm.kv_heads, lm.intermediate, lm.batch_tokens) == (12, 384, 12, 6, 1152, 20000)
    model = build_lm(lm, JointVocab(text_size=400, codebook_size=1024, grid_h=6, grid_w=6))
    assert model.config.num_hidden_layers == 12 and model.config.hidden_size == 384
    for bad, says in [(["--hidden", "100"], "--hidden must be a multiple of 64"), (["--layers", "0"], "--layers must be at least 1"),
                      (["--batch-tokens", "100"], "--batch-tokens must be at least"),
                      (["--layers", "12", "--init-from", str(tmp_path)], "keeps its own size")]:
        assert main(["train", "--out", str(tmp_path / "m"), *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and says in err
    assert len(seen) == 1
