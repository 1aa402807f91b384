"""The fuzzer's seed corpus: valid streams of every built-in quantizer x entropy coder.

Generated, not stored: :func:`seed_streams` builds the streams deterministically from
synthetic latents (no model runs), and ``python tests/fuzz/corpus.py DIR`` writes them
to ``DIR`` (with the conformance vectors of ``bitstream/vectors/`` and the frozen ones
of ``bitstream/vectors/history/``) for a long run.
Only inputs that once crashed a decoder are kept in git (``tests/fuzz/regressions/``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "bitstream" / "vectors"
REGRESSIONS = Path(__file__).resolve().parent / "regressions"

#: Quantizer configs: every palette mode (zlib / compact palette, index / rank symbols,
#: global codebook, non-default half range) and the scalar quantizers with their params.
QUANTIZERS: dict[str, tuple[str, dict]] = {
    "uniform": ("uniform", {}),
    "uniform-step0.3": ("uniform", {"step": 0.3}),
    "uint8": ("uint8", {}),
    "uint8-r8": ("uint8", {"half_range": 8.0}),
    "palette-zlib-index": ("palette", {"colors": 16, "dither": "none"}),
    "palette-zlib-rank": ("palette", {"colors": 8, "symbols": "rank", "dither": "none"}),
    "palette-compact-index": ("palette", {"colors": 16, "palette_coding": "compact", "dither": "none"}),
    "palette-compact-rank": ("palette", {"colors": 32, "palette_coding": "compact", "symbols": "rank"}),
    "palette-codebook-rank": ("palette", {"colors": 16, "codebook": "taesd-v1", "symbols": "rank", "dither": "none"}),
    "palette-codebook-index": ("palette", {"colors": 4, "codebook": "taesd-v1", "dither": "none"}),
    "palette-r6": ("palette", {"colors": 2, "half_range": 6.0, "palette_coding": "compact", "dither": "none"}),
}

CODERS: dict[str, tuple[str, dict]] = {
    "ans": ("ans", {}),
    "ans-bits16": ("ans", {"table_bits": 16}),
    "zlib": ("zlib", {}),
    "ans-binned": ("ans-binned", {}),
    "ans-factorized": ("ans-factorized", {}),
    "ans-hyperprior": ("ans-hyperprior", {}),
    "ans-context": ("ans-context", {}),
}

#: Image sizes (width, height) at f = 8: latents 1x1, 3x5 (odd), 9x17 (ans-context has levels).
SIZES = ((8, 8), (40, 24), (136, 72))


def _latent(c: int, h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    latent = np.cumsum(rng.normal(0, 0.4, size=(c, h, w)), axis=2).astype(np.float32)
    latent[:, 0, 0] = 3.5  # an outlier: wide tables, escapes in the learned coders
    return np.clip(latent, -4, 4)


def make_stream(quantizer: str, qopts: dict, coder: str, copts: dict, width: int, height: int, *, channels: int = 4, factor: int = 8, seed: int = 0) -> bytes | None:
    """One valid stream, or None where the coder cannot take the quantizer's symbols."""
    from latentcodec import bitstream, registry
    from latentcodec.bitstream import StageRecord, Stream
    from latentcodec.errors import StageInputError

    c, h, w = channels, -(-height // factor), -(-width // factor)
    q = registry.create("quantizer", quantizer, **qopts)
    e = registry.create("entropy_coder", coder, **copts)
    quantized = q.quantize(_latent(c, h, w, seed))
    try:
        payload = e.encode(quantized.symbols)
    except StageInputError:  # e.g. a learned 4-channel prior and (1, h, w) palette symbols
        return None
    chain = (
        StageRecord("transform", "taesd", 1),
        StageRecord("quantizer", quantizer, q.version, q.wire_params()),
        StageRecord("entropy_coder", coder, e.version, e.wire_params()),
        StageRecord("refiner", "vae", 1),
    )
    return bitstream.write(Stream(width, height, c, factor, chain, b"\x00\xc0\xff\xee", quantized.side_info, payload))


def seed_streams() -> dict[str, bytes]:
    """Every compatible quantizer x coder x size, a few other layouts, the conformance vectors."""
    out: dict[str, bytes] = {}
    for qname, (quantizer, qopts) in QUANTIZERS.items():
        for cname, (coder, copts) in CODERS.items():
            for i, (width, height) in enumerate(SIZES):
                data = make_stream(quantizer, qopts, coder, copts, width, height, seed=i)
                if data is not None:
                    out[f"{qname}+{cname}+{width}x{height}"] = data
    # other latent layouts (C, f) the header can name; the decoders do not care which transform
    for coder in ("ans", "zlib", "ans-binned", "ans-context"):
        data = make_stream("uniform", {}, coder, {}, 23, 17, channels=3, factor=2, seed=7)
        if data is not None:
            out[f"uniform+{coder}+23x17-c3-f2"] = data
    data = make_stream("palette", {"colors": 5, "palette_coding": "compact", "symbols": "rank"}, "ans-binned", {}, 9, 1, channels=1, factor=1, seed=8)
    if data is not None:
        out["palette-c1+ans-binned+9x1-f1"] = data
    for path in sorted(VECTORS.glob("*.lc")):
        out[f"vector-{path.stem}"] = path.read_bytes()
    return out


def frozen_vectors(max_bytes: int = 4096) -> dict[str, bytes]:
    """The frozen streams of ``bitstream/vectors/history/`` (every shipped prior, real
    images) up to ``max_bytes``: more seeds for a long run."""
    return {f"history-{p.stem}": p.read_bytes() for p in sorted((VECTORS / "history").glob("*.lc")) if p.stat().st_size <= max_bytes}


def regression_inputs() -> dict[str, bytes]:
    """Inputs that once made a decoder fail with something other than a LatentCodecError."""
    return {p.name: p.read_bytes() for p in sorted(REGRESSIONS.glob("*")) if p.is_file() and p.suffix != ".md"}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/fuzz/corpus.py DIR", file=sys.stderr)
        return 2
    target = Path(argv[0])
    target.mkdir(parents=True, exist_ok=True)
    streams = {**seed_streams(), **frozen_vectors(), **regression_inputs()}
    for name, data in streams.items():
        (target / name).write_bytes(data)
    print(f"wrote {len(streams)} seed inputs to {target}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main(sys.argv[1:]))
