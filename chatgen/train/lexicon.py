"""The embedded model's lexicon (`chatgen.text.Lexicon`): the words of its world, for typo repair.

`world_lexicon()` collects the words of sampled training dialogues (without the generators'
deliberate slips) plus every class, background and other word for them.
Typo targets are all of those but the names of things outside the world ("cow" must stay a cow
the model cannot draw, not become a "crow"); those are only known.

    python -m chatgen.train.lexicon MODEL_FOLDER   # writes the lexicon into MODEL_FOLDER/config.json
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from .. import world
from ..world.message_style import without_typos
from ..world.people_words import BACKGROUND_WORDS, CLASS_WORDS, SPELLINGS
from ..world.user_phrasing import OUT_OF_WORLD
from .tokenizer import world_sentences


def world_lexicon(n_dialogues: int = 4000, seed: int = 0) -> dict:
    """{"targets": [...], "known": [...]} for `Lexicon.from_dict`."""
    with without_typos():  # the generators slip on purpose now and then ("mkae"); not here
        words = {w for text in world_sentences(n_dialogues, seed) for w in re.findall(r"[a-z]+", text.lower())}
    extra = [*world.CLASSES, *world.BACKGROUNDS, *world.ROWS, *world.COLS, *SPELLINGS, *SPELLINGS.values()]
    extra += [w for names in (*CLASS_WORDS.values(), *BACKGROUND_WORDS.values()) for name in names for w in name.split()]
    words.update(w.lower() for w in extra)
    outside = {w for name in OUT_OF_WORLD for w in name.lower().split()}
    return {"targets": sorted(words - outside), "known": sorted(outside)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not (Path(argv[0]) / "config.json").is_file():
        print("usage: python -m chatgen.train.lexicon MODEL_FOLDER (a native checkpoint with config.json)", file=sys.stderr)
        return 2
    path = Path(argv[0]) / "config.json"
    config = json.loads(path.read_text())
    config["lexicon"] = world_lexicon()
    path.write_text(json.dumps(config, indent=1) + "\n")
    print(f"wrote {len(config['lexicon']['targets'])} typo targets and {len(config['lexicon']['known'])} other known words into {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
