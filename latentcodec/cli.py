"""The ``latentcodec`` command line.  Errors print one line and exit non-zero."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from . import registry
from .errors import ImageReadError, LatentCodecError, StreamError
from .imageio import DEFAULT_MAX_PIXELS, atomic_write, ensure_writable, save_image
from .presets import DEFAULT_PRESET, PRESETS

EXIT_ERROR = 1
EXIT_USAGE = 2


def _read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise StreamError(f"no such file: {path}") from None
    except OSError as exc:
        raise StreamError(f"cannot read {path}: {exc.strerror or exc}") from None


def _add_runtime(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="transform weights: hub id or local path (e.g. ../shared/models/taesd)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where models run (auto: CUDA if present)")
    p.add_argument("--dtype", choices=["auto", "float32", "float16", "bfloat16"], help="model precision (auto: fp16 on CUDA)")
    p.add_argument("--force", action="store_true", help="overwrite the output; accept other transform weights")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="latentcodec", description="Image compression in Stable Diffusion's latent space.")
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compress", help="compress an image to a .lc stream")
    c.add_argument("input")
    c.add_argument("-o", "--output", required=True)
    c.add_argument("--preset", default=DEFAULT_PRESET, help=f"one of: {', '.join(sorted(PRESETS))}")
    c.add_argument("--transform", help="replace the preset's transform")
    c.add_argument("--quantizer", help="replace the preset's quantizer")
    c.add_argument("--entropy-coder", help="replace the preset's entropy coder")
    c.add_argument("--refiner", help="the refiner the stream asks for by default")
    c.add_argument("--option", "-O", action="append", default=[], metavar="KEY=VALUE", help="stage option, e.g. step=0.4 or quantizer.step=0.4")
    c.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    budget = c.add_mutually_exclusive_group()
    budget.add_argument("--target-bytes", type=int, metavar="N", help="search the rate parameter for the best file of at most N bytes")
    budget.add_argument("--target-bpp", type=float, metavar="X", help="like --target-bytes, in bits per pixel")
    _add_runtime(c)

    d = sub.add_parser("decompress", help="decode a .lc stream to an image")
    d.add_argument("input")
    d.add_argument("-o", "--output", required=True)
    d.add_argument("--refiner", help="decode with this refiner instead of the stream's")
    d.add_argument("--transform", help="decode with another transform (needs --force)")
    d.add_argument("--option", "-O", action="append", default=[], metavar="KEY=VALUE", help="refiner option")
    d.add_argument("--refiner-model", help="diffusion refiners: SD 1.5 hub id or local directory (unet/, scheduler/, ...)")
    d.add_argument("--controlnet-model", help="controlnet-canny: ControlNet hub id or local directory")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_runtime(d)

    i = sub.add_parser("info", help="describe a .lc stream")
    i.add_argument("input")
    i.add_argument("--json", action="store_true")

    s = sub.add_parser("stages", help="list registered stages")
    s.add_argument("--check", action="store_true", help="import and validate every stage")

    from .eval.cli import add_parser as add_eval_parser

    add_eval_parser(sub)

    from .training.cli import add_parser as add_train_parser

    add_train_parser(sub)
    return parser


def cmd_compress(args: argparse.Namespace) -> int:
    from .codec import Codec
    from .options import parse_options

    ensure_writable(args.output, args.force)
    if not Path(args.input).exists():
        raise ImageReadError(f"no such image file: {args.input}")
    options = parse_options(args.option)
    for key in ("model", "device", "dtype"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    codec = Codec.from_preset(
        args.preset,
        transform=args.transform,
        quantizer=args.quantizer,
        entropy_coder=args.entropy_coder,
        refiner=args.refiner,
        max_pixels=args.max_pixels,
        **options,
    )
    if args.target_bytes is not None or args.target_bpp is not None:
        from .ratecontrol import compress_to_target

        result = compress_to_target(codec, args.input, target_bytes=args.target_bytes, target_bpp=args.target_bpp)
        data = result.data
        print(f"rate control: {result.parameter}={result.value:g} after {result.evaluations} trial encodings")
    else:
        data = codec.compress(args.input)
    atomic_write(args.output, data, force=args.force)
    print(f"{args.output}: {len(data)} bytes")
    return 0


def cmd_decompress(args: argparse.Namespace) -> int:
    from .codec import decompress
    from .options import parse_options

    ensure_writable(args.output, args.force)
    data = _read_bytes(args.input)
    image = decompress(
        data,
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        transform=args.transform,
        refiner=args.refiner,
        refiner_options={
            **parse_options(args.option),
            **{k: v for k, v in (("refiner_model", args.refiner_model), ("controlnet_model", args.controlnet_model)) if v},
            **({"quiet": True} if args.quiet else {}),
        },
        force=args.force,
    )
    save_image(image, args.output, force=args.force)  # type: ignore[arg-type]
    print(f"{args.output}: {image.width}x{image.height}")  # type: ignore[union-attr]
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .info import describe

    info = describe(_read_bytes(args.input))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    chain = " -> ".join(f"{s['name']}@{s['version']}" + (f"{s['params']}" if s.get("params") else "") for s in info["chain"])
    print(f"file:      {args.input}")
    print(f"chain:     {chain}")
    print(f"image:     {info['width']}x{info['height']}, latent {'x'.join(map(str, info['latent_shape']))}")
    print(f"bytes:     {info['total_bytes']} (payload {info['payload_bytes']}, side info {info['side_info_bytes']}, overhead {info['overhead_bytes']})")
    print(f"rate:      {info['bpp']:.4f} bpp")
    print(f"weights:   {info['fingerprint']}")
    return 0


def cmd_stages(args: argparse.Namespace) -> int:
    failures = 0
    results = {(r.entry.kind, r.entry.name): r for r in registry.check_all()} if args.check else {}
    for kind, group in registry.GROUPS.items():
        print(f"{registry.KIND_LABELS[kind]} ({group}):")
        found = registry.entries(kind)
        dups = registry.duplicates(kind)
        if not found:
            print("  (none)")
        for name, e in sorted(found.items()):
            status = ""
            if args.check:
                r = results.get((kind, name))
                if r is not None and r.error:
                    failures += 1
                    status = f"  FAILED: {r.error}"
                else:
                    status = "  ok"
            print(f"  {name:<18} {e.distribution:<28} {e.value}{status}")
            for other in dups.get(name, ())[1:]:
                print(f"  {name:<18} {other.distribution:<28} {other.value}  (duplicate name)")
    if args.check:
        total = len(results)
        print(f"{total - failures} of {total} stages ok" + (f", {failures} failed" if failures else ""))
    return EXIT_ERROR if failures else 0


COMMANDS = {"compress": cmd_compress, "decompress": cmd_decompress, "info": cmd_info, "stages": cmd_stages}


def cmd_eval(args: argparse.Namespace) -> int:
    from .eval.cli import run

    return run(args)


COMMANDS["eval"] = cmd_eval


def cmd_train_prior(args: argparse.Namespace) -> int:
    from .training.cli import run

    return run(args)


COMMANDS["train-prior"] = cmd_train_prior


def main(argv: Sequence[str] | None = None) -> int:
    from .runtime import quiet_libraries

    quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except LatentCodecError as exc:
        print(f"latentcodec: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("latentcodec: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `latentcodec stages | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except MemoryError:
        print("latentcodec: error: out of memory (try a smaller image or --device cuda)", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
