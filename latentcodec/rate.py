"""The one rate abstraction: which quantizer option sets the rate, its range, and ``quality``.

Every quantizer that can trade bytes for quality declares a :class:`RateParameter` as its
``rate_parameter`` class attribute.  Rate control (:mod:`latentcodec.ratecontrol`) searches
it between :attr:`~RateParameter.coarsest` and :attr:`~RateParameter.finest`, the
evaluation sweeps :attr:`~RateParameter.sweep`, and ``-q/--quality 0..100`` maps onto it
through :meth:`~RateParameter.value_for_quality`, the same way for every preset.

>>> from latentcodec.quantizers.uniform import UniformQuantizer
>>> rp = UniformQuantizer.rate_parameter
>>> rp.name, rp.value_for_quality(0), rp.value_for_quality(100)
('step', 4.0, 0.1)
>>> rp.value_for_quality(50) > rp.value_for_quality(60)  # higher quality: finer step
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import StageConfigError

#: ``-q`` range, as cwebp and avifenc.
QUALITY_MIN, QUALITY_MAX = 0, 100


@dataclass(frozen=True)
class RateParameter:
    """A quantizer option that sets the rate.

    ``coarsest`` / ``finest``: the values giving the fewest / the most bytes (the range rate
    control searches; their order gives the direction).  ``sweep``: the evaluation's default
    points, low to high rate.  ``quality_range``: the values at quality 0 and 100; quality
    moves between them geometrically (integer options are rounded).
    """

    name: str
    coarsest: float
    finest: float
    integer: bool = False
    sweep: tuple[Any, ...] = ()
    quality_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        lo, hi = self.quality_range if self.quality_range is not None else (self.coarsest, self.finest)
        if min(self.coarsest, self.finest, lo, hi) <= 0:
            raise ValueError(f"rate parameter {self.name!r}: values must be positive (geometric search)")

    @property
    def larger_is_more_bytes(self) -> bool:
        """Direction: True when a larger value gives a larger stream (e.g. palette colours)."""
        return self.finest > self.coarsest

    def value_for_quality(self, quality: float) -> float | int:
        """The option value for ``quality`` in 0..100 (100: finest of the quality range)."""
        if isinstance(quality, bool) or not isinstance(quality, (int, float)) or not math.isfinite(quality):
            raise StageConfigError(f"quality must be a number in {QUALITY_MIN}..{QUALITY_MAX}, got {quality!r}")
        if not QUALITY_MIN <= quality <= QUALITY_MAX:
            raise StageConfigError(f"quality must be in {QUALITY_MIN}..{QUALITY_MAX}, got {quality:g}")
        q0, q100 = self.quality_range if self.quality_range is not None else (self.coarsest, self.finest)
        value = q0 * (q100 / q0) ** (float(quality) / QUALITY_MAX)
        if self.integer:
            return int(round(value))
        return float(f"{value:.6g}")  # a short decimal, shown by `latentcodec info`

    def check(self, value: Any) -> float | int:
        """``value`` as this option's type, if it lies within the searchable range."""
        lo, hi = sorted((self.coarsest, self.finest))
        try:
            v = int(value) if self.integer else float(value)
        except (TypeError, ValueError):
            raise StageConfigError(f"{self.name} must be a number, got {value!r}") from None
        if not lo <= v <= hi:
            raise StageConfigError(f"{self.name} must be in [{lo:g}, {hi:g}], got {value!r}")
        return v


def rate_parameter(quantizer: Any) -> RateParameter:
    """The :class:`RateParameter` of a quantizer (instance or class)."""
    found = getattr(quantizer, "rate_parameter", None)
    if not isinstance(found, RateParameter):
        raise StageConfigError(
            f"quantizer {getattr(quantizer, 'name', quantizer)!r} declares no rate parameter "
            "(class attribute rate_parameter = latentcodec.rate.RateParameter(...)), so rate "
            "control, --quality and sweeps cannot set its rate"
        )
    return found


def with_rate(quantizer: Any, value: Any) -> Any:
    """A copy of ``quantizer`` with its rate parameter set to ``value``."""
    p = rate_parameter(quantizer)
    return type(quantizer).from_config({**quantizer.get_config(), p.name: int(value) if p.integer else float(value)})
