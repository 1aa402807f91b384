"""Named chains.  A preset is data: one stage name (and options) per kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import StageConfigError
from .stages import StageKind


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    stages: dict[StageKind, str]
    options: dict[StageKind, dict[str, Any]] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "taesd-ans",
            "TAESD, uniform step, per-channel static ANS (the default)",
            {"transform": "taesd", "quantizer": "uniform", "entropy_coder": "ans", "refiner": "vae"},
        ),
        Preset(
            "taesd-uint8",
            "TAESD, Bühlmann's uint8 grid, per-channel static ANS",
            {"transform": "taesd", "quantizer": "uint8", "entropy_coder": "ans", "refiner": "vae"},
        ),
        Preset(
            "sd-ans",
            "SD VAE, uniform step, per-channel static ANS",
            {"transform": "sd-vae", "quantizer": "uniform", "entropy_coder": "ans", "refiner": "vae"},
        ),
        Preset(
            "buhlmann-uint8",
            "Bühlmann (2022), first step: SD VAE, uint8 latents, zlib",
            {"transform": "sd-vae", "quantizer": "uint8", "entropy_coder": "zlib", "refiner": "vae"},
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
