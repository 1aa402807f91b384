"""Coding of palette data: ``ans-binned`` for indices/ranks and the compact palette code.

Palette ranks (see :mod:`latentcodec.quantizers.palette`) are heavy-tailed over
0..255.  A full 256-entry frequency table would cost ~300 bytes per image, so values
are split into a logarithmic *bin* (0, 1, 2, 3, [4,6), [6,8), [8,12), ... : exponent and
one mantissa bit) coded with a 12-bit integer table sent in front (~16 varints), and
an offset inside the bin coded uniformly.  All tables are integers, so decoding is
exact on every machine.

We measured context modelling (the bin of the neighbours' ranks, 3-8 contexts) on
Kodak TAESD latents: the extra tables cost more than the context saved, so one table.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..bitstream import Reader, write_varint
from ..errors import CorruptStreamError, StageInputError
from ..stages import EntropyCoder
from .ans import ans_words_to_bytes, ans_decoder, categorical
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


class _Pushes:
    """Collects (symbols, model, params) in decoding order; encodes them in reverse."""

    def __init__(self) -> None:
        self.items: list[tuple[np.ndarray, object, np.ndarray | None]] = []

    def add(self, symbols: np.ndarray, model: object, params: np.ndarray | None = None) -> None:
        if symbols.size:
            self.items.append((symbols.astype(np.int32), model, params))

    def finish(self) -> bytes:
        import constriction

        coder = constriction.stream.stack.AnsCoder()
        for symbols, model, params in reversed(self.items):
            if params is None:
                coder.encode_reverse(symbols, model)
            else:
                coder.encode_reverse(symbols, model, params)
        return ans_words_to_bytes(coder.get_compressed())


def _binned_plan(values: np.ndarray, pushes: _Pushes) -> bytes:
    """Queue ``values`` (bins, then offsets) and return their table bytes."""
    import constriction

    bins, offsets, widths = to_bins(values)
    lo = int(bins.min())
    freqs = quantize_counts(np.bincount(bins - lo), TABLE_BITS)
    if len(freqs) > 1:
        pushes.add(bins - lo, categorical(freqs, TABLE_BITS))
    wide = widths > 1
    pushes.add(offsets[wide], constriction.stream.model.Uniform(), widths[wide].astype(np.int32))
    return write_table(lo, freqs)


def _binned_decode(table: tuple[int, np.ndarray], count: int, decoder) -> np.ndarray:  # type: ignore[no-untyped-def]
    import constriction

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
        values[wide] += decoder.decode(constriction.stream.model.Uniform(), widths[wide].astype(np.int32))
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
        pushes = _Pushes()
        table = _binned_plan(s.ravel().astype(np.int64) - lo, pushes)
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
            values = _binned_decode(table, count, decoder)
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


# --- the compact palette code ------------------------------------------------------------
def encode_sorted_palette(palette: np.ndarray) -> bytes:
    """A lexicographically sorted uint8 palette ``(K, C)``: channel 0 as binned deltas,
    the other channels uniformly within their ``[min, max]`` (sent as two bytes each).

    The sort order itself is information zlib has to pay for (about log2(K!) / K bits
    an entry); here it is free because the decoder knows the order is canonical.

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> pal = rng.integers(60, 200, size=(256, 4)).astype(np.uint8)
    >>> pal = pal[np.lexsort(pal.T[::-1])]
    >>> data = encode_sorted_palette(pal)
    >>> back, used = decode_sorted_palette(data, 256, 4)
    >>> assert np.array_equal(back, pal) and used == len(data) and len(data) < 256 * 4
    """
    import constriction

    p = np.asarray(palette, dtype=np.int64)
    if p.ndim != 2 or p.min() < 0 or p.max() > 255:
        raise StageInputError("palette: entries must be uint8")
    if np.any(np.diff(p[:, 0]) < 0):
        raise StageInputError("palette: the compact code needs a palette sorted by channel 0")
    pushes = _Pushes()
    head = bytearray([int(p[0, 0])])
    table = _binned_plan(np.diff(p[:, 0]), pushes) if len(p) > 1 else b""
    for c in range(1, p.shape[1]):
        lo, hi = int(p[:, c].min()), int(p[:, c].max())
        head += bytes([lo, hi])
        if hi > lo:
            pushes.add(p[:, c] - lo, constriction.stream.model.Uniform(hi - lo + 1))
    return bytes(head) + table + pushes.finish()


def decode_sorted_palette(data: bytes, count: int, channels: int) -> tuple[np.ndarray, int]:
    """Inverse of :func:`encode_sorted_palette`; it owns the rest of ``data``."""
    import constriction

    r = Reader(data)
    first = r.u8("palette first entry")
    ranges = [(r.u8("palette minimum"), r.u8("palette maximum")) for _ in range(1, channels)]
    table = read_table(r, TABLE_BITS, "palette delta table") if count > 1 else None
    decoder = ans_decoder(r.take(r.remaining(), "palette words"))
    out = np.empty((count, channels), dtype=np.int64)
    try:
        deltas = _binned_decode(table, count - 1, decoder) if table is not None else np.zeros(0, np.int64)
        out[:, 0] = first + np.concatenate([[0], np.cumsum(deltas)])
        for c, (lo, hi) in enumerate(ranges, start=1):
            if hi < lo:
                raise CorruptStreamError("palette: channel range is inverted")
            out[:, c] = lo if hi == lo else decoder.decode(constriction.stream.model.Uniform(hi - lo + 1), count) + lo
    except CorruptStreamError:
        raise
    except Exception as exc:
        raise CorruptStreamError(f"palette: entries cannot be decoded ({exc})") from exc
    if not decoder.is_empty() or out.max() > 255:
        raise CorruptStreamError("palette: entries are corrupt")
    return out.astype(np.uint8), len(data)

