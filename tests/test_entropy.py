"""Entropy coders: exact round trips and rate close to the empirical entropy."""

from __future__ import annotations

import numpy as np
import pytest

from latentcodec.entropy.ans import ANSCoder
from latentcodec.entropy.rans import words_to_bytes as ans_words_to_bytes
from latentcodec.entropy.tables import quantize_counts, zigzag, unzigzag
from latentcodec.entropy.zlib_coder import ZlibCoder
from latentcodec.errors import CorruptStreamError, StageConfigError, StageInputError, TruncatedStreamError

CODERS = [ANSCoder(), ANSCoder(table_bits=16), ZlibCoder()]

ADVERSARIAL = {
    "constant": np.full((4, 8, 8), 7, dtype=np.int32),
    "one-symbol": np.array([[[-3]]], dtype=np.int32),
    "wide-range": np.array([[[-30000, 30000], [0, 1]]], dtype=np.int32),
    "one-channel-constant": np.stack([np.zeros((5, 5)), np.arange(25).reshape(5, 5)]).astype(np.int32),
    "rare-outlier": np.concatenate([np.zeros(9999), [5000]]).reshape(1, 100, 100).astype(np.int32),
    "uint8-range": np.arange(256, dtype=np.int32).reshape(4, 8, 8),
    "int64-input": np.arange(-8, 8, dtype=np.int64).reshape(1, 4, 4),
}


@pytest.mark.parametrize("coder", CODERS, ids=lambda c: repr(c))
@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_round_trips(coder, name: str) -> None:  # type: ignore[no-untyped-def]
    symbols = ADVERSARIAL[name]
    decoded = coder.decode(coder.encode(symbols), symbols.shape)
    assert decoded.dtype == np.int32
    assert np.array_equal(decoded, symbols)


@pytest.mark.parametrize("coder", CODERS, ids=lambda c: repr(c))
def test_random_round_trips_and_determinism(coder) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    for _ in range(5):
        shape = tuple(int(n) for n in rng.integers(1, 20, size=3))
        symbols = np.rint(rng.laplace(0, rng.uniform(0.2, 8), size=shape)).astype(np.int32)
        data = coder.encode(symbols)
        assert coder.encode(symbols) == data
        assert np.array_equal(coder.decode(data, shape), symbols)


def empirical_bits(symbols: np.ndarray) -> float:
    """Sum over channels of n * H(channel histogram), in bits."""
    total = 0.0
    for row in symbols.reshape(symbols.shape[0], -1):
        _, counts = np.unique(row, return_counts=True)
        p = counts / counts.sum()
        total += float(-(counts * np.log2(p)).sum())
    return total


def test_ans_payload_is_within_one_percent_of_empirical_entropy(taesd_codec, kodak_dir) -> None:  # type: ignore[no-untyped-def]
    import torch

    from latentcodec.imageio import to_tensor

    latent = taesd_codec.transform.analysis(to_tensor(kodak_dir / "kodim23.png"))[0].numpy()
    symbols = taesd_codec.quantizer.quantize(latent).symbols
    coder = ANSCoder()
    data = coder.encode(symbols)
    # split the payload into the integer tables and the ANS words
    from latentcodec.bitstream import Reader
    from latentcodec.entropy.tables import read_table

    r = Reader(data)
    for c in range(symbols.shape[0]):
        read_table(r, coder.table_bits, "t")
    table_bytes, word_bytes = r.pos, len(data) - r.pos
    ideal_bytes = empirical_bits(symbols) / 8
    assert word_bytes <= 1.01 * ideal_bytes + 8, (word_bytes, ideal_bytes)
    assert word_bytes >= ideal_bytes - 8  # no free lunch: a sanity check on the measurement
    assert table_bytes <= 0.03 * len(data), table_bytes
    assert torch is not None


def test_quantize_counts_is_exact_and_keeps_every_symbol() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        counts = rng.integers(0, 1000, size=int(rng.integers(1, 300)))
        counts[rng.integers(len(counts))] += 1
        for bits in (9, 12, 16):
            if (counts > 0).sum() > (1 << bits):
                continue
            f = quantize_counts(counts, bits)
            assert f.sum() == 1 << bits
            assert np.all((f > 0) == (counts > 0))


def test_zigzag_round_trip() -> None:
    for v in [0, 1, -1, 2, -2, 2**31 - 1, -(2**31)]:
        assert unzigzag(zigzag(v)) == v


def test_ans_words_serialisation_drops_only_trailing_zeros() -> None:
    words = np.array([1, 0x00FF0000, 0], dtype=np.uint32)
    assert ans_words_to_bytes(words) == b"\x01\x00\x00\x00\x00\x00\xff"


def test_corrupt_payloads_raise_specific_errors() -> None:
    symbols = np.arange(64, dtype=np.int32).reshape(1, 8, 8) % 5
    a = ANSCoder().encode(symbols)
    with pytest.raises(TruncatedStreamError):
        ANSCoder().decode(a[:1], symbols.shape)
    with pytest.raises(CorruptStreamError):
        ANSCoder().decode(a + b"\x01\x02\x03\x04\x05\x06\x07\x08", symbols.shape)
    z = ZlibCoder().encode(symbols)
    with pytest.raises(CorruptStreamError):
        ZlibCoder().decode(z[:-3], symbols.shape)
    with pytest.raises(CorruptStreamError):
        ZlibCoder().decode(z, (1, 8, 9))  # more symbols promised than present
    with pytest.raises(CorruptStreamError):
        ZlibCoder().decode(b"\x07" + z[1:], symbols.shape)


def test_bad_inputs_and_options() -> None:
    with pytest.raises(StageInputError):
        ANSCoder().encode(np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(StageInputError):
        ANSCoder().encode(np.zeros((0,), dtype=np.int32))
    with pytest.raises(StageInputError):
        ANSCoder(table_bits=8).encode(np.arange(300, dtype=np.int32).reshape(1, 300))
    with pytest.raises(StageConfigError):
        ANSCoder(table_bits=30)
    with pytest.raises(StageConfigError):
        ZlibCoder(level=11)
    with pytest.raises(CorruptStreamError):
        ANSCoder.config_from_wire(b"\x03")
