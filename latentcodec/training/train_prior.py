"""Train the learned priors (factorized and hyperprior) on a folder of photos.

Both models see the integer symbols of the ``uniform`` quantizer at one step (the
``taesd-ans`` default): the coders only ever receive symbols, so the model is trained
for, and records, that step.  The factorized prior is a CompressAI
``EntropyBottleneck`` over the 4 latent channels; the hyperprior is a mean-scale
Gaussian model with a small hyper-analysis / hyper-synthesis pair and an
``EntropyBottleneck`` for the hyper-latent, refined pass by pass by small context
networks trained with teacher forcing (:mod:`.nets`).  :func:`train` runs the steps
(:mod:`.optimise`), keeps a float checkpoint (:mod:`.checkpoint`) and exports integer
prior files (:mod:`.export`), so decoding never depends on float maths.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .checkpoint import CHECKPOINT_EVERY
from .settings import PriorSettings

if TYPE_CHECKING:
    import torch

    from .optimise import Optimisation


def training_symbols(latents: list[np.ndarray], settings: PriorSettings) -> list[np.ndarray]:
    """The latents' integer symbols at ``settings.step``, keeping those a crop fits in."""
    symbols = [np.rint(lat / np.float32(settings.step)).astype(np.float32) for lat in latents]
    symbols = [s for s in symbols if min(s.shape[1:]) >= settings.crop]
    if not symbols:
        raise ValueError(f"no latent is at least {settings.crop}x{settings.crop}")
    return symbols


def _device(device: str) -> torch.device:
    from ..errors import StageConfigError
    from ..runtime import resolve_device

    try:
        return resolve_device(device)
    except StageConfigError as exc:
        raise ValueError(str(exc)) from None


def _start(opt: Optimisation, start: str | Path | None, resume: bool, data: str, log: Callable[[str], None]) -> int:
    """Load the checkpoint ``start`` into ``opt`` (all of it, or only its weights); the steps
    the run's initial weights had already been trained before this run."""
    from .checkpoint import check_fits, load_checkpoint

    if start is None:
        return 0
    record = load_checkpoint(start)
    check_fits(record, start, opt.settings, opt.nets.channels, data, resume=resume)
    base = int(record["init_steps"])
    if resume:
        opt.load_state_dict(record["state"])
        log(f"resumed {start} at step {opt.step} of {opt.settings.steps}")
        return base
    opt.nets.load_state_dict(record["state"]["nets"])
    log(f"starting from the weights of {start} ({base + int(record['state']['step'])} steps trained)")
    return base + int(record["state"]["step"])


def train(
    latents: list[np.ndarray],
    out_dir: str | Path,
    name: str,
    settings: PriorSettings | None = None,
    *,
    progress: bool = True,
    threads: int | None = None,
    device: str = "cpu",
    checkpoint_every: int = CHECKPOINT_EVERY,
    resume: str | Path | None = None,
    init: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Train both priors on ``latents``; write ``NAME-factorized.npz``, ``NAME-hyperprior.npz``
    and the float checkpoint ``NAME-checkpoint.pt`` to ``out_dir``.

    ``settings`` (default :class:`PriorSettings`) with ``overrides`` applied (e.g.
    ``steps=3``) say what to train.  ``device`` (``cpu``, ``cuda[:N]`` or ``auto``) is where
    the networks train.  The checkpoint is written every ``checkpoint_every`` steps (0:
    only at the end) and at the end; ``resume`` continues a run from its checkpoint,
    giving the files an uninterrupted run gives; ``init`` starts a new run from a
    checkpoint's weights.  ``log`` receives one line per checkpoint event.
    """
    import torch
    from tqdm import tqdm

    from .checkpoint import CheckpointWriter, checkpoint_path, data_digest
    from .export import export_priors
    from .optimise import Optimisation

    s = (replace(settings, **overrides) if settings is not None else PriorSettings(**overrides)).resolved()
    if resume is not None and init is not None:
        raise ValueError("resume and init exclude each other")
    if checkpoint_every < 0:
        raise ValueError(f"checkpoint_every must be >= 0, got {checkpoint_every}")
    torch_device = _device(device)
    if threads:
        torch.set_num_threads(threads)
    say = log or (lambda message: None)
    symbols = training_symbols(latents, s)
    data, ckpt = data_digest(symbols), checkpoint_path(out_dir, name)
    ckpt.parent.mkdir(parents=True, exist_ok=True)  # fail now, not after training, if it cannot be made
    opt = Optimisation(symbols[0].shape[0], s, torch_device)
    base = _start(opt, resume if resume is not None else init, resume is not None, data, say)
    writer = CheckpointWriter(ckpt, s, opt.nets.channels, data, base, checkpoint_every, say)
    t0 = time.time()
    with tqdm(total=s.steps, initial=opt.step, desc=f"train {name} priors", disable=not progress, unit="it") as bar:
        opt.run(symbols, bar, writer)
    writer.save(opt)
    h_bits, f_bits = opt.recent_bits()
    files = export_priors(opt.nets, out_dir, name, base)
    return {"seconds": time.time() - t0, "train_bits_per_symbol_hyperprior": h_bits, "train_bits_per_symbol_factorized": f_bits, **files, "checkpoint": str(ckpt)}
