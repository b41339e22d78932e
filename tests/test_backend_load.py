"""`load_backend`: the family from config.json, and one sentence for everything that cannot load."""

import json

import pytest
import torch

from chatgen.backends import FAMILIES, checkpoint, load_backend
from chatgen.backends.native import NativeBackend
from chatgen.cli import build_parser
from chatgen.errors import ChatgenError


def test_native_format_loads_the_native_backend(tiny_dir):
    assert isinstance(load_backend(tiny_dir), NativeBackend)


def test_unknown_model_type_names_it_and_the_supported_ones(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))
    with pytest.raises(ChatgenError) as e:
        load_backend(tmp_path)
    msg = str(e.value)
    assert "'llava'" in msg and "emu3" in msg and all(f in msg for f in FAMILIES)


def test_missing_config_and_missing_folder(tmp_path):
    with pytest.raises(ChatgenError, match="config.json is missing"):
        load_backend(tmp_path)
    with pytest.raises(ChatgenError, match="does not exist"):
        load_backend(tmp_path / "nope")


def test_hub_id_offline_is_one_sentence(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ChatgenError, match=r"^cannot load model someone/not-cached: not a local folder and not available from the Hub"):
        load_backend("someone/not-cached")


def test_a_model_that_cannot_fit_is_refused_before_loading(tmp_path, monkeypatch):
    # a checkpoint whose index says 14 GB of bf16 weights (no weights needed to refuse it)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "emu3", "dtype": "bfloat16"}))
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 14 * 1024**3}, "weight_map": {}}))
    monkeypatch.setattr(checkpoint, "available_bytes", lambda device: 8 * 1024**3)
    with pytest.raises(ChatgenError) as e:
        load_backend(tmp_path, offload="off")  # "auto" would load it offloaded (tests/test_offload.py)
    msg = str(e.value)
    assert "14.0 GB" in msg and "8.0 GB" in msg and "--quantize 4bit" in msg and "3.9 GB" in msg and "--offload auto" in msg
    # 4-bit fits: the refusal is gone and loading goes on (to the missing weights)
    with pytest.raises(ChatgenError, match="incomplete"):
        load_backend(tmp_path, quantization="4bit")
    # float32 doubles the need
    monkeypatch.setattr(checkpoint, "available_bytes", lambda device: 20 * 1024**3)
    with pytest.raises(ChatgenError, match="28.0 GB"):
        checkpoint.check_fits(tmp_path, {"dtype": "bfloat16"}, torch.float32, None, None)


def test_weight_bytes_sums_the_files(tiny_dir):
    total = sum(f.stat().st_size for f in tiny_dir.rglob("*.safetensors"))
    assert total > 0 and checkpoint.weight_bytes(tiny_dir) == total


def test_dtype_and_device_flags(tiny_dir):
    args = build_parser().parse_args(["generate", "x", "-o", "x.png", "--model", str(tiny_dir), "--dtype", "bfloat16", "--device", "cpu", "--quantize", "4bit"])
    assert (args.dtype, args.device, args.quantize) == ("bfloat16", "cpu", "4bit")
    b = load_backend(tiny_dir, dtype="bfloat16", device="cpu")
    assert b.lm.dtype == torch.bfloat16
    with pytest.raises(ChatgenError, match="dtype must be one of"):
        load_backend(tiny_dir, dtype="int8")


def test_a_small_native_model_on_the_cpu_runs_on_one_thread(tmp_path, monkeypatch):
    """The embedded model's passes are fastest on one thread (measured by chatgen bench); the user's
    OMP_NUM_THREADS or CHATGEN_THREADS wins, and a bad CHATGEN_THREADS is one sentence."""
    import torch

    from chatgen.backends import load_backend
    from chatgen.errors import ChatgenError
    from chatgen.tiny import make_tiny_checkpoint

    folder = make_tiny_checkpoint(tmp_path / "m")
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.delenv("CHATGEN_THREADS", raising=False)
        torch.set_num_threads(2)
        load_backend(folder)
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("CHATGEN_THREADS", "2")
        load_backend(folder)
        assert torch.get_num_threads() == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        monkeypatch.setenv("CHATGEN_THREADS", "1")
        load_backend(folder)
        assert torch.get_num_threads() == 2  # the user's OpenMP setting is left alone
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setenv("CHATGEN_THREADS", "two")
        with pytest.raises(ChatgenError, match="CHATGEN_THREADS must be a positive whole number"):
            load_backend(folder)
    finally:
        torch.set_num_threads(before)
