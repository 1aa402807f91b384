"""Append new conformance vectors to bitstream/vectors/ (never rewrite an existing one).

Vectors exercise the container and every built-in quantizer and entropy coder with
synthetic latents, so no model weights are needed to create or check them.  Each entry
of ``vectors.json`` stores the SHA-256 of the decoded int32 symbols and of the
dequantized float32 latent (both C order, little-endian).

The set is append-only: a vector, once written, is the truth.  Running this script
writes only the vectors of :data:`VECTORS` whose file does not exist yet, and checks
that every existing one still decodes to its stored hashes (``tests/test_vectors.py``
holds the frozen list).  To cover something new, add a definition at the end of
:data:`VECTORS` and run ``python bitstream/make_vectors.py``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latentcodec import bitstream, registry
from latentcodec.bitstream import StageRecord, Stream
from latentcodec.decoding import decode_latent, decode_symbols

HERE = Path(__file__).resolve().parent / "vectors"
PRIORS = Path(__file__).resolve().parents[1] / "latentcodec" / "data" / "priors"
FINGERPRINT = bytes.fromhex("00c0ffee")


def symbols_sha256(symbols: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(symbols, dtype="<i4").tobytes()).hexdigest()


def latent_sha256(latent: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(latent, dtype="<f4").tobytes()).hexdigest()


@dataclass(frozen=True)
class Vector:
    """How one vector is made: an image size, a synthetic latent (seeded) and two stages."""

    name: str
    quantizer: str
    coder: str
    width: int
    height: int
    seed: int
    qopts: dict[str, Any] = field(default_factory=dict)
    copts: dict[str, Any] = field(default_factory=dict)
    #: Latent std (SD latents: about 1) and how smooth it is along rows.
    scale: float = 0.35


def synthetic_latent(v: Vector) -> np.ndarray:
    """Smooth-ish latent with SD-like statistics (std about 1), clipped to +-4."""
    rng = np.random.default_rng(v.seed)
    c, h, w = 4, -(-v.height // 8), -(-v.width // 8)
    return np.clip(np.cumsum(rng.normal(0, v.scale, size=(c, h, w)), axis=2), -4, 4).astype(np.float32)


def make(v: Vector) -> bytes:
    q = registry.create("quantizer", v.quantizer, **v.qopts)
    e = registry.create("entropy_coder", v.coder, **v.copts)
    latent = synthetic_latent(v)
    quantized = q.quantize(latent)
    return bitstream.write(
        Stream(
            width=v.width,
            height=v.height,
            latent_channels=latent.shape[0],
            downsampling_factor=8,
            chain=(
                StageRecord("transform", "taesd", 1),
                StageRecord("quantizer", v.quantizer, q.version, q.wire_params()),
                StageRecord("entropy_coder", v.coder, e.version, e.wire_params()),
                StageRecord("refiner", "vae", 1),
            ),
            fingerprint=FINGERPRINT,
            side_info=quantized.side_info,
            payload=e.encode(quantized.symbols),
        )
    )


def describe(data: bytes) -> dict[str, Any]:
    """What ``vectors.json`` records of a stream, from decoding it."""
    stream = bitstream.read(data)
    symbols, _ = decode_symbols(stream)
    latent, _ = decode_latent(stream)
    return {
        "bytes": len(data),
        "image_size": [stream.width, stream.height],
        "latent_shape": list(stream.latent_shape),
        "chain": [f"{r.name}@{r.version}" + (f":{r.params.hex()}" if r.params else "") for r in stream.chain],
        "symbols_sha256": symbols_sha256(symbols),
        "latent_sha256": latent_sha256(latent),
    }


def _prior(kind: str, canonical: str) -> str:
    return str(PRIORS / f"taesd-{kind}-{canonical}.npz")


#: Every vector ever made, in order of creation (append only).
VECTORS: list[Vector] = [
    # the first four (format version 1, 2026-11-22)
    Vector("uniform-ans-64x48", "uniform", "ans", 64, 48, 1),
    Vector("uniform-step0.3-ans-bits10-100x37", "uniform", "ans", 100, 37, 2, {"step": 0.3}, {"table_bits": 10}),
    Vector("uint8-zlib-96x64", "uint8", "zlib", 96, 64, 3),
    Vector("uint8-ans-8x8", "uint8", "ans", 8, 8, 4),
    # every built-in stage, non-default params, odd sizes, one-pixel sides (2026-12-01)
    Vector("uniform-zlib-1x1", "uniform", "zlib", 1, 1, 5),
    Vector("uniform-step0.37-zlib-31x9", "uniform", "zlib", 31, 9, 6, {"step": 0.37}),
    Vector("uniform-step2-ans-bits16-1x200", "uniform", "ans", 1, 200, 7, {"step": 2.0}, {"table_bits": 16}),
    Vector("uniform-step0.05-ans-bits8-57x23", "uniform", "ans", 57, 23, 8, {"step": 0.05}, {"table_bits": 8}, scale=0.05),
    Vector("uint8-r3.1-ans-bits16-13x7", "uint8", "ans", 13, 7, 9, {"half_range": 3.1}, {"table_bits": 16}),
    Vector("uint8-r40-zlib-200x1", "uint8", "zlib", 200, 1, 10, {"half_range": 40.0}),
    Vector("palette256-index-zlibpal-fs-zlib-64x40", "palette", "zlib", 64, 40, 11, {"colors": 256, "dither": "fs", "symbols": "index", "palette_coding": "zlib"}),
    Vector("palette112-rank-compact-fs0.5-binned-72x56", "palette", "ans-binned", 72, 56, 12, {"colors": 112, "dither": "fs", "dither_level": 0.5, "symbols": "rank", "palette_coding": "compact", "metric": "sd-decoder"}),
    Vector("palette64-codebook-rank-binned-40x24", "palette", "ans-binned", 40, 24, 13, {"colors": 64, "codebook": "taesd-v1", "symbols": "rank"}),
    Vector("palette16-r2.5-ordered-index-compact-ans-9x17", "palette", "ans", 9, 17, 14, {"colors": 16, "half_range": 2.5, "dither": "ordered", "symbols": "index", "palette_coding": "compact"}),
    Vector("palette2-none-rank-compact-binned-8x8", "palette", "ans-binned", 8, 8, 15, {"colors": 2, "dither": "none", "symbols": "rank", "palette_coding": "compact"}),
    Vector("uniform-binned-33x65", "uniform", "ans-binned", 33, 65, 16),
    Vector("uniform-factorized-64x48", "uniform", "ans-factorized", 64, 48, 17),
    Vector("uniform-factorized-1x1", "uniform", "ans-factorized", 1, 1, 18),
    *[
        Vector(f"uniform-factorized-{c}-47x31", "uniform", "ans-factorized", 47, 31, 19, copts={"prior": _prior("factorized", c)})
        for c in ("51c9804e", "88371a55", "0a7b216a", "75a93237", "bf78acb7")
    ],
    *[
        Vector(f"uniform-hyperprior-{c}-{w}x{h}", "uniform", "ans-hyperprior", w, h, 20 + i, copts={"prior": _prior("hyperprior", c)})
        for i, (c, w, h) in enumerate(
            (("7fc2bd13", 96, 64), ("c65a6699", 100, 72), ("63de3b4c", 120, 88), ("b55a50fa", 136, 96), ("5819f1d9", 152, 104))
        )
    ],
    Vector("uniform-hyperprior-8x120", "uniform", "ans-hyperprior", 8, 120, 25),
    Vector("uniform-step1.2-hyperprior-9x9", "uniform", "ans-hyperprior", 9, 9, 26, {"step": 1.2}),
    Vector("uniform-context-264x560", "uniform", "ans-context", 264, 560, 27),
    Vector("uniform-context-8x8", "uniform", "ans-context", 8, 8, 28),
    Vector("uint8-context-75x131", "uint8", "ans-context", 75, 131, 29),
]


def main() -> int:
    HERE.mkdir(exist_ok=True)
    manifest_path = HERE / "vectors.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"format_version": 1, "vectors": []}
    listed = {entry["file"]: entry for entry in manifest["vectors"]}
    problems = []
    for entry in manifest["vectors"]:  # the existing ones must still decode to their hashes
        got = describe((HERE / entry["file"]).read_bytes())
        for key in ("symbols_sha256", "latent_sha256"):
            if key in entry and entry[key] != got[key]:
                problems.append(f"{entry['file']}: {key} is {got[key]}, the vector says {entry[key]}")
        for key, value in got.items():  # older entries gain the fields they lacked (never new hashes)
            if key not in entry or key == "chain":
                entry[key] = value
    added = []
    for v in VECTORS:
        file = f"{v.name}.lc"
        if file in listed:
            continue
        if (HERE / file).exists():
            problems.append(f"{file} exists but is not listed in vectors.json; list it by hand, never regenerate it")
            continue
        data = make(v)
        (HERE / file).write_bytes(data)
        entry = {"file": file, **describe(data)}
        manifest["vectors"].append(entry)
        added.append(file)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{len(manifest['vectors'])} vectors; added {len(added)}: {', '.join(added) or 'none'}")
    for p in problems:
        print(f"PROBLEM: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
