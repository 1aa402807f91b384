"""The fuzz harness's short run (part of the default suite) and its regression inputs.

The long run is a documented command (tests/fuzz/README.md).  Here: every seed and every
regression input through the harness, a fixed number of deterministic random mutations
(~10 s), and, where atheris is installed, a short coverage-guided atheris run with a
fixed seed in a subprocess (with the harness's address-space limit).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from . import corpus, fuzz_decode

HERE = Path(__file__).resolve().parent
#: Deterministic random mutations in the short run (about 10 s on a loaded 2-core machine).
SHORT_MUTATIONS = 3000
#: Coverage-guided executions of the short atheris run.
SHORT_ATHERIS_RUNS = 2000


@pytest.fixture(scope="module")
def seeds() -> dict[str, bytes]:
    fuzz_decode.setup(process=False)
    return corpus.seed_streams()


def test_corpus_covers_every_builtin_quantizer_and_coder(seeds: dict[str, bytes]) -> None:
    from latentcodec import bitstream

    pairs = set()
    for data in seeds.values():
        s = bitstream.read(data)
        pairs.add((s.stage("quantizer").name, s.stage("entropy_coder").name))
    assert {q for q, _ in pairs} == fuzz_decode.BUILTIN_QUANTIZERS
    assert {c for _, c in pairs} == fuzz_decode.BUILTIN_CODERS
    modes = {bitstream.read(d).stage("quantizer").params[1] & 7 for d in seeds.values() if bitstream.read(d).stage("quantizer").name == "palette"}
    assert modes >= {0, 1, 2, 3, 6}, "palette: zlib/compact x index/rank and a codebook"


def test_every_seed_decodes_through_the_harness(seeds: dict[str, bytes]) -> None:
    with fuzz_decode.strict():
        for name, data in seeds.items():
            out = fuzz_decode.check_stream(data)
            assert out is not None, f"seed {name} does not decode"


def test_regression_inputs() -> None:
    """Inputs that once made a decoder fail with something other than a LatentCodecError."""
    inputs = corpus.regression_inputs()
    assert inputs, "tests/fuzz/regressions/ is empty"
    fuzz_decode.setup(process=False)
    with fuzz_decode.strict():
        for name, data in inputs.items():
            fuzz_decode.check_input(data)


def test_short_mutation_run(seeds: dict[str, bytes]) -> None:
    """A fixed number of deterministic random mutations (seed 0), CRC fixed or not."""
    with fuzz_decode.strict():
        ran = fuzz_decode.run_mutations(list(seeds.values()), SHORT_MUTATIONS, seed=0, time_budget_s=60)
    assert ran >= min(SHORT_MUTATIONS, 200)


def test_short_atheris_run(tmp_path: Path, seeds: dict[str, bytes]) -> None:
    """A short coverage-guided run (fixed seed) in its own process, memory-limited."""
    pytest.importorskip("atheris")
    seed_dir = tmp_path / "seeds"
    seed_dir.mkdir()
    for name, data in {**seeds, **corpus.regression_inputs()}.items():
        (seed_dir / name).write_bytes(data)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    env.pop("LC_FUZZ_FINDINGS", None)
    cmd = [sys.executable, str(HERE / "fuzz_decode.py"), f"-atheris_runs={SHORT_ATHERIS_RUNS}", "-seed=1", "-timeout=60", "-max_len=4096", str(seed_dir)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, tail
    assert "Done" in tail, tail


def _zlib_seed(seeds: dict[str, bytes]) -> bytes:
    return next(d for name, d in seeds.items() if name.startswith("uniform+zlib+"))


@pytest.mark.parametrize(
    "fault",
    [
        lambda: [][1],  # IndexError
        lambda: np.zeros(2) + np.float64("nan") * np.zeros(2) ** -1,  # a numpy warning (divide by zero)
        lambda: (_ for _ in ()).throw(MemoryError()),
    ],
    ids=["IndexError", "numpy-warning", "MemoryError"],
)
def test_the_harness_reports_what_is_not_a_latentcodec_error(seeds: dict[str, bytes], monkeypatch: pytest.MonkeyPatch, fault) -> None:  # type: ignore[no-untyped-def]
    """The property can fail: a decoder that raises anything else, or warns, is a finding."""
    from latentcodec.entropy.zlib_coder import ZlibCoder

    fuzz_decode._STAGES.clear()
    monkeypatch.setattr(ZlibCoder, "decode", lambda self, data, shape: fault())
    with fuzz_decode.strict(), pytest.raises((IndexError, FloatingPointError, RuntimeWarning, MemoryError)):
        fuzz_decode.check_input(_zlib_seed(seeds))
    fuzz_decode._STAGES.clear()


def test_the_harness_reports_bad_latents_and_memory_hogs(seeds: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    from latentcodec.entropy.zlib_coder import ZlibCoder
    from latentcodec.quantizers.uniform import UniformQuantizer

    data = _zlib_seed(seeds)
    fuzz_decode._STAGES.clear()
    monkeypatch.setattr(UniformQuantizer, "dequantize", lambda self, s, side=b"": np.full(s.shape, np.nan, np.float32))
    with pytest.raises(fuzz_decode.FuzzFinding, match="not finite"):
        fuzz_decode.check_input(data)
    monkeypatch.undo()
    if fuzz_decode._reset_peak_rss():  # Linux: the resident-memory check
        real = ZlibCoder.decode

        def hog(self, d, shape):  # type: ignore[no-untyped-def]
            block = np.ones(fuzz_decode.RSS_BASE_BYTES // 8 + (1 << 22), np.float64)  # touches > 96 MiB
            return real(self, d, shape) + int(block[0]) - 1

        fuzz_decode._STAGES.clear()
        monkeypatch.setattr(ZlibCoder, "decode", hog)
        with pytest.raises(fuzz_decode.FuzzFinding, match="MiB"):
            fuzz_decode.check_input(data)
    fuzz_decode._STAGES.clear()
