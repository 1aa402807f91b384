"""Encoder-side refinement of ``ans-hyperprior``'s hyper-latent ``z``.

The hyper-analysis is *amortised*: one forward pass guesses a ``z`` for any image.  The
decoder never sees how ``z`` was chosen, only ``z`` itself, so the encoder is free to
search for a ``z`` that codes this image's symbols in fewer bits (Campos et al. 2019,
Yang et al. 2020).  :func:`refine_z` runs a few Adam steps on ``z`` through a float
twin of the decoder's integer networks (same weights, float arithmetic), with
straight-through rounding, and returns the rounded ``z`` whose estimated total code
length (``y`` under the refined Gaussians plus ``z`` under its tables) was smallest.

Nothing here touches the format or exactness: the stream still carries an integer ``z``
and the decoder reproduces every table choice in integer arithmetic, so a refined ``z``
decodes bit-exactly anywhere.  The float estimate only steers the search; the coder
keeps the refined ``z`` only when its exact code length is smaller (see
:class:`~latentcodec.entropy.hyperprior.ANSHyperpriorCoder`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .fixed_point import ACT_BITS

if TYPE_CHECKING:
    from ..priors import TableSet
    from .model import HyperpriorModel


def _float_conv(conv: Any, w: np.ndarray, b: np.ndarray, shift: int) -> None:
    """Set ``conv`` to the float value of an integer layer: ``w * 2**-shift``, ``b * 2**-(shift + ACT_BITS)``."""
    import torch

    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(w.astype(np.float64) * 2.0**-shift))
        conv.bias.copy_(torch.from_numpy(b.astype(np.float64) * 2.0 ** -(shift + ACT_BITS)))


def float_twin(model: HyperpriorModel) -> tuple[Any, Any]:
    """``(h_s, context)`` torch modules with the float values of the prior's integer weights."""
    from torch import nn

    from . import synthesis as hp
    from .context import torch_context

    p = model.prior
    n = int(p["hs0_w"].shape[0])
    h_s = hp.torch_hyper_synthesis(model.channels, n, model.z_channels)
    for i, conv in enumerate(m for m in h_s if isinstance(m, nn.Conv2d)):
        _float_conv(conv, p[f"hs{i}_w"], p[f"hs{i}_b"], int(p[f"hs{i}_shift"][0]))
    ctx = None
    if model.context is not None:
        meta = p.meta["context"]
        ic = model.context
        ctx = torch_context(model.channels, ic.phases, int(meta["hidden"]), int(meta["kernel"]), ic.all_hyper, int(meta["kernel2"]), int(meta["kernel3"]))
        for g, net in enumerate(ctx):
            for layer, conv in enumerate(m for m in net if isinstance(m, nn.Conv2d)):
                w, b, shift = ic.nets[g][layer]
                _float_conv(conv, w, b, shift)
    return h_s.float(), (ctx.float() if ctx is not None else None)


def z_cost_table(model: HyperpriorModel) -> tuple[np.ndarray, int]:
    """Bits of every integer ``z`` value per channel, ``(Cz, K)`` starting at the returned
    value; the first and last columns are the escape cost (anything outside the tables)."""
    return table_cost(model.z_tables)


def table_cost(ts: TableSet) -> tuple[np.ndarray, int]:
    """Bits of every integer value under each table of ``ts``, ``(T, K)`` starting at the
    returned value; the first and last columns are the escape cost (anything outside the tables)."""
    lo = int((ts.lo).min()) - 1
    hi = int((ts.lo + ts.n - 2).max()) + 1
    cost = np.empty((len(ts.n), hi - lo + 1))
    for c in range(len(ts.n)):
        f = ts.freqs[c, : ts.n[c]].astype(np.float64)
        bits = ts.bits - np.log2(np.maximum(f, 1))
        cost[c] = bits[-1] + 32.0  # escape: the escape entry plus two 16-bit words
        first = int(ts.lo[c]) - lo
        cost[c, first : first + int(ts.n[c]) - 1] = bits[:-1]
    return cost, lo


def interpolated_bits(cost: Any, lo: int, values: Any) -> Any:
    """Bits of ``values`` ``(T, ...)`` under the cost table ``(T, K)`` of :func:`table_cost`
    (a float tensor), linear between integers so that it has a gradient; clamped to the table."""
    k = cost.shape[1]
    x = (values - lo).clamp(0, k - 1.001).flatten(1)
    i = x.floor().long()
    f = x - i
    return ((1 - f) * cost.gather(1, i) + f * cost.gather(1, i + 1)).sum()


class FloatTwin:
    """The float twin of a prior's decoder networks on one device, as differentiable code lengths.

    ``y_bits(y, z)``: bits of the symbols ``y`` ``(1, C, h, w)`` under the Gaussians the
    hyper-synthesis of ``z`` and the context passes (teacher forced on ``y``) predict;
    ``z_bits(z)``: bits of ``z`` ``(1, Cz, hz, wz)`` under the z tables, linear between
    integers.  Used by :func:`refine_z` and by the encoder's latent search (:mod:`latentcodec.rdo`).
    """

    def __init__(self, model: HyperpriorModel, device: Any) -> None:
        import torch

        from . import synthesis as hp

        self.h_s, self.ctx = (m.to(device).requires_grad_(False) if m is not None else None for m in float_twin(model))
        cost, self.z_lo = z_cost_table(model)
        self.z_cost = torch.from_numpy(cost.astype(np.float32)).to(device)
        self.ls_lo = hp.LOG_SCALE_MIN_F
        self.ls_hi = hp.LOG_SCALE_MIN_F + hp.LOG_SCALE_STEP_F * (hp.NUM_SCALES - 1)
        self.order = list(model.context.order) if model.context is not None else []
        self.phases = model.context.phases if model.context is not None else 0
        self.all_hyper = model.context.all_hyper if model.context is not None else False

    def z_bits(self, z: Any) -> Any:
        return interpolated_bits(self.z_cost, self.z_lo, z[0])

    def y_bits_map(self, y: Any, z: Any) -> Any:
        """Bits of every symbol of ``y``, ``(1, C, h, w)``."""
        import torch

        from .context import torch_context_forward

        h, w = y.shape[-2:]
        mu, ls = self.h_s(z).chunk(2, dim=1)
        mu, ls = mu[..., :h, :w], ls[..., :h, :w]
        if self.ctx is not None:
            mu, ls = torch_context_forward(self.ctx, y, mu, ls, self.phases, self.order, self.all_hyper)
        s = torch.exp(ls.clamp(self.ls_lo, self.ls_hi)) * 2.0**0.5
        p = 0.5 * (torch.erf((y + 0.5 - mu) / s) - torch.erf((y - 0.5 - mu) / s))
        return -torch.log2(p.clamp_min(1e-9))

    def y_bits(self, y: Any, z: Any) -> Any:
        return self.y_bits_map(y, z).sum()


def refine_z(model: HyperpriorModel, y: np.ndarray, z_start: Any, steps: int, lr: float = 0.2) -> np.ndarray:
    """The integer ``z`` with the smallest estimated code length seen in ``steps`` Adam steps.

    ``z_start`` is the hyper-analysis output *before* rounding, ``(1, Cz, hz, wz)`` float
    tensor on the device to optimise on; ``y`` the integer symbols ``(C, h, w)``.  Step 0
    (the plain rounded analysis) is a candidate too.
    """
    import torch

    dev = z_start.device
    with torch.inference_mode(False), torch.enable_grad():
        twin = FloatTwin(model, dev)
        yt = torch.from_numpy(np.asarray(y, dtype=np.float32)).to(dev)[None]
        z = z_start.detach().float().clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        best, best_z = float("inf"), torch.round(z.detach())
        for step in range(steps + 1):
            zr = z + (torch.round(z) - z).detach()  # straight-through rounding
            ybits = twin.y_bits(yt, zr)
            estimate = float(ybits.detach() + twin.z_bits(zr.detach()))
            if estimate < best:
                best, best_z = estimate, torch.round(z.detach())
            if step == steps:
                break
            opt.zero_grad()
            (ybits + twin.z_bits(z)).backward()
            opt.step()
    return best_z[0].clamp(-(1 << 15), 1 << 15).to("cpu").numpy().astype(np.int64)
