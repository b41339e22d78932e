"""The safety hooks: the blocked-word prompt filter, the output-image classifier (diffusers'
StableDiffusionSafetyChecker on a tiny random checkpoint saved with save_pretrained), and how
the assistant, the CLI and the Space use them."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from chatgen.assistant import Assistant
from chatgen.conversation import Session
from chatgen.errors import ChatgenError
from chatgen.events import ImageDone, ImageRow, ReplyDone
from chatgen.params import GenerationParams
from chatgen.safety import Safety, SafetyChecker, WordFilter, safety_from_options, words

REPO = Path(__file__).resolve().parent.parent


def image_reply(assistant, session, text):
    """Respond with seeds until the (random, image-steered) tiny model draws; the reply and its events."""
    for seed in range(20):
        events = list(assistant.stream(session, text, GenerationParams(seed=seed, max_new_tokens=40)))
        reply = events[-1]
        if reply.metadata.get("tokens", {}).get("image_tokens"):
            session.append(reply.turn)
            return reply, events[:-1]
    raise AssertionError("no image in 20 seeds")


# ---- the word list --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, found",
    [
        ("draw a NUDE figure!", "nude"),
        ("n.u.d.e on the beach", "nude"),
        ("draw a n u d e cat", "nude"),
        ("N-U-D-E", "nude"),
        ("some p0rn please", "porn"),
        ("Nüde", "nude"),
        ("two swastikas", "swastika"),
        ("a self-harm scene", "self harm"),
        ("draw a dog on the grass", None),
        ("a nudibranch in the sea", None),  # whole words only
        ("a fox in sussex", None),
        ("draw a 3 x 3 grid of cats", None),
    ],
)
def test_the_word_list_matches_whole_words_through_case_and_punctuation(text, found):
    assert WordFilter.default()(text) == found


def test_no_request_of_the_eval_suites_is_blocked():
    """The default list never refuses what people ask the embedded model (every user turn of every suite)."""
    f = WordFilter.default()
    texts = [t["user"] for path in REPO.glob("evals/**/*.yaml") for t in (yaml.safe_load(path.read_text()) or {}).get("turns", []) if isinstance(t, dict) and isinstance(t.get("user"), str)]
    assert len(texts) > 100
    assert [t for t in texts if f(t)] == []


def test_a_custom_list(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("# my list\nrobot\nflying saucer\n", encoding="utf-8")
    f = WordFilter.from_file(path)
    assert f("two ROBOTS") == "robot" and f("a flying-saucer!") == "flying saucer" and f("a saucer") is None
    assert f("draw a nude") is None  # only the given words
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ChatgenError, match="has no words"):
        WordFilter.from_file(tmp_path / "empty.txt")
    with pytest.raises(ChatgenError, match="cannot read the blocked-word list"):
        WordFilter.from_file(tmp_path / "missing.txt")


def test_words_joins_spaced_out_letters():
    assert words("N-u.D E!") == ["nude"]
    assert words("a n u d e") == ["anude", "nude"]  # an article before the spaced letters is dropped too
    assert words("draw a cat") == ["draw", "a", "cat"]


# ---- the assistant ----------------------------------------------------------------------------------
def test_a_blocked_prompt_is_refused_in_one_sentence_and_the_session_is_unchanged(backend):
    a = Assistant(backend, safety=Safety.default())
    s = Session()
    image_reply(a, s, "draw a dog on the grass")
    before = (s.head, dict(s.turns))
    with pytest.raises(ChatgenError) as err:
        a.stream(s, "now make the dog n-a-k-e-d")
    msg = str(err.value)
    assert msg.startswith("this request was refused") and '"naked"' in msg and "\n" not in msg
    assert (s.head, dict(s.turns)) == before
    # off by default: the same assistant without safety takes the prompt
    assert Assistant(backend).respond(Session(), "a naked tree in winter", {"seed": 0, "max_new_tokens": 20}).turn is not None


def flag_everything(image):
    return "it shows something this Space does not show"


def test_a_flagged_picture_is_withheld_not_shown_and_not_stored(backend):
    a = Assistant(backend, safety=Safety(image_classifier=flag_everything))
    s = Session()
    reply, events = image_reply(a, s, "draw a dog on the grass")
    # 1. The reply says so in one sentence; no picture reaches the person, not even a preview.
    assert reply.image is None and reply.text == "The picture was withheld: it shows something this Space does not show."
    assert not any(isinstance(e, ImageDone) for e in events)
    assert all(e.preview is None for e in events if isinstance(e, ImageRow))
    assert isinstance(events[-1], ReplyDone) and events[-1].image is None and events[-1].text == reply.text
    # 2. The stored turn claims no picture: no image, no image tokens for later turns to read.
    t = s.turns[reply.turn_id]
    v = backend.vocab
    assert t.assistant_image is None and t.assistant_text == reply.text
    assert v.boi not in t.reply_ids and not any(v.is_image(i) for i in t.reply_ids) and t.reply_ids[-1] == v.eot
    assert backend.decode_text(t.reply_ids[:-1]) == reply.text
    assert s.last_image() is None and reply.metadata["withheld_image"] == reply.text
    # 3. The conversation goes on (the next prompt reads the sentence, not a picture).
    nxt = a.respond(s, "how many dogs?", {"seed": 1, "max_new_tokens": 20})
    assert nxt.turn is not None and len(s) == 2


def test_a_picture_that_passes_is_delivered_once_checked(backend):
    a = Assistant(backend, safety=Safety(image_classifier=lambda im: None))
    reply, events = image_reply(a, Session(), "draw a dog on the grass")
    assert reply.image is not None and reply.turn.assistant_image is reply.image
    assert [type(e) for e in events[-2:]] == [ImageDone, ReplyDone]  # shown after the check, just before the reply
    assert events[-1].image is not None
    assert all(e.preview is None for e in events if isinstance(e, ImageRow))
    assert "withheld_image" not in reply.metadata


def test_a_plain_copy_keeps_the_safety_hooks(backend):
    from chatgen.models import ModelSet

    safety = Safety.default()
    a = Assistant(backend, refiner=object(), safety=safety)
    assert ModelSet(a).get(refine=False).safety is safety


# ---- diffusers' StableDiffusionSafetyChecker ----------------------------------------------------------
def save_tiny_checker(folder: Path, flag: bool, layout: str = "flat") -> Path:
    """A tiny random StableDiffusionSafetyChecker + CLIPImageProcessor saved with save_pretrained:
    flag=True makes every picture score above its concept thresholds."""
    import torch
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 64},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=8,
    )
    checker = StableDiffusionSafetyChecker(config).eval()
    with torch.no_grad():
        # a cosine similarity is at most 1: a threshold of -1.5 flags everything, 1.5 nothing
        checker.concept_embeds_weights.fill_(-1.5 if flag else 1.5)
        checker.special_care_embeds_weights.fill_(1.5)
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    model_dir, proc_dir = (folder, folder) if layout == "flat" else (folder / "safety_checker", folder / "feature_extractor")
    checker.save_pretrained(model_dir)
    processor.save_pretrained(proc_dir)
    return folder


@pytest.mark.parametrize("layout", ["flat", "pipeline"])
def test_the_safety_checker_adapter_loads_a_saved_checker(tmp_path, layout):
    flags = SafetyChecker.from_pretrained(save_tiny_checker(tmp_path / "flags", True, layout))
    passes = SafetyChecker.from_pretrained(save_tiny_checker(tmp_path / "passes", False, layout))
    pic = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8))
    assert flags(pic) == SafetyChecker.REASON
    assert passes(pic) is None


def test_the_flags_build_the_checker_and_a_flagged_reply_is_withheld(backend, tmp_path):
    safety = safety_from_options(words=True, checker=save_tiny_checker(tmp_path / "checker", True))
    assert isinstance(safety.prompt_filter, WordFilter) and isinstance(safety.image_classifier, SafetyChecker)
    reply, _ = image_reply(Assistant(backend, safety=safety), Session(), "draw a dog on the grass")
    assert reply.image is None and reply.text == "The picture was withheld: the safety checker flagged it as not safe for work."
    assert safety_from_options() is None and safety_from_options(words=False) is None


def test_a_safety_checker_is_refused_with_one_sentence(tmp_path):
    with pytest.raises(ChatgenError, match="no safety checker at"):
        SafetyChecker.from_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ChatgenError, match="cannot load a safety checker"):
        SafetyChecker.from_pretrained(tmp_path / "empty")


# ---- the front ends ---------------------------------------------------------------------------------
def test_cli_safety_flag(capsys, tiny_dir, tmp_path):
    from chatgen.cli import main

    out = tmp_path / "out.png"
    code = main(["generate", "draw a nude on the beach", "-o", str(out), "--model", str(tiny_dir), "--safety", "--seed", "0", "--max-new-tokens", "20"])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert [line for line in err.splitlines() if line.startswith("chatgen: error:")] == ['chatgen: error: this request was refused: "nude" is on this assistant\'s list of blocked words, so rephrase it']
    own = tmp_path / "words.txt"
    own.write_text("beach\n")
    assert main(["generate", "a dog on the beach", "-o", str(out), "--model", str(tiny_dir), "--blocked-words", str(own)]) == 2
    assert '"beach"' in capsys.readouterr().err


def test_the_ui_and_the_api_refuse_a_blocked_prompt_and_keep_the_session(backend, tmp_path, monkeypatch):
    from chatgen.api import ChatAPI
    from chatgen.ui.handlers import ChatUI
    from chatgen.ui.state import UIState

    monkeypatch.setattr("chatgen.ui.state.FILES_ROOT", tmp_path / "ui-files")
    a = Assistant(backend, safety=Safety.default())
    ui, st = ChatUI(a), UIState()
    with pytest.warns(UserWarning, match='this request was refused: "gore"'):
        out = list(ui.send(st, {"text": "draw some GORE", "files": []}, None, None, 1, None, None, None, False))
    assert len(st.session.turns) == 0 and out[-1][2]["value"] == {"text": "draw some GORE", "files": []}  # the text stays in the box
    api = ChatAPI(a, folder=tmp_path / "api")
    sid = api.new_session()
    with pytest.raises(ChatgenError, match='this request was refused: "gore"'):
        api.chat(sid, "draw some gore")
    assert api.history(sid)["turns"] == []


def test_the_space_turns_the_word_list_on_by_default(tiny_dir, monkeypatch):
    import chatgen.ui
    from chatgen.space import space_demo

    built = []
    monkeypatch.setattr(chatgen.ui, "build_demo", lambda models, **kw: built.append(models) or "demo")
    space_demo(tiny_dir)
    space_demo(tiny_dir, safety_words=False)
    on, off = (m.get() for m in built)
    assert on.safety.prompt_filter("draw a nude") == "nude" and on.safety.image_classifier is None
    assert off.safety is None
