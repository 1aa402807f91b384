"""Transforms: real TAESD weights, a tiny random SD VAE through save_pretrained, devices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from latentcodec import Codec, decompress
from latentcodec.entropy.ans import ANSCoder
from latentcodec.errors import ModelError, ModelNotFoundError, StageConfigError, WeightsMismatchError
from latentcodec.quantizers.uniform import UniformQuantizer
from latentcodec.transforms.sd_vae import SDVAETransform
from latentcodec.transforms.taesd import TAESDTransform


def save_tiny_vae(path: Path, blocks: int = 4, scaling_factor: float = 0.5, seed: int = 0) -> Path:
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        block_out_channels=(8,) * blocks,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=32,
        scaling_factor=scaling_factor,
    )
    vae.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_vae_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_vae(tmp_path_factory.mktemp("tiny-vae"))


def test_taesd_original_layout_shapes_and_range(taesd: TAESDTransform) -> None:
    image = torch.rand(1, 3, 64, 96)
    latent = taesd.analysis(image)
    assert latent.shape == (1, 4, 8, 12) and latent.dtype == torch.float32
    assert taesd.latent_channels == 4 and taesd.downsampling_factor == 8
    out = taesd.synthesis(latent)
    assert out.shape == (1, 3, 64, 96)
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0


def test_taesd_reconstructs_a_real_image(taesd: TAESDTransform, kodak_dir: Path) -> None:
    from latentcodec.imageio import to_tensor

    image = to_tensor(kodak_dir / "kodim23.png")[..., :256, :256]
    out = taesd.synthesis(taesd.analysis(image))
    mse = float(((out - image) ** 2).mean())
    assert 10 * np.log10(1 / mse) > 24  # real weights: a garbage key map would give ~10 dB


def test_taesd_pair_of_files_equals_directory(taesd_dir: Path, taesd: TAESDTransform) -> None:
    pair = TAESDTransform(model=f"{taesd_dir / 'taesd_encoder.safetensors'},{taesd_dir / 'taesd_decoder.safetensors'}", device="cpu")
    assert pair.fingerprint() == taesd.fingerprint()
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(pair.analysis(x), taesd.analysis(x))


def test_taesd_diffusers_directory(taesd: TAESDTransform, tmp_path: Path) -> None:
    taesd.module.save_pretrained(tmp_path / "diffusers-taesd")
    reloaded = TAESDTransform(model=str(tmp_path / "diffusers-taesd"), device="cpu")
    assert reloaded.fingerprint() == taesd.fingerprint()


def test_padding_to_the_downsampling_factor_and_cropping(taesd: TAESDTransform) -> None:
    codec = Codec(taesd, UniformQuantizer(0.25), ANSCoder())
    image = torch.rand(1, 3, 37, 50)
    data = codec.compress(image)
    out = codec.decompress(data, as_tensor=True)
    assert out.shape == (1, 3, 37, 50)
    tiny = torch.rand(1, 3, 3, 5)  # smaller than the factor: replicate padding
    assert codec.decompress(codec.compress(tiny)).size == (5, 3)


def test_mismatched_taesd_weights_are_a_model_error(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"0.weight": torch.zeros(3, 3)}, str(tmp_path / "taesd_encoder.safetensors"))
    save_file({"1.weight": torch.zeros(3, 3)}, str(tmp_path / "taesd_decoder.safetensors"))
    with pytest.raises(ModelError, match="do not fit"):
        TAESDTransform(model=str(tmp_path), device="cpu").fingerprint()
    (tmp_path / "taesd_encoder.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="cannot read"):
        TAESDTransform(model=str(tmp_path), device="cpu").fingerprint()


def test_offline_hub_id_names_the_way_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="--model PATH"):
        TAESDTransform(model="madebyollin/taesd", device="cpu").fingerprint()
    with pytest.raises(ModelNotFoundError, match="--model PATH"):
        SDVAETransform(device="cpu").fingerprint()
    with pytest.raises(ModelNotFoundError, match="no such file"):
        SDVAETransform(model="./no/such/dir", device="cpu").fingerprint()


def test_sd_vae_constants_come_from_the_config(tiny_vae_dir: Path, tmp_path: Path) -> None:
    from diffusers import AutoencoderKL

    t = SDVAETransform(model=str(tiny_vae_dir), device="cpu")
    assert t.downsampling_factor == 8 and t.latent_channels == 4
    x = torch.rand(1, 3, 32, 48)
    z = t.analysis(x)
    raw = AutoencoderKL.from_pretrained(str(tiny_vae_dir)).encode(x * 2 - 1).latent_dist.mean
    assert torch.allclose(z, raw * 0.5, atol=1e-5)  # scaling_factor 0.5 from the config
    three = SDVAETransform(model=str(save_tiny_vae(tmp_path / "three", blocks=3)), device="cpu")
    assert three.downsampling_factor == 4
    assert three.analysis(x).shape == (1, 4, 8, 12)


def test_sd_vae_sampling_is_seeded(tiny_vae_dir: Path) -> None:
    x = torch.rand(1, 3, 16, 16)
    a = SDVAETransform(model=str(tiny_vae_dir), device="cpu", sample=True, seed=3).analysis(x)
    b = SDVAETransform(model=str(tiny_vae_dir), device="cpu", sample=True, seed=3).analysis(x)
    c = SDVAETransform(model=str(tiny_vae_dir), device="cpu", sample=True, seed=4).analysis(x)
    mean = SDVAETransform(model=str(tiny_vae_dir), device="cpu").analysis(x)
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, mean)


def test_sd_vae_end_to_end_through_the_cli(tiny_vae_dir: Path, tmp_path: Path, kodak_dir: Path) -> None:
    from PIL import Image

    from latentcodec.cli import main

    src = tmp_path / "in.png"
    Image.open(kodak_dir / "kodim23.png").crop((0, 0, 96, 64)).save(src)
    stream, out = tmp_path / "x.lc", tmp_path / "x.png"
    assert main(["compress", str(src), "-o", str(stream), "--preset", "sd-ans", "--model", str(tiny_vae_dir), "--device", "cpu"]) == 0
    assert main(["decompress", str(stream), "-o", str(out), "--model", str(tiny_vae_dir)]) == 0
    assert Image.open(out).size == (96, 64)
    assert main(["compress", str(src), "-o", str(tmp_path / "b.lc"), "--preset", "buhlmann-uint8", "--model", str(tiny_vae_dir)]) == 0
    from latentcodec import describe

    info = describe((tmp_path / "b.lc").read_bytes())
    assert [c["name"] for c in info["chain"]] == ["sd-vae", "uint8", "zlib", "vae"]


def test_weights_mismatch_is_refused_unless_ignored(tiny_vae_dir: Path, tmp_path: Path) -> None:
    other = save_tiny_vae(tmp_path / "other", seed=1)
    codec = Codec(SDVAETransform(model=str(tiny_vae_dir), device="cpu"), UniformQuantizer(), ANSCoder())
    data = codec.compress(torch.rand(1, 3, 16, 16))
    with pytest.raises(WeightsMismatchError, match="--ignore-weights"):
        decompress(data, model=str(other))
    assert decompress(data, model=str(other), ignore_weights=True).size == (16, 16)
    assert decompress(data, model=str(tiny_vae_dir)).size == (16, 16)


def test_reduced_precision_path_on_cpu(tiny_vae_dir: Path, taesd_dir: Path) -> None:
    """The CUDA fp16 path's dtype handling: model in reduced precision, I/O in float32."""
    x = torch.rand(1, 3, 16, 16)
    for cls, model in ((SDVAETransform, tiny_vae_dir), (TAESDTransform, taesd_dir)):
        full = cls(model=str(model), device="cpu", dtype="float32")
        half = cls(model=str(model), device="cpu", dtype="bfloat16")
        assert next(half.module.parameters()).dtype == torch.bfloat16
        z = half.analysis(x)
        assert z.dtype == torch.float32 and z.device.type == "cpu"
        assert torch.allclose(z, full.analysis(x), atol=0.1)
        assert half.fingerprint() == full.fingerprint()  # computed before the cast
        assert half.synthesis(z).dtype == torch.float32


def test_bad_device_and_dtype_options() -> None:
    with pytest.raises(StageConfigError):
        TAESDTransform(device="tpu")
    with pytest.raises(StageConfigError):
        TAESDTransform(dtype="float8")
    if not torch.cuda.is_available():
        with pytest.raises(StageConfigError, match="CUDA is not available"):
            TAESDTransform(device="cuda")


@pytest.mark.gpu
def test_cuda_fp16_round_trip_matches_cpu_symbols(taesd_dir: Path, kodak_dir: Path) -> None:
    gpu = Codec(TAESDTransform(model=str(taesd_dir), device="cuda"), UniformQuantizer(), ANSCoder())
    cpu = Codec(TAESDTransform(model=str(taesd_dir), device="cpu"), UniformQuantizer(), ANSCoder())
    assert next(gpu.transform.module.parameters()).dtype == torch.float16
    data = gpu.compress(kodak_dir / "kodim23.png")
    # decoding on the CPU works from a CUDA-made stream (same weights fingerprint)
    image = cpu.decompress(data)
    assert image.size == (768, 512)
    assert gpu.decompress(data).size == (768, 512)
