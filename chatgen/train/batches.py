"""Training batches of the language model: pools of fresh world dialogues, sorted by length and
cut into batches of about `batch_tokens` padded tokens (little padding), then collated.

One CPU core makes 120k-240k tokens/s of batches (120k on the 16-core H200 machine, where 12
workers made 1.17M), less than a GPU trains on, so there `loader` builds them in DataLoader
worker processes (`LMTrainConfig.workers`); with no workers `batches` builds them in the
training process from the run's own random stream.
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from .data import DialogueEncoder, Example, collate, sample_dialogue


def length_buckets(encoder: DialogueEncoder, rng: random.Random, cfg, pool: int = 512) -> list[list[Example]]:
    """Sample `pool` dialogues, sort them by length and cut them into batches of about
    `batch_tokens` padded tokens; returned in random order. `cfg`: an `LMTrainConfig` (its
    focus, focus_share, people_share, max_len and batch_tokens)."""
    examples = []
    while len(examples) < pool:
        e = encoder.encode(sample_dialogue(rng, cfg.focus, cfg.focus_share, cfg.people_share))
        if len(e.ids) <= cfg.max_len:
            examples.append(e)
    examples.sort(key=lambda e: len(e.ids))
    batches, current = [], []
    for e in examples:
        if current and len(e.ids) * (len(current) + 1) > cfg.batch_tokens:
            batches.append(current)
            current = []
        current.append(e)
    batches.append(current)
    rng.shuffle(batches)
    return batches


def batches(encoder: DialogueEncoder, rng: random.Random, cfg) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Endless collated `(ids, att, labels)` batches drawn from `rng`, a pool at a time; `rng`
    advances only when a new pool is drawn, so a checkpoint of it resumes at a pool boundary."""
    while True:
        pending = length_buckets(encoder, rng, cfg)
        while pending:
            yield collate(pending.pop(), encoder.vocab.pad)


class DialogueBatches(IterableDataset):
    """`batches` in each DataLoader worker, from that worker's own random stream, seeded from
    the run's seed, the step it starts (or resumes) at and the worker's id: the workers never
    repeat one another, and a resumed run never repeats the batches it trained on.

    The encoder (sentencepiece, vocabulary, tile codebook with its VQModel) travels with the
    dataset: inherited under Linux's fork, pickled (about 5 MB for the shipped model) under
    spawn or forkserver; both work."""

    def __init__(self, encoder: DialogueEncoder, cfg, start: int):
        self.encoder = encoder
        self.cfg = cfg  # an LMTrainConfig
        self.start = start  # the step the run starts at (0, or the checkpoint's)

    def __getstate__(self):
        """The encoder as plain pickle bytes: multiprocessing's pickler would put every tensor
        in shared memory behind a file descriptor of its own, and a warm codebook cache holds
        tens of thousands of them (spawn then fails with "Too many open files")."""
        return {**self.__dict__, "encoder": pickle.dumps(self.encoder)}

    def __setstate__(self, state):
        self.__dict__.update(state, encoder=pickle.loads(state["encoder"]))

    def __iter__(self):
        info = get_worker_info()
        worker = info.id if info is not None else 0
        return batches(self.encoder, random.Random(f"{self.cfg.seed}/{self.start}/{worker}"), self.cfg)


def _one_thread(_worker: int) -> None:
    """Workers build batches one core each: torch's own threads would oversubscribe the CPUs."""
    torch.set_num_threads(1)


def loader(encoder: DialogueEncoder, cfg, start: int, device: torch.device) -> DataLoader:
    """Batches from `cfg.workers` worker processes (pinned for a fast copy to a CUDA device)."""
    return DataLoader(
        DialogueBatches(encoder, cfg, start),
        batch_size=None,  # the dataset yields whole batches
        num_workers=cfg.workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4,
        persistent_workers=True,
        worker_init_fn=_one_thread,
        timeout=cfg.stall_seconds,  # a worker that hangs fails the run loudly instead of stalling it
    )
