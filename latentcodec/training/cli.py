"""``latentcodec train-prior``: train the factorized and hyperprior priors of a transform."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..entropy.hyperprior.context import PHASE_COUNTS, SUBGRID_PHASES
from ..errors import LatentCodecError, StageConfigError


def _train_defaults() -> dict[str, Any]:
    """:func:`train`'s keyword defaults: the shipped prior's settings live there only."""
    import inspect

    from .train_prior import train

    return {name: p.default for name, p in inspect.signature(train).parameters.items() if p.default is not p.empty}


def add_parser(sub: Any) -> None:
    d = _train_defaults()
    t = sub.add_parser("train-prior", help="train the ans-factorized / ans-hyperprior priors on a folder of photos")
    t.add_argument("--transform", default="taesd", help="transform whose latents are modelled (taesd, sd-vae, ...)")
    t.add_argument("--model", help="transform weights: hub id or local path (e.g. ../shared/models/taesd)")
    t.add_argument("--data", required=True, help="folder of training images (e.g. ../shared/datasets/train-photos)")
    t.add_argument("--out", required=True, help="folder for NAME-factorized.npz and NAME-hyperprior.npz")
    t.add_argument("--name", help="prior name (default: the transform's name)")
    t.add_argument("--step", type=float, help="uniform quantizer step the symbols are made with (default: the uniform default)")
    t.add_argument("--steps", type=int, default=d["steps"], help="optimisation steps")
    t.add_argument("--batch", type=int, default=d["batch"])
    t.add_argument("--lr", type=float, default=d["lr"], help="peak Adam learning rate (cosine decay to 1e-4)")
    t.add_argument("--crop", type=int, default=d["crop"], help="side of the random latent crops")
    t.add_argument("--phases", type=int, choices=[0, *PHASE_COUNTS], default=d["phases"], help="spatial phases of the hyperprior's context (0: plain hyperprior)")
    t.add_argument("--hidden", type=int, default=d["hidden"], help="width of the context networks")
    t.add_argument("--context-kernels", help="kernel sizes of the context networks' 3 layers, e.g. 5,3,3 (default: 5,3,3 with 4 or 7 phases, 5,1,1 otherwise)")
    t.add_argument("--mean-bits", type=int, choices=[0, 1, 2, 3, 4], default=d["mean_bits"], help="hyperprior means are rounded to 2**-N symbols")
    t.add_argument("--seed", type=int, default=d["seed"])
    t.add_argument("--threads", type=int, help="torch CPU threads")
    t.add_argument("--cache", help="latent cache folder (default: OUT/cache)")
    t.add_argument("--image-crop", type=int, default=0, help="centre-crop images to this many pixels a side first (0: whole images); keeps the transform pass short")
    t.add_argument("--scales", default="1", help="comma-separated image scales to train on, e.g. 1,0.5 (each photo is encoded once per scale)")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu", help="where the transform runs and the priors train (auto: cuda if present)")
    t.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from .. import registry
    from ..quantizers.uniform import DEFAULT_STEP
    from .latents import folder_latents
    from .train_prior import train

    if args.steps < 1 or args.batch < 1 or args.crop < 8 or not 1 <= args.hidden <= 256 or not 0 < args.lr <= 1:
        raise StageConfigError("train-prior: --steps and --batch must be >= 1, --crop >= 8, --hidden in 1..256 and --lr in (0, 1]")
    options: dict[str, Any] = {"device": args.device, "dtype": "float32"}
    if args.model:
        options["model"] = args.model
    try:
        scales = [float(x) for x in args.scales.split(",") if x.strip()]
    except ValueError:
        raise StageConfigError(f"train-prior: --scales must be numbers separated by commas, got {args.scales!r}") from None
    if not scales or any(not 0.05 <= x <= 1.0 for x in scales):
        raise StageConfigError(f"train-prior: each of --scales must be in [0.05, 1], got {args.scales!r}")
    kernel, kernel2, kernel3 = _train_defaults()["kernel"], None, None  # train() picks the later two from --phases
    if args.context_kernels is not None:
        try:
            kernels = [int(x) for x in args.context_kernels.split(",")]
        except ValueError:
            kernels = []
        if len(kernels) != 3 or any(k not in (1, 3, 5, 7) for k in kernels) or (args.phases not in SUBGRID_PHASES and max(kernels[1:]) > 1):
            raise StageConfigError(f"train-prior: --context-kernels must be 3 of 1, 3, 5, 7 (the last two 1 unless --phases 4 or 7), got {args.context_kernels!r}")
        kernel, kernel2, kernel3 = kernels
    transform = registry.create("transform", args.transform, **options)
    out = Path(args.out)
    latents = []
    for scale in scales:
        latents += folder_latents(transform, args.data, args.cache or out / "cache", progress=not args.quiet, crop=args.image_crop or None, scale=scale)
    try:
        result = train(
            latents, out, args.name or args.transform, step=args.step or DEFAULT_STEP, steps=args.steps,
            batch=args.batch, lr=args.lr, crop=args.crop, phases=args.phases, hidden=args.hidden, kernel=kernel, kernel2=kernel2, kernel3=kernel3, mean_bits=args.mean_bits, seed=args.seed, progress=not args.quiet, threads=args.threads, device=args.device,
        )
    except ValueError as exc:
        raise LatentCodecError(f"train-prior: {exc}") from exc
    print(json.dumps(result, indent=2))
    return 0
