"""The rate of a coder with fixed per-channel integer tables (``ans-factorized``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch


class TableRate:
    """Bits of each symbol under its channel's integer table, linear between integers
    (escapes cost what the coder spends on them), as ``refine_z`` prices ``z``."""

    def __init__(self, tables: Any, device: Any) -> None:
        import torch

        from ..entropy.hyperprior.refine import table_cost

        cost, self.lo = table_cost(tables)
        self.cost = torch.from_numpy(cost.astype(np.float32)).to(device)

    def begin(self, y0: "torch.Tensor") -> None:
        return None

    def bits(self, y_hat: "torch.Tensor", step: int) -> "torch.Tensor":
        from ..entropy.hyperprior.refine import interpolated_bits

        return interpolated_bits(self.cost, self.lo, y_hat[0])
