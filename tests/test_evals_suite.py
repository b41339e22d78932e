"""The dialogue format (loading, clear errors on malformed files) and the shipped suite."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chatgen.evals import RunConfig, load_dialogue, load_suite, run_suite, summarize
from chatgen.evals.make_suite import write_suite
from chatgen.evals.oracle import OracleAssistant
from chatgen.evals.suite import SuiteError, find_files
from chatgen.world import Obj, Scene, render

EVALS = Path(__file__).parent.parent / "evals"

GOOD = """
id: dog_to_cat_basic
seed: 7
mode: iterative
tags: [replace]
turns:
  - user: "draw a dog on the left and a tree on the right, on grass"
    image: start.png
    expect:
      reply: image
      scene:
        background: grass
        include: [{class: dog, count: 1, position: left}, {class: tree, position: right}]
        exclude: [{class: cat}]
        exact: true
  - user: "make the dog a cat"
    expect:
      reply: image
      scene: {include: [{class: cat, position: left}], exclude: [{class: dog}]}
      preserve: {max_l1: 0.03}
  - user: /undo
  - undo: true
  - user: "what animal is on the left?"
    kind: ask_what
    expect: {reply: text, answer_any: ["cat"]}
"""


def write(folder: Path, text: str, name: str = "d.yaml") -> Path:
    p = folder / name
    p.write_text(text)
    return p


@pytest.fixture()
def suite_dir(tmp_path):
    render(Scene("grass", (Obj("dog", 1, 0),))).save(tmp_path / "start.png")
    return tmp_path


def test_load_the_documented_example(suite_dir):
    d = load_dialogue(write(suite_dir, GOOD))
    assert (d.id, d.seed, d.mode, d.tags) == ("dog_to_cat_basic", 7, "iterative", ("replace",))
    t = d.turns
    assert t[0].image.size == (96, 96) and t[0].image_path == "start.png"
    s = t[0].expect.scene
    assert s.background == "grass" and s.exact and s.include[0].cls == "dog" and s.include[1].count == 1
    assert s.include[0].slots == ((0, 0), (1, 0), (2, 0))  # "left" in a check: the whole left column
    assert t[1].expect.preserve.max_l1 == 0.03 and t[1].expect.wants_image
    assert t[2].undo and t[3].undo and t[2].kind_name == "undo"
    assert t[4].expect.answer_any == ("cat",) and t[4].kind_name == "ask_what"
    assert t[1].kind_name == "image"


def test_defaults(tmp_path):
    d = load_dialogue(write(tmp_path, "turns: [{user: hi}]", "hello.yaml"))
    assert (d.id, d.seed, d.mode, d.tags) == ("hello", None, None, ())
    assert d.turns[0].expect is None and d.turns[0].kind_name == "other"


BAD = [
    ("turns: [{user: hi}]\ncolour: red", "unknown key 'colour'"),
    ("turns: [{user: hi, say: x}]", "turn 1: unknown key 'say'"),
    ("turns: [{user: hi, expect: {reply: image, shape: round}}]", "turn 1.expect: unknown key 'shape'"),
    ("turns: [{user: hi, expect: {scene: {include: [{class: dog, colour: red}]}}}]", "turn 1.expect.scene.include[0]: unknown key 'colour'"),
    ("turns: [{user: hi, expect: {scene: {exclude: [{class: dog, count: 2}]}}}]", "turn 1.expect.scene.exclude[0]: unknown key 'count'"),
    ("turns: [{user: hi, expect: {scene: {include: [{class: giraffe}]}}}]", "'giraffe' is not a world class"),
    ("turns: [{user: hi, expect: {scene: {include: [{class: dog, position: upstairs}]}}}]", "'upstairs' is not a position"),
    ("turns: [{user: hi, expect: {scene: {include: [{class: dog, count: 0}]}}}]", "count: expected an integer >= 1"),
    ("turns: [{user: hi, expect: {scene: {background: space}}}]", "'space' is not a world background"),
    ("turns: [{user: hi, expect: {reply: picture}}]", "'picture' is not a reply kind"),
    ("turns: [{user: hi, expect: {reply: text, scene: {background: sky}}}]", "scene checks an image, but reply is text"),
    ("turns: [{user: hi, expect: {preserve: {}}}]", "give max_l1 and/or max_l2"),
    ("turns: [{user: hi, expect: {preserve: {max_l1: -1}}}]", "expected a number >= 0"),
    ("turns: [{user: hi, expect: {clip: {min_t: 3}}}]", "between -1 and 1"),
    ("turns: [{user: hi, image: missing.png}]", "turn 1.image: uploaded image file not found"),
    ("turns: [{user: hi}, {undo: true, expect: {reply: text}}]", "turn 2: an undo turn takes nothing else"),
    ("turns: [{expect: {reply: text}}]", "turn 1: missing key 'user'"),
    ("turns: [{undo: true}]", "at least one user turn"),
    ("mode: sideways\nturns: [{user: hi}]", "'sideways' is not a mode"),
    ("id: x", "missing key 'turns'"),
    ("turns: {user: hi}", "turns: expected a list"),
    ("- just\n- a list", "expected a mapping"),
    ("turns: [{user: hi}\n", "not valid YAML"),
]


@pytest.mark.parametrize("text, message", BAD)
def test_malformed_files_name_the_file_and_the_problem(tmp_path, text, message):
    p = write(tmp_path, text, "broken.yaml")
    with pytest.raises(SuiteError) as e:
        load_dialogue(p)
    line = str(e.value)
    assert "\n" not in line and line.startswith(str(p)) and message in line, line


def test_suite_files_filters_and_duplicates(tmp_path):
    write(tmp_path, "id: a\ntags: [x]\nturns: [{user: hi}]", "a.yaml")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "id: b\ntags: [y]\nturns: [{user: hi}]", "b.yml")
    (tmp_path / "notes.txt").write_text("not a dialogue")
    assert [d.id for d in load_suite([str(tmp_path)])] == ["a", "b"]
    assert [d.id for d in load_suite([str(tmp_path / "*.yaml")])] == ["a"]
    assert [d.id for d in load_suite([str(tmp_path)], tags=["y"])] == ["b"]
    assert [d.id for d in load_suite([str(tmp_path)], limit=1)] == ["a"]
    assert len(find_files([str(tmp_path), str(tmp_path / "a.yaml")])) == 2  # no duplicates
    with pytest.raises(SuiteError, match="no dialogues left"):
        load_suite([str(tmp_path)], tags=["z"])
    with pytest.raises(SuiteError, match="no dialogue files"):
        load_suite([str(tmp_path / "nothing_here")])
    write(tmp_path / "sub", "id: a\nturns: [{user: hi}]", "c.yaml")
    with pytest.raises(SuiteError, match="id 'a' is already used"):
        load_suite([str(tmp_path)])


# ---- the shipped suite ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shipped():
    return load_suite([str(EVALS)])


def test_shipped_suite_covers_every_kind(shipped):
    assert len(shipped) >= 60
    tags = Counter(t for d in shipped for t in d.tags)
    for tag in ("draw", "replace", "add", "remove", "move", "background", "ask_what", "ask_count", "ask_where",
                "ask_is_there", "ask_background", "clarify", "out_of_world", "upload", "undo", "chain"):
        assert tags[tag] >= 2, tag
    kinds = Counter(t.kind_name for d in shipped for t in d.turns)
    assert kinds["clarify"] >= 5 and kinds["resolve"] >= 5 and kinds["undo"] >= 5 and kinds["upload_edit"] >= 4
    chains = [d for d in shipped if "chain" in d.tags and d.id.startswith("chain")]
    assert len(chains) >= 5 and all(sum(t.kind_name not in ("draw", "undo") for t in d.turns) == 5 for d in chains)
    assert any(t.expect and t.expect.drift for d in chains for t in d.turns)
    uploads = [t for d in shipped for t in d.turns if t.image is not None]
    assert len(uploads) >= 8 and all(t.image.size == (96, 96) for t in uploads)


def test_shipped_dialogues_are_all_different(shipped):
    scripts = Counter(tuple((t.user, t.image_path) for t in d.turns) for d in shipped)
    assert max(scripts.values()) == 1


def test_ci_subset_is_small(shipped):
    ci = load_suite([str(EVALS / "ci")])
    assert 8 <= len(ci) <= 12
    assert sum(1 for d in ci for t in d.turns if not t.undo) <= 30
    assert not {d.id for d in ci} - {d.id for d in shipped}  # part of the full run too


def test_committed_suite_matches_the_generator(tmp_path):
    written = write_suite(tmp_path)
    for f in written:
        committed = EVALS / f.relative_to(tmp_path)
        assert committed.is_file(), f"{committed} is missing: run python -m chatgen.evals.make_suite evals/"
        if f.suffix == ".yaml":
            assert committed.read_text() == f.read_text(), f"{committed} differs from the generator"
        else:
            assert np.array_equal(np.asarray(Image.open(committed)), np.asarray(Image.open(f)))
    for sub in ("suite", "ci"):
        assert {p.name for p in (EVALS / sub).glob("*.yaml")} == {p.name for p in (tmp_path / sub).glob("*.yaml")}


@pytest.mark.parametrize("mode", ["iterative", "independent"])
def test_a_perfect_model_passes_the_whole_shipped_suite(shipped, mode):
    results = run_suite(OracleAssistant(shipped), shipped, RunConfig(mode=mode))
    failed = [f"{r.dialogue} turn {r.turn}: {r.reason}" for r in results if r.correct is False]
    assert not failed, failed[:5]
    s = summarize(results)
    assert s["overall"] == s["turn_pass_rate"] == s["final_turn"] == s["all_turn"] == 1.0
    skipped = [(r.dialogue, r.turn, k) for r in results for k, c in r.checks.items() if c["passed"] is None]
    assert not skipped, skipped[:5]  # every preserve/drift check of the suite is measurable
    assert s["metrics"]["l1"] == 0.0 and s["metrics"]["slot_accuracy"] == 1.0
