"""Train the global palette codebook ``latentcodec/data/palette-<name>.npz``.

Usage: ``python scripts/train_codebook.py --model ../shared/models/taesd
--images ../shared/datasets/train-photos --name taesd-v1``.  Pixels are mapped to the
uint8 grid exactly as the ``palette`` quantizer does, then k-means (the quantizer's own
:func:`kmeans_palette`, seeded) fits one palette per power-of-two size.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="../shared/models/taesd")
    ap.add_argument("--images", default="../shared/datasets/train-photos")
    ap.add_argument("--name", default="taesd-v1")
    ap.add_argument("--max-pixels-per-image", type=int, default=3000)
    args = ap.parse_args()

    import torch

    from latentcodec.imageio import to_tensor
    from latentcodec.quantizers.codebooks import codebook_path
    from latentcodec.quantizers.palette import PaletteQuantizer, kmeans_palette
    from latentcodec.transforms.taesd import TAESDTransform

    transform = TAESDTransform(model=args.model, device="cpu")
    q = PaletteQuantizer()
    rng = np.random.default_rng(0)
    pixels = []
    for path in sorted(Path(args.images).glob("*.png")):
        with torch.inference_mode():
            latent = transform.analysis(to_tensor(path, 10**9))[0].numpy()
        grid = q.to_grid(latent).reshape(latent.shape[0], -1).T
        pick = rng.permutation(len(grid))[: args.max_pixels_per_image]
        pixels.append(grid[np.sort(pick)])
    points = np.concatenate(pixels)
    books = {str(k): kmeans_palette(points, k, iterations=30) for k in (2, 4, 8, 16, 32, 64, 128, 256)}
    out = codebook_path(args.name)
    np.savez_compressed(out, **books)
    print(f"{out}: {len(points)} training pixels, sizes {', '.join(books)}")


if __name__ == "__main__":
    main()
