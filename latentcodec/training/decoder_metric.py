"""How much each latent channel (and pair of channels) matters to a decoder's pixels.

The palette quantizer's ``sd-decoder`` metric (:data:`latentcodec.quantizers.palette.SD_DECODER_METRIC`)
comes from here: for a small, spatially white latent error ``e`` shared across channels
in direction ``v``, the decoded image's MSE is about ``v^T M v``.  ``M`` is estimated by
finite differences along the 4 axes and the 6 pairwise sums, averaged over latent crops.
This reproduces the shipped constant to within 0.02 per entry (the constant came from
other crops of the same latents, rows 20-84 and columns 30-94)::

    from latentcodec import registry
    from latentcodec.training.latents import folder_latents
    from latentcodec.training.decoder_metric import decoder_metric
    t = registry.create("transform", "taesd", model="../shared/models/taesd", device="cpu", dtype="float32")
    print(decoder_metric(t, folder_latents(t, "../shared/datasets/train-photos", "cache")[::6]))
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np


def decoder_metric(transform: Any, latents: list[np.ndarray], crop: int = 64, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """``(C, C)`` symmetric sensitivity matrix, normalised to unit geometric-mean diagonal."""
    import torch

    rng = np.random.default_rng(seed)
    c = latents[0].shape[0]
    directions = [np.eye(c)[i] for i in range(c)] + [np.eye(c)[i] + np.eye(c)[j] for i, j in combinations(range(c), 2)]
    mse = np.zeros(len(directions))
    for lat in latents:
        h, w = lat.shape[1:]
        i0, j0 = max((h - crop) // 2, 0), max((w - crop) // 2, 0)
        x = torch.from_numpy(np.ascontiguousarray(lat[:, i0 : i0 + crop, j0 : j0 + crop], dtype=np.float32))[None]
        with torch.inference_mode():
            base = transform.synthesis(x)
            for k, v in enumerate(directions):
                field = rng.normal(size=x.shape[2:]) * noise
                delta = torch.from_numpy((v[:, None, None] * field[None]).astype(np.float32))[None]
                mse[k] += float(((transform.synthesis(x + delta) - base) ** 2).mean())
    m = np.diag(mse[:c])
    for k, (i, j) in enumerate(combinations(range(c), 2), start=c):
        m[i, j] = m[j, i] = (mse[k] - mse[i] - mse[j]) / 2
    return m / np.exp(np.mean(np.log(np.diag(m))))
