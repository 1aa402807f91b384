"""Integer probability tables: built from histograms, serialised compactly.

Everything here is integer arithmetic, so the table a decoder reads is exactly the one
the encoder used, on every machine.
"""

from __future__ import annotations

import numpy as np

from ..bitstream import Reader, write_varint
from ..errors import CorruptStreamError

MAX_ALPHABET = 1 << 16


def zigzag(value: int) -> int:
    return (value << 1) if value >= 0 else ((-value << 1) - 1)


def unzigzag(value: int) -> int:
    return (value >> 1) if not value & 1 else -((value + 1) >> 1)


def quantize_counts(counts: np.ndarray, precision_bits: int) -> np.ndarray:
    """Scale integer counts to frequencies summing to ``2**precision_bits``.

    Every nonzero count keeps a frequency >= 1; the rounding remainder is settled on the
    largest entries first (ties by index), so the result is a pure function of the counts.
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    target = 1 << precision_bits
    if total <= 0:
        raise ValueError("empty histogram")
    if int((counts > 0).sum()) > target:
        raise ValueError("more distinct symbols than the table precision can represent")
    freqs = (counts * target) // total
    freqs[(counts > 0) & (freqs == 0)] = 1
    diff = target - int(freqs.sum())
    order = np.lexsort((np.arange(len(counts)), -counts))  # largest count first
    while diff != 0:
        for i in order:
            if diff == 0:
                break
            if diff > 0:
                freqs[i] += 1
                diff -= 1
            elif freqs[i] > 1:
                freqs[i] -= 1
                diff += 1
    return freqs


def write_table(min_symbol: int, freqs: np.ndarray) -> bytes:
    """``zigzag(min) | K | freq[0..K-2]`` as varints; the last frequency is implied.

    A zero frequency is followed by a varint count of further zeros, so sparse
    alphabets (a rare outlier far from the rest) cost bytes per *distinct* symbol only.
    """
    out = bytearray(write_varint(zigzag(min_symbol)) + write_varint(len(freqs)))
    body = [int(f) for f in freqs[:-1]]
    i = 0
    while i < len(body):
        out += write_varint(body[i])
        if body[i] == 0:
            run = 0
            while i + 1 + run < len(body) and body[i + 1 + run] == 0:
                run += 1
            out += write_varint(run)
            i += run
        i += 1
    return bytes(out)


def read_table(r: Reader, precision_bits: int, what: str) -> tuple[int, np.ndarray]:
    min_symbol = unzigzag(r.varint(f"{what} minimum", (1 << 32) - 1))
    k = r.varint(f"{what} alphabet size", MAX_ALPHABET)
    if k < 1:
        raise CorruptStreamError(f"{what}: empty alphabet")
    target = 1 << precision_bits
    if k == 1:
        return min_symbol, np.array([target], dtype=np.int64)
    freqs = np.zeros(k, dtype=np.int64)
    i = 0
    while i < k - 1:
        f = r.varint(f"{what} frequency", target)
        freqs[i] = f
        if f == 0:
            i += r.varint(f"{what} zero run", k - 2 - i)
        i += 1
    last = target - int(freqs[:-1].sum())
    if last < 1 or freqs[0] < 1:
        raise CorruptStreamError(f"{what}: frequencies do not sum to the table total")
    freqs[-1] = last
    return min_symbol, freqs
