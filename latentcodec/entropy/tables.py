"""Integer probability tables: zigzag integers, frequency normalisation, compact table bytes.

Everything a decoder reads here is integer arithmetic, so the table it builds is exactly
the one the encoder used, on every machine.  The two normalisations serve two moments:
:func:`quantize_counts` turns an image's histogram into the table the ``ans`` stream
carries; :func:`pmf_to_freqs` turns a trained model's float pmf into the integer table a
prior file ships (it runs only at export time).
"""

from __future__ import annotations

import numpy as np

from ..bitstream import Reader, write_varint
from ..errors import CorruptStreamError

MAX_ALPHABET = 1 << 16


def zigzag(value: int) -> int:
    """Signed -> unsigned: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ...

    >>> [zigzag(v) for v in (0, -1, 1, -2)], [unzigzag(u) for u in (0, 1, 2, 3)]
    ([0, 1, 2, 3], [0, -1, 1, -2])
    """
    return (value << 1) if value >= 0 else ((-value << 1) - 1)


def unzigzag(value: int) -> int:
    """Inverse of :func:`zigzag`."""
    return (value >> 1) if not value & 1 else -((value + 1) >> 1)


def zigzag_array(values: np.ndarray) -> np.ndarray:
    """:func:`zigzag` of every element, as uint64."""
    v = np.asarray(values).astype(np.int64)
    return np.where(v >= 0, v << 1, ((-v) << 1) - 1).astype(np.uint64)


def unzigzag_array(values: np.ndarray) -> np.ndarray:
    """:func:`unzigzag` of every element, as int64."""
    u = np.asarray(values).astype(np.int64)
    return np.where(u & 1, -((u + 1) >> 1), u >> 1)


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


def pmf_to_freqs(pmf: np.ndarray, bits: int) -> np.ndarray:
    """Float pmf (escape last) -> integer frequencies >= 1 summing to ``2**bits``.

    Each entry gets 1 plus its share of the rest, floored; the remainder goes to the
    largest fractional parts.  Runs only when a prior is exported.
    """
    pmf = np.maximum(np.asarray(pmf, dtype=np.float64), 0.0)
    total = 1 << bits
    n = len(pmf)
    spare = total - n
    freqs = 1 + np.floor(pmf / pmf.sum() * spare).astype(np.int64)
    rest = total - int(freqs.sum())
    order = np.argsort(-(pmf / pmf.sum() * spare - np.floor(pmf / pmf.sum() * spare)), kind="stable")
    freqs[order[:rest]] += 1
    assert int(freqs.sum()) == total and freqs.min() >= 1
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
