"""A suite's dialogues spread over worker processes or a Ray cluster; results in suite order.

Every dialogue starts from a fresh session with its own seeds (`runner.run_dialogue`), so where
it runs does not change what it gets: the results equal a serial `run_suite` (a test checks it).
Each worker loads its own assistant once from an `AssistantSpec` (what the command line names:
the model, its loading flags, the CLIP scorer), then runs the dialogues it is handed:

1. `--workers N`: N local processes (spawned, not forked: torch and threads do not survive a
   fork), each with an equal share of the CPU threads;
2. `--ray [ADDRESS]`: N Ray actors on a running cluster (`ray start --head` / the address of
   one), or on a local Ray instance when no address is given; one GPU each when the cluster
   has GPUs and the model asks for cuda.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context
from typing import Callable

from chatgen.errors import ChatgenError

from .runner import RunConfig, TurnResult, run_dialogue
from .suite import EvalDialogue


@dataclass(frozen=True)
class AssistantSpec:
    """What a worker needs to build the same assistant as the command line."""

    model: str | None = None  # model folder or Hub id; None: the embedded default
    quantize: str | None = None  # "4bit" / "8bit" or None
    dtype: str | None = None  # weights dtype or None (the checkpoint's own)
    device: str | None = None  # cpu, cuda, ... or None
    clip: str | None = None  # CLIP checkpoint for the CLIP scores, or None
    threads: int = 1  # torch threads in each worker

    def load(self):
        """(assistant, clip scorer or None), loaded in the worker."""
        import torch

        from chatgen.assistant import Assistant
        from chatgen.backends import load_backend
        from chatgen.defaults import default_model_path

        from .clip import ClipScorer

        torch.set_num_threads(self.threads)
        backend = load_backend(self.model or default_model_path(), quantization=self.quantize, dtype=self.dtype, device=self.device)
        return Assistant(backend), (ClipScorer.from_pretrained(self.clip) if self.clip else None)


# ---- local processes ----------------------------------------------------------------------------
_WORKER: dict = {}  # in a worker process: its assistant and run config


def _init_worker(spec: AssistantSpec, config: RunConfig) -> None:
    assistant, clip = spec.load()
    _WORKER["assistant"], _WORKER["config"] = assistant, replace(config, clip=clip)


def _run_one(dlg: EvalDialogue) -> list[TurnResult]:
    return run_dialogue(_WORKER["assistant"], dlg, _WORKER["config"])


def run_parallel(spec: AssistantSpec, dialogues: list[EvalDialogue], config: RunConfig, workers: int,
                 progress: Callable[[int, EvalDialogue, list[TurnResult]], None] | None = None, ray_address: str | bool | None = None) -> list[TurnResult]:
    """Every turn of every dialogue, in suite order, run by `workers` processes (or Ray actors
    when `ray_address` is given: True for a local instance, else the cluster's address);
    `progress(i, dialogue, results)` as dialogues finish, in suite order."""
    if workers < 1:
        raise ChatgenError(f"--workers must be at least 1, got {workers}")
    config = replace(config, clip=None)  # each worker loads its own scorer from spec.clip
    if ray_address:
        per_dialogue = _run_on_ray(spec, dialogues, config, workers, None if ray_address is True else ray_address, progress)
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(replace(spec, threads=threads), config)) as pool:
            per_dialogue = []
            for i, (dlg, res) in enumerate(zip(dialogues, pool.map(_run_one, dialogues))):
                per_dialogue.append(res)
                if progress is not None:
                    progress(i, dlg, res)
    return [r for res in per_dialogue for r in res]


# ---- Ray --------------------------------------------------------------------------------------------
def _run_on_ray(spec: AssistantSpec, dialogues: list[EvalDialogue], config: RunConfig, workers: int, address: str | None, progress) -> list[list[TurnResult]]:
    try:
        import ray
        from ray.util import ActorPool
    except ImportError:
        raise ChatgenError("--ray needs Ray: pip install 'chatgen[ray]' (or pip install ray)") from None
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                     **({} if address else {"num_cpus": max(workers, os.cpu_count() or 1)}))
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ChatgenError(f"cannot reach the Ray cluster at {address}: {e}") from None
    try:
        gpus = 1 if (spec.device or "").startswith("cuda") and ray.cluster_resources().get("GPU", 0) >= workers else 0
        worker = ray.remote(num_cpus=1, num_gpus=gpus)(_RayWorker)
        pool = ActorPool([worker.remote(spec, config) for _ in range(workers)])
        out = []
        for i, (dlg, res) in enumerate(zip(dialogues, pool.map(lambda actor, d: actor.run.remote(d), dialogues))):
            out.append(res)
            if progress is not None:
                progress(i, dlg, res)
        return out
    finally:
        if started:
            ray.shutdown()


class _RayWorker:
    """A Ray actor holding one assistant (`ray.remote` wraps it in `_run_on_ray`)."""

    def __init__(self, spec: AssistantSpec, config: RunConfig):
        assistant, clip = spec.load()
        self.assistant, self.config = assistant, replace(config, clip=clip)

    def run(self, dlg: EvalDialogue) -> list[TurnResult]:
        return run_dialogue(self.assistant, dlg, self.config)
