"""BD-rate against hand-checked cases and the classic sampled (trapezoid) implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from latentcodec.eval.bdrate import BDRateError, bd_metric, bd_rate

RATES = [0.12, 0.25, 0.5, 0.9, 1.6]
PSNR = [24.1, 27.3, 30.2, 33.0, 36.4]


def test_rates_scaled_by_0_9_give_exactly_minus_10_percent() -> None:
    assert bd_rate(RATES, PSNR, [r * 0.9 for r in RATES], PSNR) == pytest.approx(-10.0, abs=1e-9)
    assert bd_rate(RATES, PSNR, [r * 1.25 for r in RATES], PSNR) == pytest.approx(25.0, abs=1e-9)
    # the reverse comparison is the reciprocal rate ratio: 1/0.9 - 1
    assert bd_rate([r * 0.9 for r in RATES], PSNR, RATES, PSNR) == pytest.approx(100 / 9, abs=1e-9)


def test_partial_overlap_hand_checked() -> None:
    # A: ln(rate) = m / 10 on m in [20, 40]; B: ln(rate) = m / 10 + 0.1 on m in [30, 50].
    # PCHIP reproduces straight lines, the common interval is [30, 40] and the log-rate gap
    # is 0.1 everywhere on it: BD-rate = e^0.1 - 1 = 10.517 %.
    ma, mb = np.arange(20, 41, 5.0), np.arange(30, 51, 5.0)
    ra, rb = np.exp(ma / 10), np.exp(mb / 10 + 0.1)
    assert bd_rate(ra, ma, rb, mb) == pytest.approx((math.e**0.1 - 1) * 100, abs=1e-9)


def test_gap_that_averages_to_zero() -> None:
    # B's log-rate gap grows linearly from -0.2 to +0.2 across the range: mean gap 0.
    m = np.linspace(25, 35, 6)
    la = 0.05 * (m - 25) ** 1.5  # curved, so the interpolation matters
    lb = la + 0.04 * (m - 30)
    assert abs(bd_rate(np.exp(la), m, np.exp(lb), m)) < 1e-9


def test_bd_metric_constant_shift() -> None:
    assert bd_metric(RATES, PSNR, RATES, [p + 0.5 for p in PSNR]) == pytest.approx(0.5, abs=1e-9)


def test_order_and_duplicates_do_not_matter() -> None:
    order = [3, 0, 4, 1, 2]
    shuffled_r, shuffled_p = [RATES[i] for i in order], [PSNR[i] for i in order]
    b_r = [r * 0.8 for r in RATES]
    assert bd_rate(shuffled_r, shuffled_p, b_r, PSNR) == pytest.approx(bd_rate(RATES, PSNR, b_r, PSNR))
    assert bd_rate(RATES + [RATES[2]], PSNR + [PSNR[2]], b_r, PSNR) == pytest.approx(-20.0, abs=1e-9)


def test_lower_is_better_metric() -> None:
    distance = [6.0, 4.5, 3.0, 2.0, 1.2]  # butteraugli-like: falls as the rate grows
    assert bd_rate(RATES, distance, [r * 0.9 for r in RATES], distance) == pytest.approx(-10.0, abs=1e-9)


_trapz = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz


def _sampled_bd_rate(r1, m1, r2, m2) -> float:  # type: ignore[no-untyped-def]
    """The widely used reference implementation (pchip_interpolate, 100 samples, trapz)."""
    from scipy.interpolate import pchip_interpolate

    l1, l2 = np.log(r1), np.log(r2)
    lo, hi = max(min(m1), min(m2)), min(max(m1), max(m2))
    samples, step = np.linspace(lo, hi, num=100, retstep=True)
    o1, o2 = np.argsort(m1), np.argsort(m2)
    v1 = pchip_interpolate(np.asarray(m1)[o1], l1[o1], samples)
    v2 = pchip_interpolate(np.asarray(m2)[o2], l2[o2], samples)
    diff = (_trapz(v2, dx=step) - _trapz(v1, dx=step)) / (hi - lo)
    return (math.exp(diff) - 1) * 100


def test_agrees_with_sampled_reference_on_real_looking_curves() -> None:
    jpeg = ([0.21, 0.35, 0.52, 0.81, 1.32], [24.6, 27.4, 29.5, 31.9, 34.8])
    webp = ([0.17, 0.28, 0.44, 0.70, 1.20], [25.3, 27.9, 30.1, 32.4, 35.6])
    ours = bd_rate(*jpeg, *webp)
    assert ours < -5
    assert ours == pytest.approx(_sampled_bd_rate(*jpeg, *webp), abs=0.05)


@pytest.mark.parametrize(
    "args, match",
    [
        (([0.1, 0.2], [20, 22], [0.1, 0.2], [30, 32]), "do not overlap"),
        (([0.1], [20], [0.1, 0.2], [20, 22]), "at least 2"),
        (([0.0, 0.2], [20, 22], [0.1, 0.2], [20, 22]), "positive"),
        (([0.1, 0.2], [20, 20], [0.1, 0.2], [20, 22]), "distinct"),
        (([0.1, 0.2, 0.3], [20, 22], [0.1, 0.2], [20, 22]), "equal length"),
    ],
)
def test_bad_curves_raise(args, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BDRateError, match=match):
        bd_rate(*args)
