"""The fixed-point arithmetic of the hyperprior's decoder-side networks.

Activations are int64 with :data:`ACT_BITS` fractional bits, weights int16 within
``+-2**WEIGHT_BITS``, and every layer ends in a floor shift and a clip to
``+-ACT_LIMIT``.  Every product and partial sum is then an integer below ``2**53``, so a
float64 BLAS evaluates the convolutions *exactly*, in any summation order, on any machine.
"""

from __future__ import annotations

import numpy as np

ACT_BITS = 8  # fractional bits of the fixed-point activations
WEIGHT_BITS = 11  # integer weights are within +-2**WEIGHT_BITS
ACT_LIMIT = 1 << 24  # activations are clipped here, so float64 matmuls of integers stay exact


def conv_int(x: np.ndarray, w: np.ndarray, b: np.ndarray, grid: tuple[int, int, int] | None = None) -> np.ndarray:
    """Exact integer 'same' convolution (odd kernel, zero padding) of ``x (C, h, w)``.

    With ``grid = (stride, di, dj)`` only the outputs at rows ``di::stride`` and columns
    ``dj::stride`` are computed (one phase's subgrid): the same numbers, less work.
    Activations are clipped to ``2**24`` and weights to ``2**11``, so every product and
    partial sum is an integer below ``2**53`` and float64 BLAS is exact in any order.

    >>> import numpy as np
    >>> x = np.arange(6, dtype=np.int64).reshape(1, 2, 3)
    >>> w = np.full((1, 1, 3, 3), 2, np.int64)
    >>> conv_int(x, w, np.array([1])).tolist()
    [[[17, 31, 25], [17, 31, 25]]]
    >>> conv_int(x, w, np.array([1]), grid=(2, 1, 0)).tolist()
    [[[17, 25]]]
    """
    from numpy.lib.stride_tricks import sliding_window_view

    c, h, wd = x.shape
    if grid is not None:
        st, di, dj = grid
        h, wd = len(range(di, h, st)), len(range(dj, wd, st))
    if h == 0 or wd == 0:  # a phase with no positions (1-pixel-wide images)
        return np.zeros((w.shape[0], h, wd), dtype=np.int64)
    k = w.shape[-1]
    r = k // 2
    xp = (np.pad(x, ((0, 0), (r, r), (r, r))) if r else x).astype(np.float64)
    win = sliding_window_view(xp, (k, k), axis=(1, 2))  # (C, h, w, k, k)
    if grid is not None:
        win = win[:, grid[1] :: grid[0], grid[2] :: grid[0]]
    oh, ow = win.shape[1:3]
    cols = win.transpose(1, 2, 0, 3, 4).reshape(oh * ow, c * k * k)
    acc = cols @ w.reshape(w.shape[0], -1).T.astype(np.float64)
    return np.rint(acc).astype(np.int64).T.reshape(w.shape[0], oh, ow) + np.asarray(b, dtype=np.int64)[:, None, None]


def export_layer(conv) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """Integer weights (|w| <= 2**11), bias in ``2**-(shift + ACT_BITS)`` units and the shift."""
    w = conv.weight.detach().double().cpu().numpy()
    b = conv.bias.detach().double().cpu().numpy()
    shift = WEIGHT_BITS - int(np.ceil(np.log2(np.abs(w).max() + 1e-12)))
    wi = np.clip(np.rint(w * 2.0**shift), -(1 << WEIGHT_BITS), 1 << WEIGHT_BITS).astype(np.int16)
    return wi, np.rint(b * 2.0 ** (shift + ACT_BITS)).astype(np.int64), np.array([shift], dtype=np.int32)
