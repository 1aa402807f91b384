"""The command line: round trip, info, stages, one-line errors, safe outputs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentcodec.cli import main
from tests.conftest import psnr


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_compress_info_decompress_kodim23(tmp_path: Path, taesd_dir: Path, kodak_dir: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    src = kodak_dir / "kodim23.png"
    before = sha(src)
    stream, out = tmp_path / "k.lc", tmp_path / "k.png"
    code, _, err = run(["compress", str(src), "-o", str(stream), "--model", str(taesd_dir), "--device", "cpu"], capsys)
    assert code == 0, err
    code, text, _ = run(["info", str(stream), "--json"], capsys)
    info = json.loads(text)
    assert code == 0
    assert info["overhead_bytes"] <= 32 and info["total_bytes"] <= 16 * 1024
    assert info["width"] == 768 and info["height"] == 512 and info["latent_shape"] == [4, 64, 96]
    assert [c["name"] for c in info["chain"]] == ["taesd", "uniform", "ans", "vae"]
    assert info["bpp"] == pytest.approx(8 * stream.stat().st_size / (768 * 512))
    code, text, _ = run(["info", str(stream)], capsys)
    assert "taesd@1 -> uniform@1" in text and "overhead" in text
    code, _, err = run(["decompress", str(stream), "-o", str(out), "--model", str(taesd_dir)], capsys)
    assert code == 0, err
    decoded = Image.open(out)
    assert decoded.size == (768, 512)
    assert psnr(np.asarray(Image.open(src).convert("RGB")), np.asarray(decoded)) >= 22
    assert sha(src) == before  # the input is never modified
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_existing_outputs_are_kept_without_force(tmp_path: Path, taesd_dir: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "in.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(src)
    target = tmp_path / "out.lc"
    target.write_bytes(b"precious")
    code, out, err = run(["compress", str(src), "-o", str(target), "--model", str(taesd_dir)], capsys)
    assert code == 1 and target.read_bytes() == b"precious"
    assert err.count("\n") == 1 and "--force" in err and "Traceback" not in err
    code, _, _ = run(["compress", str(src), "-o", str(target), "--model", str(taesd_dir), "--force"], capsys)
    assert code == 0 and target.read_bytes()[:3] == b"\x8cLC"
    png = tmp_path / "out.png"
    png.write_bytes(b"precious")
    code, _, err = run(["decompress", str(target), "-o", str(png), "--model", str(taesd_dir)], capsys)
    assert code == 1 and png.read_bytes() == b"precious"


@pytest.mark.parametrize(
    "args, message",
    [
        (["info", "{missing}"], "no such file"),
        (["info", "{garbage}"], "bad magic"),
        (["info", "{truncated}"], "truncated"),
        (["compress", "{missing}", "-o", "{out}"], "no such image"),
        (["compress", "{garbage}", "-o", "{out}"], "cannot read"),
        (["compress", "{image}", "-o", "{out}", "--quantizer", "nope"], "unknown quantizer 'nope'"),
        (["compress", "{image}", "-o", "{out}", "--option", "step=-3"], "step must be"),
        (["compress", "{image}", "-o", "{out}", "--option", "nonsense"], "key=value"),
        (["compress", "{image}", "-o", "{out}", "--preset", "nope"], "unknown preset"),
        (["compress", "{image}", "-o", "{out}", "--max-pixels", "10"], "exceeds the limit"),
        (["compress", "{image}", "-o", "{out}", "--model", "madebyollin/taesd"], "--model PATH"),
        (["decompress", "{truncated}", "-o", "{out}"], "truncated"),
    ],
)
def test_errors_are_one_line_and_exit_nonzero(args: list[str], message: str, tmp_path: Path, taesd_dir: Path, kodim23_stream: bytes, capsys) -> None:  # type: ignore[no-untyped-def]
    paths = {
        "missing": tmp_path / "missing.bin",
        "garbage": tmp_path / "garbage.bin",
        "truncated": tmp_path / "trunc.lc",
        "image": tmp_path / "img.png",
        "out": tmp_path / "out.x",
    }
    paths["garbage"].write_bytes(b"hello world, not an image or stream")
    paths["truncated"].write_bytes(kodim23_stream[:100])
    Image.new("RGB", (16, 16)).save(paths["image"])
    argv = [a.format(**{k: str(v) for k, v in paths.items()}) for a in args]
    if argv[0] == "compress" and "--model" not in argv:
        argv += ["--model", str(taesd_dir)]
    code, _, err = run(argv, capsys)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("latentcodec: error:"), err
    assert message.lower() in err.lower(), err
    assert not paths["out"].exists()


def test_stages_lists_builtins_with_their_distribution(capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(["stages"], capsys)
    assert code == 0
    for label in ("transforms", "quantizers", "entropy coders", "refiners"):
        assert label in out
    for name in ("taesd", "sd-vae", "uniform", "uint8", "ans", "zlib", "vae"):
        line = next(l for l in out.splitlines() if l.split() and l.split()[0] == name)
        assert "latentcodec 0.1.0" in line


def test_module_entry_point_prints_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.lc"
    bad.write_bytes(b"\x8cLC\x07rest")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "latentcodec", "info", str(bad)], capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "latentcodec: error: stream format version 7 is not supported (this library reads version 1)"
