"""``mulaw``: uniform quantization after mu-law companding.

``c(x) = sign(x) * log1p(mu * |x|) / mu`` squeezes large magnitudes, so a uniform
step on ``c(x)`` is fine near zero (where most SD latent values are) and coarse in the
tails.  ``symbols = round(c(x) / step)``; the decoder applies ``c``'s inverse,
``sign(y) * expm1(mu * |y|) / mu``.  ``mu = 0`` is plain uniform quantization.

Everything a stage needs is here: class attributes ``name`` and ``version``,
constructor arguments that are the config (stored under the same names), validation
that raises latentcodec's own errors, and ``wire_params`` / ``config_from_wire`` for what
the decoder must know.
"""

from __future__ import annotations

import math
import struct
from typing import Any, ClassVar

import numpy as np

from latentcodec.errors import CorruptStreamError, StageConfigError, StageInputError
from latentcodec.rate import RateParameter
from latentcodec.stages import Quantized, Quantizer

DEFAULT_STEP = 0.5
DEFAULT_MU = 1.0
#: Bounds on the companded value ``|c(x)|`` and on ``mu * |c(x)|``: symbols are clipped so
#: that ``expm1`` stays far below float32 overflow (e**80 ~ 5.5e34) for any valid config.
MAX_ABS_COMPANDED = 60.0
MAX_EXPONENT = 80.0


def _f32(value: float) -> float:
    """Round to float32: the stream stores float32, so encoder and decoder must agree."""
    return struct.unpack("<f", struct.pack("<f", float(value)))[0]


class MuLawQuantizer(Quantizer):
    """Mu-law companded uniform quantizer.

    >>> import numpy as np
    >>> q = MuLawQuantizer(step=0.25, mu=2.0)
    >>> latent = np.array([[[0.05, -0.3], [1.0, 3.0]]], dtype=np.float32)
    >>> out = q.quantize(latent)
    >>> out.symbols.tolist()
    [[[0, -1], [2, 4]]]
    >>> restored = q.dequantize(out.symbols)
    >>> assert np.array_equal(q.quantize(restored).symbols, out.symbols)
    """

    name: ClassVar[str] = "mulaw"
    version: ClassVar[int] = 1
    #: Lets rate control, ``--quality`` and evaluation sweeps set this stage's rate.
    rate_parameter: ClassVar[RateParameter] = RateParameter(
        "step", coarsest=10.0, finest=0.001, sweep=(1.2, 0.8, 0.5, 0.35, 0.2), quality_range=(4.0, 0.1)
    )

    def __init__(self, step: float = DEFAULT_STEP, mu: float = DEFAULT_MU) -> None:
        try:
            step, mu = float(step), float(mu)
        except (TypeError, ValueError) as exc:
            raise StageConfigError(f"mulaw: step and mu must be numbers, got {step!r}, {mu!r}") from exc
        if not (math.isfinite(step) and 1e-3 <= step <= 10.0):
            raise StageConfigError(f"mulaw: step must be in [0.001, 10], got {step}")
        if not (math.isfinite(mu) and 0.0 <= mu <= 100.0):
            raise StageConfigError(f"mulaw: mu must be in [0, 100], got {mu}")
        self.step = _f32(step)
        self.mu = _f32(mu)

    # --- the maths -------------------------------------------------------------------
    def _compand(self, x: np.ndarray) -> np.ndarray:
        if self.mu == 0.0:
            return x
        mu = np.float32(self.mu)
        return (np.sign(x) * np.log1p(mu * np.abs(x)) / mu).astype(np.float32)

    def _expand(self, y: np.ndarray) -> np.ndarray:
        if self.mu == 0.0:
            return y
        mu = np.float32(self.mu)
        return (np.sign(y) * np.expm1(mu * np.abs(y)) / mu).astype(np.float32)

    @property
    def max_symbol(self) -> int:
        bound = MAX_ABS_COMPANDED if self.mu == 0.0 else min(MAX_ABS_COMPANDED, MAX_EXPONENT / self.mu)
        return int(bound / self.step)

    # --- the Quantizer contract ------------------------------------------------------
    def quantize(self, latent: np.ndarray) -> Quantized:
        latent = np.asarray(latent, dtype=np.float32)
        if not np.isfinite(latent).all():
            raise StageInputError("mulaw: latent contains NaN or infinity")
        symbols = np.rint(self._compand(latent) / np.float32(self.step))
        return Quantized(np.clip(symbols, -self.max_symbol, self.max_symbol).astype(np.int32))

    def dequantize(self, symbols: np.ndarray, side_info: bytes = b"") -> np.ndarray:
        s = np.asarray(symbols)
        if not np.issubdtype(s.dtype, np.integer):
            raise StageInputError(f"mulaw: symbols must be integers, got {s.dtype}")
        s = np.clip(s, -self.max_symbol, self.max_symbol)  # a damaged stream cannot overflow
        return self._expand(s.astype(np.float32) * np.float32(self.step))

    # --- the stream: 8 bytes when either value differs from the default ---------------
    def wire_params(self) -> bytes:
        if (self.step, self.mu) == (_f32(DEFAULT_STEP), _f32(DEFAULT_MU)):
            return b""
        return struct.pack("<ff", self.step, self.mu)

    @classmethod
    def config_from_wire(cls, params: bytes) -> dict[str, Any]:
        if not params:
            return {"step": DEFAULT_STEP, "mu": DEFAULT_MU}
        if len(params) != 8:
            raise CorruptStreamError(f"mulaw: expected 0 or 8 parameter bytes, got {len(params)}")
        step, mu = struct.unpack("<ff", params)
        if not (math.isfinite(step) and 1e-3 <= step <= 10.0 and math.isfinite(mu) and 0.0 <= mu <= 100.0):
            raise CorruptStreamError(f"mulaw: invalid parameters step={step!r}, mu={mu!r} in stream")
        return {"step": step, "mu": mu}
