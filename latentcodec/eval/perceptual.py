"""Perceptual metrics from the optional extra ``latentcodec[metrics]``: SSIMULACRA2 and ColorVideoVDP.

Both are metric plugins like any other (entry points ``ssimulacra2`` and ``cvvdp`` in the
``latentcodec.metrics`` group); where their package is missing, the evaluation skips them
with a notice naming it.  Neither downloads anything: SSIMULACRA2 is closed-form and
ColorVideoVDP ships its calibration data (CSF tables, display models) in its wheel.

* ``ssimulacra2``: the Python port on PyPI (``ssimulacra2``, by Pacidus) of libjxl's
  SSIMULACRA 2: 100 is identical, about 90 visually lossless, 70 high, 50 medium, 30 low
  quality; it can go below 0.  About 1 s per Kodak image on a CPU (numpy and scipy).
* ``cvvdp``: ColorVideoVDP (Mantiuk et al. 2024, PyPI ``cvvdp``) in JOD, just-objectionable
  differences: 10 is identical, one JOD less means 75 % of observers prefer the better of
  the two.  Display model ``standard_4k`` (the package's default: a 30-inch 4K monitor,
  200 cd/m^2, 250 lux office light, seen from 0.75 m: 75 pixels per degree), so Kodak's
  768x512 images are seen small, as on a desktop.  It runs on torch: CUDA when present,
  else the CPU (about 6 s per Kodak image on 2 busy cores).
"""

from __future__ import annotations

import importlib.util
import io
from typing import Any, ClassVar

import numpy as np

from .metrics import Metric

EXTRA_HINT = "pip install 'latentcodec[metrics]'"


def _missing(module: str, package: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return f"needs the {package} package: {EXTRA_HINT} (or pip install {package})"
    return None


def _png(image: np.ndarray) -> io.BytesIO:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image, "RGB").save(buf, format="PNG", compress_level=0)
    buf.seek(0)
    return buf


class SSIMULACRA2(Metric):
    """SSIMULACRA 2 (higher is better, 100 = identical), through the ``ssimulacra2`` package."""

    name = "ssimulacra2"

    def unavailable_reason(self) -> str | None:
        return _missing("ssimulacra2", "ssimulacra2")

    def compute(self, reference: np.ndarray, distorted: np.ndarray) -> float:
        from ssimulacra2 import compute_ssimulacra2

        # Its API opens two image files; lossless in-memory PNGs stand in for them.
        return float(compute_ssimulacra2(_png(reference), _png(distorted)))


class ColorVideoVDP(Metric):
    """ColorVideoVDP in JOD (higher is better, 10 = identical) for :attr:`display` (see the module docstring)."""

    name = "cvvdp"
    unit = "JOD"
    display: ClassVar[str] = "standard_4k"
    _model: Any = None

    def unavailable_reason(self) -> str | None:
        return _missing("pycvvdp", "cvvdp")

    def compute(self, reference: np.ndarray, distorted: np.ndarray) -> float:
        import torch

        if self._model is None:
            import logging

            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # a CUDA_HOME warning on import
            import pycvvdp  # type: ignore[import-not-found]

            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
            self._model = pycvvdp.cvvdp(display_name=self.display, device=device, quiet=True)
        with torch.inference_mode():
            jod, _stats = self._model.predict(np.ascontiguousarray(distorted), np.ascontiguousarray(reference), dim_order="HWC")
        return float(jod)
