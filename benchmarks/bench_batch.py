"""One batch CLI call against a loop of single CLI calls, on the Kodak images.

Each single call is a fresh ``latentcodec compress IMAGE -o OUT`` process (import torch,
load TAESD, compress one image); the batch call is one ``latentcodec compress KODAK -o
DIR`` process, at the default batch size (1 on the CPU) and at ``--batch-size 8`` (real
batches of equal-size images).  Every stream must be byte-identical to the single call's.
Prints the wall times and the ratio; stores them in ``benchmark.extra_info``.  Run::

    .venv/bin/python benchmarks/bench_batch.py
    .venv/bin/python -m pytest benchmarks/bench_batch.py --benchmark-enable -s --benchmark-json batch.json

Environment: ``LATENTCODEC_BENCH_IMAGES`` (default 24: all of Kodak), ``LATENTCODEC_BENCH_DEVICE``
(default cpu), ``LATENTCODEC_SHARED`` (default ``../shared``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LATENTCODEC_SHARED", ROOT.parent / "shared"))
KODAK = SHARED / "datasets" / "kodak"
MODEL = str(SHARED / "models" / "taesd")
IMAGES = int(os.environ.get("LATENTCODEC_BENCH_IMAGES", "24"))
DEVICE = os.environ.get("LATENTCODEC_BENCH_DEVICE", "cpu")


def _cli(*args: str) -> float:
    """Run ``latentcodec ARGS`` in a fresh process; its wall time in seconds."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "latentcodec", *args, "--model", MODEL, "--device", DEVICE, "--quiet"], check=True, env=env)
    return time.perf_counter() - t0


def measure(work: Path, n: int = IMAGES) -> dict[str, Any]:
    """Wall times of the single-call loop and of two batch calls; raises if any stream differs."""
    images = sorted(KODAK.glob("*.png"))[:n]
    source = work / "kodak"
    source.mkdir()
    for image in images:
        (source / image.name).symlink_to(image)
    single = work / "single"
    single.mkdir()
    single_s = sum(_cli("compress", str(image), "-o", str(single / f"{image.stem}.lc")) for image in images)
    out: dict[str, Any] = {"images": len(images), "single_calls_s": single_s}
    for label, extra in (("batch", ()), ("batch8", ("--batch-size", "8"))):
        folder = work / label
        out[f"{label}_s"] = _cli("compress", str(source), "-o", str(folder), *extra)
        for image in images:
            a, b = (single / f"{image.stem}.lc").read_bytes(), (folder / f"{image.stem}.lc").read_bytes()
            if a != b:
                raise AssertionError(f"{label}: {image.name} differs from its single call ({len(a)} vs {len(b)} bytes)")
        out[f"{label}_speedup"] = single_s / out[f"{label}_s"]
    out["bytes"] = sum((single / f"{image.stem}.lc").stat().st_size for image in images)
    return out


def report(r: dict[str, Any]) -> str:
    n = r["images"]
    return "\n".join(
        [
            f"{n} Kodak images, TAESD on {DEVICE}, taesd-ans, {r['bytes']} bytes in all; every stream byte-identical",
            f"  {n} single CLI calls:            {r['single_calls_s']:8.1f} s ({r['single_calls_s'] / n:.2f} s per image)",
            f"  one batch call:                {r['batch_s']:8.1f} s ({r['batch_s'] / n:.2f} s per image), {r['batch_speedup']:.2f}x faster",
            f"  one batch call, --batch-size 8: {r['batch8_s']:7.1f} s ({r['batch8_s'] / n:.2f} s per image), {r['batch8_speedup']:.2f}x faster",
        ]
    )


def test_batch_call_against_single_calls(benchmark: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        result = benchmark.pedantic(measure, args=(Path(tmp),), rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    print("\n" + report(result))
    assert result["batch_speedup"] > 1.0


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        print(report(measure(Path(tmp))))
