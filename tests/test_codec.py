"""The Codec and the one-call API: round trips, batches, configs and chain files, presets and quality,
results, the model cache, devices, decode-time choices and limits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentcodec import Codec, bitstream, decompress, describe
from latentcodec.errors import ImageReadError, ImageTooLargeError, StageConfigError, UnknownStageError, UnsupportedVersionError
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


def test_compress_many_is_byte_identical_to_single_calls(taesd_codec: Codec, kodak_dir: Path) -> None:
    from latentcodec.imageio import to_tensor

    full = to_tensor(kodak_dir / "kodim05.png")
    images = [full[..., y : y + 64, x : x + 96] for y, x in ((0, 0), (64, 96), (128, 192))] + [full[..., :40, :56]]
    batch = taesd_codec.compress_many(images, batch_size=3)  # batched on the CPU too
    assert batch == [taesd_codec.compress(im) for im in images]
    assert len(set(batch)) == len(batch)


def test_config_round_trips(taesd_codec: Codec) -> None:
    config = taesd_codec.get_config()
    rebuilt = Codec.from_config(config)
    assert rebuilt.get_config() == config
    for stage in taesd_codec.stages:
        assert type(stage).from_config(stage.get_config()).get_config() == stage.get_config()
    small = Codec(taesd_codec.transform, taesd_codec.quantizer, taesd_codec.entropy_coder, max_pixels=4096)
    assert Codec.from_config(small.get_config()).max_pixels == 4096


def test_chain_files_save_and_load(taesd_dir: Path, tmp_path: Path) -> None:
    from latentcodec.errors import OutputExistsError

    codec = Codec.from_preset("taesd-hyperprior", model=str(taesd_dir), device="cpu", step=0.4, max_pixels=10**6)
    path = tmp_path / "chain.json"
    codec.save_config(path)
    saved = json.loads(path.read_text())
    assert saved["_latentcodec_version"] and saved["max_pixels"] == 10**6
    assert saved["transform"]["name"] == "taesd"  # no machine paths or devices by default
    assert not {"model", "device", "dtype"} & set(saved["transform"]["config"])
    assert saved["entropy_coder"]["config"]["refine_z"] == 30  # but every encoder setting
    with pytest.raises(OutputExistsError):
        codec.save_config(path)
    loaded = Codec.from_config(path, model=str(taesd_dir), device="cpu")
    assert loaded.get_config() == codec.get_config()
    codec.save_config(path, machine=True, force=True)
    assert Codec.from_config(str(path)).get_config() == codec.get_config()
    assert Codec.from_config(path, step=0.7).quantizer.step == pytest.approx(0.7)
    assert Codec.from_config(path, quality=100).quantizer.step == pytest.approx(0.1)
    path.write_text("{not json")
    with pytest.raises(StageConfigError, match="cannot read chain config"):
        Codec.from_config(path)
    with pytest.raises(StageConfigError, match="'quantizer' must be"):
        Codec.from_config({"transform": {"name": "taesd"}})


def test_quality_sets_the_rate_parameter_of_every_preset(taesd_dir: Path) -> None:
    from latentcodec.presets import PRESETS
    from latentcodec.rate import rate_parameter

    for name in PRESETS:
        codec = Codec.from_preset(name, model=str(taesd_dir), quality=30)
        p = rate_parameter(codec.quantizer)
        assert getattr(codec.quantizer, p.name) == pytest.approx(p.value_for_quality(30)), name
        assert codec.rate() == (p.name, getattr(codec.quantizer, p.name))
    # palette-ans keeps its other preset options when quality replaces its 112 colours
    palette = Codec.from_preset("palette-ans", model=str(taesd_dir), quality=100).quantizer
    assert palette.colors == 256 and palette.metric == "sd-decoder"
    with pytest.raises(StageConfigError, match="quality or step"):
        Codec.from_preset("taesd-ans", model=str(taesd_dir), quality=50, step=0.3)
    with pytest.raises(StageConfigError, match="0..100"):
        Codec.from_preset("taesd-ans", model=str(taesd_dir), quality=101)


def test_quality_is_monotone_in_bytes_on_kodak_crops(taesd: object, kodak_dir: Path, taesd_dir: Path) -> None:
    """More quality, more bytes, for every preset (benchmarks/bench_quality.py: all 24 images)."""
    from latentcodec.imageio import to_tensor
    from latentcodec.presets import PRESETS

    crops = [to_tensor(kodak_dir / f"kodim{i:02d}.png")[..., 128:256, 128:256] for i in (3, 14, 23)]
    codec = Codec.from_preset("taesd-ans", model=str(taesd_dir))
    codec.transform = taesd  # type: ignore[assignment]
    latents = codec.analyse(crops)
    for name in PRESETS:
        totals = []
        # refine_z (taesd-hyperprior) only keeps a z that codes smaller and costs seconds per
        # call; the benchmark runs the preset as shipped
        extra = {"refine_z": 0} if name == "taesd-hyperprior" else {}
        for quality in (0, 25, 50, 75, 100):
            c = Codec.from_preset(name, model=str(taesd_dir), quality=quality, **extra)
            c.transform = taesd  # type: ignore[assignment]
            totals.append(sum(len(c.compress_latent(z, (128, 128))) for z in latents))
        assert totals == sorted(totals) and totals[0] < totals[-1], (name, totals)


def test_compress_result_describes_the_stream(taesd_codec: Codec) -> None:
    from latentcodec import CompressResult

    image = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(1))
    result = taesd_codec.compress(image, return_result=True)
    assert isinstance(result, CompressResult) and result.data == taesd_codec.compress(image) == bytes(result)
    assert (result.width, result.height, result.nbytes) == (56, 40, len(result.data))
    assert result.bpp == pytest.approx(describe(result.data)["bpp"])
    assert result.chain == ("taesd", "uniform", "ans", "vae") and (result.parameter, result.value) == ("step", 0.5)


def test_module_level_calls_load_and_hash_the_model_once(taesd_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import latentcodec
    from latentcodec import modelcache
    from latentcodec.transforms import base
    from latentcodec.transforms.taesd import TAESDTransform

    loads, hashes = [], []
    real_load, real_hash = TAESDTransform._load, base.weights_fingerprint
    monkeypatch.setattr(TAESDTransform, "_load", lambda self: loads.append(1) or real_load(self))
    monkeypatch.setattr(base, "weights_fingerprint", lambda m: hashes.append(1) or real_hash(m))
    modelcache.clear()
    image = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(2))
    a = latentcodec.compress(image, model=str(taesd_dir), device="cpu")
    b = latentcodec.compress(image, model=str(taesd_dir), device="cpu", quality=80)
    assert len(a) != len(b)
    for data in (a, b):
        assert latentcodec.decompress(data, model=str(taesd_dir), device="cpu").size == (32, 24)
    assert (len(loads), len(hashes)) == (1, 1)
    modelcache.clear()


def test_codec_to_moves_the_model_stages(taesd_dir: Path) -> None:
    codec = Codec.from_preset("taesd-ans", model=str(taesd_dir), device="cpu")
    quantizer = codec.quantizer
    assert codec.to("cpu", dtype="float32") is codec
    assert codec.transform.get_config()["dtype"] == "float32" and codec.quantizer is quantizer
    with pytest.raises(StageConfigError, match="device"):
        codec.to("tpu")


@pytest.mark.gpu
def test_codec_to_cuda_streams_decode_on_the_cpu(taesd_dir: Path, kodak_dir: Path) -> None:
    codec = Codec.from_preset("taesd-ans", model=str(taesd_dir), device="cpu").to("cuda:0")
    assert codec.transform.get_config()["device"] == "cuda:0"
    data = codec.compress(kodak_dir / "kodim23.png")
    assert decompress(data, model=str(taesd_dir), device="cpu").size == (768, 512)


def test_decompress_checks_the_pixel_limit_before_decoding(tmp_path: Path) -> None:
    """A 36-byte stream claiming 16384x16384: refused from the header, fast, without allocating."""
    import subprocess
    import sys
    import time
    import tracemalloc

    data = bomb_stream()
    assert len(data) == 36
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match="16384x16384"):
        decompress(data)
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 1.0 and peak < 100e6, (elapsed, peak)
    with pytest.raises(ImageTooLargeError):
        Codec.from_preset("taesd-ans").decompress(data)
    # the same in a fresh process, measuring its peak resident memory (torch is never loaded)
    code = (
        "import resource, sys; from latentcodec import decompress; from latentcodec.errors import ImageTooLargeError\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n    decompress(open(sys.argv[1], 'rb').read())\nexcept ImageTooLargeError:\n    pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, 'torch' in sys.modules)"
    )
    (tmp_path / "bomb.lc").write_bytes(data)
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "bomb.lc")], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) < 100 * 1024 and out[1] == "False", out  # ru_maxrss is in KiB on Linux


def bomb_stream() -> bytes:
    """16384x16384 (268 MP of latent symbols at 1/8) whose four constant channels cost 8 payload bytes."""
    from latentcodec.entropy.ans import ANSCoder

    return bitstream.write(
        bitstream.Stream(
            width=16384,
            height=16384,
            latent_channels=4,
            downsampling_factor=8,
            chain=(
                bitstream.StageRecord("transform", "taesd", 1),
                bitstream.StageRecord("quantizer", "uniform", 1),
                bitstream.StageRecord("entropy_coder", "ans", 1),
                bitstream.StageRecord("refiner", "vae", 1),
            ),
            fingerprint=b"\0\0\0\0",
            side_info=b"",
            payload=ANSCoder().encode(np.zeros((4, 1, 1), np.int32)),
        )
    )


def test_weights_check_has_its_own_flag(taesd_codec: Codec, taesd_dir: Path) -> None:
    from latentcodec.errors import WeightsMismatchError

    s = bitstream.read(taesd_codec.compress(torch.rand(1, 3, 16, 16)))
    other = bitstream.write(bitstream.Stream(**{**s.__dict__, "fingerprint": b"\1\2\3\4"}))
    for call in (lambda **kw: decompress(other, model=str(taesd_dir), **kw), lambda **kw: taesd_codec.decompress(other, **kw)):
        with pytest.raises(WeightsMismatchError, match="--ignore-weights"):
            call()
        with pytest.raises(TypeError):
            call(force=True)  # force only overwrites files; it no longer switches the check off
        assert call(ignore_weights=True).size == (16, 16)


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
    with pytest.raises(StageConfigError, match="refiner 'vae' has no option 'strength'"):
        taesd_codec.decompress(data, refiner_options={"strength": 0.3})
    assert taesd_codec.decompress(data, refiner_options={"quiet": True}).size == (16, 16)
    # quiet is a courtesy flag: a refiner without a progress bar ignores it
    assert decompress(data, model=str(taesd_dir), refiner_options={"quiet": True}).size == (16, 16)
