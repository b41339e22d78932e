"""Scoring functions of the eval runner: each check kind passes and fails, regions, pixel change."""

import numpy as np
import pytest
from PIL import Image

from chatgen.evals.checks import check_answer, check_exact, check_exclude, check_include, check_max, check_min, check_reply, check_scene, verdict
from chatgen.evals.grid import Grid
from chatgen.evals.regions import changed_region, distance_outside, heat_map, region_mask, union
from chatgen.evals.suite import Expect, ObjSpec, SceneSpec
from chatgen.world import Obj, Scene, render

G = "grass"
DOG_TREE = Scene(G, (Obj("dog", 1, 0), Obj("tree", 1, 2)))
CAT_TREE = Scene(G, (Obj("cat", 1, 0), Obj("tree", 1, 2)))


def grid(scene):
    return Grid.of_image(render(scene))


# ---- reply kind ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "expected, text, has_image, ok",
    [
        ("image", "Here it is.", True, True),
        ("image", "a dog", False, False),
        ("text", "There are two dogs.", False, True),
        ("text", "", True, False),
        ("text", "", False, False),
        ("clarify", "Which dog, the left one or the right one?", False, True),
        ("clarify", "I removed the dog.", False, False),
        ("clarify", "Which dog?", True, False),
    ],
)
def test_reply_kind(expected, text, has_image, ok):
    c = check_reply(expected, text, render(DOG_TREE) if has_image else None)
    assert c.passed is ok
    if not ok:
        assert c.detail.startswith("expected ")


# ---- scene --------------------------------------------------------------------------------------
def test_detector_reads_renders_back():
    g = grid(DOG_TREE)
    assert g == Grid.of_scene(DOG_TREE)
    assert g.objects() == [((1, 0), "dog"), ((1, 2), "tree")]


def test_background_pass_and_fail():
    assert check_scene(SceneSpec(background="grass"), grid(DOG_TREE))[0].passed
    c = check_scene(SceneSpec(background="snow"), grid(DOG_TREE))[0]
    assert not c.passed and c.detail == "expected background snow, found grass"


def test_include_position_column_row_and_slot():
    g = grid(Scene(G, (Obj("dog", 0, 0), Obj("cat", 2, 2))))
    assert check_include(ObjSpec("dog", 1, "left"), g).passed  # left = the whole left column
    assert check_include(ObjSpec("dog", 1, "top"), g).passed  # top = the whole top row
    assert check_include(ObjSpec("dog", 1, "top left"), g).passed  # a pair = one slot
    assert not check_include(ObjSpec("dog", 1, "middle left"), g).passed
    assert not check_include(ObjSpec("dog", 1, "right"), g).passed
    assert check_include(ObjSpec("cat", 1, "bottom right"), g).passed


def test_include_reason_names_what_was_found():
    c = check_include(ObjSpec("cat", 1, "left"), grid(DOG_TREE))
    assert not c.passed and c.detail == "expected cat at left, found dog"
    c = check_include(ObjSpec("cat", 1, "center"), grid(DOG_TREE))
    assert c.detail == "expected cat at center, found nothing"


def test_include_count_is_exact():
    two = grid(Scene(G, (Obj("dog", 0, 0), Obj("dog", 2, 2), Obj("cat", 1, 1))))
    assert check_include(ObjSpec("dog", 2), two).passed
    c = check_include(ObjSpec("dog", 3), two)
    assert not c.passed and c.detail == "expected 3 dogs, found 2 dogs"
    c = check_include(ObjSpec("dog", 1), two)  # count defaults to 1, and one dog too many fails
    assert not c.passed and c.detail == "expected dog, found 2 dogs"


def test_exclude_pass_and_fail():
    assert check_exclude(ObjSpec("cat"), grid(DOG_TREE)).passed
    c = check_exclude(ObjSpec("dog"), grid(DOG_TREE))
    assert not c.passed and c.detail == "expected no dog, found dog at middle left"
    assert check_exclude(ObjSpec("dog", position="right"), grid(DOG_TREE)).passed  # not there


def test_exact_pass_and_fail():
    spec = SceneSpec(include=(ObjSpec("dog", 1, "left"), ObjSpec("tree", 1, "right")), exact=True)
    assert check_exact(spec, grid(DOG_TREE)).passed
    extra = Scene(G, DOG_TREE.objects + (Obj("sun", 0, 1),))
    c = check_exact(spec, grid(extra))
    assert not c.passed and c.detail == "expected nothing else, found sun at top center"


def test_pinned_scene():
    pinned = SceneSpec("grass", (ObjSpec("dog", 1, "middle left"), ObjSpec("tree", 1, "middle right")), (), True)
    assert pinned.pinned() == DOG_TREE
    assert SceneSpec("grass", (ObjSpec("dog", 1, "left"),), (), True).pinned() is None  # a column is not one slot
    assert SceneSpec(None, (ObjSpec("dog", 1, "top left"),), (), True).pinned() is None  # no background
    assert SceneSpec("grass", (ObjSpec("dog", 1, "top left"),), (), False).pinned() is None  # not exact
    assert SceneSpec("grass", (), (), True).pinned() == Scene("grass")  # an empty picture


# ---- answers ------------------------------------------------------------------------------------
def test_answer_any_all_none():
    e = Expect(reply="text", answer_any=("two", "2"), answer_all=("dogs",), answer_none=("one", "three"))
    assert all(c.passed for c in check_answer(e, "There are two dogs."))
    assert all(c.passed for c in check_answer(e, "THERE ARE 2 DOGS"))
    failed = {c.name: c for c in check_answer(e, "There is one dog.") if not c.passed}
    assert set(failed) == {"answer", "answer all", "answer none"}
    assert failed["answer"].detail == "expected an answer with 'two' or '2', got 'There is one dog.'"


def test_answer_matches_whole_words_only():
    e = Expect(answer_any=("cat",), answer_none=("no",))
    assert not check_answer(e, "a category of noise")[0].passed  # "cat" inside "category" does not count
    assert check_answer(e, "It is a cat, I know.")[1].passed  # "no" inside "know" does not count
    assert check_answer(Expect(answer_any=("on the left",)), "The dog is on  the left.")[0].passed


# ---- thresholds and verdict ---------------------------------------------------------------------
def test_thresholds_and_verdict():
    assert check_max("preserve l1", 0.01, 0.03).passed
    assert not check_max("preserve l1", 0.05, 0.03).passed
    assert check_max("preserve l1", None, 0.03, "the background changed").passed is None
    assert check_max("preserve l1", 0.05, None) is None
    assert check_min("clip_t", 0.3, 0.2).passed and not check_min("clip_t", 0.1, 0.2).passed
    ok, bad, skip = check_max("a", 0, 1), check_max("b", 2, 1), check_max("c", None, 1)
    assert verdict([ok, skip]) == (True, "ok")
    assert verdict([ok, bad, skip]) == (False, "b 2.0000 > 1")
    assert verdict([skip]) == (None, "not scored")


# ---- changed regions ----------------------------------------------------------------------------
def test_region_of_a_pinned_edit_is_the_slots_that_differ():
    spec = SceneSpec("grass", (ObjSpec("cat", 1, "middle left"), ObjSpec("tree", 1, "middle right")), (), True)
    assert changed_region(Grid.of_scene(DOG_TREE), spec, None) == {(1, 0)}
    moved = SceneSpec("grass", (ObjSpec("dog", 1, "top left"), ObjSpec("tree", 1, "middle right")), (), True)
    assert changed_region(Grid.of_scene(DOG_TREE), moved, None) == {(0, 0), (1, 0)}
    snow = SceneSpec("snow", (ObjSpec("dog", 1, "middle left"), ObjSpec("tree", 1, "middle right")), (), True)
    assert changed_region(Grid.of_scene(DOG_TREE), snow, None) is None  # the background changed: everything


def test_region_of_an_unpinned_edit_follows_the_named_classes():
    spec = SceneSpec(include=(ObjSpec("cat", 1, "left"),), exclude=(ObjSpec("dog"),))
    reply = Grid.of_scene(Scene(G, (Obj("cat", 1, 0), Obj("tree", 0, 2))))  # the tree moved too: not allowed
    assert changed_region(Grid.of_scene(DOG_TREE), spec, reply) == {(1, 0)}
    assert changed_region(Grid.of_scene(DOG_TREE), SceneSpec(background="snow"), reply) is None
    assert changed_region(Grid.of_scene(DOG_TREE), None, reply) == frozenset()  # no scene check: nothing may change


def test_union_and_mask():
    assert union(frozenset({(0, 0)}), frozenset({(1, 1)})) == {(0, 0), (1, 1)}
    assert union(frozenset(), None) is None
    m = region_mask(frozenset({(0, 0)}), (96, 96))
    assert m.sum() == 32 * 32 and m[:32, :32].all()
    assert region_mask(None, (30, 60)).all()


# ---- pixel change -------------------------------------------------------------------------------
def test_distance_outside_region():
    a, b = render(DOG_TREE), render(CAT_TREE)
    assert distance_outside(b, a, frozenset({(1, 0)})) == (0.0, 0.0)  # only the edited slot changed
    l1, l2 = distance_outside(b, a, frozenset())
    assert 0 < l2 < l1 < 0.05
    assert distance_outside(b, a, None) is None


def test_distance_is_on_the_0_1_scale_and_resizes_the_generated_image():
    black, white = Image.new("RGB", (96, 96)), Image.new("RGB", (32, 32), (255, 255, 255))
    assert distance_outside(white, black, frozenset()) == (1.0, 1.0)
    half = Image.fromarray(np.full((48, 48, 3), 128, np.uint8))
    l1, l2 = distance_outside(half, black, frozenset())
    assert l1 == pytest.approx(128 / 255) and l2 == pytest.approx((128 / 255) ** 2)


def test_heat_map_marks_change_and_region():
    a, b = render(DOG_TREE), render(Scene(G, (Obj("cat", 1, 0), Obj("tree", 0, 2))))
    h = np.asarray(heat_map(b, a, frozenset({(1, 0)})))
    assert h.shape == (96, 96, 3)
    assert (h[40, 10] == (31, 36, 89)).all()  # inside the changed region: dark blue
    assert h[:32, 64:].max() > 200  # the tree appeared at the top right: hot
    assert h[64:, :].max() == 0  # the bottom row did not change: black
