"""A rate proxy for coders that adapt to each image (static ``ans``, ``zlib``, ``ans-context``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch


class HistogramRate:
    """Per-channel ``-log2`` frequency of each symbol in the current rounded symbols.

    Every step the histogram of each channel's symbols gives a cost table
    ``C[k] = log2(N / count[k])`` (detached; a value no symbol has yet costs ``log2 N +
    new_cost``, about what a new table entry costs).  A symbol costs ``C`` at its value;
    its gradient is the central difference of ``C`` there, which pulls values towards more
    popular neighbours.  That is the static ``ans`` coder's code length up to its table
    header; for ``zlib`` and ``ans-context`` it is a proxy that steers in the same direction.
    """

    def __init__(self, new_cost: float = 16.0) -> None:
        self.new_cost = new_cost

    def begin(self, y0: "torch.Tensor") -> None:
        return None

    def bits(self, y_hat: "torch.Tensor", step: int) -> "torch.Tensor":
        import torch

        c = y_hat.shape[1]
        y = y_hat[0].reshape(c, -1)
        hard = torch.round(y.detach()).long()
        lo = int(hard.min()) - 2
        k = int(hard.max()) + 2 - lo + 1
        counts = torch.zeros(c, k, device=y.device).scatter_add_(1, hard - lo, torch.ones_like(y))
        n = y.shape[1]
        unseen = torch.full_like(counts, math.log2(n) + self.new_cost)
        cost = torch.where(counts > 0, math.log2(n) - torch.log2(counts.clamp_min(1)), unseen)
        i = hard - lo
        here = cost.gather(1, i)
        slope = (cost.gather(1, i + 1) - cost.gather(1, i - 1)) / 2
        return (here + (y - y.detach()) * slope).sum()
