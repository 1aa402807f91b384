"""Train the learned priors (factorized and hyperprior) on a folder of photos.

Both models see the integer symbols of the ``uniform`` quantizer at one step (the
``taesd-ans`` default): the coders only ever receive symbols, so the model is trained
for, and records, that step.  The factorized prior is a CompressAI
``EntropyBottleneck`` over the 4 latent channels; the hyperprior is a mean-scale
``GaussianConditional`` model with a small hyper-analysis / hyper-synthesis pair and an
``EntropyBottleneck`` for the hyper-latent, refined pass by pass by small context
networks trained with teacher forcing.  After training the hyper-synthesis and the context
networks are converted to integer weights (see :mod:`latentcodec.entropy.hyperprior`) and every
probability table is exported as integers, so decoding never depends on float maths.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..entropy.hyperprior import synthesis as hp
from ..entropy.priors import TableSet, save_prior
from ..quantizers.uniform import DEFAULT_STEP


def _torch_models(channels: int, n: int, z_channels: int):  # type: ignore[no-untyped-def]
    import torch.nn as nn
    from compressai.entropy_models import EntropyBottleneck, GaussianConditional

    h_a = nn.Sequential(
        nn.Conv2d(channels, n, 3, padding=1), nn.ReLU(),
        nn.Conv2d(n, n, 5, stride=2, padding=2), nn.ReLU(),
        nn.Conv2d(n, z_channels, 5, stride=2, padding=2),
    )
    h_s = hp.torch_hyper_synthesis(channels, n, z_channels)
    return h_a, h_s, EntropyBottleneck(z_channels), GaussianConditional(None), EntropyBottleneck(channels)


def eb_pmf(eb, x):  # type: ignore[no-untyped-def]
    """Exact likelihood of integer-valued ``x (B, C, H, W)`` under an EntropyBottleneck."""
    c = x.shape[1]
    values = x.permute(1, 0, 2, 3).reshape(c, 1, -1)
    lik = eb._likelihood(values)[0]
    return lik.reshape(c, x.shape[0], *x.shape[2:]).permute(1, 0, 2, 3)


def _crops(symbols: list[np.ndarray], size: int, batch: int, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((batch, symbols[0].shape[0], size, size), dtype=np.float32)
    for b in range(batch):
        s = symbols[int(rng.integers(len(symbols)))]
        i = int(rng.integers(s.shape[1] - size + 1))
        j = int(rng.integers(s.shape[2] - size + 1))
        crop = s[:, i : i + size, j : j + size]
        if rng.random() < 0.5:
            crop = crop[:, :, ::-1]
        out[b] = crop
    return out


def export_eb_tables(eb, channels: int, max_range: int = 96, min_prob: float = 1e-7) -> TableSet:  # type: ignore[no-untyped-def]
    """Per-channel integer tables from an EntropyBottleneck (escape entry last)."""
    import torch

    grid = torch.arange(-max_range, max_range + 1, dtype=torch.float32)
    x = grid.view(1, 1, -1, 1).expand(1, channels, -1, 1).contiguous()
    with torch.no_grad():
        pmf = eb_pmf(eb, x)[0, :, :, 0].double().numpy()
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


def train(
    latents: list[np.ndarray],
    out_dir: str | Path,
    name: str,
    *,
    step: float = DEFAULT_STEP,
    steps: int = 4300,
    batch: int = 8,
    crop: int = 48,
    n: int = 24,
    z_channels: int = 8,
    phases: int = 7,
    hidden: int = 32,
    kernel: int = 5,
    all_hyper: bool = True,
    mean_bits: int = 3,
    kernel2: int | None = None,
    kernel3: int | None = None,
    lr: float = 2e-3,
    seed: int = 0,
    progress: bool = True,
    threads: int | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train both priors on ``latents`` and write ``NAME-factorized.npz`` / ``NAME-hyperprior.npz``.

    ``phases`` (2, 4 or 7; 0 for none), ``hidden``, ``kernel``, ``kernel2``, ``kernel3``
    (the context networks' layer kernels; the later two default to 3 with 4 or 7 phases, where
    they run on the phase subgrid, and to 1 otherwise) and ``all_hyper`` shape the hyperprior's
    spatial/channel context (:mod:`latentcodec.entropy.hyperprior.context`);
    ``mean_bits`` sets how finely its tables resolve the predicted mean.  The defaults
    are the shipped ``taesd`` prior's (measured on Kodak: see README, "Entropy coders").
    ``device`` (``cpu``, ``cuda[:N]`` or ``auto``) is where the networks train; they move
    back to the CPU before the integer export, so the exported files do not depend on it.
    """
    import torch
    from tqdm import tqdm

    from ..entropy.hyperprior import context as hc
    from ..errors import StageConfigError
    from ..runtime import resolve_device

    try:
        torch_device = resolve_device(device)
    except StageConfigError as exc:
        raise ValueError(str(exc)) from None
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    symbols = [np.rint(lat / np.float32(step)).astype(np.float32) for lat in latents]
    symbols = [s for s in symbols if min(s.shape[1:]) >= crop]
    if not symbols:
        raise ValueError(f"no latent is at least {crop}x{crop}")
    channels = symbols[0].shape[0]
    h_a, h_s, eb_z, gc, eb_y = _torch_models(channels, n, z_channels)
    order = list(range(channels))
    later = 3 if phases in hc.SUBGRID_PHASES else 1
    kernel2, kernel3 = later if kernel2 is None else kernel2, later if kernel3 is None else kernel3
    ctx = hc.torch_context(channels, phases, hidden, kernel, all_hyper, kernel2, kernel3) if phases else None
    modules = [h_a, h_s, eb_z, gc, eb_y, *([ctx] if ctx is not None else [])]
    for m in modules:
        m.to(torch_device)
    params = [p for m in (h_a, h_s, *([ctx] if ctx is not None else [])) for p in m.parameters()] + [p for nm, p in eb_z.named_parameters() if not nm.endswith("quantiles")]
    params += [p for nm, p in eb_y.named_parameters() if not nm.endswith("quantiles")]
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=1e-4)
    # the scales the exported tables cover (natural-log units), so training sees what decoding uses
    lo_ls, hi_ls = hp.LOG_SCALE_MIN_F, hp.LOG_SCALE_MIN_F + hp.LOG_SCALE_STEP_F * (hp.NUM_SCALES - 1)
    t0 = time.time()
    bar = tqdm(range(steps), desc=f"train {name} priors", disable=not progress, unit="it")
    hist: list[Any] = []  # per-step (hyper, factorized) bits, kept on the device: no sync per step
    for _ in bar:
        y = torch.from_numpy(_crops(symbols, crop, batch, rng)).to(torch_device)
        count = y.numel()
        z = h_a(y)
        z_tilde, z_lik = eb_z(z, training=True)
        mean, log_scale = h_s(z_tilde).chunk(2, dim=1)
        if ctx is not None:
            mean, log_scale = hc.torch_context_forward(ctx, y, mean, log_scale, phases, order, all_hyper)
        scales = torch.exp(log_scale.clamp(lo_ls, hi_ls))
        y_lik = gc.likelihood_lower_bound(gc._likelihood(y, scales, mean))
        bits_hyper = (-torch.log2(y_lik).sum() - torch.log2(z_lik).sum()) / count
        bits_fact = -torch.log2(eb_pmf(eb_y, y).clamp_min(1e-9)).sum() / count
        loss = bits_hyper + bits_fact
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        hist.append(torch.stack([bits_hyper.detach(), bits_fact.detach()]))
        if len(hist) % 50 == 0:
            h, f = torch.stack(hist[-50:]).mean(0).tolist()
            bar.set_postfix(hyper=f"{h:.3f}", fact=f"{f:.3f}")
    h_bits, f_bits = torch.stack(hist[-100:]).mean(0).tolist()
    for m in modules:
        m.to("cpu")
    meta = {"step": float(step), "channels": channels, "trained_steps": steps, "crop": crop, "batch": batch, "seed": seed, "name": name}
    out = Path(out_dir)
    fact_tables = export_eb_tables(eb_y, channels)
    fact_hash = save_prior(out / f"{name}-factorized.npz", "factorized", {**meta, "table_bits": fact_tables.bits}, fact_tables.arrays("y"))
    z_tables = export_eb_tables(eb_z, z_channels)
    y_tables = gaussian_tables(hp.LOG_SCALE_MIN_F + hp.LOG_SCALE_STEP_F * np.arange(hp.NUM_SCALES), mean_bits=mean_bits)
    arrays = {**z_tables.arrays("z"), **y_tables.arrays("y"), **hp.export_int_synthesis(h_s), **hp.export_analysis(h_a)}
    hyper_meta = {**meta, "table_bits": y_tables.bits, "n": n, "z_channels": z_channels, "mean_bits": mean_bits}
    if ctx is not None:
        arrays.update(hc.IntContext.export(ctx, phases))
        hyper_meta["context"] = {"phases": phases, "hidden": hidden, "order": order, "kernel": kernel, "kernel2": kernel2, "kernel3": kernel3, "all_hyper": all_hyper}
    hyper_hash = save_prior(out / f"{name}-hyperprior.npz", "hyperprior", hyper_meta, arrays)
    return {
        "seconds": time.time() - t0,
        "train_bits_per_symbol_hyperprior": float(h_bits),
        "train_bits_per_symbol_factorized": float(f_bits),
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
