import os

# Tests never download anything, and never write into the user's cache.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    os.environ["CHATGEN_CACHE"] = str(tmp_path_factory.mktemp("chatgen-cache"))


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A tiny random native checkpoint saved with save_pretrained (loaded back by the tests)."""
    from chatgen.tiny import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture()
def backend(tiny_dir):
    from chatgen.backends.native import NativeBackend

    return NativeBackend.from_pretrained(tiny_dir)


@pytest.fixture()
def assistant(backend):
    from chatgen.assistant import Assistant

    return Assistant(backend)


def pytest_collection_modifyitems(config, items):
    slow = os.environ.get("CHATGEN_SLOW") == "1"
    gpu = torch.cuda.is_available()
    for item in items:
        if "slow" in item.keywords and not slow:
            item.add_marker(pytest.mark.skip(reason="real-size check; set CHATGEN_SLOW=1"))
        if "gpu" in item.keywords and not gpu:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))


@pytest.fixture
def edits_kept(monkeypatch):
    """A random tiny model often redraws its source picture code for code; the honesty guard
    (tests/test_assistant.py) then answers "Nothing changed" in words. Tests of the edit plumbing
    (locks, masks, the CLI's saved pictures, cache reuse) keep the picture instead."""
    from chatgen.assistant import Assistant

    monkeypatch.setattr(Assistant, "_same_picture", lambda self, *a: False)
