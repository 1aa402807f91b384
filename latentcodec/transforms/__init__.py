"""Built-in transforms: ``taesd`` (AutoencoderTiny) and ``sd-vae`` (AutoencoderKL)."""

from __future__ import annotations

import json
from pathlib import Path

#: diffusers ``_class_name`` -> our built-in transform for that architecture.
_CLASS_TO_TRANSFORM = {"AutoencoderTiny": "taesd", "AutoencoderKL": "sd-vae"}


def transform_for_model(model: str) -> str | None:
    """The built-in transform that can load local weights ``model``, if it is evident.

    Lets ``--preset buhlmann-2022 --model ../shared/models/taesd`` run on TAESD without
    also naming ``--transform taesd``: an original-layout TAESD directory or file pair,
    or a diffusers directory whose config names its class.  Hub ids give None.
    """
    from .taesd import _original_layout_files

    if "," in model:
        return "taesd"
    path = Path(model).expanduser()
    if not path.is_dir():
        return None
    if _original_layout_files(str(path)) is not None:
        return "taesd"
    for config in (path / "config.json", path / "vae" / "config.json"):
        if config.is_file():
            try:
                return _CLASS_TO_TRANSFORM.get(json.loads(config.read_text()).get("_class_name", ""))
            except (OSError, ValueError):
                return None
    return None
