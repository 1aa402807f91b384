"""Shipped decoding data is append-only and found by content: priors by identity, codebooks by a pinned hash."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from latentcodec.entropy.priors import NAMES_FILE, PRIOR_DIR, canonical_digest, find_prior, installed_priors, load_prior
from latentcodec.errors import PriorMismatchError

#: Every prior file main ever shipped: file -> (kind, stage-1 file hash, stage-2 canonical
#: digest, the commit that first shipped it).  Append-only: a retrained prior adds a line.
FROZEN_PRIORS = {
    "gaussian-context-6b939baa.npz": ("context", "9f203841", "6b939baa", "1e48f28"),
    "taesd-factorized-51c9804e.npz": ("factorized", "a0e7375b", "51c9804e", "32689d8"),
    "taesd-factorized-88371a55.npz": ("factorized", "6fa5a3b4", "88371a55", "53dfb45"),
    "taesd-factorized-0a7b216a.npz": ("factorized", "28c9587e", "0a7b216a", "e4ba88e"),
    "taesd-factorized-75a93237.npz": ("factorized", "a3ffc0cb", "75a93237", "e6791f6"),
    "taesd-factorized-bf78acb7.npz": ("factorized", "1fb1c3e5", "bf78acb7", "96772d3"),
    "taesd-hyperprior-7fc2bd13.npz": ("hyperprior", "9b80220d", "7fc2bd13", "32689d8"),
    "taesd-hyperprior-c65a6699.npz": ("hyperprior", "f39bb1e0", "c65a6699", "53dfb45"),
    "taesd-hyperprior-63de3b4c.npz": ("hyperprior", "301dea4e", "63de3b4c", "e4ba88e"),
    "taesd-hyperprior-b55a50fa.npz": ("hyperprior", "3f87e18d", "b55a50fa", "e6791f6"),
    "taesd-hyperprior-5819f1d9.npz": ("hyperprior", "c49d5497", "5819f1d9", "96772d3"),
}


@pytest.mark.parametrize("name", sorted(FROZEN_PRIORS))
def test_every_prior_ever_shipped_is_installed_unchanged(name: str) -> None:
    kind, file_hash, canonical, _ = FROZEN_PRIORS[name]
    path = PRIOR_DIR / name
    assert path.is_file(), f"{name} was shipped once and must stay (priors are append-only)"
    assert hashlib.sha256(path.read_bytes()).hexdigest()[:8] == file_hash
    prior = load_prior(kind, str(path))
    assert prior.digest.hex() == canonical and prior.file_digest.hex() == file_hash
    assert name.endswith(f"-{canonical}.npz")  # named by content
    # both identities find it among the installed files
    assert find_prior(kind, bytes.fromhex(canonical), "canonical").path == path
    assert find_prior(kind, bytes.fromhex(file_hash), "file").path == path


def test_no_shipped_prior_left_unlisted() -> None:
    assert sorted(p.name for p in PRIOR_DIR.glob("*.npz")) == sorted(FROZEN_PRIORS)


def test_names_point_at_shipped_files() -> None:
    names = json.loads(NAMES_FILE.read_text())
    for kind in ("hyperprior", "factorized", "context"):
        for name, file in names[kind].items():
            assert file in FROZEN_PRIORS and FROZEN_PRIORS[file][0] == kind
            assert load_prior(kind, name).path.name == file


def test_identities_are_unique_among_installed_priors() -> None:
    for kind in ("hyperprior", "factorized", "context"):
        priors = installed_priors(kind)
        ids = [p.digest for p in priors] + [p.file_digest for p in priors]
        assert len(ids) == len(set(ids)), kind


def test_canonical_digest_ignores_how_the_archive_was_zipped(tmp_path: Path) -> None:
    from latentcodec.entropy.priors import save_prior

    shipped = load_prior("factorized", "taesd")
    again = tmp_path / "again-factorized.npz"
    np.savez(again, meta=np.frombuffer(json.dumps(shipped.meta, sort_keys=True).encode(), np.uint8), **shipped.arrays)  # numpy's own zip
    assert again.read_bytes() != shipped.path.read_bytes()
    assert load_prior("factorized", str(again)).digest == shipped.digest
    assert save_prior(tmp_path / "x-factorized.npz", "factorized", {k: v for k, v in shipped.meta.items() if k != "kind"}, shipped.arrays) == shipped.digest
    assert canonical_digest({"a": np.zeros(2, np.int16)}) != canonical_digest({"a": np.zeros((1, 2), np.int16)})  # shapes count


def test_an_unknown_prior_is_refused_by_name() -> None:
    with pytest.raises(PriorMismatchError, match=r"prior #deadbeef \(identity of stage version 2\).*not installed.*LATENTCODEC_PRIORS"):
        load_prior("hyperprior", "#deadbeef")
    with pytest.raises(PriorMismatchError, match="stage version 1"):
        load_prior("hyperprior", "#v1:deadbeef")


def test_codebooks_are_pinned_by_content() -> None:
    from latentcodec.quantizers.codebooks import CODEBOOKS, codebook_path

    for name, (cid, sha256) in CODEBOOKS.items():
        assert hashlib.sha256(codebook_path(name).read_bytes()).hexdigest() == sha256, name
    assert CODEBOOKS["taesd-v1"][0] == 1  # ids are never reused or renumbered


def test_an_altered_codebook_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from latentcodec.errors import ModelError
    from latentcodec.quantizers import codebooks

    fake = tmp_path / "palette-taesd-v1.npz"
    np.savez(fake, **{"2": np.zeros((2, 4), np.uint8)})
    monkeypatch.setattr(codebooks, "DATA_DIR", tmp_path)
    codebooks._load.cache_clear()
    try:
        with pytest.raises(ModelError, match="does not hold the codebook"):
            codebooks.load_codebook("taesd-v1", 2)
    finally:
        codebooks._load.cache_clear()
