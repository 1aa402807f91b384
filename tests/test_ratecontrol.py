"""Rate control: budgets met from below, impossible budgets fail with the smallest size."""

from __future__ import annotations

import numpy as np
import pytest

from latentcodec import Codec
from latentcodec.cli import main
from latentcodec.info import describe
from latentcodec.entropy.ans import ANSCoder
from latentcodec.errors import RateControlError, StageConfigError
from latentcodec.quantizers.palette import PaletteQuantizer
from latentcodec.quantizers.uniform import UniformQuantizer
from latentcodec.ratecontrol import compress_latent_to_target, compress_to_target, target_from_bpp
from tests.conftest import identity_transform


@pytest.fixture(scope="module")
def latent() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.normal(size=(4, 24, 32)).cumsum(axis=1) * 0.3).astype(np.float32)


@pytest.mark.parametrize("target", [700, 1500, 3000])
def test_uniform_step_search_hits_budget(latent: np.ndarray, target: int) -> None:
    codec = Codec(identity_transform(), UniformQuantizer(), ANSCoder())
    r = compress_latent_to_target(codec, latent, (256, 192), target_bytes=target)
    assert target * 0.98 <= len(r.data) <= target
    assert r.parameter == "step"
    step = next(s for s in describe(r.data)["chain"] if s["kind"] == "quantizer")["params"]["step"]
    assert step == pytest.approx(r.value, rel=1e-6)  # the chosen step is in the stream, so `info` shows it


def test_palette_size_search(latent: np.ndarray) -> None:
    from latentcodec.entropy.binned import BinnedANSCoder

    codec = Codec(identity_transform(), PaletteQuantizer(symbols="rank", palette_coding="compact"), BinnedANSCoder())
    full = len(codec.compress_latent(latent, (256, 192)))
    r = compress_latent_to_target(codec, latent, (256, 192), target_bytes=full // 2)
    assert len(r.data) <= full // 2 and r.parameter == "colors" and 2 <= r.value < 256
    smaller = compress_latent_to_target(codec, latent, (256, 192), target_bytes=len(r.data) - 60)
    assert smaller.value < r.value


def test_impossible_budget_names_smallest_size(latent: np.ndarray) -> None:
    codec = Codec(identity_transform(), UniformQuantizer(), ANSCoder())
    with pytest.raises(RateControlError, match=r"smallest achievable size is \d+ bytes"):
        compress_latent_to_target(codec, latent, (256, 192), target_bytes=20)
    with pytest.raises(StageConfigError):
        compress_latent_to_target(codec, latent, (256, 192), target_bytes=0)


def test_target_bpp_and_api_arguments(latent: np.ndarray) -> None:
    import torch

    assert target_from_bpp(0.1, (768, 512)) == 4915
    codec = Codec(identity_transform(), UniformQuantizer(), ANSCoder())
    image = torch.rand(1, 3, 16, 16)
    with pytest.raises(StageConfigError):
        compress_to_target(codec, image, target_bytes=100, target_bpp=1.0)
    with pytest.raises(StageConfigError):
        target_from_bpp(-1, (8, 8))


def test_cli_target_bytes_on_kodak(tmp_path, taesd_dir, kodak_dir, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "k.lc"
    rc = main(["compress", str(kodak_dir / "kodim23.png"), "-o", str(out), "--model", str(taesd_dir), "--target-bytes", "4000"])
    assert rc == 0
    size = out.stat().st_size
    assert 3700 <= size <= 4000
    assert "step=" in capsys.readouterr().err  # status lines go to stderr
    assert main(["info", str(out)]) == 0
    assert "step" in capsys.readouterr().out


def test_cli_impossible_target(tmp_path, taesd_dir, capsys) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    small = tmp_path / "small.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(small)
    rc = main(["compress", str(small), "-o", str(tmp_path / "x.lc"), "--model", str(taesd_dir), "--target-bytes", "30"])
    err = capsys.readouterr().err
    assert rc == 1 and "smallest achievable size is" in err and len(err.strip().splitlines()) == 1
