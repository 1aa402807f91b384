"""The SD decoder's sensitivity to latent errors: the ``sd-decoder`` metric of the palette encoder."""

from __future__ import annotations

import numpy as np

#: How the encoder measures a colour's distance: ``euclidean`` on the uint8 grid (the
#: seed), or ``sd-decoder``, the SD decoder's sensitivity to latent errors (below), which
#: is ~6x larger along some channel combinations than others.
METRICS = ("euclidean", "sd-decoder")
#: ``M`` with pixel MSE ~ ``e^T M e`` for a small latent error ``e`` (per pixel, spatially
#: white), normalised to unit geometric-mean diagonal.  Measured through the TAESD decoder
#: (a distilled SD 1.x/2.x decoder) on crops of ``../shared/datasets/train-photos``
#: latents by :func:`latentcodec.training.decoder_metric.decoder_metric`.  It only steers
#: the encoder (palette fit and dithering): the palette still travels in grid units.
SD_DECODER_METRIC = np.array(
    [
        [1.006, -0.003, -0.004, -0.632],
        [-0.003, 0.755, 0.024, -0.244],
        [-0.004, 0.024, 0.982, -0.453],
        [-0.632, -0.244, -0.453, 1.340],
    ]
)
#: ``T`` with ``|T e|^2 = e^T M e``: fitting and dithering run on ``T x``.
SD_DECODER_T = np.linalg.cholesky(SD_DECODER_METRIC).T
