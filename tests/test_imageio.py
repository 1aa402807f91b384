"""Image input: every Pillow mode, 16-bit files, ICC profiles, EXIF orientation, arrays and
tensors either convert to the right float values or are refused with a clear message.

The images are made here with Pillow (and, for what Pillow cannot write, a tiny PNG writer
and ICC profile builder below), so the expected values are known exactly.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, ImageOps

from latentcodec.errors import ImageReadError, ImageTooLargeError, StageConfigError
from latentcodec.imageio import (
    IMAGE_SUFFIXES,
    ImageWarning,
    list_images,
    open_image,
    save_image,
    to_tensor,
)

RNG = np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _same_random_images_in_every_run():  # type: ignore[no-untyped-def]
    global RNG
    RNG = np.random.default_rng(1234)
    yield


def hwc(image, max_pixels: int = 10**8) -> np.ndarray:  # type: ignore[no-untyped-def]
    """``to_tensor`` as a float64 (H, W, 3) array, checking the tensor contract on the way."""
    t = to_tensor(image, max_pixels)
    assert t.dtype == torch.float32 and t.dim() == 4 and t.shape[:2] == (1, 3)
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
    return t[0].permute(1, 2, 0).double().numpy()


def gray3(values: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(values, dtype=np.float64)[..., None], 3, axis=2)


def rgb8(h: int = 5, w: int = 7) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3)).astype(np.uint8)


def srgb_oetf(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def assert_same_treatment(path: Path, array=None) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The file, the PIL image (unloaded and loaded) and, when given, the numpy array of
    the same pixels all give the same tensor."""
    from_file = hwc(path)
    np.testing.assert_array_equal(hwc(Image.open(path)), from_file)
    if array is not None:
        np.testing.assert_array_equal(hwc(array), from_file)
    return from_file


# --- a PNG writer for what Pillow cannot write (16-bit colour, chosen filters, chunks) ------
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _filter_rows(rows: list[bytes], bpp: int) -> bytes:
    """Filter each row with the next of the five PNG filters in turn."""
    out, prev = b"", bytes(len(rows[0]))
    for i, row in enumerate(rows):
        kind, filtered = i % 5, bytearray()
        for x, value in enumerate(row):
            a = row[x - bpp] if x >= bpp else 0
            b, c = prev[x], (prev[x - bpp] if x >= bpp else 0)
            filtered.append((value - (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]) & 255)
        out += bytes([kind]) + bytes(filtered)
        prev = row
    return out


def png16(samples: np.ndarray, *, interlace: bool = False, chunks: bytes = b"") -> bytes:
    """A 16-bit PNG: (H, W, 3) RGB, (H, W, 4) RGBA or (H, W, 2) grey + alpha."""
    h, w, c = samples.shape
    ctype = {2: 4, 3: 2, 4: 6}[c]
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
    raw = b""
    for x0, y0, dx, dy in passes if interlace else ((0, 0, 1, 1),):
        sub = samples[y0::dy, x0::dx]
        if sub.size:
            raw += _filter_rows([sub[y].astype(">u2").tobytes() for y in range(sub.shape[0])], 2 * c)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, int(interlace))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + chunks + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def raw_tiff(samples: np.ndarray, *, photometric: int, extra_samples: int | None = None) -> bytes:
    """An uncompressed little-endian TIFF of (H, W, C) uint8 or uint16 samples, one strip."""
    h, w, c = samples.shape
    bits = samples.dtype.itemsize * 8
    data = samples.astype(f"<u{samples.dtype.itemsize}").tobytes()
    entries = [(256, 3, [w]), (257, 3, [h]), (258, 3, [bits] * c), (259, 3, [1]), (262, 3, [photometric]), (273, 4, [0]),
               (277, 3, [c]), (278, 3, [h]), (279, 4, [len(data)]), (284, 3, [1])]  # fmt: skip
    if extra_samples is not None:
        entries.append((338, 3, [extra_samples]))
    ifd_size = 2 + 12 * len(entries) + 4
    extra_at = 8 + ifd_size
    bps = struct.pack(f"<{c}H", *([bits] * c))
    data_at = extra_at + len(bps)
    ifd = struct.pack("<H", len(entries))
    for tag, kind, values in entries:
        if tag == 258 and c > 2:
            ifd += struct.pack("<HHII", tag, kind, c, extra_at)
        elif tag == 273:
            ifd += struct.pack("<HHII", tag, kind, 1, data_at)
        elif kind == 4:
            ifd += struct.pack("<HHII", tag, kind, 1, values[0])
        else:
            ifd += struct.pack("<HHI", tag, kind, len(values)) + struct.pack(f"<{len(values)}H", *values).ljust(4, b"\0")
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\0" * 4 + bps + data


def exif_bytes(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


# --- ICC profiles built by hand (v2 matrix/TRC, and a CMYK lut8) ------------------------------
def _s15(x: float) -> bytes:
    return struct.pack(">i", round(x * 65536))


def _xyz(*v: float) -> bytes:
    return b"XYZ " + b"\0" * 4 + b"".join(_s15(x) for x in v)


def _desc(text: str) -> bytes:
    t = text.encode() + b"\0"
    return b"desc" + b"\0" * 4 + struct.pack(">I", len(t)) + t + b"\0" * 8 + b"\0" * 3 + b"\0" * 67


def _curv_linear() -> bytes:
    return b"curv" + b"\0" * 4 + struct.pack(">I", 0)  # no entries: the identity curve


def _para_srgb() -> bytes:
    params = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
    return b"para" + b"\0" * 4 + struct.pack(">HH", 3, 0) + b"".join(_s15(x) for x in params)


D50 = (0.9642, 1.0, 0.8249)
SRGB_COLORANTS_D50 = ((0.4360747, 0.2225045, 0.0139322), (0.3850649, 0.7168786, 0.0971045), (0.1430804, 0.0606169, 0.7141733))
CPRT = (b"cprt", b"text" + b"\0" * 4 + b"none\0")


def _profile(space: bytes, tags: list[tuple[bytes, bytes]], cls: bytes = b"mntr", pcs: bytes = b"XYZ ") -> bytes:
    offset = 128 + 4 + 12 * len(tags)
    table = data = b""
    for sig, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = (
        struct.pack(">I", offset + len(data)) + b"lcms" + struct.pack(">I", 0x02100000) + cls + space + pcs
        + b"\0" * 12 + b"acsp" + b"\0" * 28 + b"".join(_s15(x) for x in D50) + b"\0" * 48
    )  # fmt: skip
    return header + struct.pack(">I", len(tags)) + table + data


def rgb_profile(name: str, trc: bytes) -> bytes:
    """sRGB primaries with the given tone curve."""
    r, g, b = SRGB_COLORANTS_D50
    curves = [(b"rTRC", trc), (b"gTRC", trc), (b"bTRC", trc)]
    return _profile(b"RGB ", [(b"desc", _desc(name)), (b"wtpt", _xyz(*D50)), (b"rXYZ", _xyz(*r)), (b"gXYZ", _xyz(*g)), (b"bXYZ", _xyz(*b)), *curves, CPRT])


def gray_profile(name: str, trc: bytes) -> bytes:
    return _profile(b"GRAY", [(b"desc", _desc(name)), (b"wtpt", _xyz(*D50)), (b"kTRC", trc), CPRT])


def cmyk_profile() -> bytes:
    """A CMYK printer profile: a 2-point lut8 from CMYK to L*a*b*."""
    clut = b""
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    lab = (100 * (1 - k) * (1 - 0.4 * c) * (1 - 0.3 * m), -40 * c + 60 * m, -30 * c + 70 * y)
                    clut += bytes([round(lab[0] * 255 / 100), round(lab[1] + 128), round(lab[2] + 128)])
    identity = bytes(range(256))
    matrix = b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    a2b0 = b"mft1" + b"\0" * 4 + bytes([4, 3, 2, 0]) + matrix + identity * 4 + clut + identity * 3
    return _profile(b"CMYK", [(b"desc", _desc("test CMYK")), (b"wtpt", _xyz(*D50)), (b"A2B0", a2b0), CPRT], cls=b"prtr", pcs=b"Lab ")


LINEAR_RGB = rgb_profile("linear-light test RGB", _curv_linear())
SRGB_BUILTIN = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# ==== the reported bug ==================================================================
def test_16bit_grayscale_png_ramp_keeps_its_grey_levels(tmp_path: Path) -> None:
    ramp = (np.arange(64).reshape(4, 16) * 1040).astype(np.uint16)  # 0 .. 65520
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode == "I;16"
    out = assert_same_treatment(path, ramp)
    np.testing.assert_allclose(out, gray3(ramp / 65535.0), atol=1e-6)
    assert out.mean() < 0.6  # not white
    np.testing.assert_array_equal(np.asarray(open_image(path))[..., 0], np.rint(ramp / 257.0).astype(np.uint8))


# ==== one test per Pillow mode ==========================================================
def test_mode_1(tmp_path: Path) -> None:
    bits = np.indices((6, 8)).sum(axis=0) % 2 == 1
    im = Image.fromarray(bits)
    assert im.mode == "1"
    im.save(tmp_path / "one.png")
    np.testing.assert_array_equal(assert_same_treatment(tmp_path / "one.png"), gray3(bits.astype(float)))


def test_mode_L(tmp_path: Path) -> None:
    gray = RNG.integers(0, 256, (5, 7)).astype(np.uint8)
    Image.fromarray(gray).save(tmp_path / "l.png")
    out = assert_same_treatment(tmp_path / "l.png", gray)
    np.testing.assert_allclose(out, gray3(gray / 255.0), atol=1e-7)
    np.testing.assert_array_equal(hwc(gray[..., None]), out)  # (H, W, 1)


def test_mode_LA_over_white(tmp_path: Path) -> None:
    la = RNG.integers(0, 256, (5, 7, 2)).astype(np.uint8)
    Image.fromarray(la).save(tmp_path / "la.png")
    assert Image.open(tmp_path / "la.png").mode == "LA"
    out = assert_same_treatment(tmp_path / "la.png", la)
    c, a = la[..., 0] / 255.0, la[..., 1] / 255.0
    np.testing.assert_allclose(out, gray3(c * a + 1 - a), atol=1e-6)


def test_mode_La_premultiplied() -> None:
    la = RNG.integers(0, 256, (5, 7, 2)).astype(np.uint8)
    im = Image.fromarray(la).convert("La")
    premultiplied = np.asarray(im)
    c, a = premultiplied[..., 0] / 255.0, premultiplied[..., 1] / 255.0
    np.testing.assert_allclose(hwc(im), gray3(c + 1 - a), atol=1e-6)
    # and it is (up to Pillow's 8-bit premultiplication) the straight-alpha image
    np.testing.assert_allclose(hwc(im), hwc(Image.fromarray(la)), atol=1.5 / 255)


def test_mode_P_without_transparency(tmp_path: Path) -> None:
    im = Image.fromarray(rgb8()).quantize(16)
    assert im.mode == "P" and "transparency" not in im.info
    im.save(tmp_path / "p.png")
    expected = np.asarray(im.convert("RGB")) / 255.0
    np.testing.assert_allclose(assert_same_treatment(tmp_path / "p.png"), expected, atol=1e-7)


@pytest.mark.parametrize("fmt", ["png", "gif"])
def test_mode_P_with_transparency(tmp_path: Path, fmt: str) -> None:
    im = Image.new("P", (4, 2))
    im.putpalette([255, 0, 0, 0, 0, 255])
    im.putpixel((1, 0), 1)
    path = tmp_path / f"p.{fmt}"
    im.save(path, transparency=1)
    assert Image.open(path).mode == "P"
    out = assert_same_treatment(path)
    np.testing.assert_array_equal(out[0, 0], [1, 0, 0])  # opaque red
    np.testing.assert_array_equal(out[0, 1], [1, 1, 1])  # transparent blue -> white


def test_mode_PA(tmp_path: Path) -> None:
    rgba = np.concatenate([rgb8(), RNG.integers(0, 256, (5, 7, 1)).astype(np.uint8)], axis=2)
    im = Image.fromarray(rgba).convert("PA")
    assert im.mode == "PA"
    im.save(tmp_path / "pa.tif")
    assert Image.open(tmp_path / "pa.tif").mode == "PA"
    straight = np.asarray(im.convert("RGBA")) / 255.0
    expected = straight[..., :3] * straight[..., 3:] + 1 - straight[..., 3:]
    np.testing.assert_allclose(assert_same_treatment(tmp_path / "pa.tif"), expected, atol=1e-6)


@pytest.mark.parametrize("mode", ["I;16", "I;16L", "I;16B", "I;16N"])
def test_16bit_grey_modes(tmp_path: Path, mode: str) -> None:
    values = RNG.integers(0, 65536, (5, 7)).astype(np.uint16)
    order = {"I;16": "<u2", "I;16L": "<u2", "I;16B": ">u2", "I;16N": "=u2"}[mode]
    im = Image.frombytes(mode, (7, 5), values.astype(order).tobytes())  # convert() to them clips at 255
    assert im.mode == mode and im.getpixel((3, 2)) == values[2, 3]
    expected = gray3(values / 65535.0)
    np.testing.assert_allclose(hwc(im), expected, atol=1e-6)
    np.testing.assert_array_equal(hwc(im), hwc(values))
    if mode in ("I;16", "I;16B"):  # the modes a file can hold
        path = tmp_path / f"{mode.replace(';', '')}.tif"
        im.save(path)
        assert Image.open(path).mode == mode
        np.testing.assert_array_equal(assert_same_treatment(path, values), hwc(values))


def test_mode_I_is_read_as_16_bit(tmp_path: Path) -> None:
    values = RNG.integers(0, 65536, (5, 7)).astype(np.int32)
    im = Image.fromarray(values)
    assert im.mode == "I"
    im.save(tmp_path / "i.tif")
    out = assert_same_treatment(tmp_path / "i.tif", values)  # an int32 array follows the same rule
    np.testing.assert_allclose(out, gray3(values / 65535.0), atol=1e-6)
    np.testing.assert_array_equal(out, hwc(values.astype(np.uint16)))


def test_16bit_pgm_opens_as_mode_I_on_the_16_bit_scale(tmp_path: Path) -> None:
    values = np.array([[0, 100, 200], [255, 700, 1023]], dtype=np.uint16)  # a dark 10-bit PGM
    (tmp_path / "ten.pgm").write_bytes(b"P5\n3 2\n1023\n" + values.astype(">u2").tobytes())
    assert Image.open(tmp_path / "ten.pgm").mode == "I"
    np.testing.assert_allclose(assert_same_treatment(tmp_path / "ten.pgm"), gray3(values / 1023.0), atol=1e-4)


@pytest.mark.parametrize(
    "values, message",
    [
        (np.array([[-5, 100], [300, 70000]]), r"values -5\.\.70000.*16-bit levels 0\.\.65535"),
        (np.array([[0, 100], [200, 255]]), r"values 0\.\.255.*looks like 8-bit data"),
    ],
)
def test_mode_I_out_of_range_is_refused(tmp_path: Path, values: np.ndarray, message: str) -> None:
    im = Image.fromarray(values.astype(np.int32))
    with pytest.raises(ImageReadError, match=r"mode I .*" + message):
        to_tensor(im)
    im.save(tmp_path / "i.tif")
    with pytest.raises(ImageReadError, match=message):
        to_tensor(tmp_path / "i.tif")
    with pytest.raises(ImageReadError, match=r"int64 .*" + message):
        to_tensor(values.astype(np.int64))


def test_mode_F_within_0_1(tmp_path: Path) -> None:
    values = RNG.random((5, 7)).astype(np.float32)
    values[0, 0], values[0, 1] = 0.0, 1.0
    Image.fromarray(values).save(tmp_path / "f.tif")
    assert Image.open(tmp_path / "f.tif").mode == "F"
    out = assert_same_treatment(tmp_path / "f.tif", values)
    np.testing.assert_array_equal(out, gray3(values))


def test_mode_F_outside_0_1_is_refused(tmp_path: Path) -> None:
    values = (RNG.random((5, 7)) * 255).astype(np.float32)
    Image.fromarray(values).save(tmp_path / "f.tif")
    with pytest.raises(ImageReadError, match=r"mode F .*values in \[.*\]; float images must lie in \[0, 1\].*divide by 255"):
        to_tensor(tmp_path / "f.tif")
    nan = np.full((2, 2), np.nan, dtype=np.float32)
    with pytest.raises(ImageReadError, match="mode F .*NaN"):
        to_tensor(Image.fromarray(nan))


def test_mode_RGB(tmp_path: Path) -> None:
    rgb = rgb8()
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    out = assert_same_treatment(tmp_path / "rgb.png", rgb)
    np.testing.assert_allclose(out, rgb / 255.0, atol=1e-7)
    # the old exact path: uint8 / 255 in float32
    exact = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float().div_(255.0)
    assert torch.equal(to_tensor(tmp_path / "rgb.png"), exact)
    assert torch.equal(to_tensor(torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255), exact)


def test_mode_RGB_with_a_colour_key(tmp_path: Path) -> None:
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    rgb[0, 1] = (7, 8, 9)
    Image.fromarray(rgb).save(tmp_path / "key.png", transparency=(7, 8, 9))
    out = assert_same_treatment(tmp_path / "key.png")
    np.testing.assert_array_equal(out[0, 1], [1, 1, 1])
    np.testing.assert_allclose(out[1, 1], [200 / 255, 0, 0], atol=1e-7)


def test_mode_RGBA_over_white(tmp_path: Path) -> None:
    rgba = RNG.integers(0, 256, (5, 7, 4)).astype(np.uint8)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    out = assert_same_treatment(tmp_path / "rgba.png", rgba)
    c, a = rgba[..., :3] / 255.0, rgba[..., 3:] / 255.0
    np.testing.assert_allclose(out, c * a + 1 - a, atol=1e-6)
    opaque = rgba.copy()
    opaque[..., 3] = 255
    np.testing.assert_array_equal(hwc(opaque), hwc(opaque[..., :3]))


def test_mode_RGBa_premultiplied(tmp_path: Path) -> None:
    rgba = RNG.integers(0, 256, (5, 7, 4)).astype(np.uint8)
    im = Image.fromarray(rgba).convert("RGBa")
    p = np.asarray(im) / 255.0
    np.testing.assert_allclose(hwc(im), p[..., :3] + 1 - p[..., 3:], atol=1e-6)
    np.testing.assert_allclose(hwc(im), hwc(rgba), atol=1.5 / 255)
    # a TIFF with associated alpha (ExtraSamples = 1): Pillow 13 un-premultiplies it to RGBA
    (tmp_path / "rgba-premultiplied.tif").write_bytes(raw_tiff(np.asarray(im), photometric=2, extra_samples=1))
    assert Image.open(tmp_path / "rgba-premultiplied.tif").mode == "RGBA"
    np.testing.assert_allclose(assert_same_treatment(tmp_path / "rgba-premultiplied.tif"), hwc(im), atol=1.5 / 255)


def test_mode_RGBa_that_is_not_premultiplied_is_refused() -> None:
    bad = np.array([[[200, 10, 10, 50]]], dtype=np.uint8)
    with pytest.raises(ImageReadError, match="colour values above their alpha"):
        to_tensor(Image.frombytes("RGBa", (1, 1), bad.tobytes()))


def test_mode_RGBX() -> None:
    rgb = rgb8()
    im = Image.fromarray(rgb).convert("RGBX")
    assert im.mode == "RGBX"
    np.testing.assert_array_equal(hwc(im), rgb / np.float32(255.0))


def test_mode_CMYK_without_a_profile(tmp_path: Path) -> None:
    cmyk = np.array([[[0, 0, 0, 0], [255, 0, 0, 0], [128, 64, 0, 128], [0, 0, 0, 255]]], dtype=np.uint8)
    im = Image.frombytes("CMYK", (4, 1), cmyk.tobytes())
    im.save(tmp_path / "cmyk.tif")
    expected = (255 - cmyk[..., :3].astype(float)) * (255 - cmyk[..., 3:].astype(float)) / 255 / 255  # Pillow's rule
    out = assert_same_treatment(tmp_path / "cmyk.tif")
    np.testing.assert_allclose(out, expected, atol=1 / 255)
    im.save(tmp_path / "cmyk.jpg", quality=100)  # Adobe CMYK JPEG
    np.testing.assert_allclose(hwc(tmp_path / "cmyk.jpg"), expected, atol=6 / 255)


def test_mode_CMYK_with_a_profile_goes_through_littlecms(tmp_path: Path) -> None:
    profile = cmyk_profile()
    cmyk = np.array([[[0, 0, 0, 0], [255, 0, 0, 0], [128, 128, 0, 0], [0, 90, 200, 30]]], dtype=np.uint8)
    im = Image.frombytes("CMYK", (4, 1), cmyk.tobytes())
    im.save(tmp_path / "cmyk-icc.tif", icc_profile=profile)
    transform = ImageCms.buildTransform(ImageCms.ImageCmsProfile(io.BytesIO(profile)), ImageCms.createProfile("sRGB"), "CMYK", "RGB", 0)
    expected = np.asarray(ImageCms.applyTransform(im, transform)) / 255.0
    out = assert_same_treatment(tmp_path / "cmyk-icc.tif")
    np.testing.assert_allclose(out, expected, atol=1e-7)
    np.testing.assert_array_equal(out[0, 0], [1, 1, 1])  # paper white
    assert np.abs(out - np.asarray(im.convert("RGB")) / 255.0).max() > 0.1  # not the profile-free rule


def test_mode_YCbCr(tmp_path: Path) -> None:
    rgb = rgb8()
    im = Image.fromarray(rgb).convert("YCbCr")
    im.save(tmp_path / "ycc.tif")
    assert Image.open(tmp_path / "ycc.tif").mode == "YCbCr"
    out = assert_same_treatment(tmp_path / "ycc.tif")
    np.testing.assert_array_equal(out, np.asarray(Image.open(tmp_path / "ycc.tif").convert("RGB")) / np.float32(255.0))
    np.testing.assert_array_equal(hwc(im), np.asarray(im.convert("RGB")) / np.float32(255.0))
    np.testing.assert_allclose(hwc(im), rgb / 255.0, atol=3.5 / 255)  # JFIF BT.601 round trip
    np.testing.assert_allclose(out, rgb / 255.0, atol=6.5 / 255)  # plus the TIFF's chroma subsampling


def test_mode_LAB(tmp_path: Path) -> None:
    # neutral greys: L* -> Y -> sRGB; then a saturated red
    levels = np.array([0, 64, 128, 192, 255], dtype=np.uint8)
    lab = np.zeros((1, 6, 3), dtype=np.uint8)
    lab[0, :5, 0] = levels
    lab[0, 5] = (136, 80, 67)  # L* 53.3, a* 80, b* 67: sRGB red
    im = Image.frombytes("LAB", (6, 1), lab.tobytes())
    im.save(tmp_path / "lab.tif")
    assert Image.open(tmp_path / "lab.tif").mode == "LAB"
    out = assert_same_treatment(tmp_path / "lab.tif")
    lstar = levels.astype(np.float64) * 100 / 255.0
    y = np.where(lstar > 8, ((lstar + 16) / 116) ** 3, lstar / 903.3)
    np.testing.assert_allclose(out[0, :5], np.repeat(srgb_oetf(y)[:, None], 3, axis=1), atol=3 / 255)
    np.testing.assert_allclose(out[0, 5], [1, 0, 0], atol=0.1)


def test_mode_HSV() -> None:
    rgb = rgb8()
    im = Image.fromarray(rgb).convert("HSV")
    np.testing.assert_array_equal(hwc(im), np.asarray(im.convert("RGB")) / np.float32(255.0))
    np.testing.assert_allclose(hwc(im), rgb / 255.0, atol=4.5 / 255)  # 8-bit HSV round trip


# ==== 16-bit colour files ==============================================================
@pytest.mark.parametrize("channels", [2, 3, 4])
@pytest.mark.parametrize("interlace", [False, True])
def test_16bit_colour_png_keeps_16_bits(tmp_path: Path, channels: int, interlace: bool) -> None:
    samples = RNG.integers(0, 65536, (11, 13, channels)).astype(np.uint16)
    path = tmp_path / "deep.png"
    path.write_bytes(png16(samples, interlace=interlace))
    assert Image.open(path).mode in ("RGB", "RGBA")  # Pillow alone would give 8 bits
    out = assert_same_treatment(path, samples)
    s = samples / 65535.0
    if channels == 3:
        expected = s
    else:
        color, a = (gray3(s[..., 0]), s[..., 1:2]) if channels == 2 else (s[..., :3], s[..., 3:])
        expected = color * a + 1 - a
    np.testing.assert_allclose(out, expected, atol=1e-6)
    loaded = Image.open(path)
    loaded.load()  # a loaded PIL image holds only the 8 bits Pillow kept
    assert np.abs(hwc(loaded) - out).max() <= (1 if channels == 3 else 2.5) / 255


def test_16bit_png_colour_key(tmp_path: Path) -> None:
    samples = np.array([[[100, 200, 300], [1000, 2000, 3000]]], dtype=np.uint16)
    path = tmp_path / "key16.png"
    path.write_bytes(png16(samples, chunks=_chunk(b"tRNS", struct.pack(">HHH", 100, 200, 300))))
    out = hwc(path)
    np.testing.assert_array_equal(out[0, 0], [1, 1, 1])
    np.testing.assert_allclose(out[0, 1], samples[0, 1] / 65535.0, atol=1e-7)


def test_16bit_ppm_is_read_in_full(tmp_path: Path) -> None:
    samples = RNG.integers(0, 1001, (3, 4, 3)).astype(np.uint16)
    path = tmp_path / "deep.ppm"
    path.write_bytes(b"P6\n# a comment\n4 3\n1000\n" + samples.astype(">u2").tobytes())
    np.testing.assert_allclose(assert_same_treatment(path), samples / 1000.0, atol=1e-6)


def test_16bit_rgb_tiff_is_reduced_to_8_bits_with_a_warning(tmp_path: Path) -> None:
    samples = RNG.integers(0, 65536, (2, 3, 3)).astype(np.uint16)
    (tmp_path / "deep.tif").write_bytes(raw_tiff(samples, photometric=2))
    with pytest.warns(ImageWarning, match="16-bit colour image as 8 bits"):
        out = hwc(tmp_path / "deep.tif")
    np.testing.assert_allclose(out, (samples >> 8) / 255.0, atol=1e-7)


# ==== ICC profiles =====================================================================
def test_srgb_tagged_images_are_not_altered(tmp_path: Path) -> None:
    rgb = rgb8(6, 6)
    Image.fromarray(rgb).save(tmp_path / "plain.png")
    Image.fromarray(rgb).save(tmp_path / "srgb.png", icc_profile=SRGB_BUILTIN)
    unnamed = rgb_profile("Some display", _para_srgb())  # sRGB in all but name
    Image.fromarray(rgb).save(tmp_path / "unnamed.png", icc_profile=unnamed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("srgb.png", "unnamed.png"):
            with Image.open(tmp_path / name) as im:
                assert im.info.get("icc_profile")
            np.testing.assert_array_equal(hwc(tmp_path / name), hwc(tmp_path / "plain.png"))


@pytest.mark.parametrize("fmt", ["png", "jpg", "tif"])
def test_non_srgb_profile_is_converted(tmp_path: Path, fmt: str) -> None:
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[:8] = (30, 128, 200)
    rgb[8:] = (255, 64, 10)
    path = tmp_path / f"linear.{fmt}"
    Image.fromarray(rgb).save(path, icc_profile=LINEAR_RGB, **({"quality": 100, "subsampling": 0} if fmt == "jpg" else {}))
    assert Image.open(path).info.get("icc_profile") == LINEAR_RGB
    expected = srgb_oetf(rgb / 255.0)  # linear light encoded as sRGB
    out = assert_same_treatment(path)
    np.testing.assert_allclose(out[[2, 13], 5], expected[[2, 13], 5], atol=(4 if fmt == "jpg" else 1.5) / 255)
    np.testing.assert_array_equal(np.asarray(open_image(path)), np.rint(out * 255).astype(np.uint8))


def test_profile_with_rgba(tmp_path: Path) -> None:
    rgba = np.array([[[128, 128, 128, 255], [128, 128, 128, 0], [64, 0, 255, 128]]], dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "rgba.png", icc_profile=LINEAR_RGB)
    out = hwc(tmp_path / "rgba.png")
    np.testing.assert_allclose(out[0, 0], srgb_oetf(np.full(3, 128 / 255)), atol=1.5 / 255)
    np.testing.assert_array_equal(out[0, 1], [1, 1, 1])
    c, a = srgb_oetf(np.array([64, 0, 255]) / 255), 128 / 255
    np.testing.assert_allclose(out[0, 2], c * a + 1 - a, atol=1.5 / 255)


def test_grey_profile_on_a_grey_image(tmp_path: Path) -> None:
    gray = np.array([[0, 32, 64, 128, 200, 255]], dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.png", icc_profile=gray_profile("linear grey", _curv_linear()))
    np.testing.assert_allclose(hwc(tmp_path / "g.png"), gray3(srgb_oetf(gray / 255.0)), atol=1.5 / 255)
    # an sRGB (RGB) profile on a grey JPEG is common and harmless: no warning, no change
    Image.fromarray(gray).save(tmp_path / "g-srgb.jpg", icc_profile=SRGB_BUILTIN, quality=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = hwc(tmp_path / "g-srgb.jpg")
    with Image.open(tmp_path / "g-srgb.jpg") as im:
        np.testing.assert_array_equal(out, gray3(np.asarray(im) / np.float32(255.0)))


def test_profile_on_a_16bit_png_converts_at_8_bits(tmp_path: Path) -> None:
    samples = RNG.integers(8000, 65536, (4, 5, 3)).astype(np.uint16)  # 8-bit steps are coarse in the dark
    iccp = _chunk(b"iCCP", b"linear\0\0" + zlib.compress(LINEAR_RGB))
    (tmp_path / "deep-icc.png").write_bytes(png16(samples, chunks=iccp))
    np.testing.assert_allclose(hwc(tmp_path / "deep-icc.png"), srgb_oetf(samples / 65535.0), atol=2.5 / 255)


@pytest.mark.parametrize(
    "profile, message",
    [
        (b"not an ICC profile at all" * 8, "cannot be read"),
        (gray_profile("grey", _curv_linear()), "describes GRAY colours, the image has RGB colours"),
    ],
)
def test_broken_profile_warns_and_falls_back_to_srgb(tmp_path: Path, profile: bytes, message: str) -> None:
    rgb = rgb8()
    Image.fromarray(rgb).save(tmp_path / "broken.png", icc_profile=profile)
    with pytest.warns(ImageWarning, match=f"broken.png: ignoring its embedded ICC profile: it {message}.*taken as sRGB"):
        out = hwc(tmp_path / "broken.png")
    np.testing.assert_array_equal(out, hwc(rgb))


def test_broken_cmyk_profile_falls_back_to_pillows_conversion(tmp_path: Path) -> None:
    im = Image.frombytes("CMYK", (2, 1), bytes([0, 0, 0, 0, 255, 0, 0, 0]))
    im.save(tmp_path / "cmyk.tif", icc_profile=LINEAR_RGB)
    with pytest.warns(ImageWarning, match="describes RGB colours.*profile-free CMYK"):
        out = hwc(tmp_path / "cmyk.tif")
    np.testing.assert_array_equal(out, np.asarray(im.convert("RGB")) / np.float32(255.0))


# ==== EXIF orientation =================================================================
TRANSPOSES = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def blocks(h: int = 2, w: int = 3, size: int = 16) -> np.ndarray:
    colours = RNG.integers(0, 256, (h, w, 3)).astype(np.uint8)
    return np.kron(colours, np.ones((size, size, 1), dtype=np.uint8))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation(tmp_path: Path, orientation: int) -> None:
    image = blocks()
    for fmt, options in (("jpg", {"quality": 95, "subsampling": 0}), ("png", {})):
        path = tmp_path / f"o{orientation}.{fmt}"
        Image.fromarray(image).save(path, exif=exif_bytes(orientation), **options)
        reference = ImageOps.exif_transpose(Image.open(path).convert("RGB"))
        out = assert_same_treatment(path)
        np.testing.assert_array_equal(out, np.asarray(reference) / np.float32(255.0))
        assert out.shape[:2] == ((48, 32) if orientation >= 5 else (32, 48))
        upright = Image.fromarray(image)
        if orientation > 1:
            upright = upright.transpose(TRANSPOSES[orientation])
        np.testing.assert_allclose(out, np.asarray(upright) / 255.0, atol=(6 if fmt == "jpg" else 0) / 255)
        np.testing.assert_array_equal(np.asarray(open_image(path)), np.asarray(reference))


@pytest.mark.parametrize("orientation", range(2, 9))
def test_exif_orientation_of_a_16bit_png(tmp_path: Path, orientation: int) -> None:
    samples = RNG.integers(0, 65536, (3, 5, 3)).astype(np.uint16)
    exif = exif_bytes(orientation)
    exif = exif[6:] if exif.startswith(b"Exif\0\0") else exif
    (tmp_path / "o.png").write_bytes(png16(samples, chunks=_chunk(b"eXIf", exif)))
    planes = [np.asarray(Image.fromarray(samples[..., c]).transpose(TRANSPOSES[orientation])) for c in range(3)]
    np.testing.assert_allclose(hwc(tmp_path / "o.png"), np.stack(planes, axis=2) / 65535.0, atol=1e-6)


def test_broken_exif_is_ignored_with_a_warning(tmp_path: Path) -> None:
    rgb = rgb8()
    Image.fromarray(rgb).save(tmp_path / "x.png", exif=b"Exif\0\0MM\0*garbage")
    with pytest.warns(UserWarning, match="EXIF"):  # Pillow's own warning, or ours
        out = hwc(tmp_path / "x.png")
    np.testing.assert_array_equal(out, hwc(rgb))


# ==== arrays and tensors ===============================================================
def test_numpy_and_tensor_layouts_agree() -> None:
    rgb = rgb8()
    f = rgb.astype(np.float32) / 255
    reference = hwc(rgb)
    for array in (f, f.astype(np.float64), f.transpose(2, 0, 1), f.transpose(2, 0, 1)[None]):
        np.testing.assert_allclose(hwc(array), reference, atol=1e-7)
    np.testing.assert_allclose(hwc(f.astype(np.float16)), reference, atol=5e-4)
    np.testing.assert_array_equal(hwc(torch.from_numpy(f.transpose(2, 0, 1).copy())), reference)
    np.testing.assert_array_equal(hwc(torch.from_numpy(f.transpose(2, 0, 1).copy())[None].double()), reference)
    np.testing.assert_array_equal(hwc(rgb.astype(np.uint16) * 257), reference)
    gray = RNG.random((4, 6)).astype(np.float32)
    np.testing.assert_array_equal(hwc(gray), hwc(Image.fromarray(gray)))  # like mode F
    rgb_view = np.asarray(Image.fromarray(rgb))  # read-only: must be copied, not warned about
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_tensor(rgb_view)
    tiny_rounding = np.full((2, 2, 3), 1 + 1e-7, dtype=np.float32)
    assert float(to_tensor(tiny_rounding).max()) == 1.0


@pytest.mark.parametrize(
    "value, message",
    [
        (np.zeros((4, 4), dtype=bool), r"numpy array of dtype bool .*boolean images are ambiguous"),
        (np.arange(16, dtype=np.int64).reshape(4, 4) * 10**6, r"int64 .* values 0\.\.15000000"),
        (np.zeros((4, 4, 5), dtype=np.uint8), r"shape \(4, 4, 5\) has the wrong shape; accepted: uint8 or uint16"),
        (np.zeros((3, 8, 8), dtype=np.uint8), r"wrong shape.*transpose\(1, 2, 0\)"),
        (np.zeros((4, 4, 4), dtype=np.float32), r"float32 and shape \(4, 4, 4\) has the wrong shape"),
        (np.zeros((3, 5, 3), dtype=np.float32), r"\(3, 5, 3\) is ambiguous"),
        (np.full((4, 4, 3), 2.0, dtype=np.float32), r"values in \[2, 2\]; float images must lie in \[0, 1\]"),
        (np.full((4, 4, 3), 128.0, dtype=np.float32), r"values in \[128, 128\].*divide by 255"),
        (np.full((4, 4, 3), -0.5, dtype=np.float64), r"values in \[-0\.5, -0\.5\]"),
        (np.full((4, 4), np.nan, dtype=np.float32), r"contains NaN \(16 values\)"),
        (np.full((4, 4, 3), np.inf, dtype=np.float32), r"infinity \(48 values\)"),
        (np.zeros((4, 4), dtype=np.complex64), "unsupported dtype"),
        (np.zeros((2, 3, 8, 8), dtype=np.float32), r"torch layout must be \(3, H, W\) or \(1, 3, H, W\), got \(2, 3, 8, 8\)"),
        (torch.zeros(2, 3, 8, 8), r"must be \(3, H, W\) or \(1, 3, H, W\), got \(2, 3, 8, 8\)"),
        (torch.zeros(8, 8, 3), r"channels last\? use t\.permute"),
        (torch.zeros(1, 4, 8, 8), r"got \(1, 4, 8, 8\)"),
        (torch.zeros(3, 8, 8, dtype=torch.uint8), r"dtype uint8 .*must be floating point in \[0, 1\].*t\.float\(\) / 255"),
        (torch.zeros(3, 8, 8, dtype=torch.bool), "must be floating point"),
        (torch.full((3, 8, 8), 1.5), r"values in \[1\.5, 1\.5\]; image tensors must lie in \[0, 1\]"),
        (torch.full((1, 3, 8, 8), float("nan")), r"NaN \(192 values\)"),
        (torch.full((1, 3, 8, 8), float("-inf")), r"infinity \(192 values\)"),
        ([[0, 1], [1, 0]], "unsupported image type list"),
        (b"\x89PNG", "unsupported image type bytes"),
    ],
)
def test_refused_arrays_and_tensors(value, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ImageReadError, match=message):
        to_tensor(value)


def test_ambiguous_8_bit_values_in_a_wide_integer_array() -> None:
    with pytest.raises(ImageReadError, match=r"int64 .*values 0\.\.255.*pass uint8"):
        to_tensor(np.array([[0, 128], [255, 3]]))
    np.testing.assert_array_equal(hwc(np.zeros((2, 2), dtype=np.int64)), np.zeros((2, 2, 3)))  # black is black


def test_pixel_limits_for_every_source(tmp_path: Path) -> None:
    header_only = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 6000, 6000, 8, 2, 0, 0, 0))
    (tmp_path / "huge.png").write_bytes(header_only + _chunk(b"IEND", b""))  # no pixel data at all
    with pytest.raises(ImageTooLargeError, match="6000x6000 = 36000000 pixels exceeds the limit of 16777216"):
        to_tensor(tmp_path / "huge.png")
    with pytest.raises(ImageTooLargeError, match="limit of 100"):
        open_image(tmp_path / "huge.png", max_pixels=100)
    for source in (np.zeros((20, 20), np.uint8), np.zeros((20, 20, 3), np.float32), torch.zeros(3, 20, 20), Image.new("RGB", (20, 20))):
        with pytest.raises(ImageTooLargeError, match="400 pixels exceeds the limit of 100"):
            to_tensor(source, 100)
    with pytest.raises(ImageReadError, match="empty side"):
        to_tensor(np.zeros((0, 4, 3), np.uint8))


def test_unreadable_files(tmp_path: Path) -> None:
    rgb = rgb8(40, 40)
    Image.fromarray(rgb).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (tmp_path / "text.jpg").write_text("not an image")
    deep = png16(RNG.integers(0, 65536, (8, 8, 3)).astype(np.uint16))
    (tmp_path / "truncated16.png").write_bytes(deep[: len(deep) - 40])
    for name in ("truncated.png", "garbage.png", "text.jpg", "truncated16.png"):
        with pytest.raises(ImageReadError, match=name):
            to_tensor(tmp_path / name)
    with pytest.raises(ImageReadError, match="no such image file"):
        to_tensor(tmp_path / "missing.png")
    with pytest.raises(ImageReadError, match="is a folder"):
        open_image(tmp_path)


# ==== file / PIL / numpy equivalence, open_image, save_image ==============================
def test_file_pil_numpy_and_tensor_agree(tmp_path: Path) -> None:
    rgb = rgb8(8, 8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    from_file = to_tensor(tmp_path / "a.png")
    assert torch.equal(from_file, to_tensor(Image.open(tmp_path / "a.png")))
    assert torch.equal(from_file, to_tensor(rgb))
    assert torch.equal(from_file, to_tensor(from_file[0]))
    assert torch.equal(from_file, to_tensor(from_file.numpy()))
    # a JPEG with an orientation and a profile, as a path and as the PIL image Image.open gives
    Image.fromarray(blocks()).save(tmp_path / "b.jpg", exif=exif_bytes(6), icc_profile=LINEAR_RGB)
    assert torch.equal(to_tensor(tmp_path / "b.jpg"), to_tensor(Image.open(tmp_path / "b.jpg")))
    # open_image gives the same pixels in 8 bits, and reading them again changes nothing
    opened = open_image(tmp_path / "b.jpg")
    assert opened.mode == "RGB" and opened.size == (32, 48)
    assert torch.equal(to_tensor(opened), to_pixels_8bit(to_tensor(tmp_path / "b.jpg")))


def to_pixels_8bit(t: torch.Tensor) -> torch.Tensor:
    return t.mul(255).round().div(255).float()


def test_open_image_returns_8bit_rgb(tmp_path: Path) -> None:
    samples = RNG.integers(0, 65536, (4, 5, 4)).astype(np.uint16)
    (tmp_path / "deep.png").write_bytes(png16(samples))
    im = open_image(tmp_path / "deep.png")
    assert im.mode == "RGB" and im.size == (5, 4)
    np.testing.assert_allclose(np.asarray(im) / 255.0, hwc(tmp_path / "deep.png"), atol=0.5 / 255 + 1e-6)


def test_save_image_still_writes_8bit_rgb(tmp_path: Path) -> None:
    rgb = rgb8()
    save_image(Image.fromarray(rgb), tmp_path / "out.png")
    back = Image.open(tmp_path / "out.png")
    assert back.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(back), rgb)


# ==== IMAGE_SUFFIXES, list_images, import without torch =====================================
def test_image_suffixes_are_all_openable_here() -> None:
    Image.init()
    registered = Image.registered_extensions()
    for suffix in IMAGE_SUFFIXES:
        assert registered.get(suffix) in Image.OPEN, suffix
    # JPEG XL opens only once pillow-jxl-plugin is imported (the metrics extra), so it is no default suffix
    assert ".jxl" not in IMAGE_SUFFIXES


def test_list_images(tmp_path: Path) -> None:
    for rel in ("b.png", "a.JPG", "notes.txt", ".hidden.png", "sub/c.webp", "sub/deeper/d.tif", ".git/e.png", "nested/inner/f.gif"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert list_images(tmp_path) == [tmp_path / "a.JPG", tmp_path / "b.png"]
    assert list_images(tmp_path, recursive=True) == [
        tmp_path / "a.JPG", tmp_path / "b.png", tmp_path / "nested" / "inner" / "f.gif",
        tmp_path / "sub" / "c.webp", tmp_path / "sub" / "deeper" / "d.tif",
    ]  # fmt: skip
    assert list_images(tmp_path, recursive=True, limit=4)[-1] == tmp_path / "sub" / "c.webp"
    assert list_images(tmp_path / "notes.txt") == [tmp_path / "notes.txt"]  # a file is taken as given
    with pytest.raises(ImageReadError, match="no such image file or folder"):
        list_images(tmp_path / "missing")
    with pytest.raises(ImageReadError, match=r"no images \(\.png .*\) in .*subfolders"):
        list_images(tmp_path / "nested")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageReadError, match="no images"):
        list_images(tmp_path / "empty", recursive=True)
    with pytest.raises(StageConfigError, match="limit"):
        list_images(tmp_path, limit=0)


def test_imageio_imports_without_torch() -> None:
    package = Path(__file__).resolve().parents[1] / "latentcodec"
    code = (
        "import sys, types\n"
        f"pkg = types.ModuleType('latentcodec'); pkg.__path__ = [{str(package)!r}]; sys.modules['latentcodec'] = pkg\n"
        "import latentcodec.imageio as m\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "import numpy as np\n"
        "assert m.open_image is not None and m.list_images and m.IMAGE_SUFFIXES and m.DEFAULT_MAX_PIXELS\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
