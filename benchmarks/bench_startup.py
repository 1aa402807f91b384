"""Start-up time of the commands that must answer at once (none imports torch).

Each command runs as a fresh ``python -m latentcodec ...`` process, ``LATENTCODEC_BENCH_ROUNDS``
times (default 5); the fastest wall time is printed (the least disturbed by other work on a
shared machine), next to a bare ``python -c pass`` and ``import torch`` for scale.  Run::

    .venv/bin/python benchmarks/bench_startup.py
    .venv/bin/python -m pytest benchmarks/bench_startup.py --benchmark-enable -s
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROUNDS = int(os.environ.get("LATENTCODEC_BENCH_ROUNDS", "5"))
#: A small real stream for ``info``: a conformance vector.
STREAM = Path(__file__).resolve().parents[1] / "bitstream" / "vectors" / "uniform-step0.37-zlib-31x9.lc"


def measure(rounds: int = ROUNDS) -> dict[str, float]:
    """Command -> fastest wall time in seconds."""
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        **{f"latentcodec {' '.join(a)}": [sys.executable, "-m", "latentcodec", *a] for a in (
            ["--help"], ["--version"], ["info", "FILE.lc"], ["stages"], ["presets"], ["compress", "--help"],
        )},
    }  # fmt: skip
    out = {}
    for label, argv in commands.items():
        argv = [str(STREAM) if a == "FILE.lc" else a for a in argv]
        best = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True)
            best = min(best, time.perf_counter() - t0)
        out[label] = best
    return out


def report(results: dict[str, float]) -> str:
    return "\n".join(f"  {label:<34}{seconds * 1000:8.0f} ms" for label, seconds in results.items())


def test_startup(benchmark: Any) -> None:
    results = benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(results)
    print(f"\nfastest of {ROUNDS} runs:\n" + report(results))


if __name__ == "__main__":
    print(f"fastest of {ROUNDS} runs:\n" + report(measure()))
