"""Flags every ``latentcodec`` command shares, defined once so they mean the same everywhere.

* ``--quiet`` (no progress bars, no status lines) and ``-v/--verbose`` (more detail);
  ``-q`` is left to ``compress``'s quality, as in cwebp and avifenc;
* ``--device`` (``auto``, ``cpu``, ``cuda`` or ``cuda:N``) and ``--dtype``.

Status and progress go to stderr, so stdout can carry data (``-o -``).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from typing import Any, Callable

DTYPE_CHOICES = ("auto", "float32", "float16", "bfloat16")
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def device_arg(text: str) -> str:
    """argparse type of ``--device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    if not _DEVICE_RE.match(text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}")
    return text


def _checked(cast: Callable[[str], Any], ok: Callable[[Any], bool], expected: str) -> Callable[[str], Any]:
    """An argparse type: ``cast(text)``, refused with "expected EXPECTED" unless ``ok`` holds."""

    def parse(text: str) -> Any:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


#: Counts and sizes: an integer >= 1.
positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
#: Resource amounts (GPUs, CPUs per actor): a finite number >= 0.
nonnegative_float = _checked(float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0")
#: ``-q/--quality``: a number in 0..100.
quality = _checked(float, lambda v: 0 <= v <= 100, "a number in 0..100")


def add_verbosity(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars or status lines (errors still go to stderr)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more detail on stderr (repeat for more)")


def add_device(p: argparse.ArgumentParser, *, default: str | None = None) -> None:
    p.add_argument("--device", type=device_arg, default=default, metavar="{auto,cpu,cuda,cuda:N}", help="where models run (auto: CUDA if present)")
    p.add_argument("--dtype", choices=DTYPE_CHOICES, help="model precision (auto: fp16 on CUDA, fp32 on the CPU)")


def status(args: argparse.Namespace, message: str) -> None:
    """A status line on stderr, unless ``--quiet``."""
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr)
