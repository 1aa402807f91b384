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


# --- batches, pipes, quality, chains, weights, limits --------------------------------------
@pytest.fixture
def cli_taesd(taesd, taesd_dir: Path) -> list[str]:  # type: ignore[no-untyped-def]
    """``--model DIR --device cpu``, with the session's loaded TAESD in the model cache."""
    from latentcodec import modelcache

    modelcache.shared(taesd)
    return ["--model", str(taesd_dir), "--device", "cpu"]


def kodak_tree(root: Path, kodak_dir: Path) -> Path:
    """root/photos: three 64x96 Kodak crops (one in sub/, one portrait) and a broken PNG."""
    base = root / "photos"
    (base / "sub").mkdir(parents=True)
    Image.open(kodak_dir / "kodim01.png").crop((0, 0, 96, 64)).save(base / "a.png")
    Image.open(kodak_dir / "kodim02.png").crop((96, 64, 192, 128)).save(base / "sub" / "b.png")
    Image.open(kodak_dir / "kodim04.png").crop((0, 0, 64, 96)).save(base / "c.jpg", quality=95)
    (base / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return base


def test_batch_compress_decompress_resume(tmp_path: Path, kodak_dir: Path, cli_taesd: list[str], capsys) -> None:  # type: ignore[no-untyped-def]
    base = kodak_tree(tmp_path, kodak_dir)
    out, manifest = tmp_path / "out", tmp_path / "run.jsonl"
    code, stdout, err = run(["compress", str(base), "-o", str(out), "--manifest", str(manifest), "--quiet", *cli_taesd], capsys)
    assert code == 1 and stdout == ""  # one file failed
    assert err.count("\n") == 1 and err.startswith("latentcodec: error:") and f"{base / 'broken.png'}" in err, err
    made = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.lc"))
    assert made == ["a.lc", "c.lc", "sub/b.lc"]
    rows = {Path(r["input"]).name: r for r in map(json.loads, manifest.read_text().splitlines())}
    assert rows["broken.png"]["status"] == "failed" and "broken.png" in rows["broken.png"]["error"]
    assert rows["a.png"]["status"] == "ok" and rows["a.png"]["bytes"] == (out / "a.lc").stat().st_size
    assert rows["a.png"]["parameter"] == "step" and rows["a.png"]["value"] == 0.5 and rows["a.png"]["seconds"] > 0
    # one batch call writes exactly what single calls write
    for rel, src in (("a.lc", base / "a.png"), ("sub/b.lc", base / "sub" / "b.png"), ("c.lc", base / "c.jpg")):
        single = tmp_path / "single.lc"
        assert run(["compress", str(src), "-o", str(single), "--force", "--quiet", *cli_taesd], capsys)[0] == 0
        assert (out / rel).read_bytes() == single.read_bytes(), rel
    # decompress the tree: .lc in, .png out, same layout
    png = tmp_path / "png"
    code, _, err = run(["decompress", str(out), "-o", str(png), "--quiet", *cli_taesd], capsys)
    assert code == 0 and err == ""
    assert sorted(p.relative_to(png).as_posix() for p in png.rglob("*")) == ["a.png", "c.png", "sub", "sub/b.png"]
    assert Image.open(png / "c.png").size == (64, 96)
    # resume: existing outputs are an error, skipped with --skip-existing, replaced with --force
    (out / "a.lc").unlink()
    code, _, err = run(["compress", str(base / "a.png"), str(base / "c.jpg"), "-o", str(out), "--quiet", *cli_taesd], capsys)
    assert code == 1 and err.count("\n") == 1 and "c.lc exists" in err and (out / "a.lc").exists()
    (out / "a.lc").unlink()
    code, _, err = run(["compress", str(base), "-o", str(out), "--skip-existing", "--manifest", str(manifest), "--quiet", *cli_taesd], capsys)
    assert code == 1 and "broken.png" in err and (out / "a.lc").exists()
    statuses = [json.loads(line)["status"] for line in manifest.read_text().splitlines()]
    assert len(statuses) == 8 and statuses[4:].count("skipped") == 2 and statuses[4:].count("ok") == 1
    before = (out / "c.lc").stat().st_mtime_ns
    code, _, err = run(["compress", str(base / "c.jpg"), "-o", str(out / "c.lc"), "--force", *cli_taesd], capsys)
    assert code == 0 and (out / "c.lc").stat().st_mtime_ns != before and err.startswith(f"{out / 'c.lc'}: ")
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary files anywhere


def test_batch_progress_and_summary_go_to_stderr(tmp_path: Path, kodak_dir: Path, cli_taesd: list[str], capsys) -> None:  # type: ignore[no-untyped-def]
    base = kodak_tree(tmp_path, kodak_dir)
    (base / "broken.png").unlink()
    code, stdout, err = run(["compress", str(base), "-o", str(tmp_path / "out"), *cli_taesd], capsys)
    assert code == 0 and stdout == ""
    assert "3/3" in err and err.rstrip().splitlines()[-1].startswith("3 compressed (")


class _Stdio:
    """A stand-in for sys.stdin / sys.stdout with a binary ``buffer``."""

    def __init__(self, data: bytes = b"", tty: bool = False) -> None:
        import io

        self.buffer = io.BytesIO(data)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_pipes_put_only_data_on_stdout(tmp_path: Path, kodak_dir: Path, cli_taesd: list[str], monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "x.png"
    Image.open(kodak_dir / "kodim23.png").crop((0, 0, 96, 64)).save(src)
    stdout = _Stdio()
    monkeypatch.setattr(sys, "stdin", _Stdio(src.read_bytes()))
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["compress", "-", "-o", "-", *cli_taesd]) == 0
    stream = stdout.buffer.getvalue()
    err = capsys.readouterr().err
    assert err.startswith("<stdout>: ") and err.count("\n") == 1
    assert run(["compress", str(src), "-o", str(tmp_path / "x.lc"), "--quiet", *cli_taesd], capsys)[0] == 0
    assert stream == (tmp_path / "x.lc").read_bytes()  # the same bytes as from a file
    stdout = _Stdio()
    monkeypatch.setattr(sys, "stdin", _Stdio(stream))
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["decompress", "-", "-o", "-", "--quiet", *cli_taesd]) == 0
    import io

    assert Image.open(io.BytesIO(stdout.buffer.getvalue())).size == (96, 64)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys, "stdin", _Stdio(b"not an image"))
    code, _, err = run(["compress", "-", "-o", str(tmp_path / "y.lc"), *cli_taesd], capsys)
    assert code == 1 and err.count("\n") == 1 and "standard input" in err
    monkeypatch.setattr(sys, "stdin", _Stdio(src.read_bytes()))
    monkeypatch.setattr(sys, "stdout", _Stdio(tty=True))
    assert main(["compress", "-", "-o", "-", *cli_taesd]) == 1  # binary data never goes to a terminal
    assert "terminal" in capsys.readouterr().err and sys.stdout.buffer.getvalue() == b""


def test_quality_and_chain_config_flags(tmp_path: Path, cli_taesd: list[str], taesd_dir: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from latentcodec import Codec, describe

    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(src)
    sizes = []
    for q in ("10", "90"):
        out = tmp_path / f"q{q}.lc"
        assert run(["compress", str(src), "-o", str(out), "-q", q, "--quiet", *cli_taesd], capsys)[0] == 0
        sizes.append(out.stat().st_size)
        assert describe(out.read_bytes())["rate_parameter"]["value"] == pytest.approx(Codec.from_preset(quality=float(q)).quantizer.step)
    assert sizes[0] < sizes[1]
    code, _, err = run(["compress", str(src), "-o", str(tmp_path / "bad.lc"), "-q", "50", "-O", "step=0.3", *cli_taesd], capsys)
    assert code == 1 and err.count("\n") == 1 and "quality or step" in err
    with pytest.raises(SystemExit) as usage:  # one rate setting at a time; usage errors are one line too
        main(["compress", str(src), "-o", str(tmp_path / "bad.lc"), "-q", "50", "--target-bytes", "100"])
    err = capsys.readouterr().err
    assert usage.value.code == 2 and err.count("\n") == 1 and err.startswith("latentcodec: error: compress: argument --target-bytes: not allowed")
    # a saved chain is a preset of one's own
    chain = tmp_path / "chain.json"
    Codec.from_preset("taesd-uint8", half_range=8.0).save_config(chain)
    assert run(["compress", str(src), "-o", str(tmp_path / "c.lc"), "--config", str(chain), "--quiet", *cli_taesd], capsys)[0] == 0
    assert run(["compress", str(src), "-o", str(tmp_path / "p.lc"), "--preset", "taesd-uint8", "-O", "half_range=8", "--quiet", *cli_taesd], capsys)[0] == 0
    assert (tmp_path / "c.lc").read_bytes() == (tmp_path / "p.lc").read_bytes()
    code, _, err = run(["compress", str(src), "-o", str(tmp_path / "d.lc"), "--config", str(chain), "--preset", "taesd-ans", *cli_taesd], capsys)
    assert code == 1 and "--config names the whole chain" in err


def test_force_overwrites_and_ignore_weights_decodes(tmp_path: Path, kodim23_stream: bytes, cli_taesd: list[str], capsys) -> None:  # type: ignore[no-untyped-def]
    from latentcodec import bitstream

    s = bitstream.read(kodim23_stream)
    other = tmp_path / "other.lc"
    other.write_bytes(bitstream.write(bitstream.Stream(**{**s.__dict__, "fingerprint": b"\x01\x02\x03\x04"})))
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    code, _, err = run(["decompress", str(other), "-o", str(out), "--force", *cli_taesd], capsys)
    assert code == 1 and err.count("\n") == 1 and "--ignore-weights" in err and out.read_bytes() == b"precious"
    code, _, err = run(["decompress", str(other), "-o", str(out), "--force", "--ignore-weights", "--quiet", *cli_taesd], capsys)
    assert code == 0 and Image.open(out).size == (768, 512)


def test_decompress_max_pixels_refuses_a_bomb_from_its_header(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from tests.test_codec import bomb_stream

    bomb = tmp_path / "bomb.lc"
    bomb.write_bytes(bomb_stream())
    code, _, err = run(["decompress", str(bomb), "-o", str(tmp_path / "b.png")], capsys)
    assert code == 1 and err.count("\n") == 1 and "exceeds the limit of 16777216" in err
    code, _, err = run(["decompress", str(bomb), "-o", str(tmp_path / "b.png"), "--max-pixels", "100"], capsys)
    assert code == 1 and "limit of 100" in err and not (tmp_path / "b.png").exists()


@pytest.mark.parametrize(
    "exc, message",
    [
        (MemoryError(), "out of memory"),
        (RuntimeError("[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: can't allocate memory: you tried to allocate 1000 bytes"), "out of memory"),
        ("cuda-oom", "out of memory"),
        (ValueError("something\nunexpected"), "ValueError: something unexpected"),
    ],
)
def test_unexpected_errors_are_one_line(exc: object, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import latentcodec.cli as cli

    if exc == "cuda-oom":
        import torch

        exc = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def boom(args: object) -> int:
        raise exc  # type: ignore[misc]

    monkeypatch.setitem(cli.COMMANDS, "info", boom)
    code, out, err = run(["info", "x.lc"], capsys)
    assert code == 1 and out == "" and err.count("\n") == 1 and err.startswith("latentcodec: error:") and message in err, err
    code, _, err = run(["info", "x.lc", "-v"], capsys)
    assert code == 1 and "Traceback" in err and err.rstrip().splitlines()[-1].startswith("latentcodec: error:")


def test_interrupt_exits_130_with_one_line(monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import latentcodec.cli as cli

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "compress", interrupted)
    code, out, err = run(["compress", "a.png", "-o", "a.lc"], capsys)
    assert (code, out, err) == (130, "", "latentcodec: interrupted\n")


def test_image_warnings_are_one_line(tmp_path: Path, cli_taesd: list[str], capsys) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "broken-icc.png"
    Image.new("RGB", (32, 24), (10, 200, 30)).save(src, icc_profile=b"not an ICC profile at all" * 8)
    code, _, err = run(["compress", str(src), "-o", str(tmp_path / "x.lc"), *cli_taesd], capsys)
    lines = err.splitlines()
    assert code == 0 and len(lines) == 2, err
    assert lines[0].startswith("latentcodec: warning: ") and "ICC profile" in lines[0] and "broken-icc.png" in lines[0]
    assert lines[1].startswith(f"{tmp_path / 'x.lc'}: ")


def test_presets_and_stages_say_what_they_offer(capsys) -> None:  # type: ignore[no-untyped-def]
    from latentcodec.presets import PRESETS

    code, out, _ = run(["presets"], capsys)
    assert code == 0
    for name in PRESETS:
        assert any(line.startswith(f"{name}") for line in out.splitlines()), name
    assert out.count("    for: ") == len(PRESETS) and "--quality 0..100: step 4 .. 0.1 (without it: step 0.5)" in out
    code, out, _ = run(["presets", "--json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["palette-ans"]["quality"] == {"parameter": "colors", "at_0": 2, "at_100": 256, "default": 112}
    code, out, _ = run(["stages"], capsys)
    lines = out.splitlines()
    i = next(k for k, line in enumerate(lines) if line.split() and line.split()[0] == "uniform")
    assert lines[i + 1].strip() == "options: step=0.5"
    assert any("options: model='madebyollin/taesd', device='auto', dtype='auto'" in line for line in lines)


INSTANT = [["--help"], ["--version"], ["info", "{stream}"], ["info", "{stream}", "--json"], ["stages"], ["presets"], ["compress", "--help"], ["eval", "--help"], ["train-prior", "--help"]]


@pytest.mark.parametrize("argv", INSTANT, ids=[" ".join(a).replace("{stream}", "FILE") for a in INSTANT])
def test_instant_commands_do_not_import_torch(argv: list[str], tmp_path: Path, kodim23_stream: bytes) -> None:
    stream = tmp_path / "k.lc"
    stream.write_bytes(kodim23_stream)
    args = [a.format(stream=stream) for a in argv]
    code = (
        "import sys\nfrom latentcodec.cli import main\n"
        "try:\n    rc = main(sys.argv[1:])\nexcept SystemExit as exc:\n    rc = exc.code\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', rc, file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.stderr.strip().splitlines()[-1] in ("NO-TORCH 0", "NO-TORCH None"), proc.stderr
    assert proc.stdout.strip()


def test_batch_killed_midway_resumes_with_skip_existing(tmp_path: Path, kodak_dir: Path, taesd_dir: Path, cli_taesd: list[str], capsys) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM in the middle of a batch: no partial or temporary file; a rerun with
    --skip-existing completes it, each stream equal to an uninterrupted run's."""
    import signal
    import time

    from latentcodec import bitstream

    photos = tmp_path / "photos"
    photos.mkdir()
    for i, name in enumerate(sorted(p.name for p in kodak_dir.glob("*.png"))[:8]):
        Image.open(kodak_dir / name).crop((0, 0, 192, 192)).save(photos / f"{i:02d}.png")
    out = tmp_path / "out"
    args = [sys.executable, "-m", "latentcodec", "compress", str(photos), "-o", str(out), "--model", str(taesd_dir), "--device", "cpu", "--quiet"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while proc.poll() is None and not list(out.glob("*.lc")) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    finished = sorted(p.name for p in out.glob("*.lc"))
    assert proc.returncode == 130 and err.strip().endswith("latentcodec: interrupted"), err
    assert 1 <= len(finished) < 8, finished  # killed midway
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary files left
    for name in finished:
        bitstream.read((out / name).read_bytes())  # every file there is complete (CRC checked)
    resumed = subprocess.run([*args, "--skip-existing", "--manifest", str(tmp_path / "m.jsonl")], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    statuses = [json.loads(line)["status"] for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert statuses.count("skipped") == len(finished) and statuses.count("ok") == 8 - len(finished)
    whole = tmp_path / "whole"
    assert run(["compress", str(photos), "-o", str(whole), "--quiet", *cli_taesd], capsys)[0] == 0
    for p in sorted(whole.glob("*.lc")):
        assert (out / p.name).read_bytes() == p.read_bytes(), p.name
