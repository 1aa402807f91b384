"""Seconds per Kodak image for each effort level, side by side in one process.

``bench_rdo.py`` measures rate and quality over many images and steps, on whatever the
machine has free; this one only times ``codec.compress(image, effort=N)`` for N = 0..3 on
one 768x512 Kodak image (``taesd-hyperprior`` on TAESD, step 0.8), with a fixed torch
thread count, so the speed of each level can be read on an idle machine.  Run::

    .venv/bin/python benchmarks/bench_rdo_speed.py                 # CPU, 2 threads
    LATENTCODEC_BENCH_DEVICE=cuda .venv/bin/python benchmarks/bench_rdo_speed.py
    .venv/bin/python -m pytest benchmarks/bench_rdo_speed.py --benchmark-enable -s

Environment: ``LATENTCODEC_BENCH_DEVICE`` (default cpu), ``LATENTCODEC_BENCH_THREADS``
(default 2), ``LATENTCODEC_BENCH_IMAGE`` (default kodim08), ``LATENTCODEC_SHARED``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LATENTCODEC_SHARED", ROOT.parent / "shared"))
DEVICE = os.environ.get("LATENTCODEC_BENCH_DEVICE", "cpu")
THREADS = int(os.environ.get("LATENTCODEC_BENCH_THREADS", "2"))
IMAGE = SHARED / "datasets" / "kodak" / f"{os.environ.get('LATENTCODEC_BENCH_IMAGE', 'kodim08')}.png"


def measure() -> list[dict[str, Any]]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from latentcodec import Codec

    torch.set_num_threads(THREADS)
    codec = Codec.from_preset("taesd-hyperprior", model=str(SHARED / "models" / "taesd"), device=DEVICE, step=0.8)
    codec.compress(IMAGE)  # warm-up: weights, kernels
    rows = []
    for effort in (0, 1, 2, 3):
        if DEVICE.startswith("cuda"):
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        data = codec.compress(IMAGE, effort=effort)
        if DEVICE.startswith("cuda"):
            torch.cuda.synchronize()
        rows.append({"effort": effort, "bytes": len(data), "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0})
    return rows


def report(rows: list[dict[str, Any]]) -> str:
    load = os.getloadavg()[0]
    lines = [f"{IMAGE.name}, taesd-hyperprior step 0.8 on {DEVICE}, {THREADS} torch threads, load {load:.1f} at the end"]
    lines += [f"  effort {r['effort']}: {r['bytes']:6d} B  {r['wall_s']:6.1f} s wall  {r['cpu_s']:6.1f} s CPU" for r in rows]
    return "\n".join(lines)


def test_effort_speed(benchmark: Any) -> None:
    rows = benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info["rows"] = rows
    print("\n" + report(rows))
    walls = [r["wall_s"] for r in rows]
    assert walls == sorted(walls)  # each level runs more decoder passes than the one below


if __name__ == "__main__":
    print(report(measure()))
