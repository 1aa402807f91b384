"""The search loop: Adam on the latent, through the real decoder, towards ``lmbda * D / D0 + bpp``.

``u = latent / step`` (:class:`~.grid.LatentGrid` units) starts at the analysis latent, so
step 0 is the plain encoder; each step decodes the straight-through-rounded ``u`` with the
transform's differentiable synthesis, prices the rounded symbols with the coder's rate
model and moves ``u`` by Adam (learning rate fixed in latent units, cosine decay).  The
best *rounded* point seen is returned, so the result lies on the quantizer's grid and is
never worse than the plain encode under the estimate.

Determinism: no randomness; the loss scalars (distortion and rate) are computed on one
thread, and everything else the search computes element by element or by convolutions,
so on one machine the symbols do not depend on the number of torch threads (checked by
``tests/test_rdo.py``), nor on anything but the inputs.
"""

from __future__ import annotations

import contextlib
import math
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator

from .distortion import RelativeDistortion
from .efforts import RECIPE, Recipe
from .grid import LatentGrid
from .rate import RateModel

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass
class SearchResult:
    #: The chosen symbols ``(1, C, h, w)`` (float tensor of integers, on the CPU).
    symbols: "torch.Tensor"
    #: The step whose rounded point was best (0: the plain encode).
    best_step: int
    #: ``(step, loss, estimated bpp, relative distortion)`` of every step.
    history: list[tuple[int, float, float, float]] = field(default_factory=list)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one intra-op thread inside the block: reductions whose order does not
    depend on how many threads the rest of the search uses."""
    import torch

    before = torch.get_num_threads()
    if before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before > 1:
            torch.set_num_threads(before)


def run_search(
    decode: Callable[["torch.Tensor"], "torch.Tensor"],
    grid: LatentGrid,
    rate: RateModel,
    image: "torch.Tensor",
    latent: "torch.Tensor",
    *,
    steps: int,
    distortion: str = "mse",
    relative_lambda: float = 0.1,
    bf16: bool = False,
    progress: bool = False,
    recipe: Recipe = RECIPE,
) -> SearchResult:
    """Search ``steps`` steps from ``latent`` ``(1, C, h, w)`` for ``image`` ``(1, 3, H, W)``
    in [0, 1] (both on the device ``decode`` runs on); ``decode`` maps a latent to an image
    in [0, 1] with gradients.  ``bf16`` autocasts the decoder's passes."""
    import torch
    from tqdm import tqdm

    ref = image.float()
    pixels = ref.shape[-2] * ref.shape[-1]
    dist = RelativeDistortion(distortion, ref)
    u = grid.to_units(latent.detach().float().to(ref.device)).clone()
    rate.begin(grid.hard(u))
    u.requires_grad_(True)
    lr = recipe.lr_latent / grid.delta
    opt = torch.optim.Adam([u], lr=lr)
    best = (math.inf, grid.hard(u.detach()), 0)
    history: list[tuple[int, float, float, float]] = []
    bar = tqdm(total=steps, desc="search", unit="step", file=sys.stderr, disable=not progress, leave=False, dynamic_ncols=True)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            for t in range(steps + 1):
                u_hat = grid.ste(u)
                with torch.autocast(ref.device.type, dtype=torch.bfloat16, enabled=bf16):
                    x = decode(grid.to_latent(u_hat))
                with one_thread():
                    d = dist(x.float())
                    bpp = rate.bits(u_hat, t) / pixels
                    loss = relative_lambda * d + bpp
                    value = float(loss.detach())
                history.append((t, value, float(bpp.detach()), float(d.detach())))
                if value < best[0]:
                    best = (value, u_hat.detach().clone(), t)
                if t == steps:
                    break
                scale = recipe.lr_end + (1 - recipe.lr_end) * 0.5 * (1 + math.cos(math.pi * t / steps))
                opt.param_groups[0]["lr"] = lr * scale
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                bar.update(1)
    finally:
        bar.close()
    return SearchResult(best[1].to("cpu"), best[2], history)
