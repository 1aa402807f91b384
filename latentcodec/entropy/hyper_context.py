"""Spatial and channel context for ``ans-hyperprior``, in exact integer arithmetic.

The hyperprior alone predicts every symbol from ``z``; its symbols are still correlated
with their neighbours and across the 4 latent channels.  Following the channel-
conditional (Minnen & Singh 2020) and checkerboard (He et al. 2021) designs, the symbols
are decoded in ``C * P`` *groups*, one pass each and vectorised over the whole grid:
channel by channel, and inside a channel by spatial phase (``P = 4``: positions
``(even, even)``, ``(odd, odd)``, ``(even, odd)``, ``(odd, even)``; ``P = 2``: the
checkerboard ``(i + j) % 2``).  Group ``(k, p)`` refines the hyperprior's mean and
log-scale of channel ``order[k]`` with a small network that sees

* the hyperprior's ``mu`` and ``ls`` of that channel,
* every earlier channel in full, and
* this channel's symbols of phases ``< p`` (the others read as 0).

The network (3x3 conv, ReLU, 1x1, ReLU, 1x1 to ``(dmu, dls)``) runs in the same fixed
point as the hyper-synthesis (:mod:`latentcodec.entropy.hyperprior`): integer weights,
floor shifts, clips, so the decoder reproduces the encoder's table choice bit for bit.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol

import numpy as np

ACT_BITS = 8  # fractional bits of the fixed-point activations
WEIGHT_BITS = 11  # integer weights are within +-2**WEIGHT_BITS
ACT_LIMIT = 1 << 24  # activations are clipped here, so float64 matmuls of integers stay exact


@lru_cache(maxsize=16)
def phase_map(h: int, w: int, phases: int) -> np.ndarray:
    """Phase ``0 .. phases-1`` of every position of an ``h x w`` grid (read-only, cached:
    every decoding pass of an image asks for the same map).

    >>> phase_map(2, 3, 4).tolist()
    [[0, 2, 0], [3, 1, 3]]
    >>> phase_map(2, 3, 2).tolist()
    [[0, 1, 0], [1, 0, 1]]
    """
    i = np.arange(h)[:, None] % 2
    j = np.arange(w)[None, :] % 2
    if phases == 2:
        out = ((i + j) % 2).astype(np.int64)
    elif phases == 4:
        out = np.where(i == 0, np.where(j == 0, 0, 2), np.where(j == 0, 3, 1)).astype(np.int64)
    else:
        raise ValueError(f"phases must be 2 or 4, got {phases}")
    out.flags.writeable = False
    return out


def conv_int(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer 'same' convolution (kernel 1 or 3, zero padding) of ``x (C, h, w)``.

    Activations are clipped to ``2**24`` and weights to ``2**11``, so every product and
    partial sum is an integer below ``2**53`` and float64 BLAS is exact in any order.

    >>> import numpy as np
    >>> x = np.arange(6, dtype=np.int64).reshape(1, 2, 3)
    >>> conv_int(x, np.full((1, 1, 3, 3), 2, np.int64), np.array([1])).tolist()
    [[[17, 31, 25], [17, 31, 25]]]
    """
    from numpy.lib.stride_tricks import sliding_window_view

    c, h, wd = x.shape
    k = w.shape[-1]
    if k == 1:
        cols = x.reshape(c, h * wd).T.astype(np.float64)
    else:
        r = k // 2
        xp = np.pad(x, ((0, 0), (r, r), (r, r))).astype(np.float64)
        cols = sliding_window_view(xp, (k, k), axis=(1, 2)).transpose(1, 2, 0, 3, 4).reshape(h * wd, c * k * k)
    acc = cols @ w.reshape(w.shape[0], -1).T.astype(np.float64)
    return np.rint(acc).astype(np.int64).T.reshape(w.shape[0], h, wd) + np.asarray(b, dtype=np.int64)[:, None, None]


def export_layer(conv) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """Integer weights (|w| <= 2**11), bias in ``2**-(shift + ACT_BITS)`` units and the shift."""
    w = conv.weight.detach().double().cpu().numpy()
    b = conv.bias.detach().double().cpu().numpy()
    shift = WEIGHT_BITS - int(np.ceil(np.log2(np.abs(w).max() + 1e-12)))
    wi = np.clip(np.rint(w * 2.0**shift), -(1 << WEIGHT_BITS), 1 << WEIGHT_BITS).astype(np.int16)
    return wi, np.rint(b * 2.0 ** (shift + ACT_BITS)).astype(np.int64), np.array([shift], dtype=np.int32)


class ArraySource(Protocol):
    """Where group weights come from: a loaded prior file, or a plain dict of arrays."""

    def __getitem__(self, key: str, /) -> np.ndarray: ...


class IntContext:
    """The group networks of a prior file (arrays ``ctx{g}_{l}_{w,b,shift}``)."""

    LAYERS = 3

    def __init__(self, arrays: ArraySource, channels: int, phases: int, order: list[int], all_hyper: bool = False) -> None:
        self.channels = channels
        self.phases = phases
        self.order = order
        self.all_hyper = all_hyper
        self.nets = [
            [(arrays[f"ctx{g}_{layer}_w"].astype(np.int64), arrays[f"ctx{g}_{layer}_b"].astype(np.int64), int(arrays[f"ctx{g}_{layer}_shift"][0])) for layer in range(self.LAYERS)]
            for g in range(channels * phases)
        ]

    @staticmethod
    def export(ctx_nets, phases: int) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
        """Arrays for a trained list of torch group networks (see :func:`torch_context`)."""
        from torch import nn

        out: dict[str, np.ndarray] = {}
        for g, net in enumerate(ctx_nets):
            for layer, conv in enumerate(m for m in net if isinstance(m, nn.Conv2d)):
                out[f"ctx{g}_{layer}_w"], out[f"ctx{g}_{layer}_b"], out[f"ctx{g}_{layer}_shift"] = export_layer(conv)
        return out

    def group_inputs(self, y: np.ndarray, mu_h: np.ndarray, ls_h: np.ndarray, phase: np.ndarray, k: int, p: int) -> np.ndarray:
        """Fixed-point inputs of group ``(k, p)``; ``y`` needs only what was decoded before it."""
        c = self.order[k]
        hyper = [mu_h, ls_h] if self.all_hyper else [mu_h[c : c + 1], ls_h[c : c + 1]]
        parts = [*hyper, y[self.order[:k]] << ACT_BITS]
        if p:
            parts.append(np.where(phase < p, y[c], 0)[None] << ACT_BITS)
        return np.clip(np.concatenate(parts).astype(np.int64), -ACT_LIMIT, ACT_LIMIT)

    def refine(self, inputs: np.ndarray, g: int) -> tuple[np.ndarray, np.ndarray]:
        """``(dmu, dls)`` of group ``g`` over the whole grid, in ``2**-ACT_BITS`` units."""
        a = inputs
        for layer, (w, b, shift) in enumerate(self.nets[g]):
            a = conv_int(a, w, b) >> shift
            if layer < self.LAYERS - 1:
                a = np.maximum(a, 0)
            a = np.clip(a, -ACT_LIMIT, ACT_LIMIT)
        return a[0], a[1]


def torch_context(channels: int, phases: int, hidden: int, kernel: int = 3, all_hyper: bool = False):  # type: ignore[no-untyped-def]
    """The float group networks trained by ``latentcodec train-prior`` (one per group)."""
    from torch import nn

    nets = nn.ModuleList()
    for k in range(channels):
        for p in range(phases):
            n_in = (2 * channels if all_hyper else 2) + k + (1 if p else 0)
            nets.append(nn.Sequential(nn.Conv2d(n_in, hidden, kernel, padding=kernel // 2), nn.ReLU(), nn.Conv2d(hidden, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, 2, 1)))
    return nets


def torch_context_forward(nets, y, mu_h, ls_h, phases: int, order: list[int], all_hyper: bool = False):  # type: ignore[no-untyped-def]
    """Float twin of the decoding passes with teacher forcing: ``(mu, ls)`` for all of ``y``."""
    import torch

    h, w = y.shape[-2:]
    phase = torch.tensor(phase_map(int(h), int(w), phases), device=y.device)
    mus, lss = torch.zeros_like(y), torch.zeros_like(y)
    for k, c in enumerate(order):
        prev = y[:, order[:k]]
        for p in range(phases):
            parts = [mu_h, ls_h, prev] if all_hyper else [mu_h[:, c : c + 1], ls_h[:, c : c + 1], prev]
            if p:
                parts.append(y[:, c : c + 1] * (phase < p).to(y.dtype))
            o = nets[k * phases + p](torch.cat(parts, 1))
            sel = (phase == p).to(y.dtype)
            mus[:, c] = mus[:, c] + sel * (mu_h[:, c] + o[:, 0])
            lss[:, c] = lss[:, c] + sel * (ls_h[:, c] + o[:, 1])
    return mus, lss
