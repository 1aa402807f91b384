"""ONNX Runtime transforms for latentcodec (a separately installed plugin distribution).

The stages are registered through the ``latentcodec.transforms`` entry point group in
this distribution's ``pyproject.toml``; importing this package registers nothing.
"""

from __future__ import annotations

from .transform import OnnxModelSpec, OnnxTransform
from .vaelight import VAELIGHT, VAElightTransform

__version__ = "0.1.0"

__all__ = ["OnnxModelSpec", "OnnxTransform", "VAELIGHT", "VAElightTransform", "__version__"]
