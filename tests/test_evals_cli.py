"""`chatgen eval` end to end on the tiny random model: outputs, exit codes, clear errors."""

import json
import re
from pathlib import Path

import pytest

from chatgen.cli import main

SUITE = {
    "draw.yaml": """
id: draw_edit
tags: [replace]
turns:
  - user: draw a dog on the left, on grass
    kind: draw
    expect: {reply: image, scene: {background: grass, include: [{class: dog, position: middle left}], exact: true}}
  - user: make the dog a cat
    kind: replace
    expect: {reply: image, scene: {background: grass, include: [{class: cat, position: middle left}], exact: true}, preserve: {max_l1: 0.05}}
  - undo: true
  - user: "is there a dog?"
    kind: ask_is_there
    expect: {reply: text, answer_any: ["yes"]}
""",
    "chit.yaml": """
id: chit_chat
tags: [easy]
turns:
  - user: hello
    expect: {answer_none: ["zebra-unicorn"]}
""",
}


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def suite(tmp_path):
    folder = tmp_path / "suite"
    folder.mkdir()
    for name, text in SUITE.items():
        (folder / name).write_text(text)
    return folder


def test_eval_writes_results_summary_and_html(capsys, suite, tiny_dir, tmp_path):
    out = tmp_path / "report"
    code, stdout, err = run(capsys, "eval", suite, "--out", out, "--model", tiny_dir, "--max-new-tokens", 40, "--json")
    assert code == 0, err
    summary = json.loads(stdout)  # --json: the summary, and nothing else, on stdout
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["dialogues"] == 2 and summary["turns"] == 4 and summary["turns_run"] == 5
    assert set(summary["per_tag"]) == {"replace", "easy"} and summary["per_tag"]["easy"]["pass_rate"] == 1.0
    assert summary["overall"] == pytest.approx((summary["per_tag"]["replace"]["pass_rate"] + 1.0) / 2, abs=1e-4)
    assert summary["latency_s"]["n"] == 4 and summary["model"].startswith("native:")
    assert "[1/2] chit_chat" in err and "[2/2] draw_edit" in err
    rows = [json.loads(l) for l in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["dialogue"], r["turn"]) for r in rows] == [("chit_chat", 1), ("draw_edit", 1), ("draw_edit", 2), ("draw_edit", 3), ("draw_edit", 4)]
    assert rows[3]["kind"] == "undo" and rows[3]["correct"] is None
    for r in rows:
        assert r["mode"] == "iterative" and isinstance(r["reason"], str) and r["reason"]
        if r["image"]:
            assert (out / r["image"]).is_file()
    # every image the page shows is a PNG file next to it, linked relatively
    html = (out / "index.html").read_text()
    srcs = re.findall(r'src="([^"]+)"', html)
    assert srcs and all(not s.startswith(("/", "file:")) and (out / s).is_file() for s in srcs)
    assert any(s.endswith("_expected.png") for s in srcs)


def test_min_pass_sets_the_exit_code(capsys, suite, tiny_dir, tmp_path):
    args = ("eval", suite / "chit.yaml", "--model", tiny_dir, "--max-new-tokens", 8)
    code, out, err = run(capsys, *args, "--out", tmp_path / "a", "--min-pass", 0.9)
    assert code == 0 and "overall 1.000" in out
    code, out, err = run(capsys, "eval", suite, "--model", tiny_dir, "--max-new-tokens", 8, "--out", tmp_path / "b", "--min-pass", 0.99, "--tags", "replace", "--seed", 3)
    assert code == 1 and "under --min-pass 0.99" in err
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["passed"] is False and summary["min_pass"] == 0.99 and set(summary["per_tag"]) == {"replace"}


def test_limit_and_mode(capsys, suite, tiny_dir, tmp_path):
    code, _, err = run(capsys, "eval", suite, "--out", tmp_path / "r", "--model", tiny_dir, "--max-new-tokens", 8, "--limit", 1, "--mode", "independent")
    assert code == 0, err
    rows = [json.loads(l) for l in (tmp_path / "r" / "results.jsonl").read_text().splitlines()]
    assert {r["dialogue"] for r in rows} == {"chit_chat"} and rows[0]["mode"] == "independent"


def error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [l for l in err.strip().splitlines() if l.startswith("chatgen: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    "text, message",
    [
        ("turns: [{user: hi, expect: {reply: image, sparkle: true}}]", "turn 1.expect: unknown key 'sparkle'"),
        ("turns: [{user: hi, expect: {scene: {include: [{class: unicorn}]}}}]", "'unicorn' is not a world class"),
        ("turns: [{user: hi", "not valid YAML"),
    ],
)
def test_malformed_suite_exits_2_with_one_line(capsys, tmp_path, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    code, out, err = run(capsys, "eval", tmp_path, "--out", tmp_path / "r")  # fails before any model loads
    assert code == 2
    line = error_line(err)
    assert str(bad) in line and message in line


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--min-pass", "2"], "--min-pass must be between 0 and 1"),
        (["--limit", "0"], "--limit must be at least 1"),
        (["--tags", "nothing"], "no dialogues left"),
    ],
)
def test_bad_options_exit_2(capsys, suite, tmp_path, argv, message):
    code, _, err = run(capsys, "eval", suite, "--out", tmp_path / "r", *argv)
    assert code == 2 and message in error_line(err)


def test_missing_path_exits_2(capsys, tmp_path):
    code, _, err = run(capsys, "eval", tmp_path / "nope", "--out", tmp_path / "r")
    assert code == 2 and "no dialogue files" in error_line(err)


def test_shipped_ci_subset_runs(capsys, tiny_dir, tmp_path):
    ci = Path(__file__).parent.parent / "evals" / "ci"
    code, out, err = run(capsys, "eval", ci, "--out", tmp_path / "ci", "--model", tiny_dir, "--max-new-tokens", 24, "--min-pass", 0)
    assert code == 0, err
    summary = json.loads((tmp_path / "ci" / "summary.json").read_text())
    assert summary["dialogues"] >= 8 and summary["errors"] == 0
