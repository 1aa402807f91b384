"""``ans-binned``: heavy-tailed non-negative symbols as log bins + uniform offsets, rANS.

Palette ranks (see :mod:`latentcodec.quantizers.palette`) are heavy-tailed over
0..255.  A full 256-entry frequency table would cost ~300 bytes per image, so values
are split into a logarithmic *bin* (0, 1, 2, 3, [4,6), [6,8), [8,12), ... : exponent and
one mantissa bit) coded with a 12-bit integer table sent in front (~16 varints), and
an offset inside the bin coded uniformly.  All tables are integers, so decoding is
exact on every machine.  The palette's compact side-info code reuses the same binning
(:mod:`latentcodec.quantizers.palette.side_info`).

We measured context modelling (the bin of the neighbours' ranks, 3-8 contexts) on
Kodak TAESD latents: the extra tables cost more than the context saved, so one table.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..bitstream import Reader, write_varint
from ..errors import CorruptStreamError, StageInputError
from ..stages import EntropyCoder
from .rans import ReverseEncoder, ans_decoder, categorical, uniform
from .tables import quantize_counts, read_table, unzigzag, write_table, zigzag

TABLE_BITS = 12
MAX_VALUE = 1 << 24  # span of the symbols; constriction's Uniform needs sizes < 2**24
MAX_BIN = 4 + 2 * (24 - 3) + 1
_POWERS = 1 << np.arange(0, 26, dtype=np.int64)


def to_bins(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(bin, offset, width)`` of non-negative ints: values 0-3 are their own bin, then
    each power-of-two range splits in two halves.

    >>> import numpy as np
    >>> b, o, w = to_bins(np.array([0, 3, 4, 5, 6, 8, 255]))
    >>> b.tolist(), o.tolist(), w.tolist()
    ([0, 3, 4, 4, 5, 6, 15], [0, 0, 0, 1, 0, 0, 63], [1, 1, 2, 2, 2, 4, 64])
    """
    v = np.asarray(values, dtype=np.int64)
    n = np.searchsorted(_POWERS, v, side="right")  # bit length, exact
    small = v < 4
    shift = np.maximum(n - 2, 0)
    half = (v >> shift) & 1
    bins = np.where(small, v, 4 + 2 * (n - 3) + half)
    start = np.where(small, v, (2 + half) << shift)
    width = np.where(small, 1, 1 << shift)
    return bins, v - start, width


def bin_start_width(bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`to_bins` for the bin: its first value and its width."""
    b = np.asarray(bins, dtype=np.int64)
    small = b < 4
    k = np.maximum(b - 4, 0)
    shift = k // 2 + 1
    start = np.where(small, b, (2 + (k & 1)) << shift)
    return start, np.where(small, 1, 1 << shift)


def binned_plan(values: np.ndarray, pushes: ReverseEncoder) -> bytes:
    """Queue ``values`` (bins, then offsets) and return their table bytes."""
    bins, offsets, widths = to_bins(values)
    lo = int(bins.min())
    freqs = quantize_counts(np.bincount(bins - lo), TABLE_BITS)
    if len(freqs) > 1:
        pushes.add(bins - lo, categorical(freqs, TABLE_BITS))
    wide = widths > 1
    pushes.add(offsets[wide], uniform(), widths[wide].astype(np.int32))
    return write_table(lo, freqs)


def binned_decode(table: tuple[int, np.ndarray], count: int, decoder: Any) -> np.ndarray:
    """Pop ``count`` values queued by :func:`binned_plan` with its ``table``."""
    lo, freqs = table
    if len(freqs) == 1:
        bins = np.full(count, lo, dtype=np.int64)
    else:
        bins = decoder.decode(categorical(freqs, TABLE_BITS), count).astype(np.int64) + lo
    if bins.size and (bins.min() < 0 or bins.max() > MAX_BIN):
        raise CorruptStreamError("ans-binned: bin out of range")
    start, widths = bin_start_width(bins)
    values = start.copy()
    wide = widths > 1
    if wide.any():
        values[wide] += decoder.decode(uniform(), widths[wide].astype(np.int32))
    return values


class BinnedANSCoder(EntropyCoder):
    """Symbols minus their minimum (palette ranks: 0), log bins + uniform offsets, rANS.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ranks = np.minimum(rng.geometric(0.05, size=(1, 32, 48)) - 1, 255).astype(np.int32)
    >>> coder = BinnedANSCoder()
    >>> data = coder.encode(ranks)
    >>> assert np.array_equal(coder.decode(data, ranks.shape), ranks)
    >>> assert len(data) < ranks.size  # under 8 bits per symbol
    """

    name: ClassVar[str] = "ans-binned"
    version: ClassVar[int] = 1

    def __init__(self) -> None:
        pass

    def encode(self, symbols: np.ndarray) -> bytes:
        s = np.asarray(symbols)
        if s.size == 0 or not np.issubdtype(s.dtype, np.integer):
            raise StageInputError(f"ans-binned: expected a non-empty integer array, got {s.dtype} {s.shape}")
        lo = int(s.min())
        if int(s.max()) - lo >= MAX_VALUE:
            raise StageInputError(f"ans-binned: symbols span more than {MAX_VALUE} values")
        pushes = ReverseEncoder()
        table = binned_plan(s.ravel().astype(np.int64) - lo, pushes)
        return write_varint(zigzag(lo)) + table + pushes.finish()

    def decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        count = int(np.prod(shape, dtype=np.int64))
        if count <= 0:
            raise StageInputError(f"ans-binned: bad shape {shape}")
        r = Reader(data)
        lo = unzigzag(r.varint("ans-binned minimum", (1 << 32) - 1))
        table = read_table(r, TABLE_BITS, "ans-binned table")
        decoder = ans_decoder(r.take(r.remaining(), "ans words"))
        try:
            values = binned_decode(table, count, decoder)
        except CorruptStreamError:
            raise
        except Exception as exc:
            raise CorruptStreamError(f"ans-binned: payload cannot be decoded ({exc})") from exc
        if not decoder.is_empty():
            raise CorruptStreamError("ans-binned: payload has data left over")
        values = values + lo
        if values.max() > np.iinfo(np.int32).max or values.min() < np.iinfo(np.int32).min:
            raise CorruptStreamError("ans-binned: symbols out of range")
        return values.astype(np.int32).reshape(tuple(int(n) for n in shape))
