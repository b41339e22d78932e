"""The Space: its files, the ZeroGPU decorator, `chatgen space export`, and the `ui` / `space` CLI."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from chatgen import space, zerogpu
from chatgen.cli import build_parser, main
from chatgen.errors import ChatgenError

ROOT = Path(__file__).resolve().parents[1]


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_repository_spaces_folder_matches_the_export_templates():
    for name, text in space.SPACE_FILES.items():
        assert (ROOT / "spaces" / name).read_text(encoding="utf-8") == text, f"spaces/{name} is stale: run chatgen.space.write_space_files('spaces')"


def test_space_card_front_matter_is_valid():
    from importlib.metadata import version

    meta = front_matter(space.README_MD)
    for key in ("title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "app_file", "python_version", "short_description", "pinned", "license"):
        assert key in meta, key
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert str(meta["sdk_version"]) == version("gradio") == space.GRADIO_VERSION
    assert f'"gradio=={space.GRADIO_VERSION}"' in (ROOT / "pyproject.toml").read_text()
    assert isinstance(meta["python_version"], str) and meta["python_version"].startswith("3.")
    assert len(meta["short_description"]) <= 60
    colors = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
    assert meta["colorFrom"] in colors and meta["colorTo"] in colors
    assert isinstance(meta["pinned"], bool)


def test_requirements_are_valid_and_come_from_pyproject():
    from packaging.requirements import Requirement

    pyproject = (ROOT / "pyproject.toml").read_text()
    for line in space.REQUIREMENTS.splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            assert f'"{line}"' in pyproject, f"{line} differs from pyproject.toml"
            assert req.name != "gradio"  # the Space installs its own, per sdk_version


def test_gpu_decorator_only_on_zerogpu(tmp_path, monkeypatch):
    def f(x):
        return x + 1

    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert zerogpu.gpu(f) is f and not zerogpu.on_zero_gpu()
    # on a ZeroGPU Space with the `spaces` package importable, generation runs under spaces.GPU
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    (tmp_path / "spaces.py").write_text("def GPU(duration=60):\n    def deco(fn):\n        fn.zerogpu = duration\n        return fn\n    return deco\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)  # the repository's spaces/ folder must not shadow the package
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert zerogpu.gpu(f) is f and not zerogpu.on_zero_gpu()  # not on a Space
    monkeypatch.setenv("SPACE_ID", "someone/chatgen")
    assert zerogpu.on_zero_gpu() and zerogpu.gpu(f, duration=30).zerogpu == 30
    monkeypatch.delitem(sys.modules, "spaces", raising=False)


def test_export_writes_a_pushable_space(tiny_dir, tmp_path, capsys):
    out = tmp_path / "space"
    assert main(["space", "export", str(out), "--model", str(tiny_dir)]) == 0
    assert "hf upload" in capsys.readouterr().out
    for name in ("app.py", "README.md", "requirements.txt", "chatgen/__init__.py", "chatgen/ui/layout.py", "model/config.json"):
        assert (out / name).is_file(), name
    assert not list(out.rglob("__pycache__"))
    # the folder runs as is: `import chatgen` finds the copy, app.py builds the UI on ./model
    code = "import app, chatgen, gradio; print(type(app.demo).__name__, chatgen.__file__)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    r = subprocess.run([sys.executable, "-c", code], cwd=out, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    kind, where = r.stdout.split()[-2:]
    assert kind == "Blocks" and Path(where).resolve().is_relative_to(out.resolve())
    # a second export into the same folder needs --force
    assert main(["space", "export", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["space", "export", str(out), "--force"]) == 0


def test_export_checks_the_model(tmp_path):
    with pytest.raises(ChatgenError, match="config.json is missing"):
        space.export_space(tmp_path / "s", model=tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ChatgenError, match="is a file"):
        space.export_space(tmp_path / "file")


def test_ui_cli_arguments():
    args = build_parser().parse_args(["ui", "--model", "a", "--model", "b", "--host", "0.0.0.0", "--port", "7000", "--share", "--mcp", "--concurrency", "3"])
    assert args.model == ["a", "b"] and args.host == "0.0.0.0" and args.port == 7000 and args.share and args.mcp and args.concurrency == 3
    args = build_parser().parse_args(["ui"])
    assert args.model is None and args.host == "127.0.0.1" and args.port is None and not args.share and not args.mcp and args.concurrency == 1


def test_ui_cli_rejects_bad_values(capsys):
    assert main(["ui", "--concurrency", "0"]) == 2
    assert "--concurrency must be at least 1" in capsys.readouterr().err
    assert main(["ui", "--port", "70000"]) == 2
    import importlib.util

    if importlib.util.find_spec("mcp") is None:
        assert main(["ui", "--mcp"]) == 2
        assert "mcp>=1.21,<2" in capsys.readouterr().err


def test_space_card_says_what_it_does_and_what_it_can_draw():
    from chatgen.world.scene import BACKGROUNDS, CLASSES, MAX_OBJECTS

    meta = front_matter(space.README_MD)
    assert all(w in meta["short_description"].lower() for w in ("draw", "edit", "ask"))
    above_the_fold = space.README_MD.split("---\n", 2)[2][:1600]  # the card's first screen
    assert all(c in above_the_fold for c in CLASSES) and all(b in above_the_fold for b in BACKGROUNDS)
    assert "3x3" in above_the_fold and f"at most {MAX_OBJECTS}" in above_the_fold
