"""Entropy coders on the 24 Kodak images: bytes, ideal code length, encode/decode times.

Symbols are those of the ``taesd-ans`` preset (TAESD latents, ``uniform`` at its default
step).  Kodak latents are cached (``LATENTCODEC_CACHE`` or ``~/.cache/latentcodec``) so
repeated runs cost no TAESD time.  Run either way::

    .venv/bin/python benchmarks/bench_entropy.py            # prints the table
    .venv/bin/python -m pytest benchmarks/bench_entropy.py --benchmark-enable -s
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LATENTCODEC_SHARED", ROOT.parent / "shared"))
CACHE = Path(os.environ.get("LATENTCODEC_CACHE", Path.home() / ".cache" / "latentcodec"))
CODERS = ("zlib", "ans", "ans-factorized", "ans-hyperprior", "ans-hyperprior:refine_z=30", "ans-context")


def create(label: str):  # type: ignore[no-untyped-def]
    """``name`` or ``name:key=value,...`` (encoder-side options) -> an entropy coder."""
    from latentcodec import registry
    from latentcodec.options import parse_options

    name, _, options = label.partition(":")
    return registry.create("entropy_coder", name, **parse_options(options.split(",") if options else []))


def kodak_symbols() -> list[np.ndarray]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from latentcodec.quantizers.uniform import UniformQuantizer
    from latentcodec.training.latents import folder_latents
    from latentcodec.transforms.taesd import TAESDTransform

    transform = TAESDTransform(model=str(SHARED / "models" / "taesd"), device="cpu", dtype="float32")
    latents = folder_latents(transform, SHARED / "datasets" / "kodak", CACHE, progress=False)
    q = UniformQuantizer()
    return [q.quantize(lat).symbols for lat in latents]


def measure(symbols: list[np.ndarray], coders: tuple[str, ...] = CODERS) -> dict[str, dict[str, Any]]:
    """Totals and per-image bytes per coder; every decode is checked to return the exact symbols."""
    out: dict[str, dict[str, Any]] = {}
    for name in coders:
        coder = create(name)
        decoder = type(coder).from_config(type(coder).config_from_wire(coder.wire_params()))
        total = ideal = enc_s = dec_s = 0.0
        per_image = []
        for s in symbols:
            t0 = time.perf_counter()
            data = coder.encode(s)
            t1 = time.perf_counter()
            back = decoder.decode(data, s.shape)
            t2 = time.perf_counter()
            if not np.array_equal(back, s):
                raise AssertionError(f"{name}: decoded symbols differ")
            enc_s, dec_s, total = enc_s + t1 - t0, dec_s + t2 - t1, total + len(data)
            per_image.append(len(data))
            if hasattr(coder, "ideal_bits"):
                ideal += coder.ideal_bits(s) / 8
        out[name] = {
            "bytes": total, "ideal_bytes": ideal, "encode_ms": 1000 * enc_s / len(symbols),
            "decode_ms": 1000 * dec_s / len(symbols), "min_image": min(per_image), "max_image": max(per_image),
            "per_image": per_image,  # bytes, in the order of the Kodak files
        }
    return out


def table(results: dict[str, dict[str, Any]], n_images: int, pixels: int) -> str:
    ans, zl = results["ans"]["bytes"], results["zlib"]["bytes"]
    lines = [f"{'coder':<28}{'bytes':>9}{'bpp':>8}{'vs ans':>8}{'vs zlib':>8}{'ideal':>10}{'overhead':>9}{'enc ms':>8}{'dec ms':>8}"]
    for name, r in results.items():
        over = f"{100 * (r['bytes'] / r['ideal_bytes'] - 1):+.2f}%" if r["ideal_bytes"] else "-"
        ideal = f"{r['ideal_bytes']:.0f}" if r["ideal_bytes"] else "-"
        lines.append(
            f"{name:<28}{r['bytes']:>9.0f}{8 * r['bytes'] / pixels:>8.4f}{100 * (r['bytes'] / ans - 1):>+7.1f}%"
            f"{100 * (r['bytes'] / zl - 1):>+7.1f}%{ideal:>10}{over:>9}{r['encode_ms']:>8.1f}{r['decode_ms']:>8.1f}"
        )
    return "\n".join(lines) + f"\n({n_images} Kodak images, per-image times, bytes are totals)"


def test_entropy_coders_kodak(benchmark) -> None:  # type: ignore[no-untyped-def]
    symbols = kodak_symbols()
    results = benchmark.pedantic(measure, args=(symbols,), rounds=1, iterations=1)
    pixels = 24 * 768 * 512
    benchmark.extra_info.update({f"{k}.{m}": v for k, r in results.items() for m, v in r.items()})
    print("\n" + table(results, len(symbols), pixels))
    assert results["ans-hyperprior"]["bytes"] < results["ans"]["bytes"]
    assert results["ans-hyperprior:refine_z=30"]["ideal_bytes"] <= results["ans-hyperprior"]["ideal_bytes"]


if __name__ == "__main__":
    syms = kodak_symbols()
    print(table(measure(syms), len(syms), 24 * 768 * 512))
