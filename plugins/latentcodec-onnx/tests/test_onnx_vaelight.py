"""latentcodec-onnx's own tests: the shared transform contract plus VAElight's conventions.

They need ``../shared/models/vaelight`` (and TAESD and Kodak for interoperability) beside
the latentcodec checkout, or ``LATENTCODEC_SHARED`` pointing at that folder.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentcodec import Codec, registry
from latentcodec.errors import ModelNotFoundError, StageConfigError
from latentcodec.testing import TransformContract
from latentcodec_onnx import VAELIGHT, VAElightTransform

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[3]  # the latentcodec checkout
SHARED = Path(os.environ.get("LATENTCODEC_SHARED", ROOT.parent / "shared"))
VAELIGHT_DIR = SHARED / "models" / "vaelight"
TAESD_DIR = SHARED / "models" / "taesd"
KODIM23 = SHARED / "datasets" / "kodak" / "kodim23.png"


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def _kodim23() -> torch.Tensor:
    if not KODIM23.exists():
        pytest.fail(f"Kodak images missing at {KODIM23.parent}; ../shared must sit beside the checkout")
    array = np.asarray(Image.open(KODIM23).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None].contiguous()


@pytest.fixture(scope="module")
def vaelight() -> VAElightTransform:
    if not (VAELIGHT_DIR / "VAEencoder.onnx").exists():
        pytest.fail(f"VAElight ONNX files missing at {VAELIGHT_DIR}")
    return VAElightTransform(model=str(VAELIGHT_DIR), device="cpu")


class TestVAElightContract(TransformContract):
    def make_stage(self) -> VAElightTransform:
        return VAElightTransform(model=str(VAELIGHT_DIR), device="cpu")


def test_registered_through_its_entry_point() -> None:
    entry = registry.entries("transform")["onnx-vaelight"]
    assert entry.distribution.startswith("latentcodec-onnx ")
    assert registry.load("transform", "onnx-vaelight") is VAElightTransform


def test_fingerprint_is_a_hash_of_the_onnx_files(vaelight: VAElightTransform) -> None:
    h = hashlib.sha256((VAELIGHT_DIR / "VAEencoder.onnx").read_bytes() + (VAELIGHT_DIR / "VAEpreview.onnx").read_bytes())
    assert vaelight.fingerprint() == h.digest()[:4]


def test_kodak_round_trip_quality(vaelight: VAElightTransform) -> None:
    """Encoder + decoder alone, no quantization: the conventions are right (measured: 25.9 dB)."""
    image = _kodim23()
    out = vaelight.synthesis(vaelight.analysis(image))
    assert _psnr(out.numpy(), image.numpy()) >= 24.0


@pytest.fixture(scope="module")
def taesd():  # type: ignore[no-untyped-def]
    from latentcodec.transforms.taesd import TAESDTransform

    return TAESDTransform(model=str(TAESD_DIR), device="cpu")


def test_latents_are_taesd_scale_sd_latents(vaelight: VAElightTransform, taesd) -> None:  # type: ignore[no-untyped-def]
    """VAElight's scaled latents match TAESD's for the same image, channel by channel."""
    image = _kodim23()[..., 128:384, 128:512]
    z_v = vaelight.analysis(image)[0].reshape(4, -1).numpy()
    z_t = taesd.analysis(image)[0].reshape(4, -1).numpy()
    for c in range(4):
        assert np.corrcoef(z_v[c], z_t[c])[0, 1] > 0.85
    assert abs(float(z_v.std()) / float(z_t.std()) - 1.0) < 0.25  # same scale, not 1/0.18215 off


def test_other_conventions_are_measurably_wrong(vaelight: VAElightTransform, taesd) -> None:  # type: ignore[no-untyped-def]
    """Why the spec says [-1, 1]: fed [0, 1] images, the encoder's latents drift away from
    TAESD's (its own decoder hides part of that, TAESD's does not)."""
    image = _kodim23()[..., 128:384, 128:512]
    cls = type("WrongRange", (VAElightTransform,), {"spec": replace(VAELIGHT, image_range=(0.0, 1.0))})
    wrong = cls(model=str(VAELIGHT_DIR), device="cpu")
    z_t = taesd.analysis(image)
    right_err = float(((vaelight.analysis(image) - z_t) ** 2).mean())
    wrong_err = float(((wrong.analysis(image) - z_t) ** 2).mean())
    assert wrong_err > 3 * right_err, (wrong_err, right_err)


def test_codec_round_trip_and_taesd_decodes_it(vaelight: VAElightTransform) -> None:
    """A full chain through VAElight at >= 20 dB; another transform needs ignore_weights."""
    from latentcodec import decompress
    from latentcodec.entropy.ans import ANSCoder
    from latentcodec.errors import WeightsMismatchError
    from latentcodec.quantizers.uniform import UniformQuantizer

    image = _kodim23()
    data = Codec(vaelight, UniformQuantizer(), ANSCoder()).compress(image)
    own = decompress(data, model=str(VAELIGHT_DIR), device="cpu", as_tensor=True)
    assert _psnr(own.numpy(), image.numpy()) >= 20.0  # measured: 25.5 dB
    with pytest.raises(WeightsMismatchError):  # TAESD decodes it only with --ignore-weights: test_cli_end_to_end
        decompress(data, transform="taesd", model=str(TAESD_DIR), device="cpu")


def test_missing_model_directory(tmp_path: Path) -> None:
    t = VAElightTransform(model=str(tmp_path), device="cpu")
    with pytest.raises(ModelNotFoundError, match="VAEencoder.onnx"):
        t.analysis(torch.zeros(1, 3, 16, 16))


@pytest.mark.parametrize("config", [{"dtype": "float16"}, {"device": "tpu"}, {"model": ""}])
def test_bad_options(config: dict) -> None:
    with pytest.raises(StageConfigError):
        VAElightTransform.from_config({"model": str(VAELIGHT_DIR), **config})


def test_cli_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What a user types after ``pip install ./plugins/latentcodec-onnx`` (in-process ``main``)."""
    from latentcodec.cli import main

    assert main(["stages"]) == 0
    transforms = capsys.readouterr().out.split("quantizers")[0]
    assert "onnx-vaelight" in transforms and "latentcodec-onnx" in transforms
    lc, png = tmp_path / "k.lc", tmp_path / "k.png"
    assert main(["compress", str(KODIM23), "-o", str(lc), "--transform", "onnx-vaelight", "--model", str(VAELIGHT_DIR), "--device", "cpu"]) == 0
    assert main(["decompress", str(lc), "-o", str(png), "--transform", "taesd", "--model", str(TAESD_DIR), "--device", "cpu", "--ignore-weights"]) == 0
    decoded = np.asarray(Image.open(png).convert("RGB"), dtype=np.float32) / 255.0
    assert _psnr(decoded, _kodim23()[0].permute(1, 2, 0).numpy()) >= 20.0  # measured: 23.8 dB
    capsys.readouterr()
    code = main(["compress", str(KODIM23), "-o", str(tmp_path / "x.lc"), "--transform", "onnx-vaelight", "--model", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "VAEencoder.onnx" in err
