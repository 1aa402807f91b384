"""Compact encoding of float parameters: empty bytes mean "the default"."""

from __future__ import annotations

import math
import struct

from ..errors import CorruptStreamError


def as_float32(value: float) -> float:
    """Round to the float32 the stream stores, so encoder and decoder agree exactly."""
    return struct.unpack("<f", struct.pack("<f", float(value)))[0]


def pack_float_or_default(value: float, default: float) -> bytes:
    return b"" if as_float32(value) == as_float32(default) else struct.pack("<f", value)


def unpack_float_or_default(params: bytes, default: float, what: str) -> float:
    if not params:
        return default
    if len(params) != 4:
        raise CorruptStreamError(f"{what}: expected 4 parameter bytes, got {len(params)}")
    (value,) = struct.unpack("<f", params)
    if not math.isfinite(value) or value <= 0:
        raise CorruptStreamError(f"{what}: invalid parameter {value!r} in stream")
    return value
