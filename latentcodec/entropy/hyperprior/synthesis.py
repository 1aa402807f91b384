"""The hyper-synthesis ``z -> (mu, ls)`` and the table index of every symbol, in integers.

``mu`` and ``ls`` (mean and natural-log scale) are fixed point in ``2**-ACT_BITS`` units;
:func:`indices` turns them into a table id and an integer centre with integer
operations only (see the package docstring for the formulas).
"""

from __future__ import annotations

import numpy as np

from .fixed_point import ACT_BITS, ACT_LIMIT, conv_int

LOG_SCALE_MIN = -589  # round(ln(0.1) * 2**ACT_BITS)
LOG_SCALE_STEP = 32  # 0.125 in natural-log units
NUM_SCALES = 48
LOG_SCALE_MIN_F = LOG_SCALE_MIN / (1 << ACT_BITS)
LOG_SCALE_STEP_F = LOG_SCALE_STEP / (1 << ACT_BITS)
LOG_SCALE_MIN_F, LOG_SCALE_STEP_F = float(LOG_SCALE_MIN_F), float(LOG_SCALE_STEP_F)


def torch_hyper_synthesis(channels: int, n: int, z_channels: int):  # type: ignore[no-untyped-def]
    """The float twin used in training: nearest x2, conv3, ReLU, nearest x2, conv3, ReLU, conv3."""
    import torch.nn as nn

    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(z_channels, n, 3, padding=1), nn.ReLU(),
        nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(n, n, 3, padding=1), nn.ReLU(),
        nn.Conv2d(n, 2 * channels, 3, padding=1),
    )


def export_int_synthesis(h_s) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """Integer weights/biases and per-layer shifts of a trained :func:`torch_hyper_synthesis`."""
    import torch.nn as nn

    from .fixed_point import export_layer

    out: dict[str, np.ndarray] = {}
    for i, conv in enumerate(m for m in h_s if isinstance(m, nn.Conv2d)):
        out[f"hs{i}_w"], out[f"hs{i}_b"], out[f"hs{i}_shift"] = export_layer(conv)
    return out


def export_analysis(h_a) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """Hyper-analysis weights as int16 with a power-of-two exponent (encoder only)."""
    import torch.nn as nn

    out: dict[str, np.ndarray] = {}
    for i, conv in enumerate(m for m in h_a if isinstance(m, nn.Conv2d)):
        for key, t in (("w", conv.weight), ("b", conv.bias)):
            a = t.detach().double().numpy()
            e = 14 - int(np.ceil(np.log2(np.abs(a).max() + 1e-12)))
            out[f"ha{i}_{key}"] = np.rint(a * 2.0**e).astype(np.int16)
            out[f"ha{i}_{key}exp"] = np.array([e], dtype=np.int32)
        out[f"ha{i}_stride"] = np.array([conv.stride[0]], dtype=np.int32)
    return out


class IntHyperSynthesis:
    """``z (Cz, hz, wz)`` int -> ``(mu, ls)`` int64 ``(C, 4hz, 4wz)`` in ``2**-ACT_BITS`` units.

    >>> import numpy as np
    >>> layer = (np.ones((2, 1, 3, 3), np.int64), np.array([0, 256]), 1, False, False)
    >>> mu, ls = IntHyperSynthesis([layer])(np.ones((1, 3, 3), np.int64))
    >>> assert int(mu[0, 1, 1]) == (9 * 256) >> 1 and int(ls[0, 1, 1]) == (9 * 256 + 256) >> 1
    >>> assert int(mu[0, 0, 0]) == (4 * 256) >> 1  # zero padding at the border
    """

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray, int, bool, bool]]) -> None:
        self.layers = layers  # (weight, bias, shift, upsample_before, relu_after)

    def __call__(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = np.asarray(z, dtype=np.int64) << ACT_BITS
        for w, b, shift, up, relu in self.layers:
            if up:
                a = a.repeat(2, axis=1).repeat(2, axis=2)
            a = conv_int(a, w, b) >> shift  # floor division by 2**shift
            if relu:
                a = np.maximum(a, 0)
            a = np.clip(a, -ACT_LIMIT, ACT_LIMIT)
        half = a.shape[0] // 2
        return a[:half], a[half:]


def indices(mu: np.ndarray, ls: np.ndarray, mean_bits: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Integer (table id, integer centre) per symbol from fixed-point mean and log-scale.

    The mean is rounded to ``2**-mean_bits`` symbols; its fraction picks one of
    ``2**mean_bits`` tables per scale.
    """
    scale = np.clip((ls - LOG_SCALE_MIN + LOG_SCALE_STEP // 2) // LOG_SCALE_STEP, 0, NUM_SCALES - 1)
    mq = (mu + (1 << (ACT_BITS - 1 - mean_bits))) >> (ACT_BITS - mean_bits)
    return (scale << mean_bits) + (mq & ((1 << mean_bits) - 1)), mq >> mean_bits
