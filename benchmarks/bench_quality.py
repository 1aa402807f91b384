"""``--quality`` on every preset: total Kodak bytes per quality, which must grow with it.

The TAESD latents of the 24 Kodak images are computed once (cached like
``bench_entropy.py``'s); every preset then quantizes and codes them at each quality, with
the quality -> rate-parameter map of ``latentcodec/rate.py``.  The sd-vae presets run on
TAESD, as ``--model ../shared/models/taesd`` makes them.  Prints one row per preset (bytes
per quality, and the parameter values) and asserts the bytes are strictly increasing.
Run::

    .venv/bin/python benchmarks/bench_quality.py
    .venv/bin/python -m pytest benchmarks/bench_quality.py --benchmark-enable -s --benchmark-json quality.json

Environment: ``LATENTCODEC_BENCH_QUALITIES`` (default ``0,25,50,75,100``),
``LATENTCODEC_BENCH_PRESETS`` (default: all), ``LATENTCODEC_CACHE``, ``LATENTCODEC_SHARED``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LATENTCODEC_SHARED", ROOT.parent / "shared"))
CACHE = Path(os.environ.get("LATENTCODEC_CACHE", Path.home() / ".cache" / "latentcodec"))
MODEL = str(SHARED / "models" / "taesd")
QUALITIES = tuple(float(q) for q in os.environ.get("LATENTCODEC_BENCH_QUALITIES", "0,25,50,75,100").split(","))


def _presets() -> list[str]:
    from latentcodec.presets import PRESETS

    chosen = os.environ.get("LATENTCODEC_BENCH_PRESETS")
    return [p.strip() for p in chosen.split(",")] if chosen else list(PRESETS)


def measure(qualities: tuple[float, ...] = QUALITIES, verbose: bool = False) -> dict[str, dict[str, Any]]:
    """Preset -> {"bytes": [...], "values": [...], "seconds": s}: totals over Kodak per quality."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from latentcodec import Codec
    from latentcodec.imageio import list_images, open_image
    from latentcodec.rate import rate_parameter
    from latentcodec.training.latents import folder_latents
    from latentcodec.transforms.taesd import TAESDTransform

    transform = TAESDTransform(model=MODEL, device="cpu", dtype="float32")
    kodak = SHARED / "datasets" / "kodak"
    latents = folder_latents(transform, kodak, CACHE, progress=False)
    sizes = [open_image(f).size for f in list_images(kodak)]
    out: dict[str, dict[str, Any]] = {}
    for preset in _presets():
        t0 = time.perf_counter()
        totals, values = [], []
        for quality in qualities:
            codec = Codec.from_preset(preset, model=MODEL, device="cpu", dtype="float32", quality=quality)
            codec.transform = transform  # the weights are loaded once
            totals.append(sum(len(codec.compress_latent(z, size)) for z, size in zip(latents, sizes, strict=True)))
            values.append(getattr(codec.quantizer, rate_parameter(codec.quantizer).name))
        out[preset] = {"bytes": totals, "values": values, "parameter": rate_parameter(codec.quantizer).name, "seconds": time.perf_counter() - t0}
        if verbose:
            print(f"{preset}: {totals} ({out[preset]['seconds']:.0f} s)", flush=True)
    return out


def table(results: dict[str, dict[str, Any]], qualities: tuple[float, ...] = QUALITIES) -> str:
    head = f"{'preset':<18}{'param':<12}" + "".join(f"{f'q={q:g}':>10}" for q in qualities) + "  monotone"
    lines = [head]
    for preset, r in results.items():
        mono = all(a < b for a, b in zip(r["bytes"], r["bytes"][1:]))
        lines.append(f"{preset:<18}{r['parameter']:<12}" + "".join(f"{b:>10,}" for b in r["bytes"]) + f"  {'yes' if mono else 'NO'}")
        lines.append(f"{'':<18}{'':<12}" + "".join(f"{v:>10.4g}" for v in r["values"]))
    return "\n".join(lines)


def test_quality_is_monotone_on_kodak(benchmark: Any) -> None:
    results = benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info["qualities"] = list(QUALITIES)
    benchmark.extra_info["results"] = results
    print("\n" + table(results))
    for preset, r in results.items():
        assert all(a < b for a, b in zip(r["bytes"], r["bytes"][1:])), (preset, r["bytes"])


if __name__ == "__main__":
    print(table(measure(verbose=True)))
