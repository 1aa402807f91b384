"""latentcodec.pillow: Pillow opens and saves .lc files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import latentcodec
from tests.conftest import psnr


@pytest.fixture
def plugin(taesd, taesd_dir: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    import latentcodec.pillow as lp
    from latentcodec import modelcache

    modelcache.shared(taesd)  # the session's loaded TAESD (model DIR, device cpu)
    for var in lp.ENV.values():
        monkeypatch.delenv(var, raising=False)
    lp.register(model=str(taesd_dir), device="cpu")
    yield lp
    lp.register()


def test_kodak_round_trip_through_open_and_save(plugin, tmp_path: Path, kodak_dir: Path) -> None:  # type: ignore[no-untyped-def]
    original = Image.open(kodak_dir / "kodim23.png")
    path = tmp_path / "k.lc"
    original.save(path, quality=50)
    data = path.read_bytes()
    assert data == latentcodec.compress(kodak_dir / "kodim23.png", quality=50, model=plugin._registered["model"], device="cpu")
    with Image.open(path) as image:
        assert (image.format, image.mode, image.size) == ("LC", "RGB", (768, 512))
        assert image.info["latentcodec"]["chain"][1]["params"]["step"] == pytest.approx(latentcodec.Codec.from_preset(quality=50).quantizer.step)
        pixels = np.asarray(image)  # decodes here
    expected = latentcodec.decompress(data, model=plugin._registered["model"], device="cpu")
    assert np.array_equal(pixels, np.asarray(expected))
    assert psnr(np.asarray(original.convert("RGB")), pixels) >= 22


def test_save_parameters_and_file_objects(plugin, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8))
    small, large, uint8 = io.BytesIO(), io.BytesIO(), io.BytesIO()
    image.save(small, format="LC", quality=5)
    image.save(large, format="LC", quality=95)
    image.save(uint8, format="LC", preset="taesd-uint8", options={"half_range": 8.0})
    assert len(small.getvalue()) < len(large.getvalue())
    info = latentcodec.describe(uint8.getvalue())
    assert info["chain"][1]["name"] == "uint8" and info["chain"][1]["params"]["half_range"] == pytest.approx(8.0)
    large.seek(0)
    assert Image.open(large).convert("RGB").size == (56, 40)
    with pytest.raises(Exception, match="cannot identify"):
        Image.open(io.BytesIO(b"\x8cLC\x01 but nothing else"))  # not a readable stream: Pillow tries others, then gives up


def test_model_from_the_environment(taesd_dir: Path, monkeypatch: pytest.MonkeyPatch, plugin) -> None:  # type: ignore[no-untyped-def]
    plugin.register()  # nothing registered: the environment decides
    monkeypatch.setenv("LATENTCODEC_MODEL", str(taesd_dir))
    monkeypatch.setenv("LATENTCODEC_DEVICE", "cpu")
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 24, 3), 128, np.uint8)).save(buf, format="LC")
    buf.seek(0)
    decoded = Image.open(buf)
    decoded.load()
    assert decoded.size == (24, 16)
    with pytest.raises(TypeError, match="unknown option"):
        plugin.register(modle="typo")


def test_importing_the_plugin_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, latentcodec.pillow; from PIL import Image; assert 'LC' in Image.OPEN; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
    assert torch  # the tests themselves use torch freely
