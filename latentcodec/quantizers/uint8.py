"""``uint8``: Bühlmann's (2022) 8-bit latent quantization.

His notebook maps the *unscaled* SD latent ``z`` to bytes with
``clamp(z / (255 * 0.18215) + 0.5, 0, 1) * 255``, rounded, so one uint8 level is 0.18215
in unscaled units and the range is +-127.5 * 0.18215.  Our transforms emit *scaled*
latents (``z * 0.18215``, SD's scaling factor), so the same grid is a range of
+-127.5 * 0.18215**2 = +-4.2302 in scaled units.  That half range is the only
parameter.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from ..errors import StageConfigError, StageInputError
from ..rate import RateParameter
from ..stages import Quantized, Quantizer
from ._wire import as_float32, pack_float_or_default, unpack_float_or_default

SD_SCALING_FACTOR = 0.18215  # SD 1.x/2.x VAE config `scaling_factor`
#: Bühlmann's half range, converted to scaled-latent units (see the module docstring).
DEFAULT_HALF_RANGE = 127.5 * SD_SCALING_FACTOR * SD_SCALING_FACTOR
LEVELS = 255


def to_grid(latent: np.ndarray, half_range: float) -> np.ndarray:
    """Levels ``0..255`` (as float32) of Bühlmann's grid for a float32 latent."""
    unit = np.clip(latent / np.float32(2.0 * half_range) + np.float32(0.5), 0.0, 1.0)
    return np.floor(unit * np.float32(LEVELS) + np.float32(0.5))


def from_grid(levels: np.ndarray, half_range: float) -> np.ndarray:
    """The float32 latent value of each grid level."""
    v = np.asarray(levels, dtype=np.float32)
    return (v / np.float32(LEVELS) - np.float32(0.5)) * np.float32(2.0 * half_range)


class Uint8Quantizer(Quantizer):
    """Clamp to ``[-half_range, half_range]`` and map linearly to 0..255.

    >>> import numpy as np
    >>> q = Uint8Quantizer()
    >>> latent = np.array([[[-10.0, 0.0], [1.0, 4.2]]], dtype=np.float32)
    >>> out = q.quantize(latent)
    >>> int(out.symbols.min()), int(out.symbols.max())
    (0, 254)
    >>> restored = q.dequantize(out.symbols)
    >>> assert abs(restored[0, 1, 0] - 1.0) <= q.half_range / 255
    """

    name: ClassVar[str] = "uint8"
    version: ClassVar[int] = 1
    #: A larger half range is a coarser grid (the level step is ``2 * half_range / 255``).
    rate_parameter: ClassVar[RateParameter] = RateParameter(
        "half_range", coarsest=1e4, finest=0.05, sweep=(32.0, 16.0, 8.0, DEFAULT_HALF_RANGE), quality_range=(64.0, DEFAULT_HALF_RANGE)
    )

    def __init__(self, half_range: float = DEFAULT_HALF_RANGE) -> None:
        try:
            half_range = float(half_range)
        except (TypeError, ValueError) as exc:
            raise StageConfigError(f"uint8: half_range must be a number, got {half_range!r}") from exc
        if not math.isfinite(half_range) or not 1e-3 <= half_range <= 1e4:
            raise StageConfigError(f"uint8: half_range must be in [1e-3, 1e4], got {half_range}")
        self.half_range = as_float32(half_range)

    @property
    def level_step(self) -> float:
        return 2.0 * self.half_range / LEVELS

    def quantize(self, latent: np.ndarray) -> Quantized:
        latent = np.asarray(latent, dtype=np.float32)
        if not np.isfinite(latent).all():
            raise StageInputError("uint8: latent contains NaN or infinity")
        return Quantized(to_grid(latent, self.half_range).astype(np.int32))

    def dequantize(self, symbols: np.ndarray, side_info: bytes = b"") -> np.ndarray:
        return from_grid(symbols, self.half_range)

    def residual_std(self, side_info: bytes = b"") -> float:
        return self.level_step / math.sqrt(12.0)

    def latent_grid(self) -> Any:
        """Bühlmann's grid as a :class:`latentcodec.rdo.LatentGrid` (the encoder's search)."""
        from ..rdo.grid import LatentGrid

        return LatentGrid.uint8(self.half_range)

    def wire_params(self) -> bytes:
        return pack_float_or_default(self.half_range, DEFAULT_HALF_RANGE)

    @classmethod
    def config_from_wire(cls, params: bytes) -> dict[str, Any]:
        return {"half_range": unpack_float_or_default(params, DEFAULT_HALF_RANGE, "uint8 half range")}
