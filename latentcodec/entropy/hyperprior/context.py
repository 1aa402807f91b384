"""Spatial and channel context networks of ``ans-hyperprior``, in exact integer arithmetic.

The hyperprior alone predicts every symbol from ``z``; its symbols are still correlated
with their neighbours and across the 4 latent channels.  Following the channel-
conditional (Minnen & Singh 2020) and checkerboard (He et al. 2021) designs, the symbols
are decoded in ``C * P`` *groups*, one pass each and vectorised over the whole grid:
channel by channel, and inside a channel by spatial phase (``P = 4``: positions
``(even, even)``, ``(odd, odd)``, ``(even, odd)``, ``(odd, even)``; ``P = 7``: the same,
with the ``(even, even)`` phase first split the same way on its own subgrid, so that
only 1/16 of the symbols see no neighbour of their own channel; ``P = 2``: the
checkerboard ``(i + j) % 2``).  Group ``(k, p)`` refines the hyperprior's mean and
log-scale of channel ``order[k]`` with a small network that sees

* the hyperprior's ``mu`` and ``ls`` of that channel,
* every earlier channel in full, and
* this channel's symbols of phases ``< p`` (the others read as 0).

The network (``kernel`` x ``kernel`` conv, ReLU, conv, ReLU, conv to ``(dmu, dls)``; with
4 or 7 phases the first layer is evaluated at the group's own positions only and the later
layers run on that subgrid, so a 3x3 there sees 5x5 latent pixels, 9x9 on a quarter-resolution one) runs
in the same fixed point as the hyper-synthesis (:mod:`.fixed_point`): integer weights,
floor shifts, clips, so the decoder reproduces the encoder's table choice bit for bit.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol

import numpy as np

from .fixed_point import ACT_BITS, ACT_LIMIT, conv_int, export_layer


@lru_cache(maxsize=4)
def phase_map(h: int, w: int, phases: int) -> np.ndarray:
    """Phase ``0 .. phases-1`` of every position of an ``h x w`` grid (read-only, cached:
    every decoding pass of an image asks for the same map; int8 and few, so what the cache
    keeps after a decode is small next to the images it was made for).

    >>> phase_map(2, 3, 4).tolist()
    [[0, 2, 0], [3, 1, 3]]
    >>> phase_map(2, 3, 2).tolist()
    [[0, 1, 0], [1, 0, 1]]
    >>> phase_map(4, 4, 7).tolist()
    [[0, 5, 2, 5], [6, 4, 6, 4], [3, 5, 1, 5], [6, 4, 6, 4]]
    """
    i = np.arange(h)[:, None]
    j = np.arange(w)[None, :]
    if phases == 2:
        out = ((i + j) % 2).astype(np.int8)
    elif phases in SUBGRID_PHASES:
        out = np.zeros((h, w), dtype=np.int8)
        for p in range(phases):
            stride, di, dj = phase_grid(phases, p)
            out[di::stride, dj::stride] = p
    else:
        raise ValueError(f"phases must be one of {PHASE_COUNTS}, got {phases}")
    out.flags.writeable = False
    return out


#: Phase counts whose passes run their later layers on the phase's own subgrid.
SUBGRID_PHASES = (4, 7)
#: Every phase count a prior file may use.
PHASE_COUNTS = (2, *SUBGRID_PHASES)

#: Phase of a 4-phase grid -> its ``(row, column)`` offset in every 2x2 block.
QUAD_OFFSETS = ((0, 0), (1, 1), (0, 1), (1, 0))


def phase_grid(phases: int, p: int) -> tuple[int, int, int]:
    """``(stride, row offset, column offset)`` of the positions of phase ``p`` (4 or 7 phases).

    With 7 phases the first 2x2 phase is itself split in four on its own subgrid, so 3/4
    of those positions are coded with same-channel neighbours two pixels away.

    >>> [phase_grid(7, p) for p in range(7)]
    [(4, 0, 0), (4, 2, 2), (4, 0, 2), (4, 2, 0), (2, 1, 1), (2, 0, 1), (2, 1, 0)]
    """
    if phases == 4:
        return (2, *QUAD_OFFSETS[p])
    if phases == 7:
        if p < 4:
            di, dj = QUAD_OFFSETS[p]
            return 4, 2 * di, 2 * dj
        return (2, *QUAD_OFFSETS[p - 3])
    raise ValueError(f"phases {phases} have no subgrids")


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
        """``(dmu, dls)`` of group ``g``, in ``2**-ACT_BITS`` units, at the group's positions
        in row-major order (4 or 7 phases: only that phase's subgrid is computed)."""
        grid = phase_grid(self.phases, g % self.phases) if self.phases in SUBGRID_PHASES else None
        a = inputs
        for layer, (w, b, shift) in enumerate(self.nets[g]):
            a = conv_int(a, w, b, grid if layer == 0 else None) >> shift
            if layer < self.LAYERS - 1:
                a = np.maximum(a, 0)
            a = np.clip(a, -ACT_LIMIT, ACT_LIMIT)
        if grid is None:
            sel = phase_map(inputs.shape[1], inputs.shape[2], self.phases) == g % self.phases
            return a[0][sel], a[1][sel]
        return a[0].ravel(), a[1].ravel()


def torch_context(channels: int, phases: int, hidden: int, kernel: int = 3, all_hyper: bool = False, kernel2: int = 1, kernel3: int = 1):  # type: ignore[no-untyped-def]
    """The float group networks trained by ``latentcodec train-prior`` (one per group).

    ``kernel2`` / ``kernel3 > 1`` make the middle / last layer spatial too; they then run
    on the group's own positions (the phase subgrid), which needs 4 or 7 phases.
    """
    from torch import nn

    if max(kernel2, kernel3) > 1 and phases not in SUBGRID_PHASES:
        raise ValueError("spatial later layers (kernel2, kernel3 > 1) need 4 or 7 phases")
    nets = nn.ModuleList()
    for k in range(channels):
        for p in range(phases):
            n_in = (2 * channels if all_hyper else 2) + k + (1 if p else 0)
            nets.append(nn.Sequential(
                nn.Conv2d(n_in, hidden, kernel, padding=kernel // 2), nn.ReLU(),
                nn.Conv2d(hidden, hidden, kernel2, padding=kernel2 // 2), nn.ReLU(), nn.Conv2d(hidden, 2, kernel3, padding=kernel3 // 2),
            ))
    return nets


def torch_context_forward(nets, y, mu_h, ls_h, phases: int, order: list[int], all_hyper: bool = False):  # type: ignore[no-untyped-def]
    """Float twin of the decoding passes with teacher forcing: ``(mu, ls)`` for all of ``y``.

    With 4 or 7 phases each group's first convolution runs strided at its own phase's
    positions only, the later layers on that subgrid, and the results are written back to
    those positions, exactly as the decoder computes them.
    """
    import torch
    import torch.nn.functional as F

    h, w = y.shape[-2:]
    phase = torch.tensor(phase_map(int(h), int(w), phases), device=y.device)
    subgrid = phases in SUBGRID_PHASES
    mus, lss = [torch.zeros_like(y[:, 0])] * y.shape[1], [torch.zeros_like(y[:, 0])] * y.shape[1]
    for k, c in enumerate(order):
        prev = y[:, order[:k]]
        o = y.new_zeros((y.shape[0], 2, h, w))
        for p in range(phases):
            parts = [mu_h, ls_h, prev] if all_hyper else [mu_h[:, c : c + 1], ls_h[:, c : c + 1], prev]
            if p:
                parts.append(y[:, c : c + 1] * (phase < p).to(y.dtype))
            x = torch.cat(parts, 1)
            net = nets[k * phases + p]
            if subgrid:
                first = net[0]
                r = first.kernel_size[0] // 2
                st, di, dj = phase_grid(phases, p)
                xp = F.pad(x, (r, r, r, r))[:, :, di:, dj:]
                o[:, :, di::st, dj::st] = net[1:](F.conv2d(xp, first.weight, first.bias, stride=st))
            else:
                o = o + net(x) * (phase == p).to(y.dtype)
        mus[c] = mu_h[:, c] + o[:, 0]
        lss[c] = ls_h[:, c] + o[:, 1]
    return torch.stack(mus, 1), torch.stack(lss, 1)
