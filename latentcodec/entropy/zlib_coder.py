"""``zlib``: the baseline to beat.  Symbols are offset into the smallest integer type."""

from __future__ import annotations

import zlib
from typing import Any, ClassVar

import numpy as np

from ..bitstream import Reader, write_varint
from ..errors import CorruptStreamError, StageConfigError, StageInputError
from ..stages import EntropyCoder
from .tables import unzigzag, zigzag

_DTYPES = {0: np.dtype("u1"), 1: np.dtype("<u2"), 2: np.dtype("<u4")}


class ZlibCoder(EntropyCoder):
    """``width byte | zigzag(min) | zlib(symbols - min)``.

    >>> import numpy as np
    >>> symbols = np.arange(-5, 59, dtype=np.int32).reshape(4, 4, 4)
    >>> coder = ZlibCoder()
    >>> assert np.array_equal(coder.decode(coder.encode(symbols), symbols.shape), symbols)
    """

    name: ClassVar[str] = "zlib"
    version: ClassVar[int] = 1

    def __init__(self, level: int = 9) -> None:
        if not isinstance(level, int) or not 0 <= level <= 9:
            raise StageConfigError(f"zlib: level must be an int in 0..9, got {level!r}")
        self.level = level

    def encode(self, symbols: np.ndarray) -> bytes:
        s = np.asarray(symbols)
        if s.size == 0 or not np.issubdtype(s.dtype, np.integer):
            raise StageInputError(f"zlib: expected a non-empty integer array, got {s.dtype} {s.shape}")
        lo = int(s.min())
        span = int(s.max()) - lo
        code = 0 if span < 256 else 1 if span < 65536 else 2
        body = (s.astype(np.int64) - lo).astype(_DTYPES[code]).tobytes()
        return bytes([code]) + write_varint(zigzag(lo)) + zlib.compress(body, self.level)

    def decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        count = int(np.prod(shape, dtype=np.int64))
        r = Reader(data)
        code = r.u8("zlib width")
        if code not in _DTYPES:
            raise CorruptStreamError(f"zlib: unknown symbol width code {code}")
        lo = unzigzag(r.varint("zlib minimum", (1 << 32) - 1))
        dtype = _DTYPES[code]
        expected = count * dtype.itemsize
        inflater = zlib.decompressobj()
        try:
            body = inflater.decompress(r.take(r.remaining(), "zlib data"), expected)
        except zlib.error as exc:
            raise CorruptStreamError(f"zlib: payload cannot be inflated ({exc})") from exc
        if len(body) != expected or inflater.unconsumed_tail or not inflater.eof:
            raise CorruptStreamError("zlib: payload does not hold exactly the expected symbols")
        if inflater.unused_data:  # the encoder never writes any (SPEC 6.2)
            raise CorruptStreamError("zlib: payload has bytes after the end of its zlib stream")
        values = np.frombuffer(body, dtype=dtype).astype(np.int64) + lo
        if values.size and (values.max() > np.iinfo(np.int32).max or values.min() < np.iinfo(np.int32).min):
            raise CorruptStreamError("zlib: symbols out of range")
        return values.astype(np.int32).reshape(shape)

    def rate_model(self, device: Any) -> Any:
        """A per-channel histogram proxy of the bits (:class:`latentcodec.rdo.rate_histogram.HistogramRate`)."""
        from ..rdo.rate_histogram import HistogramRate

        return HistogramRate()
