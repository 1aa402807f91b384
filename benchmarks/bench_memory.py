"""Peak memory of decoding a 4096 x 4096 stream on the CPU (goal: at most 3 GB resident).

The stream is made from a real latent: the TAESD latent of ``kodim23`` upsampled to the
4096 x 4096 image's 512 x 512 latent (so its statistics are a photo's, without a 16 MP
encode), quantized at the default step and coded with ``ans`` and ``ans-hyperprior``.
Each decode (entropy decoding, dequantization, the tiled TAESD synthesis and the PNG
written to disk) runs in a fresh process whose peak resident set size is read from
``getrusage``.  Run either way::

    .venv/bin/python benchmarks/bench_memory.py
    .venv/bin/python -m pytest benchmarks/bench_memory.py --benchmark-enable -s
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
TAESD = SHARED / "models" / "taesd"
SIDE = 4096
GOAL_BYTES = 3 * 1024**3
CODERS = ("ans", "ans-hyperprior")

#: Run in the child: decode one stream to a PNG, print the peak RSS in bytes.
_CHILD = """
import resource, sys
from latentcodec import decompress
data = open(sys.argv[1], "rb").read()
image = decompress(data, model=sys.argv[2], device="cpu")
image.save(sys.argv[3])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def make_stream(coder: str, path: Path) -> int:
    import numpy as np
    import torch.nn.functional as F

    from latentcodec import Codec
    from latentcodec.imageio import to_tensor

    codec = Codec.from_preset("taesd-ans", model=str(TAESD), device="cpu", entropy_coder=coder)
    latent = codec.transform.analysis(to_tensor(SHARED / "datasets" / "kodak" / "kodim23.png"))
    big = F.interpolate(latent, size=(SIDE // 8, SIDE // 8), mode="bilinear", align_corners=False)
    data = codec.compress_latent(np.ascontiguousarray(big[0].numpy()), (SIDE, SIDE))
    path.write_bytes(data)
    return len(data)


def measure() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="lc-mem-") as tmp:
        for coder in CODERS:
            stream = Path(tmp) / f"{coder}.lc"
            size = make_stream(coder, stream)
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", _CHILD, str(stream), str(TAESD), str(Path(tmp) / f"{coder}.png")],
                capture_output=True, text=True, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
            )
            out[coder] = {"stream_bytes": size, "peak_rss_bytes": int(proc.stdout.split()[-1]), "seconds": time.perf_counter() - t0}
    return out


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [f"decode of a {SIDE}x{SIDE} stream (TAESD, tiled synthesis), CPU, one fresh process each:"]
    for coder, r in results.items():
        lines.append(f"  {coder:<16} stream {r['stream_bytes']:>9,} B   peak RSS {r['peak_rss_bytes'] / 1024**3:5.2f} GB   {r['seconds']:6.1f} s")
    return "\n".join(lines) + f"\n(goal: <= {GOAL_BYTES / 1024**3:.0f} GB)"


def test_decode_4096_peak_memory(benchmark) -> None:  # type: ignore[no-untyped-def]
    results = benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update({f"{c}.{k}": v for c, r in results.items() for k, v in r.items()})
    print("\n" + table(results))
    assert all(r["peak_rss_bytes"] <= GOAL_BYTES for r in results.values())


if __name__ == "__main__":
    print(table(measure()))
