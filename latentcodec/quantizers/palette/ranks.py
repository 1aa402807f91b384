"""Rank relabelling of palette indices: a bijection that concentrates symbols near 0.

Each pixel's symbol is the position of its palette entry among all entries sorted by
distance to a prediction from its already-decoded left, top and top-left neighbours.
Integer arithmetic only, so encoder and decoder agree on every machine.
"""

from __future__ import annotations

import numpy as np

from ...errors import CorruptStreamError

#: Prediction for the first pixel, which has no decoded neighbour: mid-grey of the uint8 grid.
MID = 128


def _neighbours(colors: np.ndarray, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left, top and top-left colours (int64) at positions ``(i, j)`` with fixed edge rules."""
    c = colors.shape[-1]
    mid = np.full((len(i), c), MID, dtype=np.int64)
    ii, jj = np.maximum(i - 1, 0), np.maximum(j - 1, 0)
    top = colors[ii, j].astype(np.int64)
    left = np.where((j > 0)[:, None], colors[i, jj], np.where((i > 0)[:, None], top, mid)).astype(np.int64)
    top = np.where((i > 0)[:, None], top, left)
    top_left = np.where(((i > 0) & (j > 0))[:, None], colors[ii, jj].astype(np.int64), top)
    return left, top, top_left


def predict(left: np.ndarray, top: np.ndarray, top_left: np.ndarray) -> np.ndarray:
    """Integer prediction of a pixel's colour: ``(L + T + 1) // 2``.

    Measured on Kodak TAESD latents (256 colours, rank entropy): the mean of left and top
    beat the gradient ``L + T - TL``, MED and ``(3L + 3T - 2TL) / 4``; the dithered
    latent is too noisy for gradient predictors.  ``top_left`` is kept for the edge rules.
    """
    return (left + top + 1) // 2


def _distances(pred: np.ndarray, palette: np.ndarray) -> np.ndarray:
    diff = pred[:, None, :] - palette.astype(np.int64)[None, :, :]
    return np.einsum("nkc,nkc->nk", diff, diff)


def indices_to_ranks(indices: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Rank of each pixel's entry among palette entries sorted by distance to its prediction.

    Ties go to the lower palette index.  Integer arithmetic only.
    """
    h, w = indices.shape
    colors = palette[indices]
    i, j = (a.ravel() for a in np.indices((h, w)))
    dist = _distances(predict(*_neighbours(colors, i, j)), palette)
    own = indices.ravel()
    d_own = dist[np.arange(len(own)), own][:, None]
    k = np.arange(len(palette))[None, :]
    ranks = ((dist < d_own) | ((dist == d_own) & (k < own[:, None]))).sum(1)
    return ranks.reshape(h, w).astype(np.int32)


def ranks_to_indices(ranks: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Inverse of :func:`indices_to_ranks`, decoded by anti-diagonals (``i + j = t``)."""
    h, w = ranks.shape
    if ranks.size and (ranks.min() < 0 or ranks.max() >= len(palette)):
        raise CorruptStreamError("palette: rank outside the palette")
    indices = np.zeros((h, w), dtype=np.int32)
    colors = np.zeros((h, w, palette.shape[1]), dtype=np.uint8)
    for t in range(h + w - 1):
        i = np.arange(max(0, t - w + 1), min(h - 1, t) + 1)
        j = t - i
        dist = _distances(predict(*_neighbours(colors, i, j)), palette)
        order = np.argsort(dist, axis=1, kind="stable")
        chosen = order[np.arange(len(i)), ranks[i, j]]
        indices[i, j] = chosen
        colors[i, j] = palette[chosen]
    return indices
