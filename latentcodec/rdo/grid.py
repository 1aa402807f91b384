"""The quantizer's grid in step units: the search moves ``u``, the real quantizer is ``round(u)``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass(frozen=True)
class LatentGrid:
    """An affine scalar grid: ``symbol = clip(round(latent / delta + offset), lo, hi)``,
    ``latent = (symbol - offset) * delta``.

    * :meth:`uniform` (step ``s``): ``delta = s``, offset 0, no clip;
    * :meth:`uint8` (half range ``r``): Bühlmann's ``floor(clip(latent / 2r + 1/2, 0, 1) * 255 + 1/2)``
      is ``clip(round(latent / delta + 127.5), 0, 255)`` with ``delta = 2r / 255`` (up to the
      half-way tie rule, which the search never relies on: its result is re-quantized by the
      real quantizer and checked).

    >>> g = LatentGrid.uint8(4.0)
    >>> round(g.delta, 6), g.offset, (g.lo, g.hi)
    (0.031373, 127.5, (0.0, 255.0))
    """

    delta: float
    offset: float = 0.0
    lo: float | None = None
    hi: float | None = None

    @classmethod
    def uniform(cls, step: float) -> "LatentGrid":
        return cls(float(np.float32(step)))

    @classmethod
    def uint8(cls, half_range: float) -> "LatentGrid":
        return cls(2.0 * float(np.float32(half_range)) / 255.0, 127.5, 0.0, 255.0)

    def to_units(self, latent: "torch.Tensor") -> "torch.Tensor":
        return latent / self.delta + self.offset

    def to_latent(self, units: "torch.Tensor") -> "torch.Tensor":
        return (units - self.offset) * self.delta

    def clip(self, u: "torch.Tensor") -> "torch.Tensor":
        return u if self.lo is None else u.clamp(self.lo, self.hi)

    def hard(self, u: "torch.Tensor") -> "torch.Tensor":
        """The symbols the quantizer gives for the latent ``to_latent(u)``."""
        import torch

        return self.clip(torch.round(u))

    def ste(self, u: "torch.Tensor") -> "torch.Tensor":
        """Straight-through rounding: the value of :meth:`hard`, the gradient of the identity
        (zero where the grid clips)."""
        import torch

        return self.clip(u + (torch.round(u) - u).detach())
