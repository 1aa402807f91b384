"""The encoder search (``effort``, :mod:`latentcodec.rdo`): streams the stock decoder reads
exactly, effort 0 byte for byte the plain encoder, a search that pays, determinism, the
errors, the command line and byte budgets.  Small Kodak crops and effort 1 keep it fast."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import latentcodec
from latentcodec import Codec
from latentcodec.cli import main
from latentcodec.decoding import decode_symbols, read_stream
from latentcodec.errors import StageConfigError, StageInputError
from latentcodec.imageio import DEFAULT_MAX_PIXELS
from latentcodec.ratecontrol import compress_to_target
from latentcodec.rdo import EFFORTS, MAX_EFFORT, SearchSettings, parse_effort
from latentcodec.rdo.search import run_search

from .conftest import KODAK_DIR, TAESD_DIR, VAELIGHT_DIR, psnr


def crop(side: int, left: int = 200, top: int = 100) -> np.ndarray:
    from PIL import Image

    with Image.open(KODAK_DIR / "kodim23.png") as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB"))[top : top + side, left : left + side])


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Any:
    """One torch thread (but in the thread-count test): on a shared 2-core machine two spin-waiting
    OpenMP threads made these searches over 10x slower (``latentcodec.eval.runner.choose_threads``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def hyper(taesd_dir: Path) -> Codec:
    """``taesd-hyperprior`` at step 1.0 (about 0.1 bpp) on the real TAESD."""
    return Codec.from_preset("taesd-hyperprior", model=str(taesd_dir), device="cpu", step=1.0)


@pytest.fixture(scope="module")
def hyper_fast(hyper: Codec) -> Codec:
    """``hyper`` without the encoder's 30 ``refine_z`` steps per encode: rate control encodes a
    dozen times, and ``refine_z`` changes nothing the search or the budget logic depends on."""
    other = Codec.from_preset("taesd-hyperprior", model=str(TAESD_DIR), device="cpu", step=1.0, refine_z=0)
    return Codec(hyper.transform, other.quantizer, other.entropy_coder, other.refiner)


@pytest.fixture(scope="module")
def image128() -> np.ndarray:
    return crop(128)


@pytest.fixture(scope="module")
def searched128(hyper: Codec, image128: np.ndarray) -> bytes:
    return hyper.compress(image128, effort=1)


class SpySymbols:
    """Records the symbols a codec's entropy coder is handed (what the encoder writes)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, codec: Codec) -> None:
        self.calls: list[np.ndarray] = []
        coder = codec.entropy_coder
        real = coder.encode

        def encode(symbols: np.ndarray, *args: Any, **kwargs: Any) -> Any:
            self.calls.append(np.array(symbols, copy=True))
            return real(symbols, *args, **kwargs)

        monkeypatch.setattr(coder, "encode", encode)


def decoded(codec: Codec, data: bytes) -> np.ndarray:
    return np.asarray(codec.decompress(data).convert("RGB"))


# --- the stream ------------------------------------------------------------------------------
def test_searched_stream_decodes_to_exactly_the_symbols_written(hyper: Codec, image128: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = SpySymbols(monkeypatch, hyper)
    data = hyper.compress(image128, effort=1)
    hyper.compress(image128)
    assert len(spy.calls) == 2
    written, plain_written = spy.calls
    assert not np.array_equal(written, plain_written)  # the search moved some symbols
    symbols, _ = decode_symbols(read_stream(data, DEFAULT_MAX_PIXELS))  # the stock decoder, from the header alone
    assert symbols.dtype == np.int32 and np.array_equal(symbols, written)
    image = latentcodec.decompress(data, model=str(TAESD_DIR))  # the module-level API, no codec at hand
    assert image.size == (128, 128)


@pytest.mark.parametrize("preset", ["taesd-hyperprior", "taesd-ans"])
def test_effort_0_is_the_plain_encoder_byte_for_byte(preset: str, taesd_dir: Path) -> None:
    codec = Codec.from_preset(preset, model=str(taesd_dir), device="cpu")
    image = crop(64, 300, 200)
    plain = codec.compress(image)
    assert codec.compress(image, effort=0) == plain
    assert codec.compress(image, effort="0", lmbda=3.0, distortion="mix") == plain  # nothing steers at effort 0
    assert latentcodec.compress(image, preset, model=str(taesd_dir), device="cpu", effort=0) == plain


def test_the_search_buys_quality_at_about_the_same_bytes(hyper: Codec, image128: np.ndarray, searched128: bytes) -> None:
    plain = hyper.compress(image128)
    gain = psnr(image128, decoded(hyper, searched128)) - psnr(image128, decoded(hyper, plain))
    assert gain >= 0.2, f"effort 1 gained {gain:.2f} dB"
    assert len(searched128) <= 1.1 * len(plain)


def test_the_search_lowers_its_loss_and_keeps_the_best_rounded_point(hyper: Codec, image128: np.ndarray) -> None:
    from latentcodec.rdo.encode import search_parts

    settings = SearchSettings(effort=1)
    grid, rate, device = search_parts(hyper, settings)
    image = hyper.load_image(image128)
    latent = torch.from_numpy(hyper.analyse([image])[0])[None]
    result = run_search(lambda z: hyper.transform.differentiable_synthesis(z)[..., :128, :128], grid, rate, image, latent, steps=settings.steps)
    losses = [h[1] for h in result.history]
    assert len(losses) == settings.steps + 1
    assert result.best_step > 0 and losses[result.best_step] == min(losses) < losses[0]
    assert torch.equal(result.symbols, torch.round(result.symbols))  # on the grid


def test_search_is_deterministic_and_independent_of_the_thread_count(hyper: Codec, image128: np.ndarray, searched128: bytes) -> None:
    assert hyper.compress(image128, effort=1) == searched128  # a second run, one thread
    image = crop(64, 40, 300)
    one = hyper.compress(image, effort=1)
    try:
        torch.set_num_threads(2)
        two = hyper.compress(image, effort=1)
    finally:
        torch.set_num_threads(1)
    assert one == two and one != hyper.compress(image)


def test_sd_vae_path_searches_with_a_tiny_random_autoencoder_kl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from .tiny_models import make_tiny_sd_vae

    model = make_tiny_sd_vae(tmp_path / "vae")
    codec = Codec.from_preset("sd-ans", model=str(model), device="cpu")
    assert codec.transform.name == "sd-vae" and codec.transform.differentiable
    image = crop(64)
    spy = SpySymbols(monkeypatch, codec)
    data = codec.compress(image, effort=1)
    symbols, _ = decode_symbols(read_stream(data, DEFAULT_MAX_PIXELS))
    assert np.array_equal(symbols, spy.calls[-1])
    assert latentcodec.decompress(data, model=str(model), device="cpu").size == (64, 64)


# --- errors ----------------------------------------------------------------------------------
def test_a_transform_without_gradients_gets_one_line_naming_the_effort_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    codec = Codec.from_preset("taesd-ans", transform="onnx-vaelight", model=str(VAELIGHT_DIR), device="cpu")
    assert not codec.transform.differentiable
    image = crop(64)
    with pytest.raises(StageConfigError, match=r"onnx-vaelight.*--effort") as info:
        codec.compress(image, effort=1)
    assert "\n" not in str(info.value)
    assert codec.compress(image, effort=0) == codec.compress(image)  # effort 0 still works
    src, out = tmp_path / "in.png", tmp_path / "out.lc"
    from PIL import Image

    Image.fromarray(image).save(src)
    code = main(["compress", str(src), "-o", str(out), "--transform", "onnx-vaelight", "--model", str(VAELIGHT_DIR), "--effort", "2"])
    err = capsys.readouterr().err
    assert code != 0 and not out.exists()
    assert err.count("\n") == 1 and "onnx-vaelight" in err and "--effort 2" in err


@pytest.mark.parametrize(
    "settings",
    [{"effort": 4}, {"effort": -1}, {"effort": "fast"}, {"effort": True}, {"effort": 1.5}, {"effort": None},
     {"effort": 1, "lmbda": 0}, {"effort": 1, "lmbda": -0.1}, {"effort": 1, "lmbda": float("nan")}, {"effort": 1, "lmbda": "0.1"},
     {"effort": 1, "lmbda": True}, {"effort": 1, "distortion": "l1"}, {"effort": 1, "distortion": "MSE"}],
)  # fmt: skip
def test_bad_search_settings_are_stage_config_errors(settings: dict[str, Any], hyper: Codec) -> None:
    with pytest.raises(StageConfigError):
        SearchSettings(**settings)
    with pytest.raises(StageConfigError):
        hyper.compress(np.zeros((16, 16, 3), np.uint8), **settings)


def test_effort_levels_and_where_the_settings_belong(taesd_dir: Path, hyper: Codec) -> None:
    assert parse_effort("max") == parse_effort("MAX") == MAX_EFFORT == 3
    assert [EFFORTS[e] for e in sorted(EFFORTS)] == sorted(EFFORTS.values())  # more effort, more steps
    assert SearchSettings(effort=" 2 ").steps == EFFORTS[2] > EFFORTS[1]
    with pytest.raises(StageConfigError, match="compress"):
        Codec.from_preset("taesd-hyperprior", model=str(taesd_dir), effort=1)  # not a stage option
    with pytest.raises(TypeError, match="efort"):
        hyper.compress(np.zeros((16, 16, 3), np.uint8), efort=1)
    with pytest.raises(StageInputError, match="160|161"):  # MS-SSIM's five scales need a larger image
        hyper.compress(np.zeros((64, 64, 3), np.uint8), effort=1, distortion="ms-ssim")


# --- command line ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def crop_file(tmp_path_factory: pytest.TempPathFactory, image128: np.ndarray) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("rdo") / "crop.png"
    Image.fromarray(image128).save(path)
    return path


def compress_args(src: Path, out: Path, *extra: str) -> list[str]:
    return ["compress", str(src), "-o", str(out), "--preset", "taesd-hyperprior", "--model", str(TAESD_DIR), "--device", "cpu", "-O", "step=1.0", *extra]


def test_the_worker_takes_the_search_settings(hyper: Codec, image128: np.ndarray, searched128: bytes, crop_file: Path, tmp_path: Path) -> None:
    from latentcodec.batch import CompressWorker, plan_jobs

    out = tmp_path / "w.lc"
    records = CompressWorker(hyper, search={"effort": 1}).process(plan_jobs([str(crop_file)], str(out), mode="compress"))
    assert [r.status for r in records] == ["ok"] and out.read_bytes() == searched128
    with pytest.raises(StageConfigError, match="distortion"):
        CompressWorker(hyper, search={"effort": 1, "distortion": "psnr"})


def test_cli_effort_writes_the_api_stream_and_quiet_silences_the_bar(
    crop_file: Path, searched128: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "q.lc"
    assert main(compress_args(crop_file, out, "--effort", "1", "--quiet")) == 0
    err = capsys.readouterr().err
    assert out.read_bytes() == searched128 and "search" not in err
    loud = tmp_path / "loud.lc"
    assert main(compress_args(crop_file, loud, "--effort", "1")) == 0
    err = capsys.readouterr().err
    assert re.search(r"search: .*\d/8 \[", err)  # tqdm's bar on stderr (which step it last drew depends on the clock)
    assert loud.read_bytes() == searched128


def test_cli_search_flags_are_checked(crop_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from latentcodec.cli import _search_settings, build_parser

    args = build_parser().parse_args(compress_args(crop_file, tmp_path / "x.lc", "--effort", "max", "--lmbda", "0.3", "--distortion", "mix", "-q", "50"))
    settings = _search_settings(args)
    assert (settings.effort, settings.lmbda, settings.distortion, settings.progress) == (MAX_EFFORT, 0.3, "mix", True)
    for extra, words in [(["--effort", "9"], "effort"), (["--distortion", "l2", "--effort", "1"], "distortion"), (["--lmbda", "0.3"], "--effort 1")]:
        out = tmp_path / "never.lc"
        assert main(compress_args(crop_file, out, *extra)) != 0
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err and not out.exists()


def test_ctrl_c_during_a_search_leaves_no_output(crop_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import latentcodec.rdo.encode as encode

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(encode, "run_search", interrupted)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code = main(compress_args(crop_file, out_dir / "x.lc", "--effort", "1"))
    assert code == 130 and "interrupted" in capsys.readouterr().err
    assert list(out_dir.iterdir()) == []  # neither the stream nor a temporary file


# --- byte budgets ----------------------------------------------------------------------------
@pytest.mark.parametrize("lmbda", [None, 3.0])  # 3.0: the search spends bytes, so the first searched stream overshoots
def test_target_bytes_with_a_search_still_fits(hyper_fast: Codec, image128: np.ndarray, lmbda: float | None) -> None:
    target = 200
    plain = compress_to_target(hyper_fast, image128, target_bytes=target)
    r = compress_to_target(hyper_fast, image128, target_bytes=target, effort=1, lmbda=lmbda)
    assert len(r.data) <= target and r.searched and r.searches >= 1
    assert len(r.data) >= 0.8 * target  # the budget is used, not thrown away
    if lmbda == 3.0:
        assert r.searches >= 2 and r.value > plain.value  # stepped down: a coarser step than the plain encoder's
    symbols, _ = decode_symbols(read_stream(r.data, DEFAULT_MAX_PIXELS))
    assert symbols.shape == (4, 16, 16)


def test_cli_target_bpp_composes_with_effort(crop_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.lc"
    assert main(compress_args(crop_file, out, "--effort", "1", "--target-bpp", "0.1", "--quiet", "-O", "refine_z=0")) == 0
    assert 0.08 * 128 * 128 / 8 <= out.stat().st_size <= 0.1 * 128 * 128 / 8


# --- CUDA ------------------------------------------------------------------------------------
@pytest.mark.gpu
def test_search_on_cuda_decodes_exactly_on_the_cpu(taesd_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    codec = Codec.from_preset("taesd-hyperprior", model=str(taesd_dir), device="cuda", step=1.0)
    image = crop(256)
    spy = SpySymbols(monkeypatch, codec)
    data = codec.compress(image, effort=MAX_EFFORT)
    symbols, _ = decode_symbols(read_stream(data, DEFAULT_MAX_PIXELS))
    assert np.array_equal(symbols, spy.calls[-1])
    cpu = Codec.from_preset("taesd-hyperprior", model=str(taesd_dir), device="cpu", step=1.0)
    plain = cpu.compress(image)
    assert psnr(image, decoded(cpu, data)) > psnr(image, decoded(cpu, plain))


# --- evaluation --------------------------------------------------------------------------------
def test_eval_codec_spec_takes_the_effort(hyper: Codec, image128: np.ndarray, searched128: bytes) -> None:
    from latentcodec.eval.codecs import PresetCodec

    codec = PresetCodec("taesd-hyperprior:effort=1", model=str(TAESD_DIR), device="cpu")
    assert codec.unavailable_reason() is None and codec.search.steps == EFFORTS[1]
    (point,) = codec.encode_points(image128, [1.0])
    assert point.num_bytes == len(searched128)
    assert np.array_equal(point.decoded, decoded(hyper, searched128))
    onnx = PresetCodec("taesd-ans@onnx-vaelight:effort=1", model=str(VAELIGHT_DIR), device="cpu")
    assert "--effort 1" in (onnx.unavailable_reason() or "")
