"""`chatgen eval --workers N` and `--ray`: the same results as a serial run, in suite order."""

import json

import pytest

from chatgen.cli import main

SUITE = ["evals/ci/ci_draw.yaml", "evals/ci/ci_add.yaml", "evals/ci/ci_ask_count.yaml", "evals/ci/ci_clarify.yaml"]


def _results(folder):
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("latency_s")
    return rows


def _run(tiny_dir, out, *extra):
    assert main(["eval", *SUITE, "--model", str(tiny_dir), "--out", str(out), "--temperature", "0", *extra]) == 0
    return _results(out)


def test_workers_give_the_serial_results_in_order(tiny_dir, tmp_path):
    serial = _run(tiny_dir, tmp_path / "serial")
    spread = _run(tiny_dir, tmp_path / "spread", "--workers", "2")
    assert len(serial) >= 4 and spread == serial


def test_ray_gives_the_serial_results_on_a_local_instance(tiny_dir, tmp_path):
    pytest.importorskip("ray")
    serial = _run(tiny_dir, tmp_path / "serial")
    assert _run(tiny_dir, tmp_path / "ray", "--ray", "--workers", "2") == serial


def test_bad_worker_counts_are_one_line(tiny_dir, tmp_path, capsys):
    assert main(["eval", *SUITE, "--model", str(tiny_dir), "--out", str(tmp_path / "x"), "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err
