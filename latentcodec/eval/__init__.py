"""Rate–distortion evaluation: our presets against JPEG, WebP, AVIF and JPEG XL.

Light on import; the pieces live in submodules:

* :mod:`.codecs`  classical codecs and our presets behind one interface,
* :mod:`.metrics` metric plugins (entry-point group ``latentcodec.metrics``),
* :mod:`.bdrate`  Bjøntegaard delta rate with PCHIP interpolation,
* :mod:`.runner`  the sweep, JSON (CompressAI schema), CSV,
* :mod:`.plot`    RD plots, :mod:`.cli` the ``latentcodec eval`` command.
"""

from __future__ import annotations

from .bdrate import BDRateError, bd_metric, bd_rate

__all__ = ["BDRateError", "bd_metric", "bd_rate"]
