import json
import subprocess
import sys

import pytest
from PIL import Image

from chatgen.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [l for l in err.strip().splitlines() if l.startswith("chatgen: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_generate_writes_a_png_with_parameters(capsys, tiny_dir, tmp_path):
    out = tmp_path / "out.png"
    for seed in range(10):
        code, stdout, err = run(capsys, "generate", "a dog on the grass", "-o", out, "--model", tiny_dir, "--seed", seed, "--max-new-tokens", 40)
        if code == 0:
            break
    assert code == 0 and str(out) in stdout
    img = Image.open(out)
    meta = json.loads(img.text["chatgen"])
    assert meta["seed"] == seed and meta["params"]["max_new_tokens"] == 40


def test_edit_writes_a_png(capsys, tiny_dir, tmp_path):
    src = tmp_path / "in.png"
    Image.new("RGB", (40, 40), (10, 200, 10)).save(src)
    out = tmp_path / "out.png"
    for seed in range(10):
        code, stdout, _ = run(capsys, "edit", src, "make the dog a cat", "-o", out, "--model", tiny_dir, "--seed", seed, "--max-new-tokens", 40)
        if code == 0:
            break
    assert code == 0 and out.is_file()


def make_bad_files(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good.read_bytes()[:60])
    huge = tmp_path / "huge.png"
    Image.new("1", (8000, 7000)).save(huge)  # 56 megapixels, a small file
    return text, truncated, huge


@pytest.mark.parametrize(
    "case, match",
    [
        ("empty_prompt", "the prompt is empty"),
        ("missing_file", "image file not found"),
        ("not_an_image", "is not an image"),
        ("truncated", "truncated or corrupt"),
        ("huge", "limit is 50 megapixels"),
        ("unknown_model", "no chatgen model at"),
        ("model_without_config", "config.json is missing"),
        ("bad_output", "output must be a .png"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, tiny_dir, tmp_path, case, match):
    text, truncated, huge = make_bad_files(tmp_path)
    out = tmp_path / "o.png"
    argv = {
        "empty_prompt": ["generate", "  ", "-o", out, "--model", tiny_dir],
        "missing_file": ["edit", tmp_path / "nope.png", "make it blue", "-o", out, "--model", tiny_dir],
        "not_an_image": ["edit", text, "make it blue", "-o", out, "--model", tiny_dir],
        "truncated": ["edit", truncated, "make it blue", "-o", out, "--model", tiny_dir],
        "huge": ["edit", huge, "make it blue", "-o", out, "--model", tiny_dir],
        "unknown_model": ["generate", "a dog", "-o", out, "--model", tmp_path / "no-such-model"],
        "model_without_config": ["generate", "a dog", "-o", out, "--model", tmp_path],
        "bad_output": ["generate", "a dog", "-o", tmp_path / "o.jpg", "--model", tiny_dir],
    }[case]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert match in error_line(err)
    assert not out.exists()


def test_help_everywhere():
    for argv in (["--help"], ["generate", "--help"], ["edit", "--help"], ["chat", "--help"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0


def test_chat_repl_commands_and_bad_input_keep_the_session(capsys, tiny_dir, tmp_path, monkeypatch):
    text, truncated, _ = make_bad_files(tmp_path)
    lines = iter(
        [
            "/seed 3",
            "draw a dog",
            "make the dog a cat",
            f"/image {truncated}",  # refused: the conversation keeps its 2 turns
            "/undo",
            "/redo",
            "/branch 1",
            "draw a fox instead",
            "/branches",
            "/bogus",
            f"/save {tmp_path / 'sess'}",
            f"/load {tmp_path / 'sess'}",
            "/history",
            "/quit",
        ]
    )
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    code, out, err = run(capsys, "chat", "--model", tiny_dir, "--out-dir", tmp_path / "imgs", "--max-new-tokens", 40)
    assert code == 0 and "Traceback" not in out + err
    assert "error: " in out and "truncated or corrupt" in out
    assert "undid: 'make the dog a cat'" in out and "redid: 'make the dog a cat'" in out
    assert "unknown command /bogus" in out
    assert "loaded 2 turns" in out
    assert out.count("turns, last:") == 2  # two branches listed
    assert "1. you: draw a dog" in out and "2. you: draw a fox instead" in out
    assert (tmp_path / "sess" / "session.json").is_file()


def test_console_script_runs_as_a_module(tiny_dir, tmp_path):
    r = subprocess.run([sys.executable, "-m", "chatgen", "generate", "", "-o", str(tmp_path / "x.png")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "the prompt is empty" in r.stderr and "Traceback" not in r.stderr
