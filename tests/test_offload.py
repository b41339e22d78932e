"""The low-memory profile (`--offload`): tiny Janus, Emu3 and native checkpoints loaded with
accelerate offload, part of their weights read from the disk, draw and chat as they do whole."""

import json

import pytest
from family_checkpoints import make_chameleon, make_emu3, make_janus
from PIL import Image

from chatgen.assistant import Assistant
from chatgen.backends import checkpoint, load_backend, offload
from chatgen.cli import main
from chatgen.conversation import Message, Session
from chatgen.errors import ChatgenError

PX = 32  # both tiny families: 4 x 4 codes, 32 px pictures
UPLOAD = "make it snowy"  # `turns` sends this one with an uploaded picture (read through the offloaded VQ / SigLIP)


@pytest.fixture(scope="module")
def janus_dir(tmp_path_factory):
    return make_janus(tmp_path_factory.mktemp("janus") / "Janus-tiny")


@pytest.fixture(scope="module")
def emu3_dir(tmp_path_factory):
    return make_emu3(tmp_path_factory.mktemp("emu3") / "Emu3-tiny")


@pytest.fixture(scope="module")
def folders(janus_dir, emu3_dir, tmp_path_factory):
    """family -> (tiny folder, load_backend keyword arguments)."""
    chameleon = make_chameleon(tmp_path_factory.mktemp("chameleon") / "Chameleon-tiny")
    return {"janus": (janus_dir, {}), "emu3": (emu3_dir, {}), "chameleon": (chameleon, {"draw": True})}


def small(folder) -> str:
    """A --max-memory that holds about a quarter of the weights: the rest goes to the disk."""
    return str(checkpoint.weight_bytes(folder) // 4)


def pixels(path) -> bytes:
    return Image.open(path).convert("RGB").tobytes()


def turns(backend, texts, **params):
    """(reply ids, image pixels) of each turn of one conversation; a turn of `UPLOAD` sends a picture."""
    a, s, out = Assistant(backend), Session(), []
    for text in texts:
        message = Message(text, image=Image.new("RGB", (40, 40), (200, 30, 30))) if text == UPLOAD else text
        reply = a.respond(s, message, {"seed": 0, "max_new_tokens": 40, **params})
        out.append((s.turns[reply.turn_id].reply_ids, reply.image.tobytes() if reply.image else None))
    return out


# ---- --offload on: weights on the disk, the same replies ----------------------------------------
@pytest.mark.parametrize("family", ["janus", "emu3", "chameleon"])
def test_offload_on_puts_weights_on_the_disk_and_replies_the_same(family, folders, capsys):
    folder, kwargs = folders[family]
    b = load_backend(folder, offload="on", max_memory=small(folder), **kwargs)
    assert "loading in the low-memory profile" in capsys.readouterr().err
    assert "disk" in set(b.model.hf_device_map.values())  # some weights stay on the disk until used
    texts = ["draw a dog", "make the dog a cat", "how many animals are there?", UPLOAD]
    offloaded, whole = turns(b, texts, temperature=0), turns(load_backend(folder, **kwargs), texts, temperature=0)
    assert offloaded == whole
    assert any(img is not None for _, img in offloaded)


@pytest.mark.parametrize("family", ["janus", "emu3"])
def test_cli_generate_offloaded_equals_whole(family, janus_dir, emu3_dir, tmp_path, capsys):
    folder = janus_dir if family == "janus" else emu3_dir
    base = ["generate", "draw a dog", "--model", str(folder), "--max-new-tokens", "60"]
    for seed in range(20):  # a random Emu3 sometimes answers in words
        code = main([*base, "-o", str(tmp_path / "off.png"), "--seed", str(seed), "--offload", "on", "--max-memory", small(folder)])
        if code == 0:
            break
    assert code == 0 and Image.open(tmp_path / "off.png").size == (PX, PX)
    assert "low-memory profile" in capsys.readouterr().err
    assert main([*base, "-o", str(tmp_path / "whole.png"), "--seed", str(seed), "--offload", "off"]) == 0
    assert "low-memory profile" not in capsys.readouterr().err
    assert pixels(tmp_path / "off.png") == pixels(tmp_path / "whole.png")


def test_cli_chat_two_turns_offloaded(janus_dir, tmp_path, monkeypatch, capsys, edits_kept):
    script = iter(["/seed 3", "draw a dog", "make the dog a cat", "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(script))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert main(["chat", "--model", str(janus_dir), "--out-dir", str(out_dir), "--offload", "on", "--max-memory", small(janus_dir)]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("[image saved to") == 2 and "error" not in captured.out and "low-memory profile" in captured.err
    pngs = sorted(out_dir.glob("*.png"))
    assert len(pngs) == 2 and all(Image.open(png).size == (PX, PX) for png in pngs)


def test_native_offloaded_replies_the_same(tiny_dir, capsys):
    b = load_backend(tiny_dir, offload="on", max_memory=small(tiny_dir / "lm"))
    assert "disk" in set(b.lm.hf_device_map.values())
    texts = ["draw a dog", "make the dog a cat"]
    assert turns(b, texts, temperature=0) == turns(load_backend(tiny_dir), texts, temperature=0)


# ---- auto / off, with the free memory faked low -------------------------------------------------
def test_auto_loads_offloaded_when_memory_is_short_and_off_refuses(janus_dir, tmp_path, monkeypatch, capsys):
    need = checkpoint.weight_bytes(janus_dir)
    monkeypatch.setattr(checkpoint, "available_bytes", lambda device: need // 3)
    out = tmp_path / "dog.png"
    assert main(["generate", "draw a dog", "-o", str(out), "--model", str(janus_dir), "--seed", "0"]) == 0  # --offload auto is the default
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "low-memory profile" in x)
    assert checkpoint.size_text(need) in line and checkpoint.size_text(need // 3) in line
    assert Image.open(out).size == (PX, PX)
    # off: the one sentence, exit code 2, no traceback
    assert main(["generate", "draw a dog", "-o", str(tmp_path / "no.png"), "--model", str(janus_dir), "--offload", "off"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 2  # "loading model ..." and the error
    assert "chatgen: error: the model's weights need about" in err and "--quantize 4bit" in err and "--offload auto" in err
    assert not (tmp_path / "no.png").exists()


def test_auto_changes_nothing_when_the_weights_fit(janus_dir, capsys):
    b = load_backend(janus_dir)
    assert getattr(b.model, "hf_device_map", None) is None
    assert "low-memory profile" not in capsys.readouterr().err


def test_max_memory_under_auto_counts_as_the_free_memory(janus_dir, capsys):
    b = load_backend(janus_dir, max_memory=small(janus_dir))
    assert "disk" in set(b.model.hf_device_map.values()) and "low-memory profile" in capsys.readouterr().err


def test_auto_without_room_on_the_disk_refuses_naming_4bit(tmp_path, monkeypatch):
    # 14 GB of bf16 weights as .bin files (not read in place: they would be written to the offload folder)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "emu3", "dtype": "bfloat16"}))
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {"total_size": 14 * 1024**3}, "weight_map": {}}))
    monkeypatch.setattr(checkpoint, "available_bytes", lambda device: 8 * 1024**3)
    monkeypatch.setattr(offload, "disk_free_bytes", lambda path: 1024**3)
    with pytest.raises(ChatgenError) as e:
        load_backend(tmp_path)
    msg = str(e.value)
    assert msg.startswith("the model's weights need about 14.0 GB but only 8.0 GB of memory is free, and even offloaded")
    assert "--quantize 4bit (about 3.9 GB)" in msg and "\n" not in msg
    # with the disk room, auto goes on to load (and meets the missing weights)
    monkeypatch.setattr(offload, "disk_free_bytes", lambda path: 100 * 1024**3)
    with pytest.raises(ChatgenError, match="incomplete"):
        load_backend(tmp_path)


@pytest.mark.parametrize("kwargs, message", [
    ({"offload": "sometimes"}, "offload must be one of auto, on, off"),
    ({"offload": "on", "quantization": "4bit"}, "--offload on does not combine with --quantize"),
    ({"offload": "off", "max_memory": "1GB"}, "--max-memory caps the low-memory profile"),
    ({"max_memory": "lots"}, "--max-memory must be a size such as 6GB"),
])
def test_bad_settings_are_one_sentence(janus_dir, kwargs, message):
    with pytest.raises(ChatgenError, match=message):
        load_backend(janus_dir, **kwargs)


def test_sizes_parse():
    assert offload.parse_size("6GB") == 6 * 1024**3 and offload.parse_size("512 MiB") == 512 * 1024**2
    assert offload.parse_size("100kb") == 102400 and offload.parse_size("4096") == 4096 and offload.parse_size(None) is None


def test_cli_flags(janus_dir):
    from chatgen.cli import build_parser

    args = build_parser().parse_args(["generate", "x", "-o", "x.png", "--offload", "on", "--max-memory", "2GB"])
    assert (args.offload, args.max_memory) == ("on", "2GB")
    assert build_parser().parse_args(["chat"]).offload == "auto"
