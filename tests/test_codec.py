"""The Codec: real-image round trip, configs, presets, option routing, decode-time choices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentcodec import Codec, bitstream, decompress, describe
from latentcodec.errors import (
    ImageReadError,
    ImageTooLargeError,
    StageConfigError,
    UnknownStageError,
    UnsupportedVersionError,
)
from tests.conftest import psnr


def test_kodim23_round_trip_quality_size_and_overhead(kodim23_decoded: torch.Tensor, kodim23_stream: bytes, kodak_dir: Path) -> None:
    from latentcodec.imageio import to_pil

    image = to_pil(kodim23_decoded)
    original = Image.open(kodak_dir / "kodim23.png").convert("RGB")
    assert image.size == original.size == (768, 512)
    quality = psnr(np.asarray(original), np.asarray(image))
    assert 24.0 < quality < 32.0, quality  # band, CompressAI style: TAESD at step 0.5 gives ~26.6
    info = describe(kodim23_stream)
    assert info["overhead_bytes"] <= 32
    assert info["total_bytes"] <= 16 * 1024
    assert info["latent_shape"] == [4, 64, 96]
    assert info["chain"][1] == {"kind": "quantizer", "name": "uniform", "version": 1, "params": {"step": 0.5}}


def test_streams_are_deterministic(taesd_codec: Codec, kodak_dir: Path, kodim23_stream: bytes) -> None:
    assert taesd_codec.compress(kodak_dir / "kodim23.png") == kodim23_stream


def test_image_inputs_pil_tensor_and_path_agree(taesd_codec: Codec, kodak_dir: Path) -> None:
    pil = Image.open(kodak_dir / "kodim23.png").crop((0, 0, 64, 64))
    tensor = torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1).float() / 255
    assert taesd_codec.compress(pil) == taesd_codec.compress(tensor) == taesd_codec.compress(tensor[None])
    out = taesd_codec.decompress(taesd_codec.compress(pil), as_tensor=True)
    assert isinstance(out, torch.Tensor) and out.shape == (1, 3, 64, 64)


def test_compress_many_batches_equal_single_calls(taesd_codec: Codec) -> None:
    torch.manual_seed(0)
    images = [torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), torch.rand(1, 3, 16, 24)]
    batch = taesd_codec.compress_many(images)
    singles = [taesd_codec.compress(im) for im in images]
    for a, b in zip(batch, singles):  # batching may change float rounding, never the format
        sa, sb = bitstream.read(a), bitstream.read(b)
        assert (sa.width, sa.height, sa.chain) == (sb.width, sb.height, sb.chain)
        assert abs(len(a) - len(b)) <= 8


def test_config_round_trips(taesd_codec: Codec) -> None:
    config = taesd_codec.get_config()
    rebuilt = Codec.from_config(config)
    assert rebuilt.get_config() == config
    for stage in taesd_codec.stages:
        assert type(stage).from_config(stage.get_config()).get_config() == stage.get_config()


def test_from_preset_with_overrides_and_routing(taesd_dir: Path) -> None:
    codec = Codec.from_preset("taesd-ans", model=str(taesd_dir), device="cpu", step=0.3)
    assert codec.quantizer.get_config() == {"step": pytest.approx(0.3)}
    assert codec.transform.get_config()["model"] == str(taesd_dir)
    codec = Codec.from_preset("taesd-ans", model=str(taesd_dir), entropy_coder="zlib", **{"quantizer.step": 0.7})
    assert codec.entropy_coder.name == "zlib" and codec.quantizer.step == pytest.approx(0.7)
    uint8 = Codec.from_preset("taesd-uint8", model=str(taesd_dir))
    assert uint8.quantizer.name == "uint8"
    with pytest.raises(StageConfigError, match="valid"):
        Codec.from_preset("taesd-ans", model=str(taesd_dir), stepp=0.3)
    with pytest.raises(StageConfigError, match="presets"):
        Codec.from_preset("no-such-preset")
    with pytest.raises(UnknownStageError, match="installed: .*uniform"):
        Codec.from_preset("taesd-ans", quantizer="nope")
    with pytest.raises(StageConfigError, match="step must be"):
        Codec.from_preset("taesd-ans", model=str(taesd_dir), step=-1)


def test_hyperprior_preset_round_trips_and_is_smaller(taesd_dir: Path, kodak_dir: Path) -> None:
    from latentcodec.imageio import to_tensor

    image = to_tensor(kodak_dir / "kodim23.png")[..., :192, 256:512]
    small = Codec.from_preset("taesd-hyperprior", model=str(taesd_dir))
    assert small.entropy_coder.name == "ans-hyperprior" and small.entropy_coder.refine_z > 0
    plain = Codec.from_preset("taesd-ans", model=str(taesd_dir))
    data = small.compress(image)
    assert len(data) < len(plain.compress(image))
    # the plain taesd-ans chain decodes it to the same image: only the coder differs
    assert torch.equal(decompress(data, model=str(taesd_dir), as_tensor=True), plain.decompress(plain.compress(image), as_tensor=True))


def test_decompress_rebuilds_the_chain_from_the_header(taesd_codec: Codec, kodim23_stream: bytes, kodim23_decoded: torch.Tensor, taesd_dir: Path) -> None:
    a = kodim23_decoded
    b = decompress(kodim23_stream, model=str(taesd_dir), device="cpu", as_tensor=True)
    assert torch.equal(a, b)
    # another step travels in the stream: a codec with the default step still decodes it
    fine = Codec(taesd_codec.transform, type(taesd_codec.quantizer)(step=0.2), taesd_codec.entropy_coder)
    data = fine.compress(torch.rand(1, 3, 32, 32))
    assert describe(data)["chain"][1]["params"] == {"step": pytest.approx(0.2)}
    assert torch.allclose(taesd_codec.decompress(data, as_tensor=True), fine.decompress(data, as_tensor=True))


def test_refiner_is_chosen_at_decode_time(taesd_codec: Codec, kodim23_stream: bytes, taesd_dir: Path) -> None:
    small = taesd_codec.compress(torch.rand(1, 3, 48, 64))
    a = decompress(small, model=str(taesd_dir), refiner="vae", as_tensor=True)
    assert a.shape == (1, 3, 48, 64)
    with pytest.raises(UnknownStageError, match="installed: .*vae"):
        decompress(kodim23_stream, model=str(taesd_dir), refiner="no-such-refiner")


def test_unsupported_stage_version_is_refused(kodim23_stream: bytes, taesd_dir: Path) -> None:
    s = bitstream.read(kodim23_stream)
    chain = list(s.chain)
    chain[2] = bitstream.StageRecord("entropy_coder", "ans", 9, chain[2].params)
    data = bitstream.write(bitstream.Stream(**{**s.__dict__, "chain": tuple(chain)}))
    with pytest.raises(UnsupportedVersionError, match="ans.*version 9"):
        decompress(data, model=str(taesd_dir))


def test_plugin_stage_missing_at_decode_time_is_named(kodim23_stream: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    from latentcodec import registry

    monkeypatch.setitem(registry.KNOWN_PLUGIN_DISTRIBUTIONS, ("transform", "absent-plugin"), "latentcodec-absent")
    s = bitstream.read(kodim23_stream)
    chain = (bitstream.StageRecord("transform", "absent-plugin", 1),) + s.chain[1:]
    data = bitstream.write(bitstream.Stream(**{**s.__dict__, "chain": chain}))
    with pytest.raises(UnknownStageError, match="absent-plugin.*latentcodec-absent"):
        decompress(data)


def test_image_limits_and_bad_images(taesd_codec: Codec, tmp_path: Path) -> None:
    small = Codec(taesd_codec.transform, taesd_codec.quantizer, taesd_codec.entropy_coder, max_pixels=100)
    with pytest.raises(ImageTooLargeError, match="limit of 100"):
        small.compress(torch.rand(1, 3, 16, 16))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ImageReadError):
        taesd_codec.compress(bad)
    with pytest.raises(ImageReadError):
        taesd_codec.compress(tmp_path / "missing.png")
    with pytest.raises(ImageReadError):
        taesd_codec.compress(torch.rand(2, 3, 8, 8))
    with pytest.raises(ImageReadError):
        taesd_codec.compress(torch.full((1, 3, 8, 8), float("nan")))
    # a PNG whose header claims a huge size is refused before its pixels are decoded
    big = tmp_path / "big.png"
    Image.new("L", (5000, 5000)).save(big)
    with pytest.raises(ImageTooLargeError):
        taesd_codec.compress(big)


def test_rgba_and_grayscale_inputs(taesd_codec: Codec, tmp_path: Path) -> None:
    for mode in ("RGBA", "L", "P", "I;16"):
        path = tmp_path / f"x-{mode.replace(';', '')}.png"
        Image.new(mode, (24, 16)).save(path)
        assert taesd_codec.decompress(taesd_codec.compress(path)).size == (24, 16)


def test_presets_follow_the_weights_given_with_model(taesd_dir: Path, tmp_path: Path) -> None:
    from latentcodec.transforms import transform_for_model

    assert transform_for_model(str(taesd_dir)) == "taesd"
    assert transform_for_model("stabilityai/sd-vae-ft-mse") is None
    assert Codec.from_preset("sd-ans", model=str(taesd_dir)).transform.name == "taesd"
    assert Codec.from_preset("buhlmann-2022", model=str(taesd_dir)).transform.name == "taesd"
    (tmp_path / "config.json").write_text('{"_class_name": "AutoencoderKL"}')
    assert transform_for_model(str(tmp_path)) == "sd-vae"
    from latentcodec.errors import ModelError

    with pytest.raises(ModelError):  # an explicit transform is never second-guessed
        Codec.from_preset("taesd-ans", transform="sd-vae", model=str(taesd_dir)).transform.fingerprint()


def test_refiner_options_are_validated(taesd_codec: Codec, taesd_dir: Path) -> None:
    data = taesd_codec.compress(torch.rand(1, 3, 16, 16))
    with pytest.raises(StageConfigError, match="refiner 'vae' has no option 'strength'"):
        decompress(data, model=str(taesd_dir), refiner_options={"strength": 0.3})
    # quiet is a courtesy flag: a refiner without a progress bar ignores it
    assert decompress(data, model=str(taesd_dir), refiner_options={"quiet": True}).size == (16, 16)
