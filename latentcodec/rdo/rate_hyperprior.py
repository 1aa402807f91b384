"""The rate of ``ans-hyperprior``: its float twin, teacher-forced on the rounded symbols."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .efforts import RECIPE

if TYPE_CHECKING:  # pragma: no cover
    import torch


class HyperpriorRate:
    """Bits of ``y`` under the Gaussians that the hyper-synthesis of ``z`` and the 7-phase
    context passes predict (:class:`~latentcodec.entropy.hyperprior.refine.FloatTwin`),
    plus the bits of ``z`` under its tables.

    ``z = round(h_a(round(y)))`` is re-analysed every ``z_every`` steps and held fixed in
    between (the real encoder derives its own ``z`` from the final symbols and refines it
    with ``refine_z``, so this only steers the search).
    """

    def __init__(self, coder: Any, device: Any, z_every: int = RECIPE.z_every) -> None:
        from ..entropy.hyperprior.refine import FloatTwin

        self.coder = coder
        self.model = coder.model
        self.twin = FloatTwin(self.model, device)
        self.z_every = z_every
        self.device = device
        self.z: torch.Tensor | None = None

    def _analyse(self, y: "torch.Tensor") -> "torch.Tensor":
        import torch

        symbols = torch.round(y.detach())[0].to("cpu").numpy().astype(np.int64)
        z = self.model.analysis(symbols, str(self.device), "float32")
        return torch.round(z).to(self.device)

    def begin(self, y0: "torch.Tensor") -> None:
        self.z = self._analyse(y0)

    def bits(self, y_hat: "torch.Tensor", step: int) -> "torch.Tensor":
        if self.z is None or (step > 0 and step % self.z_every == 0):
            self.z = self._analyse(y_hat)
        return self.twin.y_bits(y_hat, self.z) + self.twin.z_bits(self.z)
