"""Named chains.  A preset is data: one stage name (and options) per kind.

``description`` says what the chain is, ``purpose`` what to choose it for (``latentcodec
presets`` prints both).  Importing this module does not import numpy or torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import StageConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .stages import StageKind


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    stages: dict[StageKind, str]
    options: dict[StageKind, dict[str, Any]] = field(default_factory=dict)
    purpose: str = ""


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "taesd-ans",
            "TAESD, uniform step, per-channel static ANS (the default)",
            {"transform": "taesd", "quantizer": "uniform", "entropy_coder": "ans", "refiner": "vae"},
            purpose="everyday use: fast to encode and decode; the decoder needs only the small TAESD weights",
        ),
        Preset(
            "taesd-uint8",
            "TAESD, Bühlmann's uint8 grid, per-channel static ANS",
            {"transform": "taesd", "quantizer": "uint8", "entropy_coder": "ans", "refiner": "vae"},
            purpose="comparisons with Bühlmann's fixed 8-bit latent grid at TAESD speed",
        ),
        # The smallest TAESD streams: the learned hyperprior with channel and 7-phase spatial
        # context, plus 30 encoder-side refinement steps of its hyper-latent (on Kodak 145,033
        # vs 145,864 bytes, for ~1.9 s more encoding per image on 2 CPU cores; decoding is
        # unchanged).  README, "Entropy coders and their priors".
        Preset(
            "taesd-hyperprior",
            "TAESD, uniform step, learned context hyperprior (ans-hyperprior) with encoder-side z refinement",
            {"transform": "taesd", "quantizer": "uniform", "entropy_coder": "ans-hyperprior", "refiner": "vae"},
            {"entropy_coder": {"refine_z": 30}},
            purpose="the smallest TAESD streams (19 % below taesd-ans on Kodak); about 2 s more encoding per image on a CPU",
        ),
        Preset(
            "sd-ans",
            "SD VAE, uniform step, per-channel static ANS",
            {"transform": "sd-vae", "quantizer": "uniform", "entropy_coder": "ans", "refiner": "vae"},
            purpose="the full SD VAE's latents: its decoder, slower and larger than TAESD (runs on TAESD with a TAESD --model)",
        ),
        Preset(
            "buhlmann-uint8",
            "Bühlmann (2022), first step: SD VAE, uint8 latents, zlib",
            {"transform": "sd-vae", "quantizer": "uint8", "entropy_coder": "zlib", "refiner": "vae"},
            purpose="a baseline: the first step of the paper this project starts from",
        ),
        # Bühlmann (2022), full recipe.  uint8 grid: latentcodec/quantizers/uint8.py (his
        # clamp(z / (255 * 0.18215) + 0.5)); 256 colours and dithering level 1.0: his
        # libimagequant call (full Floyd-Steinberg), here k-means + latentcodec/quantizers/
        # dither.py; palette in popularity order (libimagequant's) and indices: zlib level 9.
        Preset(
            "buhlmann-2022",
            "Bühlmann (2022), full recipe: uint8 grid, 256-colour palette, Floyd-Steinberg, zlib",
            {"transform": "sd-vae", "quantizer": "palette", "entropy_coder": "zlib", "refiner": "vae"},
            {
                "quantizer": {"colors": 256, "dither": "fs", "dither_level": 1.0, "symbols": "index", "palette_coding": "zlib"},
                "entropy_coder": {"level": 9},
            },
            purpose="a baseline: the paper's full recipe, the result to beat",
        ),
        # Our answer to the seed.  Constants measured on the 24 Kodak images through TAESD
        # (benchmarks/bench_rd.py; README, "Palette presets"): the encoder fits and dithers
        # in the SD decoder's sensitivity metric (palette.SD_DECODER_METRIC, measured on
        # train-photos), which alone lifts 192 colours by +0.58 dB PSNR / +0.021 MS-SSIM; half
        # dithering (0.5) decodes better than full; the compact palette code and the
        # neighbour-predicted ranks + log-binned rANS (latentcodec/entropy/binned.py)
        # replace zlib.  112 colours then beat buhlmann-2022 on both metrics (+0.25 dB,
        # +0.0065) with 27% fewer bytes; 96 colours still did (+0.17 dB, +0.0023) at -30%.
        Preset(
            "palette-ans",
            "uint8 grid, per-image palette fitted in the decoder's metric, half dithering, ranks + rANS",
            {"transform": "sd-vae", "quantizer": "palette", "entropy_coder": "ans-binned", "refiner": "vae"},
            {"quantizer": {"colors": 112, "dither": "fs", "dither_level": 0.5, "symbols": "rank", "palette_coding": "compact", "metric": "sd-decoder"}},
            purpose="the best palette codec: 27 % fewer bytes than buhlmann-2022 on Kodak, with better PSNR and MS-SSIM",
        ),
    ]
}

DEFAULT_PRESET = "taesd-ans"


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise StageConfigError(f"unknown preset {name!r}; presets: {', '.join(sorted(PRESETS))}") from None


def register_preset(preset: Preset, *, replace: bool = False) -> None:
    """Add a preset (plugins and later issues); an existing name is an error unless ``replace``."""
    if preset.name in PRESETS and not replace:
        raise StageConfigError(f"preset {preset.name!r} already exists")
    PRESETS[preset.name] = preset
