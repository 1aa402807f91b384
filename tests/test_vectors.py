"""Conformance vectors decode forever: the frozen list, today's vectors and streams of earlier commits."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from latentcodec import bitstream
from latentcodec.decoding import decode_latent, decode_symbols

from .frozen_vectors import HISTORY, VECTORS

ROOT = Path(__file__).resolve().parents[1] / "bitstream" / "vectors"


def _hashes(data: bytes) -> tuple[str, str]:
    stream = bitstream.read(data)
    symbols, _ = decode_symbols(stream)
    latent, _ = decode_latent(stream)
    return (
        hashlib.sha256(np.ascontiguousarray(symbols, dtype="<i4").tobytes()).hexdigest(),
        hashlib.sha256(np.ascontiguousarray(latent, dtype="<f4").tobytes()).hexdigest(),
    )


def _listed(path: Path) -> dict[str, tuple[str, str]]:
    return {v["file"]: (v["symbols_sha256"], v["latent_sha256"]) for v in json.loads(path.read_text())["vectors"]}


@pytest.mark.parametrize(("manifest", "frozen"), [(ROOT / "vectors.json", VECTORS), (ROOT / "history" / "history.json", HISTORY)], ids=["vectors", "history"])
def test_no_vector_removed_or_changed(manifest: Path, frozen: dict[str, tuple[str, str]]) -> None:
    listed = _listed(manifest)
    missing = sorted(set(frozen) - set(listed))
    assert not missing, f"vectors removed from {manifest.name}: {missing} (the set is append-only)"
    changed = sorted(f for f in frozen if listed[f] != frozen[f])
    assert not changed, f"expected hashes changed in {manifest.name}: {changed} (a vector is the truth; bump the stage version instead)"
    unfrozen = sorted(set(listed) - set(frozen))
    assert not unfrozen, f"{manifest.name} lists vectors the frozen list lacks: {unfrozen}; append them to tests/frozen_vectors.py"
    on_disk = {p.name for p in manifest.parent.glob("*.lc")}
    assert on_disk == set(listed), f"files and {manifest.name} disagree: {sorted(on_disk ^ set(listed))}"


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_vector_decodes_to_its_hashes(name: str) -> None:
    assert _hashes((ROOT / name).read_bytes()) == VECTORS[name]


@pytest.mark.parametrize("name", sorted(HISTORY))
def test_stream_of_an_earlier_commit_decodes_to_its_hashes(name: str) -> None:
    """Every prior file main ever shipped is installed again, so these all decode (none is refused)."""
    assert _hashes((ROOT / "history" / name).read_bytes()) == HISTORY[name]


def test_vectors_are_of_this_format_version() -> None:
    assert json.loads((ROOT / "vectors.json").read_text())["format_version"] == bitstream.FORMAT_VERSION
    assert all(bitstream.read((ROOT / name).read_bytes()).version == bitstream.FORMAT_VERSION for name in VECTORS)


def test_vectors_cover_every_built_in_stage() -> None:
    chains = [v["chain"] for v in json.loads((ROOT / "vectors.json").read_text())["vectors"]]
    quantizers = {c[1].split("@")[0] for c in chains}
    coders = {c[2].split("@")[0] for c in chains}
    assert quantizers >= {"uniform", "uint8", "palette"}
    assert coders >= {"ans", "zlib", "ans-binned", "ans-factorized", "ans-hyperprior", "ans-context"}
    from latentcodec.entropy.priors import installed_priors

    for kind, coder in (("hyperprior", "ans-hyperprior"), ("factorized", "ans-factorized"), ("context", "ans-context")):
        named = {c[2].split(":")[1] for c in chains if c[2].startswith(coder + "@2:")}
        shipped = {p.digest.hex() for p in installed_priors(kind)}
        assert shipped <= named, f"no vector for shipped {kind} priors {sorted(shipped - named)}"
    sizes = [tuple(v["image_size"]) for v in json.loads((ROOT / "vectors.json").read_text())["vectors"]]
    assert (1, 1) in sizes and any(1 in s and s != (1, 1) for s in sizes)  # one-pixel sides
    assert any(w % 8 and h % 8 for w, h in sizes)  # not multiples of 8


def test_editing_an_expected_hash_fails(tmp_path: Path) -> None:
    """The guard itself: a manifest whose hash was edited is caught (checked here on a copy)."""
    manifest = json.loads((ROOT / "vectors.json").read_text())
    manifest["vectors"][0]["symbols_sha256"] = "0" * 64
    edited = tmp_path / "vectors.json"
    edited.write_text(json.dumps(manifest))
    for p in ROOT.glob("*.lc"):
        (tmp_path / p.name).write_bytes(p.read_bytes())
    with pytest.raises(AssertionError, match="expected hashes changed"):
        test_no_vector_removed_or_changed(edited, VECTORS)
