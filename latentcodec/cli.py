"""The ``latentcodec`` command line.

Every error prints one line (``latentcodec: error: ...``) and exits non-zero, never a
traceback (``-v`` adds it, for debugging); warnings print one line each.  Status lines
and progress bars go to stderr, so ``-o -`` can put data on stdout.  ``compress`` and
``decompress`` take one input (a file or ``-``) and ``-o FILE``, or several files and
folders and ``-o FOLDER`` (:mod:`latentcodec.batch`).  ``--help``, ``--version``,
``info``, ``stages`` and ``presets`` never import torch.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from typing import Any, Sequence

from . import __version__
from .cli_common import add_device, add_verbosity, status
from .cli_common import positive_int as _positive_int
from .cli_common import quality as _quality
from .cli_listing import cmd_info, cmd_presets, cmd_stages
from .errors import StageConfigError, one_line

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors in one line (the rest of the CLI's errors are one line too)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog.removeprefix("latentcodec").strip()
        print(f"latentcodec: error: {command + ': ' if command else ''}{message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _add_io(p: argparse.ArgumentParser, what: str, out: str) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=f"{what} files or folders (folders recursively); '-' reads standard input")
    p.add_argument("-o", "--output", required=True, help=f"{out} file for one input ('-': standard output), else a folder mirroring the inputs")
    existing = p.add_mutually_exclusive_group()
    existing.add_argument("--force", action="store_true", help="overwrite existing outputs (and the manifest)")
    existing.add_argument("--skip-existing", action="store_true", help="keep existing outputs and go on (resumes a run; appends to the manifest)")
    p.add_argument("--manifest", metavar="FILE.jsonl", help="write one JSON line per file: input, output, bytes, bpp, rate parameter, seconds, status, error")
    p.add_argument("--no-recursive", action="store_true", help="take only the top level of folder inputs")
    p.add_argument("--model", help="transform weights: hub id or local path (e.g. ../shared/models/taesd)")
    add_device(p)
    add_verbosity(p)
    from .distributed.pool import add_arguments as add_ray_arguments

    add_ray_arguments(p)  # --ray [ADDRESS], --ray-actors N, --num-gpus X, ... (no Ray import)


def build_parser() -> argparse.ArgumentParser:
    from .imageio.core import DEFAULT_MAX_PIXELS

    parser = _Parser(prog="latentcodec", description="Image compression in Stable Diffusion's latent space.")
    parser.add_argument("--version", action="version", version=f"latentcodec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compress", help="compress images to .lc streams")
    _add_io(c, "image", ".lc")
    c.add_argument("--preset", help="a named chain (see `latentcodec presets`; default taesd-ans)")
    c.add_argument("--config", metavar="CHAIN.json", help="a chain saved with Codec.save_config, instead of --preset")
    c.add_argument("--transform", help="replace the preset's transform")
    c.add_argument("--quantizer", help="replace the preset's quantizer")
    c.add_argument("--entropy-coder", help="replace the preset's entropy coder")
    c.add_argument("--refiner", help="the refiner the stream asks for by default")
    c.add_argument("--option", "-O", action="append", default=[], metavar="KEY=VALUE", help="stage option, e.g. step=0.4 or quantizer.step=0.4")
    rate = c.add_mutually_exclusive_group()
    rate.add_argument("-q", "--quality", type=_quality, metavar="0..100", help="quality: sets the quantizer's rate parameter (100: best)")
    rate.add_argument("--target-bytes", type=_positive_int, metavar="N", help="search the rate parameter for the best file of at most N bytes")
    rate.add_argument("--target-bpp", type=float, metavar="X", help="like --target-bytes, in bits per pixel")
    c.add_argument("--max-pixels", type=_positive_int, help=f"refuse larger images (default {DEFAULT_MAX_PIXELS})")
    c.add_argument("--batch-size", type=_positive_int, help="images of equal size analysed together (default: 8 on CUDA, 1 on the CPU, where batching is slower)")
    search = c.add_argument_group("encoder search", "search the latent through the decoder for a better image per byte (README, 'Encoder search')")
    search.add_argument("--effort", default="0", metavar="0..3|max", help="0: the plain encoder (default); 1, 2, 3 (= max): 8, 20, 50 search steps")
    search.add_argument("--lmbda", type=float, metavar="X", help="weight of the relative distortion in lmbda*D/D0 + bpp (default 0.1, 0.05 for mix; larger: more quality and bytes)")
    search.add_argument("--distortion", metavar="mse|ms-ssim|mix", help="what the search minimises (default mse)")

    d = sub.add_parser("decompress", help="decode .lc streams to images")
    _add_io(d, ".lc", "image")
    d.add_argument("--refiner", help="decode with this refiner instead of the stream's")
    d.add_argument("--transform", help="decode with another transform than the stream's (needs --ignore-weights)")
    d.add_argument("--option", "-O", action="append", default=[], metavar="KEY=VALUE", help="refiner option")
    d.add_argument("--refiner-model", help="diffusion refiners: SD 1.5 hub id or local directory (unet/, scheduler/, ...)")
    d.add_argument("--controlnet-model", help="controlnet-canny: ControlNet hub id or local directory")
    d.add_argument("--ignore-weights", action="store_true", help="decode even if the transform's weights are not the stream's")
    d.add_argument("--max-pixels", type=_positive_int, default=DEFAULT_MAX_PIXELS, help="refuse streams of larger images, from the header (default %(default)s)")

    i = sub.add_parser("info", help="describe a .lc stream")
    i.add_argument("input", help="a .lc file, or '-' for standard input")
    i.add_argument("--json", action="store_true")
    add_verbosity(i)

    s = sub.add_parser("stages", help="list the registered stages and their options")
    s.add_argument("--check", action="store_true", help="exit non-zero if a stage fails to import or validate")
    add_verbosity(s)

    p = sub.add_parser("presets", help="list the presets and what each is for")
    p.add_argument("--json", action="store_true")
    add_verbosity(p)

    from .eval.cli import add_parser as add_eval_parser

    add_eval_parser(sub)

    from .training.cli import add_parser as add_train_parser

    add_train_parser(sub)
    return parser


# --- compress / decompress ------------------------------------------------------------------
def _runtime_options(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in ("model", "device", "dtype") if getattr(args, k, None) is not None}


def _existing(args: argparse.Namespace) -> str:
    return "overwrite" if args.force else "skip" if args.skip_existing else "error"


def _build_codec(args: argparse.Namespace) -> Any:
    from .codec import Codec
    from .imageio.core import DEFAULT_MAX_PIXELS
    from .modelcache import shared
    from .options import parse_options
    from .presets import DEFAULT_PRESET

    options = {**parse_options(args.option), **_runtime_options(args)}
    if args.config:
        given = [f"--{k.replace('_', '-')}" for k in ("preset", "transform", "quantizer", "entropy_coder", "refiner") if getattr(args, k)]
        if given:
            raise StageConfigError(f"--config names the whole chain; drop {', '.join(given)}")
        codec = Codec.from_config(args.config, quality=args.quality, max_pixels=args.max_pixels, **options)
    else:
        codec = Codec.from_preset(
            args.preset or DEFAULT_PRESET,
            transform=args.transform,
            quantizer=args.quantizer,
            entropy_coder=args.entropy_coder,
            refiner=args.refiner,
            quality=args.quality,
            max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS,
            **options,
        )
    codec.transform, codec.refiner = shared(codec.transform), shared(codec.refiner)  # one load per process, also across main() calls
    return codec


def _run_jobs(args: argparse.Namespace, worker: Any, jobs: list[Any], single: bool, verb: str) -> int:
    """Run ``jobs`` through ``worker`` with a progress bar, a manifest and one line per problem."""
    if getattr(args, "ray", None) is not None:  # the same jobs on a Ray actor pool; records, manifest and messages as here
        from .distributed.jobs import cli_session

        with cli_session(args, worker, jobs) as runner:
            return _run_jobs(argparse.Namespace(**{**vars(args), "ray": None}), runner, jobs, single, verb)
    from tqdm import tqdm

    from .batch import ManifestWriter, summary

    manifest = ManifestWriter(args.manifest, existing=_existing(args)) if args.manifest else None
    started = time.perf_counter()
    bar = tqdm(total=len(jobs), desc=verb, unit="img", file=sys.stderr, disable=single or args.quiet, dynamic_ncols=True)

    def say(line: str) -> None:
        if bar.disable:
            print(line, file=sys.stderr)
        else:
            tqdm.write(line, file=sys.stderr)  # above the bar, not through it

    def on_record(r: Any) -> None:
        if manifest is not None:
            manifest.write(r)
        prefix = "" if single else f"{r.input}: "
        error = r.error or ""
        for w in r.warnings:
            say(f"latentcodec: warning: {prefix}{w}")
        if r.status == "failed":
            if r.traceback:
                say(r.traceback.rstrip())
            say(f"latentcodec: error: {'' if r.input in error else prefix}{error}")
        elif single or args.verbose:
            where = "<stdout>" if r.output == "-" else r.output
            detail = f"{'from ' if verb == 'decompress' else ''}{r.bytes} bytes, {r.bpp:.4f} bpp" if r.bytes is not None else r.status
            if r.parameter is not None and r.value is not None:
                detail += f", {r.parameter}={r.value:g}"
            if not args.quiet:
                say(f"{where}: {detail}" if r.status == "ok" else f"{where}: exists, skipped")
        bar.update(1)

    try:
        records = worker.process(jobs, on_record=on_record)
    finally:
        bar.close()
        if manifest is not None:
            manifest.close()
    counts = summary(records)
    if not single:
        total = sum(r.bytes or 0 for r in records if r.status == "ok")
        status(args, f"{counts['ok']} {verb}ed ({total} bytes), {counts['skipped']} skipped, {counts['failed']} failed in {time.perf_counter() - started:.1f} s")
    return EXIT_ERROR if counts["failed"] else 0


def _search_settings(args: argparse.Namespace) -> Any:
    """``--effort`` / ``--lmbda`` / ``--distortion`` as :class:`latentcodec.rdo.SearchSettings`
    (a bad value is a one-line StageConfigError; a tqdm bar per search unless ``--quiet``)."""
    from .rdo.efforts import SearchSettings

    settings = SearchSettings(effort=args.effort, lmbda=args.lmbda, distortion=args.distortion or "mse", progress=not args.quiet)
    if not settings.steps:
        given = [f"--{k}" for k in ("lmbda", "distortion") if getattr(args, k) is not None]
        if given:
            raise StageConfigError(f"{' and '.join(given)} only steer{'s' if len(given) == 1 else ''} the encoder search: add --effort 1 or more")
    return settings


def cmd_compress(args: argparse.Namespace) -> int:
    from .batch import CompressWorker, is_single, plan_jobs

    jobs = plan_jobs(args.inputs, args.output, mode="compress", recursive=not args.no_recursive)
    search = _search_settings(args)
    codec = _build_codec(args)
    targets = {k: getattr(args, k) for k in ("target_bytes", "target_bpp") if getattr(args, k) is not None}
    worker = CompressWorker(codec, existing=_existing(args), batch_size=args.batch_size, keep_tracebacks=args.verbose > 0, search=search, **targets)  # type: ignore[arg-type]
    return _run_jobs(args, worker, jobs, is_single(args.inputs, args.output), "compress")


def cmd_decompress(args: argparse.Namespace) -> int:
    from .batch import DecompressWorker, is_single, plan_jobs
    from .options import parse_options

    jobs = plan_jobs(args.inputs, args.output, mode="decompress", recursive=not args.no_recursive)
    single = is_single(args.inputs, args.output)
    refiner_options = {
        **parse_options(args.option),
        **{k: v for k, v in (("refiner_model", args.refiner_model), ("controlnet_model", args.controlnet_model)) if v},
        **({"quiet": True} if args.quiet or not single else {}),  # one progress bar per batch, not per image
    }
    worker = DecompressWorker(
        existing=_existing(args),  # type: ignore[arg-type]
        keep_tracebacks=args.verbose > 0,
        max_pixels=args.max_pixels,
        transform=args.transform,
        refiner=args.refiner,
        refiner_options=refiner_options,
        ignore_weights=args.ignore_weights,
        **_runtime_options(args),
    )
    return _run_jobs(args, worker, jobs, single, "decompress")


def cmd_eval(args: argparse.Namespace) -> int:
    from .eval.cli import run

    return run(args)


def cmd_train_prior(args: argparse.Namespace) -> int:
    from .training.cli import run

    return run(args)


COMMANDS = {
    "compress": cmd_compress,
    "decompress": cmd_decompress,
    "info": cmd_info,
    "stages": cmd_stages,
    "presets": cmd_presets,
    "eval": cmd_eval,
    "train-prior": cmd_train_prior,
}


# --- main -----------------------------------------------------------------------------------
def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None, line: str | None = None) -> None:
    """``warnings.showwarning`` for the CLI: one line, not Python's two-line format."""
    from .imageio import ImageWarning

    text = " ".join(str(message).split())
    label = "" if issubclass(category, ImageWarning) else f"{category.__name__}: "
    print(f"latentcodec: warning: {label}{text}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", 0)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        from .runtime import quiet_libraries

        quiet_libraries()
        previous = _terminate_as_interrupt()
        try:
            return COMMANDS[args.command](args)
        except KeyboardInterrupt:
            print("latentcodec: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except BrokenPipeError:  # e.g. `latentcodec stages | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except Exception as exc:  # noqa: BLE001 - one line, whatever happened (LatentCodecError or not)
            if verbose:
                traceback.print_exc(file=sys.stderr)
            print(f"latentcodec: error: {one_line(exc)}", file=sys.stderr)
            return EXIT_ERROR
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def _terminate_as_interrupt() -> Any:
    """``kill PID`` (SIGTERM) stops a run like Ctrl-C: the ``finally`` blocks of the atomic
    writes remove their temporary files, so a killed batch leaves no partial output.
    Returns the previous handler (None off the main thread, where handlers cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
