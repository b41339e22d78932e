"""Models load from safetensors only, and trust_remote_code stays off unless a person passes it."""

import re
import shutil
from pathlib import Path

import pytest
import torch

from chatgen.backends import load_backend
from chatgen.backends.native import NativeBackend
from chatgen.errors import ChatgenError
from chatgen.safe_weights import safetensors_folder

PACKAGE = Path(__file__).resolve().parent.parent / "chatgen"


@pytest.fixture()
def pickled_lm(tiny_dir, tmp_path):
    """The tiny checkpoint with its language model's weights only as a pickle (pytorch_model.bin)."""
    folder = Path(shutil.copytree(tiny_dir, tmp_path / "pickled"))
    for f in (folder / "lm").glob("*.safetensors"):
        f.unlink()
    torch.save(NativeBackend.from_pretrained(tiny_dir).lm.state_dict(), folder / "lm" / "pytorch_model.bin")
    return folder


def test_a_checkpoint_with_only_pickle_weights_is_refused_in_one_sentence(pickled_lm):
    for load in (load_backend, NativeBackend.from_pretrained):
        with pytest.raises(ChatgenError) as err:
            load(pickled_lm)
        msg = str(err.value)
        assert msg.startswith(f"the language model at {pickled_lm / 'lm'} is refused") and "pytorch_model.bin" in msg
        assert "safetensors only" in msg and "save_pretrained" in msg and "\n" not in msg


def test_a_pickled_image_tokenizer_is_refused_too(tiny_dir, tmp_path):
    folder = Path(shutil.copytree(tiny_dir, tmp_path / "pickled-vq"))
    vq = NativeBackend.from_pretrained(tiny_dir).image_tokenizer.vq
    shutil.rmtree(folder / "vq")
    vq.save_pretrained(folder / "vq", safe_serialization=False)  # diffusers still writes a pickle on request
    assert not list((folder / "vq").glob("*.safetensors"))
    with pytest.raises(ChatgenError, match="the image tokenizer at .* is refused: its weights are only pickle files"):
        load_backend(folder)


def test_safetensors_folders_pass(tiny_dir):
    assert safetensors_folder(tiny_dir / "lm") == tiny_dir / "lm"
    assert NativeBackend.from_pretrained(tiny_dir).lm is not None


def test_no_code_in_the_package_turns_trust_remote_code_on():
    """trust_remote_code is only ever the person's own choice: no call sets it to True."""
    offending = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"trust_remote_code\s*=\s*True", line):
                offending.append(f"{path.relative_to(PACKAGE.parent)}:{n}: {line.strip()}")
    assert offending == []
