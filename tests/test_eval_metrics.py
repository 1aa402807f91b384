"""The perceptual metrics and JPEG XL paths of ``latentcodec eval`` on small Kodak crops.

Each needs an optional package (``latentcodec[metrics]``) or a Debian tool and is skipped,
saying what to install, where it is missing.  Every test checks an ordering that a wrong
implementation would break: identical images score best, and a stronger JPEG distortion
scores worse than a milder one.
"""

from __future__ import annotations

import importlib.util
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentcodec.eval.codecs import JXLPillowCodec, JXLToolCodec, jxl_distance, make_codec
from latentcodec.eval.metrics import MSSSIM, PSNRRGB, Butteraugli, load_metrics


def _needs(module: str, package: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"needs {package}: pip install 'latentcodec[metrics]'")


@pytest.fixture(scope="module")
def photo(kodak_dir: Path) -> np.ndarray:
    """A 128x128 crop of kodim23 (parrots: edges, texture and flat background)."""
    return np.asarray(Image.open(kodak_dir / "kodim23.png").convert("RGB").crop((300, 100, 428, 228)))


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


@pytest.fixture(scope="module")
def distorted(photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mild, strong): JPEG quality 70 and 8."""
    return _jpeg(photo, 70), _jpeg(photo, 8)


def test_ssimulacra2_orders_distortions(photo: np.ndarray, distorted: tuple[np.ndarray, np.ndarray]) -> None:
    _needs("ssimulacra2", "ssimulacra2")
    [m], _ = load_metrics(["ssimulacra2"])
    mild, strong = distorted
    assert m.higher_is_better and m(photo, photo) == pytest.approx(100.0)
    assert 100.0 > m(photo, mild) > m(photo, strong)
    assert m(photo, mild) > 50 > m(photo, strong)  # JPEG q70 is good, q8 is poor on its 0-100 scale


def test_cvvdp_orders_distortions(photo: np.ndarray, distorted: tuple[np.ndarray, np.ndarray]) -> None:
    _needs("pycvvdp", "cvvdp")
    [m], _ = load_metrics(["cvvdp"])
    mild, strong = distorted
    assert m.unit == "JOD" and m.display == "standard_4k"  # type: ignore[attr-defined]
    assert m(photo, photo) == pytest.approx(10.0, abs=1e-3)
    assert 10.0 > m(photo, mild) > m(photo, strong) > 0.0


def test_butteraugli_reports_max_and_3_norm(photo: np.ndarray, distorted: tuple[np.ndarray, np.ndarray]) -> None:
    if shutil.which("butteraugli_main") is None:
        pytest.skip("needs butteraugli_main: apt-get install libjxl-devtools")
    m = Butteraugli()
    assert m.column_names() == ("butteraugli", "butteraugli-3norm")
    same = m.measure(photo, photo)
    assert same == {"butteraugli": 0.0, "butteraugli-3norm": 0.0}
    mild, strong = (m.measure(photo, d) for d in distorted)
    assert 0 < mild["butteraugli-3norm"] < strong["butteraugli-3norm"]  # type: ignore[operator]
    assert mild["butteraugli"] < strong["butteraugli"]  # type: ignore[operator]
    for values in (mild, strong):
        assert values["butteraugli-3norm"] < values["butteraugli"]  # type: ignore[operator] # a p-norm is below the max
    assert m(photo, distorted[1]) == strong["butteraugli"]


# --- MS-SSIM: our Gaussian-window SSIM against pytorch_msssim --------------------------
def _msssim_through_pytorch_msssim_private_api(reference: np.ndarray, distorted: np.ndarray) -> float:
    """The implementation MSSSIM replaced: pytorch_msssim's private ``_ssim`` in a variable-scale loop."""
    import torch
    import torch.nn.functional as F

    try:
        from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim
    except ImportError:
        pytest.skip("this pytorch_msssim no longer has the private _ssim the old implementation used")
    side = min(reference.shape[:2])
    levels = 5
    while levels > 1 and side <= 10 * 2 ** (levels - 1):
        levels -= 1
    weights = torch.tensor((0.0448, 0.2856, 0.3001, 0.2363, 0.1333)[:levels])
    weights = weights / weights.sum()
    x, y = (torch.from_numpy(np.array(a, dtype=np.float32)).permute(2, 0, 1)[None] for a in (reference, distorted))
    win = _fspecial_gauss_1d(11, 1.5).repeat([3, 1, 1, 1])
    mcs = []
    for i in range(levels):
        ssim_per_channel, cs = _ssim(x, y, win=win, data_range=255, size_average=False, K=(0.01, 0.03))
        if i < levels - 1:
            mcs.append(torch.relu(cs))
            padding = [s % 2 for s in x.shape[2:]]
            x, y = F.avg_pool2d(x, kernel_size=2, padding=padding), F.avg_pool2d(y, kernel_size=2, padding=padding)
    stack = torch.stack(mcs + [torch.relu(ssim_per_channel)], dim=0)
    return float(torch.prod(stack ** weights.view(-1, 1, 1), dim=0).mean())


@pytest.mark.parametrize("quality", [5, 40, 90])
def test_ms_ssim_matches_the_previous_implementation(kodak_dir: Path, quality: int) -> None:
    ref = np.asarray(Image.open(kodak_dir / "kodim05.png").convert("RGB"))
    dist = _jpeg(ref, quality)
    for r, d in ((ref, dist), (ref[:96, :130], dist[:96, :130])):  # 5 scales, and 3 on a crop
        assert MSSSIM()(r, d) == pytest.approx(_msssim_through_pytorch_msssim_private_api(r, d), abs=1e-6)


def test_ms_ssim_matches_pytorch_msssim_public_api(kodak_dir: Path) -> None:
    import torch
    from pytorch_msssim import ms_ssim

    ref = np.asarray(Image.open(kodak_dir / "kodim05.png").convert("RGB"))
    dist = _jpeg(ref, 20)
    t = [torch.from_numpy(a.astype(np.float32)).permute(2, 0, 1)[None] for a in (ref, dist)]
    # ms_ssim's weights sum to 1.0001, ours are renormalised to 1: a ~1e-5 difference.
    assert MSSSIM()(ref, dist) == pytest.approx(float(ms_ssim(*t, data_range=255)), abs=1e-4)


# --- JPEG XL -------------------------------------------------------------------------------
def test_jxl_distance_follows_libjxl() -> None:
    assert [jxl_distance(q) for q in (100, 90, 30, 0)] == [0.0, 1.0, 6.4, 25.0]
    assert all(jxl_distance(q) > jxl_distance(q + 1) for q in range(100))


@pytest.mark.parametrize("factory", [JXLPillowCodec, JXLToolCodec], ids=["pillow-jxl-plugin", "cjxl"])
def test_jxl_paths_grow_with_quality_and_fit_budgets(factory: type, photo: np.ndarray) -> None:
    codec = factory()
    reason = codec.unavailable_reason()
    if reason:
        pytest.skip(reason)
    low, high = list(codec.encode_points(photo, [0, 90]))  # quality 0 (distance 25) is valid on every libjxl
    assert low.num_bytes < high.num_bytes and high.decoded.shape == photo.shape
    assert PSNRRGB()(photo, low.decoded) < PSNRRGB()(photo, high.decoded)
    budget = (low.num_bytes + high.num_bytes) // 2
    enc = codec.size_matched(photo, budget)
    assert enc is not None and low.num_bytes <= enc.num_bytes <= budget and 0 < enc.param < 90


def test_jxl_prefers_cjxl_and_falls_back_to_the_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    from latentcodec.eval import codecs

    monkeypatch.setattr(codecs.shutil, "which", lambda name: "/usr/bin/" + name)
    tool = make_codec("jxl")
    assert isinstance(tool, JXLToolCodec) and "cjxl" in tool.description
    monkeypatch.setattr(codecs.shutil, "which", lambda name: None)
    plugin = make_codec("jxl")
    assert isinstance(plugin, JXLPillowCodec) and "pillow-jxl-plugin" in plugin.description and plugin.name == "jxl"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    reason = plugin.unavailable_reason() or ""
    assert "latentcodec[metrics]" in reason and "libjxl-tools" in reason


def test_missing_metric_packages_are_notices(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("ssimulacra2", "pycvvdp") else real(name, *a))
    metrics, notices = load_metrics(["psnr-rgb", "ssimulacra2", "cvvdp"])
    assert [m.name for m in metrics] == ["psnr-rgb"]
    text = "\n".join(notices)
    assert "'ssimulacra2' skipped: needs the ssimulacra2 package" in text and "'cvvdp' skipped: needs the cvvdp package" in text
    assert text.count("latentcodec[metrics]") == 2
