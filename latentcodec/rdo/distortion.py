"""Distortions the search minimises, each relative to the plain encode's (``D / D0``).

``mse`` (on [0, 1] RGB, the default), ``ms-ssim`` (``1 - MS-SSIM``, pytorch_msssim's
definition, which the library's metric equals to float precision) and ``mix``
(``MSE / MSE0 + (1 - MS-SSIM) / (1 - MS-SSIM0)``: keeps the PSNR gain of ``mse`` and
raises MS-SSIM several times more).  Dividing by the plain encode's value makes one
``lmbda`` fit every image and quantizer step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..errors import StageInputError

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: pytorch_msssim's five scales need a shorter side above (11 - 1) * 2**4 pixels.
MS_SSIM_MIN_SIDE = 161


def _mse(x: "torch.Tensor", ref: "torch.Tensor") -> "torch.Tensor":
    return (x - ref).pow(2).mean()


def _ms_ssim(x: "torch.Tensor", ref: "torch.Tensor") -> "torch.Tensor":
    from pytorch_msssim import ms_ssim

    return 1.0 - ms_ssim(x, ref, data_range=1.0, size_average=True)


class RelativeDistortion:
    """``D(x) / D(x0)`` summed over the parts of ``name``, ``x0`` the first image it sees
    (the plain encode's decode, the search's first forward pass)."""

    def __init__(self, name: str, ref: "torch.Tensor") -> None:
        parts: dict[str, list[Callable[..., "torch.Tensor"]]] = {"mse": [_mse], "ms-ssim": [_ms_ssim], "mix": [_mse, _ms_ssim]}
        self.parts = parts[name]
        if _ms_ssim in self.parts and min(ref.shape[-2:]) < MS_SSIM_MIN_SIDE:
            raise StageInputError(f"distortion {name!r} needs an image side of at least {MS_SSIM_MIN_SIDE} pixels (MS-SSIM's five scales); use mse")
        self.ref = ref
        self.scale: list[float] | None = None

    def __call__(self, x: "torch.Tensor") -> "torch.Tensor":
        values = [part(x, self.ref) for part in self.parts]
        if self.scale is None:
            self.scale = [max(float(v.detach()), 1e-12) for v in values]
        return sum(v / s for v, s in zip(values, self.scale, strict=True))  # type: ignore[return-value]
