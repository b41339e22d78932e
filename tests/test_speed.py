"""`chatgen bench`: one run prints the per-turn table and the ratios, and writes them as JSON."""

import json

from chatgen.cli import main
from chatgen.evals.speed import SCRIPT, VISITORS, visitor_script
from chatgen.world import BACKGROUNDS, CLASSES


def test_bench_prints_ratios_and_writes_json(tiny_dir, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--model", str(tiny_dir), "--repeats", "1", "--concurrent", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert [t["turn"] for t in report["turns"]] == list(range(1, len(SCRIPT) + 1))
    assert all(t["p50_s"] > 0 and t["naive_s"] > 0 for t in report["turns"])
    assert report["bare_step_s"] > 0 and report["peak_rss_mb"] > 0
    ratios = {k: v for k, v in report.items() if k.endswith(("_ratio", "_speedup"))}
    assert {"turn10_vs_turn1_ratio", "turn10_vs_naive_speedup", "concurrent_throughput_speedup", "concurrent_drawings_speedup", "visitors_throughput_speedup"} <= set(ratios)
    assert report["visitors_serial_s"] > 0 and report["visitors_concurrent_s"] > 0 and ratios["visitors_throughput_speedup"] > 0
    assert report["concurrent_replies_equal"] is True  # every reply decoded together (burst and visitors) is the one it got alone
    assert "visitors_concurrent_s" in printed
    for k, v in ratios.items():
        assert v is None or v > 0
        assert k in printed


def test_visitors_talk_about_other_things_of_the_world():
    assert visitor_script(*VISITORS[0]) == SCRIPT
    assert len({visitor_script(*v) for v in VISITORS}) == len(VISITORS) == 8
    for animal, other, thing, background, becomes in VISITORS:
        assert {animal, other, thing, becomes} <= set(CLASSES) and background in BACKGROUNDS
        assert len({animal, other, becomes}) == 3  # the edit changes something, and "where is" names one thing


def test_bench_refuses_nonsense_counts(tiny_dir, capsys):
    assert main(["bench", "--model", str(tiny_dir), "--repeats", "0"]) == 2
    assert "--repeats" in capsys.readouterr().err
