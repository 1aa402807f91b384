"""Export of trained float networks as integer prior files (what the coders load).

Every probability table becomes integer frequencies (:class:`~latentcodec.entropy.priors.TableSet`),
the hyper-synthesis and the context networks become integer weights
(:mod:`latentcodec.entropy.hyperprior.fixed_point`), so decoding never depends on float
maths.  The networks are exported from the CPU, so the files do not depend on the device
they trained on.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..entropy.hyperprior import synthesis as hp
from ..entropy.priors import TableSet, save_prior


def export_eb_tables(eb: Any, channels: int, max_range: int = 96, min_prob: float = 1e-7) -> TableSet:
    """Per-channel integer tables from an EntropyBottleneck (escape entry last)."""
    import torch

    from .likelihood import factorized_likelihood

    grid = torch.arange(-max_range, max_range + 1, dtype=torch.float32)
    x = grid.view(1, 1, -1, 1).expand(1, channels, -1, 1).contiguous()
    with torch.no_grad():
        pmf = factorized_likelihood(eb, x)[0, :, :, 0].double().numpy()
    pmfs, los = [], []
    for c in range(channels):
        keep = np.nonzero(pmf[c] > min_prob)[0]
        a, b = int(keep.min()), int(keep.max())
        body = pmf[c, a : b + 1]
        tail = max(1.0 - body.sum(), 1e-9)
        pmfs.append(np.append(body, tail))
        los.append(int(grid[a]))
    return TableSet.build(pmfs, los)


def gaussian_tables(log_scales: np.ndarray, family: str = "gaussian", mean_bits: int = 2) -> TableSet:
    """Tables for every (scale, mean fraction) pair: index ``2**mean_bits * scale_index + fraction``.

    ``family`` is ``gaussian`` or ``laplace`` (same standard deviation ``exp(ls)``).
    """
    from scipy.stats import laplace, norm

    cdf = norm.cdf if family == "gaussian" else (lambda t: laplace.cdf(t * math.sqrt(2.0)))
    pmfs, los = [], []
    steps = 1 << mean_bits
    for ls in log_scales:
        sigma = math.exp(float(ls))
        half = min(int(math.ceil((7.0 if family == "gaussian" else 10.0) * sigma)) + 2, 160)
        r = np.arange(-half, half + 1, dtype=np.float64)
        for q in range(steps):
            mu = q / steps
            body = cdf((r + 0.5 - mu) / sigma) - cdf((r - 0.5 - mu) / sigma)
            tail = max(1.0 - body.sum(), 1e-9)
            pmfs.append(np.append(body, tail))
            los.append(-half)
    return TableSet.build(pmfs, los)


def export_priors(nets: Any, out_dir: str | Path, name: str, init_steps: int = 0) -> dict[str, str]:
    """Write ``NAME-factorized.npz`` and ``NAME-hyperprior.npz`` from trained :class:`~.nets.PriorNets`;
    return their paths and identities.

    ``init_steps`` (recorded when not 0) is how many steps the run's initial weights had
    been trained before it (``--init``).
    """
    from ..entropy.hyperprior import context as hc

    nets.to("cpu")
    s, out = nets.settings, Path(out_dir)
    meta = {"step": float(s.step), "channels": nets.channels, "trained_steps": s.steps, "crop": s.crop, "batch": s.batch, "seed": s.seed, "name": name}
    if init_steps:
        meta["init_steps"] = init_steps
    fact_tables = export_eb_tables(nets.eb_y, nets.channels)
    fact_hash = save_prior(out / f"{name}-factorized.npz", "factorized", {**meta, "table_bits": fact_tables.bits}, fact_tables.arrays("y"))
    z_tables = export_eb_tables(nets.eb_z, s.z_channels)
    y_tables = gaussian_tables(hp.LOG_SCALE_MIN_F + hp.LOG_SCALE_STEP_F * np.arange(hp.NUM_SCALES), mean_bits=s.mean_bits)
    arrays = {**z_tables.arrays("z"), **y_tables.arrays("y"), **hp.export_int_synthesis(nets.h_s), **hp.export_analysis(nets.h_a)}
    hyper_meta = {**meta, "table_bits": y_tables.bits, "n": s.n, "z_channels": s.z_channels, "mean_bits": s.mean_bits}
    if nets.ctx is not None:
        arrays.update(hc.IntContext.export(nets.ctx, s.phases))
        context = {"phases": s.phases, "hidden": s.hidden, "order": nets.order, "kernel": s.kernel, "kernel2": s.kernel2, "kernel3": s.kernel3, "all_hyper": s.all_hyper}
        hyper_meta["context"] = context
    hyper_hash = save_prior(out / f"{name}-hyperprior.npz", "hyperprior", hyper_meta, arrays)
    return {
        "factorized": str(out / f"{name}-factorized.npz"),
        "factorized_hash": fact_hash.hex(),
        "hyperprior": str(out / f"{name}-hyperprior.npz"),
        "hyperprior_hash": hyper_hash.hex(),
    }


def export_context_family(out_dir: str | Path, name: str = "gaussian") -> bytes:
    """The fixed (untrained) table family of ``ans-context``: Gaussian, then Laplace scales."""
    grid = hp.LOG_SCALE_MIN_F + hp.LOG_SCALE_STEP_F * np.arange(hp.NUM_SCALES)
    g, l = gaussian_tables(grid, "gaussian"), gaussian_tables(grid, "laplace")
    width = max(g.freqs.shape[1], l.freqs.shape[1])
    pad = lambda f: np.pad(f, ((0, 0), (0, width - f.shape[1])))  # noqa: E731
    both = TableSet(np.concatenate([pad(g.freqs), pad(l.freqs)]), np.concatenate([g.lo, l.lo]), np.concatenate([g.n, l.n]))
    meta = {"families": ["gaussian", "laplace"], "log_scale_min": hp.LOG_SCALE_MIN_F, "log_scale_step": hp.LOG_SCALE_STEP_F, "table_bits": both.bits}
    return save_prior(Path(out_dir) / f"{name}-context.npz", "context", meta, both.arrays("y"))
