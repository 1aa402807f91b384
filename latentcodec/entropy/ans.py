"""``ans``: rANS via constriction with a static categorical model per channel.

The per-channel histograms are quantized to integer frequencies (``table_bits`` of
precision) and sent in front of the ANS words; both sides hand constriction the same
exact dyadic probabilities ``freq / 2**table_bits``, so decoding is bit-exact anywhere.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..bitstream import Reader
from ..errors import CorruptStreamError, StageConfigError, StageInputError
from ..stages import EntropyCoder
from .rans import ReverseEncoder, ans_decoder, categorical
from .tables import MAX_ALPHABET, quantize_counts, read_table, write_table

DEFAULT_TABLE_BITS = 12
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


class ANSCoder(EntropyCoder):
    """Static per-channel categorical model + rANS (axis 0 of the symbols is the channel).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> symbols = rng.integers(-3, 4, size=(4, 16, 16)).astype(np.int32)
    >>> coder = ANSCoder()
    >>> data = coder.encode(symbols)
    >>> assert np.array_equal(coder.decode(data, symbols.shape), symbols)
    """

    name: ClassVar[str] = "ans"
    version: ClassVar[int] = 1

    def __init__(self, table_bits: int = DEFAULT_TABLE_BITS) -> None:
        if not isinstance(table_bits, int) or not 8 <= table_bits <= 16:
            raise StageConfigError(f"ans: table_bits must be an int in 8..16, got {table_bits!r}")
        self.table_bits = table_bits

    def wire_params(self) -> bytes:
        return b"" if self.table_bits == DEFAULT_TABLE_BITS else bytes([self.table_bits])

    @classmethod
    def config_from_wire(cls, params: bytes) -> dict[str, Any]:
        if not params:
            return {"table_bits": DEFAULT_TABLE_BITS}
        if len(params) != 1 or not 8 <= params[0] <= 16:
            raise CorruptStreamError("ans: bad table precision in stream")
        return {"table_bits": params[0]}

    def encode(self, symbols: np.ndarray) -> bytes:
        s = np.asarray(symbols)
        if s.ndim < 1 or s.size == 0 or not np.issubdtype(s.dtype, np.integer):
            raise StageInputError(f"ans: expected a non-empty integer array, got {s.dtype} {s.shape}")
        channels = s.reshape(s.shape[0], -1).astype(np.int64)
        header = bytearray()
        plans = []
        for row in channels:
            lo, hi = int(row.min()), int(row.max())
            k = hi - lo + 1
            if k > MAX_ALPHABET:
                raise StageInputError(f"ans: a channel spans {k} symbols, more than {MAX_ALPHABET}")
            counts = np.bincount(row - lo, minlength=k)
            if int((counts > 0).sum()) > (1 << self.table_bits):
                raise StageInputError("ans: more distinct symbols than table_bits allows; raise table_bits")
            freqs = quantize_counts(counts, self.table_bits)
            header += write_table(lo, freqs)
            plans.append((row - lo, freqs))
        encoder = ReverseEncoder()
        for shifted, freqs in plans:
            if len(freqs) > 1:  # a constant channel takes no words
                encoder.add(shifted, categorical(freqs, self.table_bits))
        return bytes(header) + encoder.finish()

    def decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        if len(shape) < 1 or any(int(n) <= 0 for n in shape):
            raise StageInputError(f"ans: bad shape {shape}")
        n_channels = int(shape[0])
        per_channel = int(np.prod(shape[1:], dtype=np.int64))
        r = Reader(data)
        tables = [read_table(r, self.table_bits, f"ans channel {c} table") for c in range(n_channels)]
        for c, (lo, freqs) in enumerate(tables):  # SPEC 6.1: m_c + K_c - 1 must fit in int32
            if not INT32_MIN <= lo <= lo + len(freqs) - 1 <= INT32_MAX:
                raise CorruptStreamError(f"ans: channel {c} table spans {lo}..{lo + len(freqs) - 1}, beyond int32")
        decoder = ans_decoder(r.take(r.remaining(), "ans words"))
        out = np.empty((n_channels, per_channel), dtype=np.int32)
        try:
            for c, (lo, freqs) in enumerate(tables):
                if len(freqs) == 1:
                    out[c] = lo
                else:
                    out[c] = decoder.decode(categorical(freqs, self.table_bits), per_channel) + lo
        except Exception as exc:  # constriction raises on exhausted or invalid data
            raise CorruptStreamError(f"ans: payload cannot be decoded ({exc})") from exc
        if not decoder.is_empty():
            raise CorruptStreamError("ans: payload has data left over after the last symbol")
        return out.reshape(tuple(int(n) for n in shape))

    def rate_model(self, device: Any) -> Any:
        """A per-channel histogram proxy of the bits (:class:`latentcodec.rdo.rate_histogram.HistogramRate`)."""
        from ..rdo.rate_histogram import HistogramRate

        return HistogramRate()
