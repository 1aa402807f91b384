"""Large images are encoded and decoded in tiles, so memory is bounded by the tile."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentcodec.errors import StageConfigError
from latentcodec.transforms.taesd import TAESDTransform


@pytest.fixture(scope="module")
def tiled_pair(taesd_dir):  # type: ignore[no-untyped-def]
    whole = TAESDTransform(model=str(taesd_dir), device="cpu")
    tiled = TAESDTransform(model=str(taesd_dir), device="cpu", tile_pixels=0)  # always tile
    return whole, tiled


def test_tiled_decode_matches_the_whole_decode(tiled_pair) -> None:  # type: ignore[no-untyped-def]
    whole, tiled = tiled_pair
    rng = np.random.default_rng(0)
    # 88 x 72 latent: more than one 64 x 64 tile in both directions
    z = torch.from_numpy(np.cumsum(rng.normal(0, 0.3, size=(1, 4, 72, 88)), axis=3).clip(-3, 3).astype(np.float32))
    a, b = whole.synthesis(z), tiled.synthesis(z)
    assert a.shape == b.shape == (1, 3, 576, 704)
    mse = float(((a - b) ** 2).mean())
    assert mse > 0  # it really took the tiled path
    assert 10 * np.log10(1.0 / mse) > 30  # seams blend: the images agree closely
    assert not whole.module.use_tiling  # the switch is per call


def test_tiled_encode_is_close(tiled_pair) -> None:  # type: ignore[no-untyped-def]
    whole, tiled = tiled_pair
    image = torch.rand(1, 3, 600, 680, generator=torch.Generator().manual_seed(1)) * 0.2 + 0.4
    za, zb = whole.analysis(image), tiled.analysis(image)
    assert za.shape == zb.shape == (1, 4, 75, 85)
    assert float((za - zb).abs().mean()) < 0.1 * float(za.abs().mean())


def test_small_images_are_not_tiled(tiled_pair, taesd_dir) -> None:  # type: ignore[no-untyped-def]
    whole, _ = tiled_pair
    default = TAESDTransform(model=str(taesd_dir), device="cpu")
    z = torch.zeros(1, 4, 8, 8)
    assert torch.equal(whole.synthesis(z), default.synthesis(z))
    assert default.tile_pixels == 1024 * 1024


@pytest.mark.parametrize("bad", [-1, 1.5, True, "big"])
def test_bad_tile_pixels(bad) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StageConfigError, match="tile_pixels"):
        TAESDTransform(model="x", device="cpu", tile_pixels=bad)
