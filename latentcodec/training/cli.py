"""``latentcodec train-prior``: train the factorized and hyperprior priors of a transform."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..cli_common import add_device, add_verbosity
from ..entropy.hyperprior.context import PHASE_COUNTS, SUBGRID_PHASES
from ..errors import LatentCodecError, StageConfigError
from .checkpoint import CHECKPOINT_EVERY
from .settings import PriorSettings


def add_parser(sub: Any) -> None:
    d = PriorSettings()
    t = sub.add_parser("train-prior", help="train the ans-factorized / ans-hyperprior priors on a folder of photos")
    t.add_argument("--transform", default="taesd", help="transform whose latents are modelled (taesd, sd-vae, ...)")
    t.add_argument("--model", help="transform weights: hub id or local path (e.g. ../shared/models/taesd)")
    t.add_argument("--data", required=True, help="folder of training images (e.g. ../shared/datasets/train-photos)")
    t.add_argument("--out", required=True, help="folder for NAME-factorized.npz, NAME-hyperprior.npz and NAME-checkpoint.pt")
    t.add_argument("--name", help="prior name (default: the transform's name)")
    t.add_argument("--step", type=float, help="uniform quantizer step the symbols are made with (default: the uniform default)")
    t.add_argument("--steps", type=int, default=d.steps, help="optimisation steps")
    t.add_argument("--batch", type=int, default=d.batch)
    t.add_argument("--lr", type=float, default=d.lr, help="peak Adam learning rate (cosine decay to 1e-4)")
    t.add_argument("--crop", type=int, default=d.crop, help="side of the random latent crops")
    t.add_argument("--phases", type=int, choices=[0, *PHASE_COUNTS], default=d.phases, help="spatial phases of the hyperprior's context (0: plain hyperprior)")
    t.add_argument("--hidden", type=int, default=d.hidden, help="width of the context networks")
    t.add_argument("--context-kernels", help="kernel sizes of the context networks' 3 layers, e.g. 5,3,3 (default: 5,3,3 with 4 or 7 phases, 5,1,1 otherwise)")
    t.add_argument("--mean-bits", type=int, choices=[0, 1, 2, 3, 4], default=d.mean_bits, help="hyperprior means are rounded to 2**-N symbols")
    t.add_argument("--seed", type=int, default=d.seed)
    t.add_argument("--threads", type=int, help="torch CPU threads")
    t.add_argument("--cache", help="latent cache folder (default: OUT/cache)")
    t.add_argument("--image-crop", type=int, default=0, help="centre-crop images to this many pixels a side first (0: whole images); keeps the transform pass short")
    t.add_argument("--scales", default="1", help="comma-separated image scales to train on, e.g. 1,0.5 (each photo is encoded once per scale)")
    t.add_argument("--checkpoint-every", type=int, default=CHECKPOINT_EVERY, metavar="N", help="write OUT/NAME-checkpoint.pt every N steps (0: only at the end; it is always written at the end)")
    start = t.add_mutually_exclusive_group()
    start.add_argument("--resume", metavar="CHECKPOINT", help="continue the interrupted run of this checkpoint (same options: gives the files the uninterrupted run gives)")
    start.add_argument("--init", metavar="CHECKPOINT", help="start a new run (e.g. more steps or other photos) from this checkpoint's weights")
    add_device(t, default="cpu")
    t.set_defaults(dtype="float32")  # of the transform computing the latents; the priors always train in float32
    add_verbosity(t)


def _check_numbers(args: argparse.Namespace) -> None:
    if args.steps < 1 or args.batch < 1 or args.crop < 8 or not 1 <= args.hidden <= 256 or not 0 < args.lr <= 1:
        raise StageConfigError("train-prior: --steps and --batch must be >= 1, --crop >= 8, --hidden in 1..256 and --lr in (0, 1]")
    if args.checkpoint_every < 0 or (args.threads is not None and args.threads < 1) or args.image_crop < 0:
        raise StageConfigError("train-prior: --checkpoint-every and --image-crop must be >= 0, --threads >= 1")


def _scales(text: str) -> list[float]:
    try:
        scales = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise StageConfigError(f"train-prior: --scales must be numbers separated by commas, got {text!r}") from None
    if not scales or any(not 0.05 <= x <= 1.0 for x in scales):
        raise StageConfigError(f"train-prior: each of --scales must be in [0.05, 1], got {text!r}")
    return scales


def _kernels(text: str | None, phases: int) -> tuple[int, int | None, int | None]:
    """``(kernel, kernel2, kernel3)``; the later two ``None`` (chosen from ``phases``) unless given."""
    if text is None:
        return PriorSettings().kernel, None, None
    try:
        kernels = [int(x) for x in text.split(",")]
    except ValueError:
        kernels = []
    if len(kernels) != 3 or any(k not in (1, 3, 5, 7) for k in kernels) or (phases not in SUBGRID_PHASES and max(kernels[1:]) > 1):
        raise StageConfigError(f"train-prior: --context-kernels must be 3 of 1, 3, 5, 7 (the last two 1 unless --phases 4 or 7), got {text!r}")
    return kernels[0], kernels[1], kernels[2]


def _settings(args: argparse.Namespace) -> PriorSettings:
    from ..quantizers.uniform import DEFAULT_STEP

    kernel, kernel2, kernel3 = _kernels(args.context_kernels, args.phases)
    return PriorSettings(
        step=args.step or DEFAULT_STEP, steps=args.steps, batch=args.batch, lr=args.lr, crop=args.crop, phases=args.phases,
        hidden=args.hidden, kernel=kernel, kernel2=kernel2, kernel3=kernel3, mean_bits=args.mean_bits, seed=args.seed,
    )


def _latents(args: argparse.Namespace, scales: list[float]) -> list[Any]:
    from .. import registry
    from .latents import folder_latents

    options: dict[str, Any] = {"device": args.device, "dtype": args.dtype}
    if args.model:
        options["model"] = args.model
    transform = registry.create("transform", args.transform, **options)
    cache = args.cache or Path(args.out) / "cache"
    latents: list[Any] = []
    for scale in scales:
        latents += folder_latents(transform, args.data, cache, progress=not args.quiet, crop=args.image_crop or None, scale=scale)
    return latents


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .train_prior import train

    _check_numbers(args)
    scales = _scales(args.scales)
    settings = _settings(args)
    latents = _latents(args, scales)
    log = (lambda message: tqdm.write(f"train-prior: {message}", file=sys.stderr)) if args.verbose and not args.quiet else None
    try:
        result = train(
            latents, Path(args.out), args.name or args.transform, settings, progress=not args.quiet, threads=args.threads, device=args.device,
            checkpoint_every=args.checkpoint_every, resume=args.resume, init=args.init, log=log,
        )
    except ValueError as exc:
        raise LatentCodecError(f"train-prior: {exc}") from exc
    print(json.dumps(result, indent=2))
    return 0
