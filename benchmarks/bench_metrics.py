"""Seconds per image pair of every evaluation metric that runs here, and the value it gives.

The pair is a Kodak image and its JPEG at quality 30 (a visible but moderate distortion), so
the values are also a sanity check of each metric's scale.  ``benchmark.extra_info`` holds
``value`` (every column of the metric) and ``megapixels``.  Run::

    .venv/bin/python benchmarks/bench_metrics.py                    # a table on stdout
    .venv/bin/python -m pytest benchmarks/bench_metrics.py --benchmark-enable --benchmark-json metrics.json

Environment: ``LATENTCODEC_BENCH_IMAGE`` (default ``kodim23.png``, 768x512),
``LATENTCODEC_BENCH_ROUNDS`` (default 3), ``LATENTCODEC_BENCH_THREADS`` (torch threads).
A metric that cannot run here (package or tool missing) is skipped with the reason.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LATENTCODEC_SHARED", ROOT.parent / "shared"))
IMAGE = Path(os.environ.get("LATENTCODEC_BENCH_IMAGE", SHARED / "datasets" / "kodak" / "kodim23.png"))
ROUNDS = int(os.environ.get("LATENTCODEC_BENCH_ROUNDS", "3"))
if os.environ.get("LATENTCODEC_BENCH_THREADS"):
    import torch

    torch.set_num_threads(int(os.environ["LATENTCODEC_BENCH_THREADS"]))

METRICS = ["psnr-rgb", "psnr-y", "ms-ssim", "ssimulacra2", "butteraugli", "cvvdp", "ssimulacra"]


def image_pair() -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    ref = Image.open(IMAGE).convert("RGB")
    buf = io.BytesIO()
    ref.save(buf, format="JPEG", quality=30)
    return np.asarray(ref), np.asarray(Image.open(buf).convert("RGB"))


def load(name: str):  # type: ignore[no-untyped-def]
    """The metric, or the reason it cannot run here."""
    from latentcodec.eval.metrics import load_metrics

    metrics, notices = load_metrics([name])
    return (metrics[0], None) if metrics else (None, "; ".join(notices))


@pytest.mark.parametrize("name", METRICS)
def test_metric(benchmark, name: str) -> None:  # type: ignore[no-untyped-def]
    metric, reason = load(name)
    if metric is None:
        pytest.skip(reason)
    ref, dist = image_pair()
    metric.measure(ref, dist)  # warm-up: lazy imports, model set-up
    values = benchmark.pedantic(metric.measure, args=(ref, dist), rounds=ROUNDS, iterations=1)
    benchmark.extra_info.update({"value": values, "megapixels": ref.shape[0] * ref.shape[1] / 1e6})


def main() -> None:
    ref, dist = image_pair()
    print(f"{IMAGE.name} ({ref.shape[1]}x{ref.shape[0]}) against its JPEG q30, {ROUNDS} rounds after a warm-up")
    print(f"{'metric':<14} {'s / pair':>9}  value")
    for name in METRICS:
        metric, reason = load(name)
        if metric is None:
            print(f"{name:<14} {'skipped':>9}  {reason}")
            continue
        metric.measure(ref, dist)
        t0 = time.perf_counter()
        for _ in range(ROUNDS):
            values = metric.measure(ref, dist)
        seconds = (time.perf_counter() - t0) / ROUNDS
        print(f"{name:<14} {seconds:>9.3f}  " + ", ".join(f"{k} {v:.4g}" if v is not None else f"{k} -" for k, v in values.items()))


if __name__ == "__main__":
    main()
