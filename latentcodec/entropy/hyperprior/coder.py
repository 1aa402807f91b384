"""``ans-hyperprior``: the stage (see the package docstring for the model)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ...errors import CorruptStreamError, StageConfigError, StageInputError
from ..priors import PartDecoder, PriorTableCoder, TableSet, encode_parts, ideal_bits
from ..rans import ans_decoder
from .model import HyperpriorModel


#: Most encoder-side refinement steps ``refine_z`` accepts (each is one float pass of the decoder's networks).
MAX_REFINE_STEPS = 1000


def _round_z(z_float) -> np.ndarray:  # type: ignore[no-untyped-def]
    import torch

    return torch.round(z_float).clamp(-(1 << 15), 1 << 15)[0].to("cpu").numpy().astype(np.int64)


def _parts_bits(parts: list[tuple[np.ndarray, np.ndarray, TableSet]]) -> float:
    return sum(ideal_bits(v, t, ts) for v, t, ts in parts)


class ANSHyperpriorCoder(PriorTableCoder):
    """Mean-scale hyperprior with channel/spatial context (trained on TAESD symbols at step 0.5) + rANS.

    ``prior`` is a shipped prior name, a ``.npz`` path from ``latentcodec train-prior``
    or, when read from a stream, ``#`` and the prior's content hash.  ``device`` and
    ``dtype`` only choose where the encoder's hyper-analysis runs.  ``refine_z > 0``
    spends that many gradient steps searching for a cheaper hyper-latent
    (:mod:`latentcodec.entropy.hyperprior.refine`); the stream and its decoding are unchanged.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> symbols = rng.integers(-4, 5, size=(4, 12, 20)).astype(np.int32)
    >>> coder = ANSHyperpriorCoder()
    >>> data = coder.encode(symbols)
    >>> decoder = ANSHyperpriorCoder.from_config(ANSHyperpriorCoder.config_from_wire(coder.wire_params()))
    >>> assert np.array_equal(decoder.decode(data, symbols.shape), symbols)
    """

    name: ClassVar[str] = "ans-hyperprior"
    #: 2: the stream names the prior by its canonical digest; 1: by its file hash (still read).
    version: ClassVar[int] = 2
    supported_versions: ClassVar[tuple[int, ...]] = (1, 2)
    #: Where to find the model file is a runtime choice; the stream carries its hash.
    runtime_options: ClassVar[frozenset[str]] = frozenset({"device", "dtype", "prior", "refine_z"})
    prior_kind: ClassVar[str] = "hyperprior"

    def __init__(self, prior: str = "taesd", device: str = "cpu", dtype: str = "float32", refine_z: int = 0) -> None:
        super().__init__(prior)
        if isinstance(refine_z, bool) or not isinstance(refine_z, int) or not 0 <= refine_z <= MAX_REFINE_STEPS:
            raise StageConfigError(f"{self.name}: refine_z must be an int in 0..{MAX_REFINE_STEPS}, got {refine_z!r}")
        self.device = device
        self.dtype = dtype
        self.refine_z = refine_z
        self._model: HyperpriorModel | None = None
        self._refined: tuple[bytes, np.ndarray] | None = None  # (symbols digest, chosen z): encode after ideal_bits reuses it

    @property
    def model(self) -> HyperpriorModel:
        """The prior file unpacked: tables, integer networks, hyper-analysis weights."""
        if self._model is None:
            self._model = HyperpriorModel(self.prior_file)
        return self._model

    def _check(self, shape: tuple[int, ...]) -> None:
        if len(shape) != 3 or int(shape[0]) != self.model.channels or min(int(n) for n in shape) <= 0:
            raise StageInputError(f"{self.name}: expected symbols ({self.model.channels}, h, w), got {tuple(shape)}")

    def _parts(self, symbols: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, TableSet]]:
        m = self.model
        y = np.asarray(symbols)
        if not np.issubdtype(y.dtype, np.integer):
            raise StageInputError(f"{self.name}: expected integer symbols, got {y.dtype}")
        self._check(y.shape)
        y = y.astype(np.int64)
        if np.abs(y).max(initial=0) > (1 << 30):  # the decoder refuses them (SPEC 6.5)
            raise StageInputError(f"{self.name}: symbols beyond +-2^30 cannot be coded")
        z_float = m.analysis(y, self.device, self.dtype)
        z = _round_z(z_float)
        if not self.refine_z:
            return self._parts_with(y, z)
        import hashlib

        from .refine import refine_z

        key = hashlib.sha256(y.tobytes() + repr(y.shape).encode()).digest()
        if self._refined is not None and self._refined[0] == key:
            return self._parts_with(y, self._refined[1])
        plain = self._parts_with(y, z)
        z_refined = refine_z(m, y, z_float, self.refine_z)
        best = plain
        if not np.array_equal(z_refined, z):
            refined = self._parts_with(y, z_refined)
            # the float search only steers; keep its z only if the exact code length is smaller
            if _parts_bits(refined) < _parts_bits(plain):
                best = refined
        self._refined = (key, best[0][0])
        return best

    def _parts_with(self, y: np.ndarray, z: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, TableSet]]:
        m = self.model
        mu_h, ls_h = m.hyper(z, y.shape)
        z_table = np.broadcast_to(np.arange(m.z_channels)[:, None, None], z.shape)
        parts = [(z, z_table, m.z_tables)]
        for k, p, sel in m.groups(y.shape):
            c = m.channel_of(k)
            table, centre = m.group_params(y, mu_h, ls_h, k, p, sel)
            values = y if c is None else y[c][sel]
            parts.append((values - centre, table, m.y_tables))
        return parts

    def encode(self, symbols: np.ndarray) -> bytes:
        parts = self._parts(symbols)
        if any(np.abs(values).max(initial=0) > (1 << 30) for values, _, _ in parts):  # escapes carry |x| <= 2^30 (SPEC 3.5)
            raise StageInputError(f"{self.name}: a symbol this far from its predicted mean (beyond +-2^30) cannot be coded")
        return encode_parts(parts)

    def ideal_bits(self, symbols: np.ndarray) -> float:
        """The model's cross-entropy of ``symbols`` in bits (hyper-latent included)."""
        return _parts_bits(self._parts(symbols))

    def decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        self._check(tuple(shape))
        m = self.model
        dec = PartDecoder(ans_decoder(data))
        zs = m.z_shape(shape)
        z = dec.part(np.broadcast_to(np.arange(m.z_channels)[:, None, None], zs), m.z_tables).reshape(zs)
        mu_h, ls_h = m.hyper(z, shape)
        y = np.zeros(tuple(int(n) for n in shape), dtype=np.int64)
        for k, p, sel in m.groups(shape):
            c = m.channel_of(k)
            table, centre = m.group_params(y, mu_h, ls_h, k, p, sel)
            values = dec.part(table, m.y_tables).reshape(table.shape) + centre
            if c is None:
                y = values
            else:
                y[c][sel] = values
        dec.finish()
        if np.abs(y).max(initial=0) > (1 << 30):
            raise CorruptStreamError(f"{self.name}: decoded symbol out of range")
        return y.astype(np.int32)

    def rate_model(self, device: Any) -> Any:
        """The float twin of its networks (:class:`latentcodec.rdo.rate_hyperprior.HyperpriorRate`)."""
        from ...rdo.rate_hyperprior import HyperpriorRate

        return HyperpriorRate(self, device)
