"""Plugins end to end: discovery, ``stages --check``, a broken plugin, a stage not installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from latentcodec import Codec, bitstream, decompress, registry
from latentcodec.cli import main
from latentcodec.errors import UnknownStageError
from latentcodec.testing import ToyTransform, smooth_image

BROKEN = Path(__file__).parent / "fixtures" / "broken-plugin"


@pytest.fixture
def broken_plugin_on_path():  # type: ignore[no-untyped-def]
    """The fixture distribution discoverable in this process, as if pip-installed."""
    sys.path.insert(0, str(BROKEN))
    registry.refresh()
    try:
        yield
    finally:
        sys.path.remove(str(BROKEN))
        sys.modules.pop("latentcodec_broken_plugin", None)
        registry.refresh()


def test_example_plugins_are_listed_with_their_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    """CI pip-installs every plugins/*/; both example distributions register their stages."""
    assert main(["stages"]) == 0
    out = capsys.readouterr().out
    transforms, rest = out.split("quantizers", 1)
    quantizers = rest.split("entropy coders", 1)[0]
    assert any("onnx-vaelight" in line and "latentcodec-onnx" in line for line in transforms.splitlines())
    assert any("mulaw" in line and "latentcodec-example-quantizer" in line for line in quantizers.splitlines())


def test_stages_check_reports_a_broken_plugin_and_exits_non_zero() -> None:
    """The real command, with the broken distribution on PYTHONPATH of a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BROKEN), os.environ.get("PYTHONPATH", "")]), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "latentcodec", "stages", "--check"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0
    failed = [line for line in proc.stdout.splitlines() if "FAILED" in line]
    assert len(failed) == 1, proc.stdout
    line = failed[0]
    assert "broken-quantizer" in line  # the plugin
    assert "latentcodec-broken-plugin 0.1.0" in line  # its distribution
    assert "ModuleNotFoundError" in line and "latentcodec_dependency_that_is_not_installed" in line  # the problem
    assert "Traceback" not in proc.stdout + proc.stderr
    ok = [line for line in proc.stdout.splitlines() if line.rstrip().endswith(" ok")]
    assert any(line.split()[0] == "uniform" for line in ok) and any(line.split()[0] == "ans" for line in ok)
    assert "1 failed" in proc.stdout


def test_other_stages_keep_working_beside_a_broken_plugin(broken_plugin_on_path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert "broken-quantizer" in registry.names("quantizer")
    results = {(r.entry.kind, r.entry.name): r.error for r in registry.check_all()}
    assert "ModuleNotFoundError" in (results[("quantizer", "broken-quantizer")] or "")
    assert results[("quantizer", "uniform")] is None and results[("entropy_coder", "ans")] is None
    codec = Codec(ToyTransform(), registry.create("quantizer", "uniform", step=0.1), registry.create("entropy_coder", "ans"))
    image = smooth_image(32, 48)
    decoded = codec.decompress(codec.compress(image), as_tensor=True)
    assert decoded.shape == (1, 3, 32, 48)
    with pytest.raises(Exception, match="broken-quantizer") as info:
        registry.create("quantizer", "broken-quantizer")
    assert type(info.value).__name__ == "PluginLoadError"


def _stream_naming(kind: str, name: str) -> bytes:
    """A valid stream whose ``kind`` stage is ``name`` (written by name: no wire id)."""
    codec = Codec(ToyTransform(), registry.create("quantizer", "uniform"), registry.create("entropy_coder", "zlib"))
    data = bitstream.read(codec.compress(smooth_image(16, 16)))
    chain = tuple(bitstream.StageRecord(r.kind, name if r.kind == kind else r.name, r.version, r.params) for r in data.chain)
    return bitstream.write(bitstream.Stream(data.width, data.height, data.latent_channels, data.downsampling_factor,
                                            chain, data.fingerprint, data.side_info, data.payload))


def test_stream_naming_a_missing_plugin_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(registry.KNOWN_PLUGIN_DISTRIBUTIONS, ("transform", "onnx-absent"), "latentcodec-absent (pip install latentcodec-absent)")
    data = _stream_naming("transform", "onnx-absent")
    with pytest.raises(UnknownStageError, match=r"'onnx-absent'.*latentcodec-absent"):
        decompress(data)
    path = tmp_path / "s.lc"
    path.write_bytes(data)
    assert main(["decompress", str(path), "-o", str(tmp_path / "s.png")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "onnx-absent" in err and "pip install latentcodec-absent" in err


def test_stream_naming_an_unknown_stage_lists_what_is_installed() -> None:
    from latentcodec.decoding import decode_latent

    # the stream's transform ("toy") is this file's own class, so decode up to the latent
    with pytest.raises(UnknownStageError, match=r"'nobody-knows'.*installed: .*uniform"):
        decode_latent(bitstream.read(_stream_naming("quantizer", "nobody-knows")))


def test_onnx_vaelight_is_known_for_the_install_hint() -> None:
    assert "latentcodec-onnx" in (registry.known_distribution("transform", "onnx-vaelight") or "")
