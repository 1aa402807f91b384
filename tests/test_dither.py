"""Dithering: exact Floyd–Steinberg semantics, determinism, speed, the ordered variant."""

from __future__ import annotations

import time

import numpy as np
import pytest

from latentcodec.errors import StageConfigError, StageInputError
from latentcodec.quantizers.dither import bayer_matrix, dither, floyd_steinberg, nearest, no_dither, ordered


def reference_fs(image: np.ndarray, palette: np.ndarray, level: float = 1.0) -> np.ndarray:
    """Textbook raster-order Floyd–Steinberg, one pixel at a time."""
    c, h, w = image.shape
    px = np.moveaxis(image, 0, -1).astype(np.float32).copy()
    out = np.zeros((h, w), dtype=np.int32)
    for i in range(h):
        for j in range(w):
            v = px[i, j]
            k = int(np.argmin(((palette - v) ** 2).sum(1)))
            out[i, j] = k
            e = (v - palette[k]) * np.float32(level)
            if j + 1 < w:
                px[i, j + 1] += np.float32(7 / 16) * e
            if i + 1 < h:
                if j > 0:
                    px[i + 1, j - 1] += np.float32(3 / 16) * e
                px[i + 1, j] += np.float32(5 / 16) * e
                if j + 1 < w:
                    px[i + 1, j + 1] += np.float32(1 / 16) * e
    return out


@pytest.fixture()
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    image = (rng.normal(size=(4, 12, 17)) * 30 + 128).astype(np.float32)
    palette = rng.uniform(40, 220, size=(24, 4)).astype(np.float32)
    return image, palette


@pytest.mark.parametrize("level", [1.0, 0.5])
def test_wavefront_fs_equals_raster_fs(data, level) -> None:  # type: ignore[no-untyped-def]
    image, palette = data
    assert np.array_equal(floyd_steinberg(image, palette, level), reference_fs(image, palette, level))


def test_fs_level_zero_is_nearest(data) -> None:  # type: ignore[no-untyped-def]
    image, palette = data
    assert np.array_equal(floyd_steinberg(image, palette, 0.0), no_dither(image, palette))


def test_fs_keeps_local_mean() -> None:
    flat = np.full((1, 32, 32), 0.3, dtype=np.float32)
    idx = floyd_steinberg(flat, np.array([[0.0], [1.0]], dtype=np.float32))
    assert abs(idx.mean() - 0.3) < 0.02
    assert np.array_equal(no_dither(flat, np.array([[0.0], [1.0]], dtype=np.float32)), np.zeros((32, 32)))


@pytest.mark.parametrize("mode", ["fs", "ordered", "none"])
def test_deterministic(data, mode) -> None:  # type: ignore[no-untyped-def]
    image, palette = data
    a = dither(image, palette, mode)
    b = dither(image.copy(), palette.copy(), mode)
    assert np.array_equal(a, b) and a.dtype == np.int32 and a.shape == image.shape[1:]
    assert 0 <= a.min() and a.max() < len(palette)


def test_ordered_dithers_between_entries() -> None:
    flat = np.full((2, 16, 16), 0.5, dtype=np.float32)
    palette = np.array([[0.0, 0.0], [1.0, 1.0]], dtype=np.float32)
    idx = ordered(flat, palette)
    assert 0.25 < idx.mean() < 0.75
    m = bayer_matrix(3)
    assert m.shape == (8, 8) and len(np.unique(m)) == 64 and abs(m.mean() - 0.5) < 1e-6


def test_fs_fast_on_a_4x64x64_latent() -> None:
    rng = np.random.default_rng(0)
    image = (rng.normal(size=(4, 64, 64)) * 30 + 128).astype(np.float32)
    palette = rng.uniform(0, 255, size=(256, 4)).astype(np.float32)
    best = min(_timed(lambda: floyd_steinberg(image, palette)) for _ in range(3))
    assert best < 1.0, f"Floyd–Steinberg took {best:.2f} s"


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def test_errors(data) -> None:  # type: ignore[no-untyped-def]
    image, palette = data
    with pytest.raises(StageInputError):
        floyd_steinberg(image[0], palette)
    with pytest.raises(StageInputError):
        ordered(image, palette[:, :3])
    with pytest.raises(StageConfigError):
        dither(image, palette, "atkinson")
    assert nearest(np.zeros((1, 4), np.float32), np.zeros((2, 4), np.float32)).tolist() == [0]  # ties: lower index
