"""Image-quality metrics as plugins (entry-point group ``latentcodec.metrics``).

A metric compares two 8-bit RGB arrays ``(H, W, 3)`` (reference, distorted).  Metrics that
need an external tool or downloaded weights report why they cannot run
(:meth:`Metric.unavailable_reason`) instead of failing, so an evaluation goes on without
them and says what to install.

>>> import numpy as np
>>> ref = np.full((8, 8, 3), 100, np.uint8)
>>> dist = ref.copy(); dist[0, 0, 0] = 110
>>> round(PSNRRGB()(ref, dist), 2)  # mse = 100 / 192
50.96
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from .. import registry
from ..errors import MetricError, PluginLoadError

if TYPE_CHECKING:
    import torch

GROUP = "latentcodec.metrics"


def _entries() -> dict[str, registry.StageEntry]:
    """Registered metrics, by name (entry points; nothing is imported)."""
    return registry.discover(GROUP, "metric")[0]


class Metric(ABC):
    """One quality number per image pair (or a few from one run of a tool, :attr:`columns`)."""

    name: ClassVar[str]
    #: True for PSNR-like metrics, False for distances (Butteraugli, LPIPS, ...).
    higher_is_better: ClassVar[bool] = True
    unit: ClassVar[str] = ""
    #: The values one measurement gives (CSV and result columns); empty: just :attr:`name`.
    columns: ClassVar[tuple[str, ...]] = ()

    def column_names(self) -> tuple[str, ...]:
        return self.columns or (self.name,)

    def unavailable_reason(self) -> str | None:
        """None when the metric can run here; otherwise what is missing and how to get it."""
        return None

    @abstractmethod
    def compute(self, reference: np.ndarray, distorted: np.ndarray) -> float:
        """The metric on two uint8 ``(H, W, 3)`` arrays of equal shape."""

    def compute_columns(self, reference: np.ndarray, distorted: np.ndarray) -> dict[str, float | None]:
        """Every column for one pair; override where one computation gives several."""
        return {self.name: self.compute(reference, distorted)}

    def _checked(self, reference: np.ndarray, distorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        reference, distorted = np.asarray(reference), np.asarray(distorted)
        if reference.shape != distorted.shape or reference.ndim != 3 or reference.shape[2] != 3:
            raise MetricError(f"{self.name}: need two (H, W, 3) images of equal shape, got {reference.shape} and {distorted.shape}")
        return reference, distorted

    def __call__(self, reference: np.ndarray, distorted: np.ndarray) -> float:
        return float(self.compute(*self._checked(reference, distorted)))

    def measure(self, reference: np.ndarray, distorted: np.ndarray) -> dict[str, float | None]:
        """:meth:`compute_columns` on checked inputs, as floats (None where a value is missing)."""
        values = self.compute_columns(*self._checked(reference, distorted))
        return {k: None if v is None else float(v) for k, v in values.items()}


def _psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return 100.0  # identical images: a finite cap keeps averages and plots usable
    return min(100.0, 10.0 * math.log10(peak * peak / mse))


class PSNRRGB(Metric):
    """PSNR over the three RGB channels together (CompressAI's ``psnr-rgb``)."""

    name = "psnr-rgb"
    unit = "dB"

    def compute(self, reference: np.ndarray, distorted: np.ndarray) -> float:
        return _psnr(reference, distorted)


def luma(rgb: np.ndarray) -> np.ndarray:
    """Full-range BT.601 luma (JPEG's and Pillow's Y), float64 in [0, 255]."""
    x = rgb.astype(np.float64)
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


class PSNRY(Metric):
    """PSNR of the full-range BT.601 luma: what JPEG-era papers report."""

    name = "psnr-y"
    unit = "dB"

    def compute(self, reference: np.ndarray, distorted: np.ndarray) -> float:
        return _psnr(luma(reference), luma(distorted))


MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


class MSSSIM(Metric):
    """MS-SSIM (Wang et al. 2003: 11x11 Gaussian window, sigma 1.5, data range 255, 5 scales).

    Our own few lines rather than pytorch_msssim's private ``_ssim``: the same operations in
    the same order (float32, separable 'valid' filtering, ``relu`` of every factor), so
    values equal its ``ms_ssim`` loop to float precision.  Five scales need a shorter side
    above 160 pixels; smaller images use as many scales as fit, with the standard weights
    renormalised, so crops still get a number.
    """

    name = "ms-ssim"

    def compute(self, reference: np.ndarray, distorted: np.ndarray) -> float:
        import torch
        import torch.nn.functional as F

        side = min(reference.shape[:2])
        if side <= 10:
            raise MetricError(f"ms-ssim: image side {side} is too small for an 11x11 window")
        levels = 5
        while levels > 1 and side <= 10 * 2 ** (levels - 1):
            levels -= 1
        weights = torch.tensor(MS_SSIM_WEIGHTS[:levels], dtype=torch.float32)
        weights = weights / weights.sum()

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.array(a, dtype=np.float32)).permute(2, 0, 1)[None]

        x, y = t(reference), t(distorted)
        mcs = []
        with torch.inference_mode():
            for i in range(levels):
                ssim_per_channel, cs = ssim_and_contrast(x, y)
                if i < levels - 1:
                    mcs.append(torch.relu(cs))
                    padding = [s % 2 for s in x.shape[2:]]
                    x = F.avg_pool2d(x, kernel_size=2, padding=padding)
                    y = F.avg_pool2d(y, kernel_size=2, padding=padding)
            stack = torch.stack(mcs + [torch.relu(ssim_per_channel)], dim=0)
            return float(torch.prod(stack ** weights.view(-1, 1, 1), dim=0).mean())


def ssim_and_contrast(x: torch.Tensor, y: torch.Tensor, data_range: float = 255.0, size: int = 11, sigma: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and contrast-structure term per channel of ``(N, C, H, W)`` float images (no padding)."""
    import torch
    import torch.nn.functional as F

    coords = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    win = (g / g.sum()).view(1, 1, 1, size).repeat(x.shape[1], 1, 1, 1)

    def blur(a: torch.Tensor) -> torch.Tensor:  # separable: along H, then along W
        a = F.conv2d(a, win.transpose(2, 3), groups=a.shape[1])
        return F.conv2d(a, win, groups=a.shape[1])

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu1, mu2 = blur(x), blur(y)
    mu1_sq, mu2_sq, mu1_mu2 = mu1.pow(2), mu2.pow(2), mu1 * mu2
    sigma1_sq = blur(x * x) - mu1_sq
    sigma2_sq = blur(y * y) - mu2_sq
    sigma12 = blur(x * y) - mu1_mu2
    cs_map = (2 * sigma12 + c2) / (sigma1_sq + sigma2_sq + c2)
    ssim_map = ((2 * mu1_mu2 + c1) / (mu1_sq + mu2_sq + c1)) * cs_map
    return torch.flatten(ssim_map, 2).mean(-1), torch.flatten(cs_map, 2).mean(-1)


class _ToolMetric(Metric):
    """A metric computed by a command-line tool on two PNG files."""

    tool: ClassVar[str]
    install_hint: ClassVar[str] = "apt-get install libjxl-devtools (Debian/Ubuntu)"

    def unavailable_reason(self) -> str | None:
        if shutil.which(self.tool) is None:
            return f"needs the {self.tool!r} tool on PATH: {self.install_hint}"
        return None

    def run_tool(self, reference: np.ndarray, distorted: np.ndarray) -> str:
        from PIL import Image

        with tempfile.TemporaryDirectory(prefix="lc-metric-") as tmp:
            ref_path, dist_path = Path(tmp) / "ref.png", Path(tmp) / "dist.png"
            Image.fromarray(reference, "RGB").save(ref_path, compress_level=1)
            Image.fromarray(distorted, "RGB").save(dist_path, compress_level=1)
            proc = subprocess.run([self.tool, str(ref_path), str(dist_path)], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise MetricError(f"{self.tool} failed (exit {proc.returncode}): {proc.stderr.strip()[-200:]}")
        return proc.stdout

    @staticmethod
    def first_float(text: str, tool: str) -> float:
        for token in text.split():
            try:
                return float(token)
            except ValueError:
                continue
        raise MetricError(f"{tool} printed no number: {text[:200]!r}")


class Butteraugli(_ToolMetric):
    """Butteraugli (``butteraugli_main``): the maximum distance and the 3-norm; lower is better.

    The tool prints the maximum on its first line and, since libjxl 0.7, ``3-norm: X`` on the
    next; the 3-norm (what JPEG XL papers compare) is None where the tool does not print it.
    """

    name = "butteraugli"
    tool = "butteraugli_main"
    higher_is_better = False
    columns = ("butteraugli", "butteraugli-3norm")

    def compute(self, reference: np.ndarray, distorted: np.ndarray) -> float:
        return self.first_float(self.run_tool(reference, distorted).splitlines()[0], self.tool)

    def compute_columns(self, reference: np.ndarray, distorted: np.ndarray) -> dict[str, float | None]:
        import re

        text = self.run_tool(reference, distorted)
        norm = re.search(r"^3-norm:\s*(\S+)", text, re.MULTILINE)
        return {"butteraugli": self.first_float(text.splitlines()[0], self.tool), "butteraugli-3norm": float(norm.group(1)) if norm else None}


class SSIMULACRA(_ToolMetric):
    """SSIMULACRA (``ssimulacra_main``): 0 is identical, about 0.1 is clearly visible."""

    name = "ssimulacra"
    tool = "ssimulacra_main"
    higher_is_better = False

    def compute(self, reference: np.ndarray, distorted: np.ndarray) -> float:
        return self.first_float(self.run_tool(reference, distorted), self.tool)


def _hub_checkpoint(filename: str) -> Path | None:
    """The path of a torch hub checkpoint if it is already cached (nothing is downloaded)."""
    import torch

    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    return path if path.exists() else None


class LPIPS(Metric):
    """LPIPS with the AlexNet backbone (the ``lpips`` package), only from cached weights."""

    name = "lpips"
    higher_is_better = False
    backbone = "alexnet-owt-7be5be79.pth"
    _net = None

    def unavailable_reason(self) -> str | None:
        import importlib.util

        if importlib.util.find_spec("lpips") is None:
            return "needs the lpips package (pip install lpips) and AlexNet weights"
        if _hub_checkpoint(self.backbone) is None:
            return (
                f"AlexNet weights {self.backbone} are not in the torch hub cache and cannot be "
                "downloaded here; copy them into $TORCH_HOME/hub/checkpoints/"
            )
        return None

    def compute(self, reference: np.ndarray, distorted: np.ndarray) -> float:
        import torch

        if self._net is None:
            import lpips  # type: ignore[import-not-found]

            type(self)._net = lpips.LPIPS(net="alex", verbose=False).eval()

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 127.5 - 1.0

        with torch.inference_mode():
            return float(self._net(t(reference), t(distorted)).item())  # type: ignore[misc]


class DISTS(Metric):
    """DISTS (``piq``), only when its VGG16 and DISTS weights are already cached."""

    name = "dists"
    higher_is_better = False
    files = ("vgg16-397923af.pth", "dists_weights.pt")

    def unavailable_reason(self) -> str | None:
        import importlib.util

        if importlib.util.find_spec("piq") is None:
            return "needs the piq package (pip install piq) and its VGG16/DISTS weights"
        missing = [f for f in self.files if _hub_checkpoint(f) is None]
        if missing:
            return f"weights {', '.join(missing)} are not in the torch hub cache and cannot be downloaded here"
        return None

    def compute(self, reference: np.ndarray, distorted: np.ndarray) -> float:
        import piq  # type: ignore[import-not-found]
        import torch

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255.0

        with torch.inference_mode():
            return float(piq.DISTS(reduction="none")(t(reference), t(distorted)).item())


#: Run when no metrics are named: cheap, in-process, always available.
DEFAULT_METRICS = ("psnr-rgb", "psnr-y", "ms-ssim")
#: ``all`` adds these (external tools, perceptual and learned metrics: seconds per image on a CPU).
EXTRA_METRICS = ("ssimulacra2", "butteraugli", "cvvdp", "ssimulacra", "lpips", "dists")


def available_names() -> list[str]:
    """Every registered metric name (entry points; nothing is imported)."""
    return sorted(_entries())


def load_metrics(names: list[str] | None = None) -> tuple[list[Metric], list[str]]:
    """Instantiate the requested metrics -> (usable, notices).

    ``None``: :data:`DEFAULT_METRICS`; ``["all"]``: every registered metric (built-in
    order first, then plugins).  A metric that is unknown, fails to import or cannot run
    here becomes a notice, as does each registered metric left out by default.
    """
    eps = _entries()
    everything = [n for n in DEFAULT_METRICS + EXTRA_METRICS if n in eps] + sorted(set(eps) - set(DEFAULT_METRICS + EXTRA_METRICS))
    metrics: list[Metric] = []
    notices: list[str] = []
    if not names:
        wanted = [n for n in DEFAULT_METRICS if n in eps]
        left_out = [n for n in everything if n not in wanted]
        if left_out:
            notices.append(f"metrics not in the default set: {', '.join(left_out)} (ask with --metrics all or by name)")
    elif list(names) == ["all"]:
        wanted = everything
    else:
        wanted = list(names)
    for name in wanted:
        ep = eps.get(name)
        if ep is None:
            notices.append(f"metric {name!r} skipped: not registered (known: {', '.join(sorted(eps)) or 'none'})")
            continue
        try:
            cls = registry.import_entry(ep)
            metric = cls() if isinstance(cls, type) and issubclass(cls, Metric) else None
            if metric is None:
                raise PluginLoadError(f"{ep.describe()} is not a latentcodec.eval.metrics.Metric")
        except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, not fatal
            notices.append(f"metric {name!r} skipped: {exc}")
            continue
        reason = metric.unavailable_reason()
        if reason:
            notices.append(f"metric {name!r} skipped: {reason}")
            continue
        metrics.append(metric)
    return metrics, notices
