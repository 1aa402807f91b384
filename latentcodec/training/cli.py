"""``latentcodec train-prior``: train the factorized and hyperprior priors of a transform."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import LatentCodecError, StageConfigError


def add_parser(sub: Any) -> None:
    t = sub.add_parser("train-prior", help="train the ans-factorized / ans-hyperprior priors on a folder of photos")
    t.add_argument("--transform", default="taesd", help="transform whose latents are modelled (taesd, sd-vae, ...)")
    t.add_argument("--model", help="transform weights: hub id or local path (e.g. ../shared/models/taesd)")
    t.add_argument("--data", required=True, help="folder of training images (e.g. ../shared/datasets/train-photos)")
    t.add_argument("--out", required=True, help="folder for NAME-factorized.npz and NAME-hyperprior.npz")
    t.add_argument("--name", help="prior name (default: the transform's name)")
    t.add_argument("--step", type=float, help="uniform quantizer step the symbols are made with (default: the uniform default)")
    t.add_argument("--steps", type=int, default=1500, help="optimisation steps")
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--crop", type=int, default=48, help="side of the random latent crops")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, help="torch CPU threads")
    t.add_argument("--cache", help="latent cache folder (default: OUT/cache)")
    t.add_argument("--image-crop", type=int, default=512, help="centre-crop images to this many pixels a side first (0: whole images); keeps the transform pass short")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu", help="where the transform runs")
    t.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from .. import registry
    from ..quantizers.uniform import DEFAULT_STEP
    from .latents import folder_latents
    from .train_prior import train

    if args.steps < 1 or args.batch < 1 or args.crop < 8:
        raise StageConfigError("train-prior: --steps and --batch must be >= 1 and --crop >= 8")
    options: dict[str, Any] = {"device": args.device, "dtype": "float32"}
    if args.model:
        options["model"] = args.model
    transform = registry.create("transform", args.transform, **options)
    out = Path(args.out)
    latents = folder_latents(transform, args.data, args.cache or out / "cache", progress=not args.quiet, crop=args.image_crop or None)
    try:
        result = train(
            latents, out, args.name or args.transform, step=args.step or DEFAULT_STEP, steps=args.steps,
            batch=args.batch, crop=args.crop, seed=args.seed, progress=not args.quiet, threads=args.threads,
        )
    except ValueError as exc:
        raise LatentCodecError(f"train-prior: {exc}") from exc
    print(json.dumps(result, indent=2))
    return 0
