"""Diffusion refiners on tiny random diffusers components loaded through ``from_pretrained``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests import tiny_models
from latentcodec.errors import CorruptStreamError, ImageTooLargeError, ModelNotFoundError
from latentcodec.quantizers.uniform import UniformQuantizer
from latentcodec.refiners.controlnet_canny import ControlNetCannyRefiner, canny
from latentcodec.refiners.ddim_inversion import DDIMInversionRefiner
from latentcodec.refiners.diffusion import (
    ddim_invert,
    ddim_sample,
    ddim_schedulers,
    empty_prompt_embedding,
    encode_empty_prompt,
    load_sd_components,
    partial_ddim_roundtrip,
    save_empty_prompt_embedding,
)
from latentcodec.refiners.unet_denoise import UNetDenoiseRefiner
from latentcodec.stages import RefineContext

from tests.conftest import psnr

CPU = {"device": "cpu", "dtype": "float32", "quiet": True}


@pytest.fixture(scope="module", autouse=True)
def one_thread():  # type: ignore[no-untyped-def]
    """Tiny models are latency-bound: one thread avoids contention on a shared CPU (10x faster here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    sd = tiny_models.make_sd_dir(root / "sd")
    return {
        "sd": sd,
        "controlnet": tiny_models.make_controlnet_dir(root / "controlnet", sd),
        "sd_clip": tiny_models.make_sd_dir(root / "sd_clip", with_text_encoder=True),
    }


@pytest.fixture(scope="module")
def sd(tiny):  # type: ignore[no-untyped-def]
    return load_sd_components(str(tiny["sd"]), device=torch.device("cpu"), dtype=torch.float32, quiet=True)


def _crop_latent(taesd, kodak_dir: Path, box: tuple[int, int, int, int]) -> torch.Tensor:  # type: ignore[no-untyped-def]
    image = Image.open(kodak_dir / "kodim23.png").convert("RGB").crop(box)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    return taesd.analysis(x)


def test_ddim_inversion_then_sampling_reconstructs_the_latent(sd) -> None:  # type: ignore[no-untyped-def]
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    steps, strength = 60, 0.3
    count = round(steps * strength)
    noisy = ddim_invert(sd, z, steps, count)
    # the inversion really travels: it reaches the noise level of timestep ~300
    _, inverse = ddim_schedulers(sd, steps)
    abar = float(inverse.alphas_cumprod[int(inverse.timesteps[count - 1])])
    assert abar < 0.8 and (noisy - z).abs().mean() > 0.1
    forward, _ = ddim_schedulers(sd, steps)
    back = ddim_sample(sd, noisy, forward.timesteps[steps - count :], forward)
    errors = {steps: (back - z).abs().max().item()}
    errors[10] = (partial_ddim_roundtrip(sd, z, steps=10, strength=strength) - z).abs().max().item()
    assert errors[steps] < 0.01, errors  # tight: |z| ~ 1
    assert errors[steps] < errors[10] / 3, errors  # and the error shrinks with the step size


def test_unet_denoise_change_grows_with_the_quantizer_step(tiny, taesd, kodak_dir: Path) -> None:  # type: ignore[no-untyped-def]
    latent = _crop_latent(taesd, kodak_dir, (256, 128, 384, 256))[0].numpy()
    changes, starts = [], []
    for step in (0.1, 0.5, 1.5):
        quantizer = UniformQuantizer(step=step)
        q = quantizer.quantize(latent)
        deq = torch.from_numpy(quantizer.dequantize(q.symbols, q.side_info))[None]
        refiner = UNetDenoiseRefiner(refiner_model=str(tiny["sd"]), **CPU)
        context = RefineContext(image_size=(128, 128), quantizer=quantizer, side_info=q.side_info)
        refined = refiner.refine(deq, taesd, context)
        plain = taesd.synthesis(deq)
        assert refined.shape == plain.shape == (1, 3, 128, 128)
        changes.append((refined - plain).abs().mean().item())
        start = refiner.last_timesteps[0]
        # the derived start is the timestep whose sqrt((1-abar)/abar) is nearest step/sqrt(12)
        t = refiner.choose_start(context)
        ratio = ((1 - refiner.sd.alphas_cumprod) / refiner.sd.alphas_cumprod).sqrt()
        miss = (ratio - step / 12**0.5).abs()
        assert miss[t] <= miss[t + 1] and (t == 1 or miss[t] <= miss[t - 1])
        assert start <= t and (step < 0.3 or miss[t] < 0.01)
        starts.append(start)
    assert starts[0] < starts[1] < starts[2], starts
    assert changes[0] < changes[1] < changes[2], changes
    assert changes[2] > 2 * changes[0] and changes[2] > 1e-3, changes


def test_controlnet_residuals_reach_the_unet(tiny, taesd, kodak_dir: Path) -> None:  # type: ignore[no-untyped-def]
    latent = _crop_latent(taesd, kodak_dir, (432, 192, 504, 256))  # 72x64: latent 9x8, padded to 10x8
    context = RefineContext(image_size=(72, 64))
    opts = {"refiner_model": str(tiny["sd"]), "steps": 10, "strength": 0.3, **CPU}
    plain = DDIMInversionRefiner(**opts).refine(latent, taesd, context)
    cn = {s: ControlNetCannyRefiner(controlnet_model=str(tiny["controlnet"]), conditioning_scale=s, **opts) for s in (0.0, 1.0)}
    out = {s: r.refine(latent, taesd, context) for s, r in cn.items()}
    edges = canny(taesd.synthesis(latent)[0].permute(1, 2, 0).numpy())
    assert edges.any() and not edges.all()
    assert plain.shape == out[1.0].shape == (1, 3, 64, 72)
    assert torch.equal(out[0.0], plain)
    assert (out[1.0] - plain).abs().max() > 1e-3
    assert (plain - taesd.synthesis(latent)[..., :64, :72]).abs().max() > 1e-3  # the refiner did change something


def test_eta_noise_is_seeded(tiny, taesd) -> None:  # type: ignore[no-untyped-def]
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    context = RefineContext(image_size=(64, 64))

    def run(seed: int) -> torch.Tensor:
        r = UNetDenoiseRefiner(refiner_model=str(tiny["sd"]), start_t=200, steps=4, eta=1.0, seed=seed, **CPU)
        return r.refine(latent, taesd, context)

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))
    r = UNetDenoiseRefiner(seed=3)
    assert UNetDenoiseRefiner.config_from_wire(r.wire_params()) == {"seed": 3}
    assert UNetDenoiseRefiner().wire_params() == b""
    with pytest.raises(CorruptStreamError):
        UNetDenoiseRefiner.config_from_wire(b"\x01")


def test_text_encoder_and_embedding_file_give_the_same_conditioning(tiny, tmp_path: Path) -> None:
    source = str(tiny["sd_clip"])
    encoded = encode_empty_prompt(source)
    assert encoded.shape == (1, 77, tiny_models.CROSS_DIM)
    path = save_empty_prompt_embedding(source, tmp_path / "empty.safetensors")
    assert torch.equal(empty_prompt_embedding(source, str(path)), encoded)
    loaded = load_sd_components(source, device=torch.device("cpu"), dtype=torch.float32, quiet=True)
    assert torch.equal(loaded.prompt_embeds, encoded)


def test_missing_models_name_their_option(tiny, taesd) -> None:  # type: ignore[no-untyped-def]
    latent = torch.zeros(1, 4, 8, 8)
    context = RefineContext(image_size=(64, 64))
    with pytest.raises(ModelNotFoundError, match="--refiner-model PATH"):
        UNetDenoiseRefiner(refiner_model="nobody/no-such-sd", **CPU).refine(latent, taesd, context)
    r = ControlNetCannyRefiner(refiner_model=str(tiny["sd"]), controlnet_model="nobody/no-such-controlnet", **CPU)
    with pytest.raises(ModelNotFoundError, match="ControlNet 'nobody/no-such-controlnet'.*--controlnet-model PATH"):
        r.refine(latent, taesd, context)


def test_latent_size_limit(tiny, taesd) -> None:  # type: ignore[no-untyped-def]
    r = UNetDenoiseRefiner(refiner_model=str(tiny["sd"]), max_latent_pixels=63, **CPU)
    with pytest.raises(ImageTooLargeError, match="exceeds the refiner's limit of 63"):
        r.refine(torch.zeros(1, 4, 8, 8), taesd, RefineContext(image_size=(64, 64)))


@pytest.fixture(scope="module")
def kodim23_plain(kodim23_stream: bytes, taesd_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The stream on disk and its plain (``vae``) decode through the CLI."""
    from latentcodec.cli import main

    root = tmp_path_factory.mktemp("kodim23")
    stream, plain = root / "k.lc", root / "plain.png"
    stream.write_bytes(kodim23_stream)
    assert main(["decompress", str(stream), "-o", str(plain), "--model", str(taesd_dir), "--device", "cpu"]) == 0
    return stream, plain


@pytest.mark.parametrize("refiner", ["unet-denoise", "controlnet-canny"])  # ddim-inversion: controlnet-canny's path
def test_cli_decodes_a_kodak_stream_with_a_refiner(
    refiner: str, tiny, taesd_dir: Path, kodak_dir: Path, kodim23_plain: tuple[Path, Path], tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    from latentcodec.cli import main

    stream, plain = kodim23_plain
    out = tmp_path / "refined.png"
    common = [str(stream), "--model", str(taesd_dir), "--device", "cpu", "--quiet"]
    args = ["--refiner", refiner, "--refiner-model", str(tiny["sd"]), "-O", "steps=2" if refiner == "unet-denoise" else "steps=4"]
    if refiner == "controlnet-canny":
        args += ["--controlnet-model", str(tiny["controlnet"])]
    capsys.readouterr()
    assert main(["decompress", *common, "-o", str(out), *args]) == 0
    assert "%|" not in capsys.readouterr().err  # --quiet: no progress bar
    original = np.asarray(Image.open(kodak_dir / "kodim23.png").convert("RGB"))
    a, b = np.asarray(Image.open(plain)), np.asarray(Image.open(out))
    assert b.shape == original.shape == (512, 768, 3)
    assert np.abs(a.astype(int) - b.astype(int)).max() > 0  # the refiner ran
    assert psnr(b, original) > 15.0  # a random tiny UNet perturbs, but the picture survives


def test_cli_offline_error_is_one_line(tiny, taesd_dir: Path, kodim23_plain: tuple[Path, Path], tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from latentcodec.cli import main

    stream = kodim23_plain[0]
    argv = ["decompress", str(stream), "-o", str(tmp_path / "o.png"), "--model", str(taesd_dir), "--device", "cpu"]
    assert main([*argv, "--refiner", "controlnet-canny", "--refiner-model", str(tiny["sd"]), "--controlnet-model", "nobody/cn", "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("latentcodec: error: ControlNet 'nobody/cn'") and "--controlnet-model PATH" in err and "\n" not in err


@pytest.mark.gpu
def test_fp16_cuda_path_matches_cpu(tiny, taesd, kodak_dir: Path) -> None:  # type: ignore[no-untyped-def]
    latent = _crop_latent(taesd, kodak_dir, (256, 128, 384, 256))
    context = RefineContext(image_size=(128, 128), quantizer=UniformQuantizer(step=1.0))
    for cls, extra in ((UNetDenoiseRefiner, {}), (ControlNetCannyRefiner, {"controlnet_model": str(tiny["controlnet"]), "steps": 10})):
        gpu = cls(refiner_model=str(tiny["sd"]), device="cuda", quiet=True, **extra)
        assert gpu.sd.dtype == torch.float16 and gpu.sd.device.type == "cuda"  # fp16 by default on CUDA
        out_gpu = gpu.refine(latent, taesd, context)
        out_cpu = cls(refiner_model=str(tiny["sd"]), **CPU, **extra).refine(latent, taesd, context)
        assert out_gpu.dtype == torch.float32 and out_gpu.device.type == "cpu" and torch.isfinite(out_gpu).all()
        assert (out_gpu - out_cpu).abs().mean() < 0.01
