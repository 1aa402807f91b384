"""``ans-context``: an untrained, image-adaptive context model on a checkerboard pyramid.

(Unrelated to the learned hyperprior's context networks in :mod:`latentcodec.entropy.hyperprior`.)

The symbols of each channel are coded coarse to fine.  Grid ``G_k`` holds every
``2**k``-th row and column; the coarsest grid is coded first, each with one centre and
one scale per channel.  Going from ``G_{k+1}`` to ``G_k`` the new positions come in two
checkerboard phases: first those whose four *diagonal* neighbours are known, then those
whose four *direct* neighbours are known.  Each new symbol is predicted by the sum of
its four neighbours (a mean in quarter symbols, so exactly as the hyperprior's quarter
offsets) and coded with a discretised Gaussian whose scale is chosen per context
``(level, channel, phase, activity)``, activity being the spread of the neighbours.

The encoder picks each context's scale index (one byte in the stream) by minimising the
exact code length; all context computation is integer numpy over whole grids, and the
probability tables are integer tables from a shipped file identified by hash.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..bitstream import Reader, write_varint
from ..errors import CorruptStreamError, StageInputError
from .priors import PartDecoder, PriorTableCoder, TableSet, encode_parts, ideal_bits
from .rans import ans_decoder
from .tables import unzigzag, zigzag

#: Upper bounds of the activity bins (max - min of the four neighbours, in symbols).
ACTIVITY_EDGES = np.array([0, 1, 2, 3, 4, 6, 8, 12, 16, 24], dtype=np.int64)
NUM_BINS = len(ACTIVITY_EDGES) + 1
MIN_COARSE = 8  # the coarsest grid is the first with a side below this
#: Phase -> the offsets of the four already-known neighbours of its positions.
NEIGHBOUR_OFFSETS = {
    1: ((-1, -1), (-1, 1), (1, -1), (1, 1)),  # diagonal neighbours
    2: ((-1, 0), (1, 0), (0, -1), (0, 1)),  # direct neighbours
}


def num_levels(h: int, w: int) -> int:
    """How many times the grid is halved before the coarse grid is coded."""
    k = 0
    while min(-(-h // (1 << k)), -(-w // (1 << k))) >= MIN_COARSE and k < 6:
        k += 1
    return k


def _phase_mask(h: int, w: int, phase: int) -> np.ndarray:
    i = np.arange(h)[:, None] % 2
    j = np.arange(w)[None, :] % 2
    if phase == 0:
        return (i == 0) & (j == 0)
    if phase == 1:
        return (i == 1) & (j == 1)
    return (i + j) == 1


def _contexts(grid: np.ndarray, phase: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ``phase`` positions of ``grid (C, h, w)``: neighbour sum, activity bin, mask.

    Positions of this and later phases are zeroed first, so encoder and decoder see the
    same values; reflection at the border keeps each neighbour's parity (its phase).
    """
    c, h, w = grid.shape
    mask = _phase_mask(h, w, phase)
    known = grid * (_phase_mask(h, w, 0) | (_phase_mask(h, w, 1) if phase == 2 else False))
    mode = "reflect" if min(h, w) >= 2 else "edge"
    padded = np.pad(known, ((0, 0), (1, 1), (1, 1)), mode=mode)
    ii, jj = np.nonzero(mask)
    neigh = np.stack([padded[:, ii + 1 + di, jj + 1 + dj] for di, dj in NEIGHBOUR_OFFSETS[phase]])
    total = neigh.sum(axis=0)
    activity = neigh.max(axis=0) - neigh.min(axis=0)
    return total, np.searchsorted(ACTIVITY_EDGES, activity, side="left"), mask


class ANSContextCoder(PriorTableCoder):
    """Checkerboard-pyramid context model, no training, per-image scales + rANS.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> smooth = np.cumsum(rng.integers(-1, 2, size=(4, 24, 40)), axis=2).astype(np.int32)
    >>> coder = ANSContextCoder()
    >>> data = coder.encode(smooth)
    >>> decoder = ANSContextCoder.from_config(ANSContextCoder.config_from_wire(coder.wire_params()))
    >>> assert np.array_equal(decoder.decode(data, smooth.shape), smooth)
    """

    name: ClassVar[str] = "ans-context"
    #: 2: the stream names the prior by its canonical digest; 1: by its file hash (still read).
    version: ClassVar[int] = 2
    supported_versions: ClassVar[tuple[int, ...]] = (1, 2)
    prior_kind: ClassVar[str] = "context"

    def __init__(self, prior: str = "gaussian") -> None:
        super().__init__(prior)

    @property
    def num_scales(self) -> int:
        return len(self.tables.n) // 4

    # --- the plan: which symbols are coded with which context, in decode order ----------
    def _steps(self, shape: tuple[int, ...]) -> list[tuple[int, int]]:
        c, h, w = shape
        levels = num_levels(h, w)
        return [(k, phase) for k in range(levels - 1, -1, -1) for phase in (1, 2)]

    def _best_scales(self, values: np.ndarray, quarter: np.ndarray, ctx: np.ndarray, n_ctx: int) -> np.ndarray:
        """Per context, the scale index with the smallest exact code length (255: unused)."""
        ts = self.tables
        s = self.num_scales
        cost = np.zeros((n_ctx, s))
        for scale in range(s):
            t = 4 * scale + quarter
            idx = values - ts.lo[t]
            esc = (idx < 0) | (idx >= ts.n[t] - 1)
            idx = np.where(esc, ts.n[t] - 1, idx)
            bits = ts.bits - np.log2(ts.freqs[t, idx].astype(np.float64)) + 32.0 * esc
            cost[:, scale] = np.bincount(ctx, weights=bits, minlength=n_ctx)
        best = np.argmin(cost, axis=1).astype(np.int64)
        best[np.bincount(ctx, minlength=n_ctx) == 0] = 255
        return best

    def _check(self, shape: tuple[int, ...]) -> None:
        if len(shape) != 3 or min(int(n) for n in shape) <= 0:
            raise StageInputError(f"{self.name}: expected symbols (C, h, w), got {tuple(shape)}")

    def _encode_parts(self, symbols: np.ndarray) -> tuple[bytes, list[tuple[np.ndarray, np.ndarray, TableSet]]]:
        s = np.asarray(symbols)
        if not np.issubdtype(s.dtype, np.integer):
            raise StageInputError(f"{self.name}: expected integer symbols, got {s.dtype}")
        self._check(s.shape)
        x = s.astype(np.int64)
        c, h, w = x.shape
        levels = num_levels(h, w)
        header = bytearray()
        parts = []
        # coarse grid: a centre (median) and a scale per channel
        coarse = x[:, :: 1 << levels, :: 1 << levels]
        centre = np.median(coarse.reshape(c, -1), axis=1).astype(np.int64)
        resid = coarse - centre[:, None, None]
        ctx = np.broadcast_to(np.arange(c)[:, None, None], coarse.shape).ravel()
        scales = self._best_scales(resid.ravel(), np.zeros(ctx.shape, np.int64), ctx, c)
        for ch in range(c):
            header += write_varint(zigzag(int(centre[ch]))) + bytes([int(scales[ch])])
        parts.append((resid.ravel(), 4 * scales[ctx], self.tables))
        for k, phase in self._steps(x.shape):
            grid = x[:, :: 1 << k, :: 1 << k]
            total, bins, mask = _contexts(grid, phase)
            values = grid[:, mask] - (total >> 2)
            ctx = (np.arange(c)[:, None] * NUM_BINS + bins).ravel()
            quarter = (total & 3).ravel()
            scales = self._best_scales(values.ravel(), quarter, ctx, c * NUM_BINS)
            used = scales != 255
            header += np.packbits(used).tobytes() + bytes(scales[used].astype(np.uint8).tolist())
            parts.append((values.ravel(), 4 * scales[ctx] + quarter, self.tables))
        return bytes(header), parts

    def encode(self, symbols: np.ndarray) -> bytes:
        header, parts = self._encode_parts(symbols)
        if any(np.abs(values).max(initial=0) > (1 << 30) for values, _, _ in parts):  # escapes carry |x| <= 2^30 (SPEC 3.5)
            raise StageInputError(f"{self.name}: symbols too far from their neighbours (a residual beyond +-2^30) cannot be coded")
        return header + encode_parts(parts)

    def ideal_bits(self, symbols: np.ndarray) -> float:
        """The model's code length of ``symbols`` in bits, the per-image header included."""
        header, parts = self._encode_parts(symbols)
        return 8 * len(header) + sum(ideal_bits(v, t, ts) for v, t, ts in parts)

    def decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        self._check(tuple(shape))
        c, h, w = (int(n) for n in shape)
        levels = num_levels(h, w)
        r = Reader(data)
        n_scales = self.num_scales

        def scale_bytes(n: int, what: str) -> np.ndarray:
            v = np.frombuffer(r.take(n, what), dtype=np.uint8).astype(np.int64)
            if (v >= n_scales).any():
                raise CorruptStreamError(f"{self.name}: {what} out of range")
            return v

        centre = np.empty(c, dtype=np.int64)
        coarse_scales = np.empty(c, dtype=np.int64)
        for ch in range(c):
            centre[ch] = unzigzag(r.varint("ans-context coarse centre", (1 << 32) - 1))
            coarse_scales[ch] = scale_bytes(1, "coarse scale")[0]
        steps = self._steps((c, h, w))
        n_ctx = c * NUM_BINS
        step_scales = []
        for _ in steps:
            used = np.unpackbits(np.frombuffer(r.take((n_ctx + 7) // 8, "context map"), dtype=np.uint8))[:n_ctx].astype(bool)
            scales = np.full(n_ctx, 255, dtype=np.int64)
            scales[used] = scale_bytes(int(used.sum()), "context scales")
            step_scales.append(scales)
        dec = PartDecoder(ans_decoder(r.take(r.remaining(), "ans words")))
        x = np.zeros((c, h, w), dtype=np.int64)
        coarse = x[:, :: 1 << levels, :: 1 << levels]
        ctx = np.broadcast_to(np.arange(c)[:, None, None], coarse.shape)
        coarse[...] = dec.part(4 * coarse_scales[ctx], self.tables).reshape(coarse.shape) + centre[:, None, None]
        for (k, phase), scales in zip(steps, step_scales):
            grid = x[:, :: 1 << k, :: 1 << k]  # a view: writing it fills x
            total, bins, mask = _contexts(grid, phase)
            ctx = (np.arange(c)[:, None] * NUM_BINS + bins).ravel()
            if (scales[ctx] == 255).any():
                raise CorruptStreamError(f"{self.name}: a symbol falls in a context the stream declared unused")
            values = dec.part(4 * scales[ctx] + (total & 3).ravel(), self.tables)
            grid[:, mask] = values.reshape(c, -1) + (total >> 2)
        dec.finish()
        if np.abs(x).max(initial=0) > np.iinfo(np.int32).max:
            raise CorruptStreamError(f"{self.name}: decoded symbols out of range")
        return x.astype(np.int32)

    def rate_model(self, device: Any) -> Any:
        """A per-channel histogram proxy of the bits (:class:`latentcodec.rdo.rate_histogram.HistogramRate`)."""
        from ..rdo.rate_histogram import HistogramRate

        return HistogramRate()
