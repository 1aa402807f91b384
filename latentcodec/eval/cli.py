"""``latentcodec eval``: argument parsing only; the work is in :mod:`.runner`."""

from __future__ import annotations

import argparse
from typing import Any

from ..cli_common import add_device, add_verbosity
from ..errors import StageConfigError

DEFAULT_CODECS = "taesd-ans,jpeg,webp,avif,jxl"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    e = sub.add_parser("eval", help="rate-distortion evaluation against JPEG, WebP, AVIF, JPEG XL")
    e.add_argument("dataset", help="directory of images (e.g. ../shared/datasets/kodak)")
    e.add_argument(
        "--codecs", default=DEFAULT_CODECS, metavar="CODEC,...",
        help=f"comma-separated presets and classical codecs (jpeg, webp, avif, jxl); PRESET:KEY=VALUE,... sets preset options; default {DEFAULT_CODECS}",
    )
    e.add_argument("--out", required=True, help="output directory (JSON, CSV, PNG plots)")
    e.add_argument(
        "--points", action="append", default=[], metavar="N|CODEC=V1,V2,...",
        help="N points spread over every codec's default sweep, or explicit values for one codec (repeatable)",
    )
    e.add_argument("--size-matched", action="store_true", help="per image, classical codecs take the largest file not exceeding ours")
    e.add_argument("--match", help="our preset whose sizes --size-matched matches (default: the first in --codecs)")
    e.add_argument("--metrics", help="comma-separated metric names, or 'all' (default: psnr-rgb,psnr-y,ms-ssim)")
    e.add_argument("--anchor", help="BD-rate anchor (default: jpeg)")
    e.add_argument("--limit", type=int, help="only the first N images")
    add_verbosity(e)
    e.add_argument("--no-progress", dest="quiet", action="store_true", help=argparse.SUPPRESS)  # the old name of --quiet
    e.add_argument("--threads", type=int, help="torch threads (default: the idle cores, at least 1)")
    e.add_argument("--model", help="transform weights for our presets (e.g. ../shared/models/taesd)")
    add_device(e)
    e.add_argument(
        "--save-images", metavar="DIR",
        help="keep every decoded point (DIR/IMAGE/CODEC_PARAM_BYTES.png) and write a comparison sheet per image (DIR/IMAGE.sheet.png)",
    )
    e.add_argument("--force", action="store_true", help="overwrite an existing evaluation in --out")
    from ..distributed.pool import add_arguments as add_ray_arguments

    add_ray_arguments(e)  # --ray [ADDRESS]: the per-image work on a Ray actor pool, the same files
    return e


def parse_points(values: list[str]) -> int | dict[str, list[Any]] | None:
    """``["3"]`` -> 3; ``["jpeg=10,30", "taesd-ans=0.5"]`` -> per-codec lists.

    >>> parse_points(["jpeg=10,30", "taesd-hyperprior:entropy_coder.refine_z=0=0.5,1.0"])
    {'jpeg': [10, 30], 'taesd-hyperprior:entropy_coder.refine_z=0': [0.5, 1.0]}
    """
    from ..options import parse_option_value

    if not values:
        return None
    if len(values) == 1 and "=" not in values[0]:
        try:
            return int(values[0])
        except ValueError:
            raise StageConfigError(f"--points {values[0]!r}: give a count N or CODEC=V1,V2,...") from None
    per: dict[str, list[Any]] = {}
    for item in values:
        name, sep, rest = item.rpartition("=")  # a name may hold options (PRESET:KEY=VALUE), values never hold '='
        if not sep or not name.strip() or not rest.strip():
            raise StageConfigError(f"--points {item!r}: expected CODEC=V1,V2,...")
        per[name.strip()] = [parse_option_value(v) for v in rest.split(",") if v.strip()]
    return per


def run(args: argparse.Namespace) -> int:
    from .codecs import split_codec_list
    from .runner import EvalSettings, evaluate, format_report

    settings = EvalSettings(
        dataset=args.dataset,
        codecs=split_codec_list(args.codecs),
        out=args.out,
        runtime={"model": args.model, "device": args.device, "dtype": args.dtype},
        points=parse_points(args.points),
        size_matched=args.size_matched,
        match=args.match,
        metrics=[m.strip() for m in args.metrics.split(",")] if args.metrics else None,
        anchor=args.anchor,
        limit=args.limit,
        force=args.force,
        progress=not args.quiet,
        threads=args.threads,
        save_images=args.save_images,
    )
    if getattr(args, "ray", None) is not None:
        from ..distributed import evaluation
        from ..distributed.pool import options_from_args, session

        with session(args.ray, quiet=not args.verbose):
            report = evaluation.evaluate(settings, options_from_args(args))
    else:
        report = evaluate(settings)
    print(format_report(report, max_lines=None if args.verbose else 20))
    return 0 if report.results else 1
