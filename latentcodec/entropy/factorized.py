"""``ans-factorized``: a learned per-channel prior (CompressAI ``EntropyBottleneck``) + rANS.

Unlike ``ans`` no histogram travels in the stream: the per-channel integer tables were
exported from a trained ``EntropyBottleneck`` and ship in the package; the stream only
names them by content hash (see :mod:`latentcodec.entropy.priors`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..errors import StageInputError
from .priors import PartDecoder, PriorTableCoder, encode_parts, ideal_bits
from .rans import ans_decoder


class ANSFactorizedCoder(PriorTableCoder):
    """Static learned per-channel model (axis 0 is the channel) + rANS.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> symbols = rng.integers(-4, 5, size=(4, 8, 8)).astype(np.int32)
    >>> symbols[0, 0, 0] = 100000  # far outside the tables: escaped
    >>> coder = ANSFactorizedCoder()
    >>> data = coder.encode(symbols)
    >>> decoder = ANSFactorizedCoder.from_config(ANSFactorizedCoder.config_from_wire(coder.wire_params()))
    >>> assert np.array_equal(decoder.decode(data, symbols.shape), symbols)
    """

    name: ClassVar[str] = "ans-factorized"
    #: 2: the stream names the prior by its canonical digest; 1: by its file hash (still read).
    version: ClassVar[int] = 2
    supported_versions: ClassVar[tuple[int, ...]] = (1, 2)
    prior_kind: ClassVar[str] = "factorized"

    def __init__(self, prior: str = "taesd") -> None:
        super().__init__(prior)

    def _table_ids(self, shape: tuple[int, ...]) -> np.ndarray:
        channels = len(self.tables.n)
        if len(shape) < 2 or int(shape[0]) != channels or min(int(n) for n in shape) <= 0:
            raise StageInputError(f"{self.name}: expected symbols ({channels}, ...), got {tuple(shape)}")
        return np.broadcast_to(np.arange(channels).reshape((-1,) + (1,) * (len(shape) - 1)), tuple(int(n) for n in shape))

    def _values(self, symbols: np.ndarray) -> np.ndarray:
        s = np.asarray(symbols)
        if not np.issubdtype(s.dtype, np.integer):
            raise StageInputError(f"{self.name}: expected integer symbols, got {s.dtype}")
        return s.astype(np.int64)

    def encode(self, symbols: np.ndarray) -> bytes:
        s = self._values(symbols)
        if np.abs(s).max(initial=0) > (1 << 30):  # only escapes reach it, and they carry |x| <= 2^30 (SPEC 3.5)
            raise StageInputError(f"{self.name}: symbols beyond +-2^30 cannot be coded")
        return encode_parts([(s, self._table_ids(s.shape), self.tables)])

    def ideal_bits(self, symbols: np.ndarray) -> float:
        """The model's cross-entropy of ``symbols`` in bits."""
        s = self._values(symbols)
        return ideal_bits(s, self._table_ids(s.shape), self.tables)

    def decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        ids = self._table_ids(tuple(shape))
        dec = PartDecoder(ans_decoder(data))
        values = dec.part(ids, self.tables)
        dec.finish()
        return values.reshape(ids.shape).astype(np.int32)

    def rate_model(self, device: Any) -> Any:
        """Its integer tables, linear between integers (:class:`latentcodec.rdo.rate_tables.TableRate`)."""
        from ..rdo.rate_tables import TableRate

        return TableRate(self.tables, device)
