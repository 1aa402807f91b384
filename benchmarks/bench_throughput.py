"""Throughput: encode and decode images/s per preset, and per stage.

Stages are timed on their own: transform analysis and synthesis, quantize and
dequantize, entropy encode and decode (on the preset's own symbols).  Each benchmark puts
``images_per_s`` (and ``megapixels_per_s``) in ``benchmark.extra_info``; encodes also
store the stream's ``bytes`` and ``bpp``.  Run::

    .venv/bin/python -m pytest benchmarks/bench_throughput.py --benchmark-enable \\
        --benchmark-json throughput.json

Environment: ``LATENTCODEC_BENCH_IMAGE`` (default Kodak ``kodim23.png``, 768x512),
``LATENTCODEC_BENCH_ROUNDS`` (default 3), ``LATENTCODEC_BENCH_PRESETS=a,b`` (default: every
preset built on TAESD, the only transform whose weights are in ``../shared``),
``LATENTCODEC_BENCH_DEVICE`` (default cpu), ``LATENTCODEC_BENCH_THREADS`` (torch threads).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LATENTCODEC_SHARED", ROOT.parent / "shared"))
IMAGE = Path(os.environ.get("LATENTCODEC_BENCH_IMAGE", SHARED / "datasets" / "kodak" / "kodim23.png"))
MODEL = str(SHARED / "models" / "taesd")
ROUNDS = int(os.environ.get("LATENTCODEC_BENCH_ROUNDS", "3"))
DEVICE = os.environ.get("LATENTCODEC_BENCH_DEVICE", "cpu")
if os.environ.get("LATENTCODEC_BENCH_THREADS"):  # e.g. 1 on an oversubscribed machine
    import torch

    torch.set_num_threads(int(os.environ["LATENTCODEC_BENCH_THREADS"]))


def _presets() -> list[str]:
    from latentcodec.presets import PRESETS

    chosen = os.environ.get("LATENTCODEC_BENCH_PRESETS")
    if chosen:
        return [p.strip() for p in chosen.split(",") if p.strip()]
    return sorted(name for name, p in PRESETS.items() if p.stages["transform"] == "taesd")


PRESETS = _presets()
_CODECS: dict[str, Any] = {}


def _codec(preset: str) -> Any:
    from latentcodec import Codec
    from latentcodec.errors import LatentCodecError

    if preset not in _CODECS:
        try:
            codec = Codec.from_preset(preset, model=MODEL, device=DEVICE)
            shared = next((c.transform for c in _CODECS.values() if c.transform.get_config() == codec.transform.get_config()), None)
            if shared is not None:
                codec.transform = shared  # load the weights once
            codec.transform.fingerprint()
        except LatentCodecError as exc:
            pytest.skip(f"preset {preset!r} cannot be built here: {exc}")
        _CODECS[preset] = codec
    return _CODECS[preset]


@pytest.fixture(scope="module")
def image() -> Any:
    from latentcodec.imageio import to_tensor

    if not IMAGE.exists():
        pytest.fail(f"benchmark image missing: {IMAGE}")
    return to_tensor(IMAGE)


def _run(benchmark: Any, fn: Callable[[], Any], pixels: int, **extra: Any) -> Any:
    result = benchmark.pedantic(fn, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(extra)
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is not None and stats.mean > 0:  # absent with --benchmark-disable
        benchmark.extra_info["images_per_s"] = 1.0 / stats.mean
        benchmark.extra_info["megapixels_per_s"] = pixels / 1e6 / stats.mean
    return result


@pytest.mark.parametrize("preset", PRESETS)
def test_encode(benchmark: Any, preset: str, image: Any) -> None:
    codec = _codec(preset)
    pixels = image.shape[-1] * image.shape[-2]
    data = _run(benchmark, lambda: codec.compress(image), pixels, preset=preset)
    benchmark.extra_info.update(bytes=len(data), bpp=8 * len(data) / pixels)
    assert len(data) > 0


@pytest.mark.parametrize("preset", PRESETS)
def test_decode(benchmark: Any, preset: str, image: Any) -> None:
    codec = _codec(preset)
    data = codec.compress(image)
    out = _run(benchmark, lambda: codec.decompress(data, as_tensor=True), image.shape[-1] * image.shape[-2], preset=preset)
    assert tuple(out.shape) == tuple(image.shape)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize(
    "stage", ["transform.analysis", "transform.synthesis", "quantizer.quantize", "quantizer.dequantize", "entropy.encode", "entropy.decode"]
)
def test_stage(benchmark: Any, preset: str, stage: str, image: Any) -> None:
    import numpy as np
    import torch

    codec = _codec(preset)
    pixels = image.shape[-1] * image.shape[-2]
    latent = codec.transform.analysis(image)
    q = codec.quantizer.quantize(latent[0].numpy())
    payload = codec.entropy_coder.encode(q.symbols)
    calls: dict[str, Callable[[], Any]] = {
        "transform.analysis": lambda: codec.transform.analysis(image),
        "transform.synthesis": lambda: codec.transform.synthesis(latent),
        "quantizer.quantize": lambda: codec.quantizer.quantize(latent[0].numpy()),
        "quantizer.dequantize": lambda: codec.quantizer.dequantize(q.symbols, q.side_info),
        "entropy.encode": lambda: codec.entropy_coder.encode(q.symbols),
        "entropy.decode": lambda: codec.entropy_coder.decode(payload, q.symbols.shape),
    }
    name = {"transform": codec.transform.name, "quantizer": codec.quantizer.name, "entropy": codec.entropy_coder.name}[stage.split(".")[0]]
    result = _run(benchmark, calls[stage], pixels, preset=preset, stage=stage, stage_name=name, payload_bytes=len(payload))
    if stage == "entropy.decode":
        assert np.array_equal(result, q.symbols)  # exact, not just fast
    elif stage == "transform.synthesis":
        assert isinstance(result, torch.Tensor) and result.shape[-2:] == image.shape[-2:]
