"""`chatgen train`: every stage from scratch to a native checkpoint folder.

Stages (each skipped when its output is already in the run folder, so a run resumes):
  1. sentencepiece tokenizer on world dialogue text
  2. tile VQ-VAE (diffusers VQModel) on world renders, with its held-out PSNR
  3. joint-vocabulary LlamaForCausalLM on whole dialogues
  4. the native checkpoint: config.json + tokenizer.model + lm/ + vq/
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import sentencepiece as spm

from .. import world
from ..backends.native import NativeBackend, NativeConfig
from ..errors import ChatgenError
from ..image_tokenizer import VQImageTokenizer
from ..vocab import JointVocab
from .data import DialogueEncoder, TileCodebook
from .lexicon import world_lexicon
from .lm import LMTrainConfig, train_lm
from .tokenizer import train_tokenizer, world_sentences
from .vq import VQTrainConfig, psnr

HELDOUT_SEED = 10_000_000  # scenes and dialogues from here on are never used in training


@dataclass
class LMRestart:
    """A warm restart: the language model trained further with a fresh warm-up and cosine
    schedule (and fresh data: seed + restart number)."""

    minutes: float  # wall-time budget of this restart
    lr: float = 8e-4  # its peak learning rate
    warmup: int = 30  # its warm-up steps
    focus: tuple[str, ...] = ()  # turn kinds it samples more often (empty: the first run's mixture)
    focus_share: float = 0.5  # the share of samples that are focused turns


@dataclass
class TrainConfig:
    """The whole recipe of the embedded model."""

    text_vocab: int = 1024  # sentencepiece pieces
    tokenizer_dialogues: int = 20_000  # dialogues whose text trains the tokenizer
    vq: VQTrainConfig = field(default_factory=VQTrainConfig)  # the tile VQ-VAE
    lm: LMTrainConfig = field(default_factory=LMTrainConfig)  # the language model
    seed: int = 0  # data seed of every stage
    restarts: list[LMRestart] = field(default_factory=list)  # warm restarts of the LM schedule after the first run
    psnr_scenes: int = 200  # held-out renders the VQ's reconstruction PSNR is measured on


def _lm_run(cfg: LMTrainConfig, encoder: DialogueEncoder, run: Path, device, log, init: Path | None) -> tuple[Path, dict]:
    """One LM training run in `run` (continuing the LM in folder `init`, if given); returns the
    folder of its LM and its report. A run that finished before is not trained again."""
    done = run / "done.json"
    if done.is_file():
        log(f"lm: {run} is finished, reusing it")
    else:
        done.write_text(json.dumps(train_lm(cfg, encoder, run, device=device, log=log, init=init)))
    return run / "lm", json.loads(done.read_text())


def _adopt_checkpoint(folder: Path, run: Path, log) -> tuple[Path, dict]:
    """Copy a checkpoint's tokenizer and VQ-VAE into the run folder (so stages 1-2 are skipped);
    returns the folder of its language model and the checkpoint's training facts."""
    import shutil

    if not (folder / "config.json").is_file() or not (folder / "lm").is_dir() or not (folder / "vq").is_dir():
        raise ChatgenError(f"--init-from {folder} is not a chatgen native checkpoint folder (config.json, lm/ and vq/ are needed).")
    if not (run / "tokenizer.model").is_file():
        shutil.copyfile(folder / "tokenizer.model", run / "tokenizer.model")
    if not (run / "vq").is_dir():
        shutil.copytree(folder / "vq", run / "vq")
    extra = json.loads((folder / "config.json").read_text()).get("extra", {})
    log(f"continuing from {folder} ({extra.get('total_train_minutes', extra.get('train_minutes', '?'))} min of training so far)")
    return folder / "lm", {k: v for k, v in extra.items() if k != "recipe"} | {"folder": str(folder)}


def vq_psnr(image_tokenizer: VQImageTokenizer, n: int = 200, seed: int = HELDOUT_SEED) -> float:
    """Mean reconstruction PSNR (dB, each capped at 100) through encode -> decode on held-out random scenes."""
    rng = random.Random(seed)
    vals = []
    for _ in range(n):
        img = world.render(world.random_scene(rng))
        rec = image_tokenizer.decode(image_tokenizer.encode(img))
        vals.append(min(psnr(np.asarray(img), np.asarray(rec)), 100.0))
    return float(np.mean(vals))


def train_all(out: str | Path, run_dir: str | Path, cfg: TrainConfig = TrainConfig(), device: str | None = None, log=print, init_from: str | Path | None = None) -> Path:
    """Every stage into `run_dir`, then the checkpoint into `out`.

    `init_from`: a native checkpoint folder to continue training: its tokenizer and VQ-VAE are
    kept as they are and its language model is trained further with a fresh schedule."""
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    (run / "recipe.json").write_text(json.dumps(asdict(cfg), indent=1, default=list))
    init_lm, before = None, None
    if init_from is not None:
        init_lm, before = _adopt_checkpoint(Path(init_from), run, log)
    # 1. Tokenizer.
    sp_file = run / "tokenizer.model"
    if not sp_file.is_file():
        log(f"tokenizer: training on {cfg.tokenizer_dialogues} dialogues")
        sp = train_tokenizer(world_sentences(cfg.tokenizer_dialogues, cfg.seed + 1), cfg.text_vocab)
        sp_file.write_bytes(sp.serialized_model_proto())
    sp = spm.SentencePieceProcessor(model_file=str(sp_file))
    # 2. VQ-VAE.
    from diffusers import VQModel
    from transformers import AutoModelForCausalLM

    if not (run / "vq" / "config.json").is_file():
        from .vq import train_vq

        vq, _ = train_vq(cfg.vq, device=device, log=log)
        vq.save_pretrained(run / "vq")
    vq = VQModel.from_pretrained(run / "vq").eval()
    grid = world.CANVAS_PX // cfg.vq.tile  # codes per side: one per tile
    vocab = JointVocab(text_size=sp.get_piece_size(), codebook_size=cfg.vq.codebook, grid_h=grid, grid_w=grid)
    config = NativeConfig(vocab=vocab, image_size=world.CANVAS_PX, tile=cfg.vq.tile, unshuffle=cfg.vq.unshuffle, model_name="chatgen-world", mask_regions=True,  # the data has masked edits (`world.masked_turns`)
                          lexicon=world_lexicon())  # typo repair of user messages
    image_tokenizer = config.image_tokenizer(vq)
    quality = vq_psnr(image_tokenizer, n=cfg.psnr_scenes)
    log(f"vq: held-out reconstruction PSNR {quality:.2f} dB")
    # 3. Language model (each run saves it in its folder's lm/; the last run's is the model).
    encoder = DialogueEncoder(sp, vocab, TileCodebook(image_tokenizer))
    lm_dir, report = _lm_run(cfg.lm, encoder, run, device, log, init_lm)
    for i, restart in enumerate(cfg.restarts, 1):
        log(f"lm: warm restart {i} of {len(cfg.restarts)} ({restart.minutes} min, peak lr {restart.lr})")
        restart_cfg = replace(cfg.lm, lr=restart.lr, warmup=restart.warmup, minutes=restart.minutes, seed=cfg.lm.seed + i, focus=restart.focus, focus_share=restart.focus_share)
        lm_dir, more = _lm_run(restart_cfg, encoder, run / f"restart{i}", device, log, lm_dir)
        report = {"steps": report["steps"] + more["steps"], "tokens": report["tokens"] + more["tokens"], "params": more["params"], "minutes": round(report["minutes"] + more["minutes"], 1)}
    lm = AutoModelForCausalLM.from_pretrained(lm_dir).eval()
    # 4. The checkpoint (with the history of the runs it continues, if any).
    minutes = round((time.perf_counter() - t0) / 60, 1)
    config.extra = {"vq_psnr_db": round(quality, 2), "lm": report, "train_minutes": minutes, "recipe": json.loads((run / "recipe.json").read_text())}
    if before is not None:
        config.extra["continued_from"] = before
        config.extra["total_train_minutes"] = round(minutes + float(before.get("total_train_minutes", before.get("train_minutes", 0.0))), 1)
    folder = NativeBackend(lm, image_tokenizer, sp, config, reader=world.world_reader()).save_pretrained(out)  # the reader: done edits checked against the pictures
    log(f"saved the model to {folder} ({config.extra['train_minutes']} min)")
    return folder
