"""A hyperprior prior file, unpacked once: tables, integer networks, hyper-analysis."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import CorruptStreamError, ModelError, StageConfigError
from ..priors import Prior, TableSet
from .context import phase_map
from .synthesis import NUM_SCALES, IntHyperSynthesis, indices

#: Largest ``|z|`` a stream may carry (the encoder clamps ``z`` here; SPEC 6.5).
Z_LIMIT = 1 << 15


class HyperpriorModel:
    """The parts of a hyperprior file a coder needs, unpacked once."""

    def __init__(self, prior: Prior) -> None:
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
            from .context import PHASE_COUNTS, IntContext

            order = [int(c) for c in ctx["order"]]
            if sorted(order) != list(range(self.channels)) or int(ctx["phases"]) not in PHASE_COUNTS:
                raise StageConfigError(f"{prior.path.name}: bad context (order {order}, phases {ctx['phases']})")
            self.context = IntContext(prior, self.channels, int(ctx["phases"]), order, bool(ctx.get("all_hyper", False)))
        # SPEC 3.6: with inputs within 2^24, every partial sum of an output is at most
        # sum |W| * 2^24; below 2^53 float64 products are exact in any order
        weights = [w for w, *_ in self.synthesis.layers] + [w for net in (self.context.nets if self.context else []) for w, _b, _s in net]
        if any(int(np.abs(w).sum(axis=(1, 2, 3)).max(initial=0)) << 24 >= 1 << 53 for w in weights):
            raise ModelError(f"{prior.path.name}: integer network weights too large for exact float64 convolutions")

    def analysis(self, y: np.ndarray, device: str, dtype: str):  # type: ignore[no-untyped-def]
        """The hyper-analysis output before rounding: a ``(1, Cz, hz, wz)`` tensor on ``device``."""
        import torch
        import torch.nn.functional as F

        from ...runtime import resolve_device, resolve_dtype

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
        """The hyperprior's fixed-point ``(mu, ls)`` for symbols of ``shape``.

        ``|z| <= 2**15`` (:data:`Z_LIMIT`; the encoder clamps there): ``z << 8`` enters the
        first convolution unclipped, and only within that bound are its float64 sums exact.
        A larger ``z`` (escapes carry up to ``2**30``) is a damaged stream.
        """
        if z.size and int(np.abs(z).max()) > Z_LIMIT:
            raise CorruptStreamError(f"ans-hyperprior: hyper-latent value {int(np.abs(z).max())} beyond +-{Z_LIMIT}")
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
