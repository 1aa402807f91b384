"""``uniform``: scalar quantization ``round(latent / step)``."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from ..errors import StageConfigError, StageInputError
from ..rate import RateParameter
from ..stages import Quantized, Quantizer
from ._wire import as_float32, pack_float_or_default, unpack_float_or_default

#: Default step for SD-scaled latents (std about 1): about 0.3 bpp with TAESD on Kodak.
DEFAULT_STEP = 0.5
MAX_ABS_SYMBOL = 1 << 20


class UniformQuantizer(Quantizer):
    """Mid-tread uniform quantizer.  Smaller ``step``: higher rate and quality.

    >>> import numpy as np
    >>> q = UniformQuantizer(step=0.25)
    >>> latent = np.array([[[0.1, -0.4], [1.0, 2.3]]], dtype=np.float32)
    >>> out = q.quantize(latent)
    >>> out.symbols.tolist()
    [[[0, -2], [4, 9]]]
    >>> restored = q.dequantize(out.symbols, out.side_info)
    >>> assert np.abs(restored - latent).max() <= 0.125
    """

    name: ClassVar[str] = "uniform"
    version: ClassVar[int] = 1
    rate_parameter: ClassVar[RateParameter] = RateParameter(
        "step", coarsest=1000.0, finest=0.01, sweep=(1.2, 0.8, 0.5, 0.35, 0.2), quality_range=(4.0, 0.1)
    )

    def __init__(self, step: float = DEFAULT_STEP) -> None:
        try:
            step = float(step)
        except (TypeError, ValueError) as exc:
            raise StageConfigError(f"uniform: step must be a number, got {step!r}") from exc
        # compared as the f32 the stream stores: fl32(1e-4) is just below 1e-4
        if not math.isfinite(step) or not as_float32(1e-4) <= as_float32(step) <= 1e3:
            raise StageConfigError(f"uniform: step must be in [1e-4, 1e3], got {step}")
        self.step = as_float32(step)

    def quantize(self, latent: np.ndarray) -> Quantized:
        latent = np.asarray(latent, dtype=np.float32)
        if not np.isfinite(latent).all():
            raise StageInputError("uniform: latent contains NaN or infinity")
        q = np.rint(latent / np.float32(self.step))
        if np.abs(q).max(initial=0) > MAX_ABS_SYMBOL:
            raise StageInputError(f"uniform: step {self.step} is too small for this latent's range")
        return Quantized(q.astype(np.int32))

    def dequantize(self, symbols: np.ndarray, side_info: bytes = b"") -> np.ndarray:
        return np.asarray(symbols, dtype=np.float32) * np.float32(self.step)

    def residual_std(self, side_info: bytes = b"") -> float:
        return self.step / math.sqrt(12.0)

    def latent_grid(self) -> Any:
        """``round(latent / step)`` as a :class:`latentcodec.rdo.LatentGrid` (the encoder's search)."""
        from ..rdo.grid import LatentGrid

        return LatentGrid.uniform(self.step)

    def wire_params(self) -> bytes:
        return pack_float_or_default(self.step, DEFAULT_STEP)

    @classmethod
    def config_from_wire(cls, params: bytes) -> dict[str, Any]:
        return {"step": unpack_float_or_default(params, DEFAULT_STEP, "uniform step")}
