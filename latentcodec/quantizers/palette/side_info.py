"""The palette's side info: ``count - 1 | channels - 1``, then the entries.

Two codings: ``zlib`` of the raw bytes in popularity order (Bühlmann's seed), or the
``compact`` code of a lexicographically sorted palette (channel 0 as log-binned deltas,
the others uniform within their range), packed with exact integer rANS.
"""

from __future__ import annotations

import zlib

import numpy as np

from ...bitstream import MAX_LATENT_CHANNELS, Reader
from ...entropy.binned import TABLE_BITS, binned_decode, binned_plan
from ...entropy.rans import ReverseEncoder, ans_decoder, uniform
from ...entropy.tables import read_table
from ...errors import CorruptStreamError, StageInputError

PALETTE_CODINGS = ("zlib", "compact")


def encode_palette(palette: np.ndarray, coding: str) -> bytes:
    """``count - 1 | channels - 1`` bytes, then the entries (zlib of raw bytes, or the compact code)."""
    head = bytes([len(palette) - 1, palette.shape[1] - 1])
    if coding == "zlib":
        return head + zlib.compress(np.ascontiguousarray(palette, dtype=np.uint8).tobytes(), 9)
    return head + encode_sorted_palette(palette)


def decode_palette(data: bytes, coding: str) -> tuple[np.ndarray, int]:
    """Inverse of :func:`encode_palette`; returns the palette and the bytes consumed."""
    if len(data) < 2:
        raise CorruptStreamError("palette: side info is too short")
    count, channels = data[0] + 1, data[1] + 1
    if channels > MAX_LATENT_CHANNELS:  # it must equal the header's C (SPEC 5.3), at most 32
        raise CorruptStreamError(f"palette: side info names {channels} channels, more than a latent has")
    if coding == "zlib":
        inflater = zlib.decompressobj()
        try:
            raw = inflater.decompress(data[2:], count * channels)
        except zlib.error as exc:
            raise CorruptStreamError(f"palette: cannot inflate the palette ({exc})") from exc
        if len(raw) != count * channels or not inflater.eof:
            raise CorruptStreamError("palette: palette data is truncated")
        used = len(data) - 2 - len(inflater.unused_data)
        return np.frombuffer(raw, dtype=np.uint8).reshape(count, channels).copy(), 2 + used
    palette, used = decode_sorted_palette(data[2:], count, channels)
    return palette, 2 + used


def compact_order(palette: np.ndarray) -> np.ndarray:
    """The canonical order of the compact palette code: lexicographic, channel 0 first."""
    return np.lexsort(palette.T[::-1])


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
    p = np.asarray(palette, dtype=np.int64)
    if p.ndim != 2 or p.min() < 0 or p.max() > 255:
        raise StageInputError("palette: entries must be uint8")
    if np.any(np.diff(p[:, 0]) < 0):
        raise StageInputError("palette: the compact code needs a palette sorted by channel 0")
    pushes = ReverseEncoder()
    head = bytearray([int(p[0, 0])])
    table = binned_plan(np.diff(p[:, 0]), pushes) if len(p) > 1 else b""
    for c in range(1, p.shape[1]):
        lo, hi = int(p[:, c].min()), int(p[:, c].max())
        head += bytes([lo, hi])
        if hi > lo:
            pushes.add(p[:, c] - lo, uniform(hi - lo + 1))
    return bytes(head) + table + pushes.finish()


def decode_sorted_palette(data: bytes, count: int, channels: int) -> tuple[np.ndarray, int]:
    """Inverse of :func:`encode_sorted_palette`; it owns the rest of ``data``."""
    r = Reader(data)
    first = r.u8("palette first entry")
    ranges = [(r.u8("palette minimum"), r.u8("palette maximum")) for _ in range(1, channels)]
    table = read_table(r, TABLE_BITS, "palette delta table") if count > 1 else None
    decoder = ans_decoder(r.take(r.remaining(), "palette words"))
    out = np.empty((count, channels), dtype=np.int64)
    try:
        deltas = binned_decode(table, count - 1, decoder) if table is not None else np.zeros(0, np.int64)
        out[:, 0] = first + np.concatenate([[0], np.cumsum(deltas)])
        for c, (lo, hi) in enumerate(ranges, start=1):
            if hi < lo:
                raise CorruptStreamError("palette: channel range is inverted")
            out[:, c] = lo if hi == lo else decoder.decode(uniform(hi - lo + 1), count) + lo
    except CorruptStreamError:
        raise
    except Exception as exc:
        raise CorruptStreamError(f"palette: entries cannot be decoded ({exc})") from exc
    if not decoder.is_empty() or out.max() > 255:
        raise CorruptStreamError("palette: entries are corrupt")
    return out.astype(np.uint8), len(data)
