"""``ans-hyperprior``: a learned mean-scale hyperprior whose decoder side is pure integers.

Encoder: a small hyper-analysis network (any device, any precision) maps the symbols
``y`` to a hyper-latent ``z = round(h_a(y))``, coded with per-channel integer tables.
Both sides then run the hyper-synthesis ``h_s(z)`` in *fixed-point integer arithmetic*
(integer weights, integer biases, floor shifts; see :class:`IntHyperSynthesis`), giving
an integer mean ``mu`` and log-scale ``ls`` per symbol in units of ``2**-ACT_BITS``.
They become a table index with integer operations only::

    scale_index = clip((ls - LOG_SCALE_MIN + LOG_SCALE_STEP // 2) // LOG_SCALE_STEP, 0, NUM_SCALES - 1)
    mq = (mu + 2**(ACT_BITS-1-b)) >> (ACT_BITS-b)    # mean in 2**-b symbols (b = mean_bits, 3 in the shipped prior)
    table = 2**b * scale_index + (mq & (2**b - 1));  coded value = y - (mq >> b)

With a context model in the prior file (the shipped one has it), ``mu`` and ``ls`` are
then refined pass by pass from already-decoded symbols, channel by channel and phase by
phase, by small integer networks (:mod:`latentcodec.entropy.hyper_context`).

The tables (discretised Gaussians for every scale and mean offset) were turned into
integer frequencies when the prior was exported and ship in the prior file.  The
hyper-analysis output is transmitted, so its float rounding never matters; nothing
the decoder computes depends on float precision, thread count or device.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..errors import CorruptStreamError, StageConfigError, StageInputError
from ..stages import EntropyCoder
from .ans import ans_words_to_bytes, ans_decoder
from .hyper_context import ACT_BITS, ACT_LIMIT, conv_int, phase_map
from .priors import PartDecoder, TableSet, encode_parts, ideal_bits, load_prior, prior_from_wire

LOG_SCALE_MIN = -589  # round(ln(0.1) * 2**ACT_BITS)
LOG_SCALE_STEP = 32  # 0.125 in natural-log units
NUM_SCALES = 48
LOG_SCALE_MIN_F = LOG_SCALE_MIN / (1 << ACT_BITS)
LOG_SCALE_STEP_F = LOG_SCALE_STEP / (1 << ACT_BITS)
LOG_SCALE_MIN_F, LOG_SCALE_STEP_F = float(LOG_SCALE_MIN_F), float(LOG_SCALE_STEP_F)


def torch_hyper_synthesis(channels: int, n: int, z_channels: int):  # type: ignore[no-untyped-def]
    """The float twin used in training: nearest x2, conv3, ReLU, nearest x2, conv3, ReLU, conv3."""
    import torch.nn as nn

    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(z_channels, n, 3, padding=1), nn.ReLU(),
        nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(n, n, 3, padding=1), nn.ReLU(),
        nn.Conv2d(n, 2 * channels, 3, padding=1),
    )


def export_int_synthesis(h_s) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """Integer weights/biases and per-layer shifts of a trained :func:`torch_hyper_synthesis`."""
    import torch.nn as nn

    from .hyper_context import export_layer

    out: dict[str, np.ndarray] = {}
    for i, conv in enumerate(m for m in h_s if isinstance(m, nn.Conv2d)):
        out[f"hs{i}_w"], out[f"hs{i}_b"], out[f"hs{i}_shift"] = export_layer(conv)
    return out


def export_analysis(h_a) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """Hyper-analysis weights as int16 with a power-of-two exponent (encoder only)."""
    import torch.nn as nn

    out: dict[str, np.ndarray] = {}
    for i, conv in enumerate(m for m in h_a if isinstance(m, nn.Conv2d)):
        for key, t in (("w", conv.weight), ("b", conv.bias)):
            a = t.detach().double().numpy()
            e = 14 - int(np.ceil(np.log2(np.abs(a).max() + 1e-12)))
            out[f"ha{i}_{key}"] = np.rint(a * 2.0**e).astype(np.int16)
            out[f"ha{i}_{key}exp"] = np.array([e], dtype=np.int32)
        out[f"ha{i}_stride"] = np.array([conv.stride[0]], dtype=np.int32)
    return out


class IntHyperSynthesis:
    """``z (Cz, hz, wz)`` int -> ``(mu, ls)`` int64 ``(C, 4hz, 4wz)`` in ``2**-ACT_BITS`` units.

    >>> import numpy as np
    >>> layer = (np.ones((2, 1, 3, 3), np.int64), np.array([0, 256]), 1, False, False)
    >>> mu, ls = IntHyperSynthesis([layer])(np.ones((1, 3, 3), np.int64))
    >>> assert int(mu[0, 1, 1]) == (9 * 256) >> 1 and int(ls[0, 1, 1]) == (9 * 256 + 256) >> 1
    >>> assert int(mu[0, 0, 0]) == (4 * 256) >> 1  # zero padding at the border
    """

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray, int, bool, bool]]) -> None:
        self.layers = layers  # (weight, bias, shift, upsample_before, relu_after)

    def __call__(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = np.asarray(z, dtype=np.int64) << ACT_BITS
        for w, b, shift, up, relu in self.layers:
            if up:
                a = a.repeat(2, axis=1).repeat(2, axis=2)
            a = conv_int(a, w, b) >> shift  # floor division by 2**shift
            if relu:
                a = np.maximum(a, 0)
            a = np.clip(a, -ACT_LIMIT, ACT_LIMIT)
        half = a.shape[0] // 2
        return a[:half], a[half:]


def indices(mu: np.ndarray, ls: np.ndarray, mean_bits: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Integer (table id, integer centre) per symbol from fixed-point mean and log-scale.

    The mean is rounded to ``2**-mean_bits`` symbols; its fraction picks one of
    ``2**mean_bits`` tables per scale.
    """
    scale = np.clip((ls - LOG_SCALE_MIN + LOG_SCALE_STEP // 2) // LOG_SCALE_STEP, 0, NUM_SCALES - 1)
    mq = (mu + (1 << (ACT_BITS - 1 - mean_bits))) >> (ACT_BITS - mean_bits)
    return (scale << mean_bits) + (mq & ((1 << mean_bits) - 1)), mq >> mean_bits


class _Model:
    """The parts of a hyperprior file a coder needs, unpacked once."""

    def __init__(self, prior) -> None:  # type: ignore[no-untyped-def]
        self.prior = prior
        self.channels = int(prior.meta["channels"])
        self.z_channels = int(prior.meta["z_channels"])
        self.step = float(prior.meta["step"])
        self.z_tables = TableSet.from_prior(prior, "z")
        self.y_tables = TableSet.from_prior(prior, "y")
        self.mean_bits = int(prior.meta.get("mean_bits", 2))
        if not 0 <= self.mean_bits <= 5 or len(self.y_tables.n) != NUM_SCALES << self.mean_bits:
            raise StageConfigError(f"{prior.path.name}: expected {NUM_SCALES << self.mean_bits} y tables")
        ups = (True, True, False)
        self.synthesis = IntHyperSynthesis(
            [(prior[f"hs{i}_w"].astype(np.int64), prior[f"hs{i}_b"].astype(np.int64), int(prior[f"hs{i}_shift"][0]), ups[i], i < 2) for i in range(3)]
        )
        self._ha: Any = None
        ctx = prior.meta.get("context")
        self.context = None
        if ctx:
            from .hyper_context import PHASE_COUNTS, IntContext

            order = [int(c) for c in ctx["order"]]
            if sorted(order) != list(range(self.channels)) or int(ctx["phases"]) not in PHASE_COUNTS:
                raise StageConfigError(f"{prior.path.name}: bad context (order {order}, phases {ctx['phases']})")
            self.context = IntContext(prior, self.channels, int(ctx["phases"]), order, bool(ctx.get("all_hyper", False)))

    def analysis(self, y: np.ndarray, device: str, dtype: str):  # type: ignore[no-untyped-def]
        """The hyper-analysis output before rounding: a ``(1, Cz, hz, wz)`` tensor on ``device``."""
        import torch
        import torch.nn.functional as F

        from ..models import resolve_device, resolve_dtype

        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev) if dtype != "auto" else torch.float32
        p = self.prior
        x = torch.from_numpy(y.astype(np.float32))[None].to(dev, dt)
        with torch.inference_mode():
            for i in range(3):
                w = torch.from_numpy(p[f"ha{i}_w"].astype(np.float32) * np.float32(2.0 ** -int(p[f"ha{i}_wexp"][0]))).to(dev, dt)
                b = torch.from_numpy(p[f"ha{i}_b"].astype(np.float32) * np.float32(2.0 ** -int(p[f"ha{i}_bexp"][0]))).to(dev, dt)
                stride = int(p[f"ha{i}_stride"][0])
                x = F.conv2d(x, w, b, stride=stride, padding=w.shape[-1] // 2)
                if i < 2:
                    x = F.relu(x)
        return x.float()

    def z_shape(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        return (self.z_channels, -(-int(shape[1]) // 4), -(-int(shape[2]) // 4))

    def hyper(self, z: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """The hyperprior's fixed-point ``(mu, ls)`` for symbols of ``shape``."""
        mu, ls = self.synthesis(z)
        h, w = int(shape[1]), int(shape[2])
        return mu[:, :h, :w], ls[:, :h, :w]

    def groups(self, shape: tuple[int, ...]) -> list[tuple[int, int, np.ndarray]]:
        """Decoding passes ``(k, phase, positions of channel order[k])``; one pass without context."""
        if self.context is None:
            return [(-1, 0, np.ones(tuple(int(n) for n in shape), dtype=bool))]
        phase = phase_map(int(shape[1]), int(shape[2]), self.context.phases)
        return [(k, p, phase == p) for k in range(self.channels) for p in range(self.context.phases)]

    def group_params(self, y: np.ndarray, mu_h: np.ndarray, ls_h: np.ndarray, k: int, p: int, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(table id, centre) of the symbols of one pass; ``y`` holds what was decoded before it."""
        if k < 0:
            return indices(mu_h, ls_h, self.mean_bits)
        ctx = self.context
        assert ctx is not None
        c = ctx.order[k]
        phase = phase_map(int(y.shape[1]), int(y.shape[2]), ctx.phases)
        dmu, dls = ctx.refine(ctx.group_inputs(y, mu_h, ls_h, phase, k, p), k * ctx.phases + p)
        return indices(mu_h[c][sel] + dmu, ls_h[c][sel] + dls, self.mean_bits)

    def channel_of(self, k: int) -> int | None:
        return None if k < 0 or self.context is None else self.context.order[k]


#: Most encoder-side refinement steps ``refine_z`` accepts (each is one float pass of the decoder's networks).
MAX_REFINE_STEPS = 1000


def _round_z(z_float) -> np.ndarray:  # type: ignore[no-untyped-def]
    import torch

    return torch.round(z_float).clamp(-(1 << 15), 1 << 15)[0].to("cpu").numpy().astype(np.int64)


def _parts_bits(parts: list[tuple[np.ndarray, np.ndarray, TableSet]]) -> float:
    return sum(ideal_bits(v, t, ts) for v, t, ts in parts)


class ANSHyperpriorCoder(EntropyCoder):
    """Mean-scale hyperprior with channel/spatial context (trained on TAESD symbols at step 0.5) + rANS.

    ``prior`` is a shipped prior name, a ``.npz`` path from ``latentcodec train-prior``
    or, when read from a stream, ``#`` and the prior's content hash.  ``device`` and
    ``dtype`` only choose where the encoder's hyper-analysis runs.  ``refine_z > 0``
    spends that many gradient steps searching for a cheaper hyper-latent
    (:mod:`latentcodec.entropy.hyper_refine`); the stream and its decoding are unchanged.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> symbols = rng.integers(-4, 5, size=(4, 12, 20)).astype(np.int32)
    >>> coder = ANSHyperpriorCoder()
    >>> data = coder.encode(symbols)
    >>> decoder = ANSHyperpriorCoder.from_config(ANSHyperpriorCoder.config_from_wire(coder.wire_params()))
    >>> assert np.array_equal(decoder.decode(data, symbols.shape), symbols)
    """

    name: ClassVar[str] = "ans-hyperprior"
    version: ClassVar[int] = 1
    #: Where to find the model file is a runtime choice; the stream carries its hash.
    runtime_options: ClassVar[frozenset[str]] = frozenset({"device", "dtype", "prior", "refine_z"})
    prior_kind: ClassVar[str] = "hyperprior"

    def __init__(self, prior: str = "taesd", device: str = "cpu", dtype: str = "float32", refine_z: int = 0) -> None:
        if not isinstance(prior, str) or not prior:
            raise StageConfigError(f"{self.name}: prior must be a name or path, got {prior!r}")
        if isinstance(refine_z, bool) or not isinstance(refine_z, int) or not 0 <= refine_z <= MAX_REFINE_STEPS:
            raise StageConfigError(f"{self.name}: refine_z must be an int in 0..{MAX_REFINE_STEPS}, got {refine_z!r}")
        self.prior = prior
        self.device = device
        self.dtype = dtype
        self.refine_z = refine_z
        self._model: _Model | None = None
        self._refined: tuple[bytes, np.ndarray] | None = None  # (symbols digest, chosen z): encode after ideal_bits reuses it

    @property
    def model(self) -> _Model:
        if self._model is None:
            self._model = _Model(load_prior(self.prior_kind, self.prior))
        return self._model

    def wire_params(self) -> bytes:
        return self.model.prior.digest

    @classmethod
    def config_from_wire(cls, params: bytes) -> dict[str, Any]:
        return {"prior": prior_from_wire(cls.name, params)}

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
        z_float = m.analysis(y, self.device, self.dtype)
        z = _round_z(z_float)
        if not self.refine_z:
            return self._parts_with(y, z)
        import hashlib

        from .hyper_refine import refine_z

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
        import constriction

        encoder = constriction.stream.stack.AnsCoder()
        encode_parts(encoder, self._parts(symbols))
        return ans_words_to_bytes(encoder.get_compressed())

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
