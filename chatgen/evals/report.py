"""The three outputs of an eval run: results.jsonl, summary.json and index.html (+ PNGs).

summary.json
------------
```
{
  "model": str, "mode": str | null (forced mode, else null), "dialogues": int,
  "turns": int (scored turns), "turns_run": int (all turns, undo included), "errors": int,
  "overall": float,        # mean of the per-tag pass rates (as GenEval averages its tasks)
  "turn_pass_rate": float, # passed / scored turns
  "final_turn": float,     # share of dialogues whose last scored turn passed
  "all_turn": float,       # share of dialogues whose every scored turn passed
  "per_tag":  {tag:  {"pass_rate", "passed", "turns", "dialogues", "final_turn", "all_turn"}},
  "per_kind": {kind: {"pass_rate", "passed", "turns"}},
  "metrics":  {name: mean over the turns that have it}  # l1, l2, drift_l1, drift_l2, slot_accuracy, clip_t, clip_i, dino_style
  "latency_s": {"p50", "p95", "mean", "max", "n"},
  "min_pass": float | null, "passed": bool | null   # overall >= min_pass
}
```
Dialogues without tags count under the tag "untagged". Pass rates are over scored turns
(turns with an `expect`); a dialogue without scored turns is left out of final/all_turn.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np

from chatgen.images import save_png

from .runner import TurnResult

METRICS = ("l1", "l2", "drift_l1", "drift_l2", "slot_accuracy", "clip_t", "clip_i", "dino_style")


def _rate(passed: int, n: int) -> float:
    return round(passed / n, 4) if n else 0.0


def summarize(results: list[TurnResult], model: str = "", mode: str | None = None, min_pass: float | None = None) -> dict:
    """The summary of a run (schema in the module doc)."""
    scored = [r for r in results if r.correct is not None]
    # 1. Per dialogue: final turn and all turns.
    by_dlg: dict[str, list[TurnResult]] = {}
    for r in scored:
        by_dlg.setdefault(r.dialogue, []).append(r)
    final = {d: rs[-1].correct for d, rs in by_dlg.items()}
    every = {d: all(r.correct for r in rs) for d, rs in by_dlg.items()}
    # 2. Per tag and per kind.
    per_tag: dict[str, dict] = {}
    for tag in sorted({t for r in scored for t in (r.tags or ["untagged"])}):
        rs = [r for r in scored if tag in (r.tags or ["untagged"])]
        dl = list(dict.fromkeys(r.dialogue for r in rs))
        ok = sum(r.correct for r in rs)
        per_tag[tag] = {"pass_rate": _rate(ok, len(rs)), "passed": ok, "turns": len(rs), "dialogues": len(dl),
                        "final_turn": _rate(sum(final[d] for d in dl), len(dl)), "all_turn": _rate(sum(every[d] for d in dl), len(dl))}
    per_kind: dict[str, dict] = {}
    for kind in sorted({r.kind for r in scored}):
        rs = [r for r in scored if r.kind == kind]
        ok = sum(r.correct for r in rs)
        per_kind[kind] = {"pass_rate": _rate(ok, len(rs)), "passed": ok, "turns": len(rs)}
    # 3. Figures over everything.
    overall = round(float(np.mean([t["pass_rate"] for t in per_tag.values()])), 4) if per_tag else 0.0
    metrics = {}
    for m in METRICS:
        vals = [r.metrics[m] for r in results if isinstance(r.metrics.get(m), (int, float))]
        if vals:
            metrics[m] = round(float(np.mean(vals)), 6)
    lat = [r.latency_s for r in results if r.latency_s is not None]
    latency = {"p50": round(float(np.percentile(lat, 50)), 4), "p95": round(float(np.percentile(lat, 95)), 4),
               "mean": round(float(np.mean(lat)), 4), "max": round(float(np.max(lat)), 4), "n": len(lat)} if lat else {"n": 0}
    return {
        "model": model,
        "mode": mode,
        "dialogues": len({r.dialogue for r in results}),
        "turns": len(scored),
        "turns_run": len(results),
        "errors": sum(r.error is not None for r in results),
        "overall": overall,
        "turn_pass_rate": _rate(sum(r.correct for r in scored), len(scored)),
        "final_turn": _rate(sum(final.values()), len(final)),
        "all_turn": _rate(sum(every.values()), len(every)),
        "per_tag": per_tag,
        "per_kind": per_kind,
        "metrics": metrics,
        "latency_s": latency,
        "min_pass": min_pass,
        "passed": None if min_pass is None else overall >= min_pass,
    }


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def write_report(results: list[TurnResult], summary: dict, out: str | Path) -> Path:
    """Write images/*.png, results.jsonl, summary.json and index.html into `out`; returns index.html."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    # 1. Images, as PNG files next to the page (relative links).
    rows = []
    for r in results:
        files = {}
        for name, im in r.images.items():
            rel = f"images/{_file_safe(r.dialogue)}_t{r.turn}_{name}.png"
            save_png(im, out / rel)
            files[name] = rel
        d = r.to_dict()
        d["image"] = files.get("reply")
        d["images"] = files
        rows.append(d)
    # 2. results.jsonl and summary.json.
    with open(out / "results.jsonl", "w", encoding="utf-8") as f:
        for d in rows:
            f.write(json.dumps(d, sort_keys=False) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    # 3. The HTML page.
    page = out / "index.html"
    page.write_text(_html(rows, summary), encoding="utf-8")
    return page


# ---- HTML ---------------------------------------------------------------------------------------
_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; margin: 8px 0 24px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; vertical-align: top; text-align: left; }
th { background: #f4f4f4; }
td.img img { width: 144px; height: 144px; image-rendering: pixelated; display: block; }
td.img span { color: #999; display: block; width: 144px; }
td.img div { width: 144px; overflow-wrap: anywhere; }
tr.dlg td { background: #eef2f8; font-weight: 600; }
.pass { color: #176f2c; font-weight: 600; } .fail { color: #b3261e; font-weight: 600; } .skip { color: #888; }
.row { display: flex; gap: 32px; align-items: flex-start; flex-wrap: wrap; }
.reason { max-width: 320px; } .small { color: #666; font-size: 12px; }
"""


def _escaped(x) -> str:
    return html.escape(str(x))


def _image_cell(files: dict, name: str, below: str = "") -> str:
    """A table cell with the image (linked to the file), or a dash; `below` goes under it."""
    if name in files:
        return f'<td class="img"><a href="{_escaped(files[name])}"><img src="{_escaped(files[name])}" alt="{name}"></a>{below}</td>'
    return f'<td class="img"><span>—</span>{below}</td>'


def _verdict(correct) -> str:
    return {True: '<span class="pass">pass</span>', False: '<span class="fail">fail</span>', None: '<span class="skip">—</span>'}[correct]


def _table(title: str, table: dict, extra: tuple[str, ...] = ()) -> str:
    head = "".join(f"<th>{_escaped(c)}</th>" for c in ("", "pass rate", "passed", "turns") + extra)
    body = "".join(
        f"<tr><td>{_escaped(k)}</td><td>{v['pass_rate']:.3f}</td><td>{v['passed']}</td><td>{v['turns']}</td>" + "".join(f"<td>{v[c]:.3f}</td>" for c in extra) + "</tr>"
        for k, v in table.items()
    )
    return f"<h3>{_escaped(title)}</h3><table><tr>{head}</tr>{body}</table>"


def _html(rows: list[dict], s: dict) -> str:
    lat = s["latency_s"]
    figures = [("overall (mean of per-tag pass rates)", f"{s['overall']:.3f}"), ("turn pass rate", f"{s['turn_pass_rate']:.3f}"),
               ("final turn", f"{s['final_turn']:.3f}"), ("all turns", f"{s['all_turn']:.3f}"),
               ("dialogues / scored turns", f"{s['dialogues']} / {s['turns']}"), ("errors", s["errors"]),
               ("latency p50 / p95 (s)", f"{lat.get('p50', '—')} / {lat.get('p95', '—')}")]
    figures += [(k, f"{v:.4f}") for k, v in s["metrics"].items()]
    if s["min_pass"] is not None:
        figures.append(("min pass", f"{s['min_pass']} ({'passed' if s['passed'] else 'FAILED'})"))
    summary = "<table>" + "".join(f"<tr><th>{_escaped(k)}</th><td>{_escaped(v)}</td></tr>" for k, v in figures) + "</table>"
    head = "".join(f"<th>{c}</th>" for c in ("turn", "user", "input", "reply", "expected", "change outside edit", "result"))
    body, last = [], None
    for d in rows:
        if d["dialogue"] != last:
            last = d["dialogue"]
            body.append(f'<tr class="dlg"><td colspan="7">{_escaped(last)} <span class="small">{_escaped(d["mode"])} · {_escaped(", ".join(d["tags"]))}</span></td></tr>')
        m = d["metrics"]
        nums = " · ".join(f"{k} {m[k]:.4f}" for k in METRICS if isinstance(m.get(k), (int, float)))
        reply = f'<div class="small">{_escaped(d["reply_text"][:200])}</div>' if d["reply_text"] else ""
        if d.get("model_text"):
            reply += f'<div class="small">(the model said: {_escaped(d["model_text"][:200])})</div>'
        body.append(
            f"<tr><td>{d['turn']}<div class=small>{_escaped(d['kind'])}</div></td>"
            f"<td>{_escaped(d['user'])}<div class=small>start: {_escaped(d['start'] or '—')}</div></td>"
            + _image_cell(d["images"], "input") + _image_cell(d["images"], "reply", reply) + _image_cell(d["images"], "expected") + _image_cell(d["images"], "heat")
            + f'<td class="reason">{_verdict(d["correct"])} {_escaped(d["reason"])}<div class="small">{_escaped(nums)}</div></td></tr>'
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>chatgen eval</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>chatgen eval</h1><p class=small>model {_escaped(s['model'])} · mode {_escaped(s['mode'] or 'per dialogue')}</p>"
        f"<div class=row><div><h3>summary</h3>{summary}</div><div>{_table('per tag', s['per_tag'], ('final_turn', 'all_turn'))}</div>"
        f"<div>{_table('per turn kind', s['per_kind'])}</div></div>"
        + "<h3>turns</h3><p class=small>heat map: black = unchanged, red to yellow = changed; dark blue = the region the edit may change</p>"
        f"<table><tr>{head}</tr>{''.join(body)}</table></body></html>\n"
    )
