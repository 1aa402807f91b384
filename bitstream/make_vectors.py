"""Regenerate the conformance vectors in bitstream/vectors/.

Vectors exercise the container and the built-in quantizers and entropy coders with
synthetic latents, so no model weights are needed to create or check them.  Run
``python bitstream/make_vectors.py`` only when the format version or a stage version
changes; the tests check that every stored stream still decodes to its stored hash.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from latentcodec import bitstream, registry
from latentcodec.bitstream import StageRecord, Stream

HERE = Path(__file__).resolve().parent / "vectors"
FINGERPRINT = bytes.fromhex("00c0ffee")


def symbols_sha256(symbols: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(symbols, dtype="<i4").tobytes()).hexdigest()


def make(name: str, quantizer: str, qopts: dict, coder: str, copts: dict, width: int, height: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    c, h, w = 4, -(-height // 8), -(-width // 8)
    # Smooth-ish synthetic latent with SD-like statistics (std about 1).
    latent = np.cumsum(rng.normal(0, 0.35, size=(c, h, w)), axis=2).astype(np.float32)
    latent = np.clip(latent, -4, 4)
    q = registry.create("quantizer", quantizer, **qopts)
    e = registry.create("entropy_coder", coder, **copts)
    quantized = q.quantize(latent)
    data = bitstream.write(
        Stream(
            width=width,
            height=height,
            latent_channels=c,
            downsampling_factor=8,
            chain=(
                StageRecord("transform", "taesd", 1),
                StageRecord("quantizer", quantizer, q.version, q.wire_params()),
                StageRecord("entropy_coder", coder, e.version, e.wire_params()),
                StageRecord("refiner", "vae", 1),
            ),
            fingerprint=FINGERPRINT,
            side_info=quantized.side_info,
            payload=e.encode(quantized.symbols),
        )
    )
    (HERE / f"{name}.lc").write_bytes(data)
    return {
        "file": f"{name}.lc",
        "bytes": len(data),
        "latent_shape": [c, h, w],
        "symbols_sha256": symbols_sha256(quantized.symbols),
        "chain": ["taesd", quantizer, coder, "vae"],
    }


def main() -> None:
    HERE.mkdir(exist_ok=True)
    vectors = [
        make("uniform-ans-64x48", "uniform", {}, "ans", {}, 64, 48, 1),
        make("uniform-step0.3-ans-bits10-100x37", "uniform", {"step": 0.3}, "ans", {"table_bits": 10}, 100, 37, 2),
        make("uint8-zlib-96x64", "uint8", {}, "zlib", {}, 96, 64, 3),
        make("uint8-ans-8x8", "uint8", {}, "ans", {}, 8, 8, 4),
    ]
    (HERE / "vectors.json").write_text(json.dumps({"format_version": 1, "vectors": vectors}, indent=2) + "\n")
    print(f"wrote {len(vectors)} vectors to {HERE}")


if __name__ == "__main__":
    main()
