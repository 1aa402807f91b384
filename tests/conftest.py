"""Shared fixtures.  ``../shared`` holds the real TAESD weights and the Kodak images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub here: fail fast instead of retrying
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LATENTCODEC_SHARED", ROOT.parent / "shared"))
TAESD_DIR = SHARED / "models" / "taesd"
VAELIGHT_DIR = SHARED / "models" / "vaelight"
KODAK_DIR = SHARED / "datasets" / "kodak"
TRAIN_DIR = SHARED / "datasets" / "train-photos"

# Fixture distributions (e.g. a plugin that fails to import on purpose) are data, not tests.
collect_ignore_glob = ["fixtures/*"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (run on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def taesd_dir() -> Path:
    if not (TAESD_DIR / "taesd_encoder.safetensors").exists():
        pytest.fail(f"TAESD weights missing at {TAESD_DIR}; ../shared must sit beside the checkout")
    return TAESD_DIR


@pytest.fixture(scope="session")
def kodak_dir() -> Path:
    if not (KODAK_DIR / "kodim23.png").exists():
        pytest.fail(f"Kodak images missing at {KODAK_DIR}")
    return KODAK_DIR


@pytest.fixture(scope="session")
def taesd(taesd_dir: Path):  # type: ignore[no-untyped-def]
    from latentcodec.transforms.taesd import TAESDTransform

    return TAESDTransform(model=str(taesd_dir), device="cpu")


@pytest.fixture(scope="session")
def taesd_codec(taesd):  # type: ignore[no-untyped-def]
    from latentcodec import Codec
    from latentcodec.entropy.ans import ANSCoder
    from latentcodec.quantizers.uniform import UniformQuantizer

    return Codec(taesd, UniformQuantizer(), ANSCoder())


@pytest.fixture(scope="session")
def kodim23_stream(taesd_codec, kodak_dir: Path) -> bytes:  # type: ignore[no-untyped-def]
    return taesd_codec.compress(kodak_dir / "kodim23.png")


@pytest.fixture(scope="session")
def kodim23_decoded(taesd_codec, kodim23_stream: bytes):  # type: ignore[no-untyped-def]
    """The plain decode of ``kodim23_stream`` as a float tensor, computed once."""
    return taesd_codec.decompress(kodim23_stream, as_tensor=True)


def identity_transform():  # type: ignore[no-untyped-def]
    """A model-free transform whose 'image' is the latent itself.

    Enough to test quantize + code + container without weights.  It calls itself
    ``taesd`` (a registered name) so streams round-trip through the header.
    """
    from latentcodec.stages import Transform

    class Identity(Transform):
        name = "taesd"
        latent_channels, downsampling_factor = 4, 8  # type: ignore[assignment]

        def analysis(self, image):  # type: ignore[no-untyped-def]
            return image

        def synthesis(self, latent):  # type: ignore[no-untyped-def]
            return latent

        def fingerprint(self) -> bytes:
            return b"test"

    return Identity()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))
