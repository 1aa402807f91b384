"""The reference decoder (bitstream/reference, written from SPEC.md) against the library.

Also checks SPEC 3.2-3.3's integer description of constriction's rANS coder and of its
24-bit models against constriction itself.
"""

from __future__ import annotations

import importlib.util
import hashlib
import json
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from latentcodec import bitstream, registry
from latentcodec.bitstream import StageRecord, Stream

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "bitstream" / "vectors"
REFERENCE_QUANTIZERS = ("uniform", "uint8")
REFERENCE_CODERS = ("ans", "zlib")


def _load_reference():
    path = ROOT / "bitstream" / "reference" / "decode.py"
    spec = importlib.util.spec_from_file_location("latentcodec_reference_decode", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


ref = _load_reference()


def _names(vector: dict) -> list[str]:
    """Stage names of a vector's chain (``vectors.json`` writes ``name@version[:params]``)."""
    return [c.split("@")[0] for c in vector["chain"]]


def _all_vectors() -> list[dict]:
    return json.loads((VECTORS / "vectors.json").read_text())["vectors"]


def _vectors() -> list[dict]:
    return [v for v in _all_vectors() if _names(v)[1] in REFERENCE_QUANTIZERS and _names(v)[2] in REFERENCE_CODERS]


def _stage(record: StageRecord):
    """The library's stage for a record (through the registry, as a decoder builds it)."""
    cls = registry.load(record.kind, record.name)
    return cls.from_config(cls.config_from_record(record.params, record.version))


def library_decode(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Symbols and dequantized latent as the library computes them."""
    stream = bitstream.read(data)
    quantizer = _stage(stream.stage("quantizer"))
    coder = _stage(stream.stage("entropy_coder"))
    symbols = coder.decode(stream.payload, tuple(quantizer.symbol_shape(stream.latent_shape)))
    return symbols, np.asarray(quantizer.dequantize(symbols, stream.side_info))


def assert_same_decode(data: bytes) -> "ref.Decoded":
    symbols, latent = library_decode(data)
    out = ref.decode(data)
    assert out.symbols.dtype == np.int32 and out.symbols.shape == symbols.shape
    assert np.array_equal(out.symbols, symbols)
    assert out.latent.dtype == np.float32 and latent.dtype == np.float32
    assert out.latent.tobytes() == latent.tobytes()  # bit for bit
    return out


# --- the conformance vectors ----------------------------------------------------------


def test_enough_vectors_for_the_reference_decoder():
    assert len(_vectors()) >= 4


@pytest.mark.parametrize("vector", _all_vectors(), ids=lambda v: v["file"])
def test_vector(vector):
    """Every vector (the reference decoder also reads palette, ans-binned and the learned coders)."""
    data = (VECTORS / vector["file"]).read_bytes()
    out = assert_same_decode(data)
    assert ref.symbols_sha256(out.symbols) == vector["symbols_sha256"]
    assert hashlib.sha256(out.latent.tobytes()).hexdigest() == vector["latent_sha256"]
    assert [r.name for r in out.stream.chain] == _names(vector)


def test_cli_prints_shape_and_hash(capsys):
    vector = _vectors()[0]
    assert ref.main([str(VECTORS / vector["file"])]) == 0
    printed = capsys.readouterr().out
    assert vector["symbols_sha256"] in printed
    assert "x".join(map(str, vector["latent_shape"])) in printed


# --- fresh streams from the library -----------------------------------------------------


def make_stream(symbols: np.ndarray, quantizer, coder, *, factor: int = 8) -> bytes:
    c, h, w = symbols.shape
    return bitstream.write(
        Stream(
            width=w * factor - 3 if w * factor > 3 else w * factor,  # not a multiple of f
            height=h * factor,
            latent_channels=c,
            downsampling_factor=factor,
            chain=(
                StageRecord("transform", "taesd", 1),
                StageRecord("quantizer", quantizer.name, quantizer.version, quantizer.wire_params()),
                StageRecord("entropy_coder", coder.name, coder.version, coder.wire_params()),
                StageRecord("refiner", "vae", 1),
            ),
            fingerprint=b"\x01\x02\x03\x04",
            side_info=b"",
            payload=coder.encode(symbols),
        )
    )


def heavy_tailed(rng: np.random.Generator, shape, spread: int) -> np.ndarray:
    s = np.rint(rng.standard_t(2.5, size=shape) * spread).astype(np.int32)
    return s


SHAPES = [(4, 1, 1), (4, 7, 1), (4, 13, 5), (3, 5, 13), (1, 2, 9)]


@pytest.mark.parametrize("table_bits", [8, 12, 16])
@pytest.mark.parametrize("shape", SHAPES)
def test_fresh_uniform_ans(table_bits, shape):
    rng = np.random.default_rng(table_bits * 1000 + shape[1] * 31 + shape[2])
    quantizer = registry.create("quantizer", "uniform", step=0.37)
    coder = registry.create("entropy_coder", "ans", table_bits=table_bits)
    latent = (rng.standard_t(3, size=shape) * 1.5).astype(np.float32)
    symbols = quantizer.quantize(latent).symbols
    symbols[0] = 5  # one constant channel: K = 1, no words
    data = make_stream(symbols, quantizer, coder)
    out = assert_same_decode(data)
    assert np.array_equal(out.symbols, symbols)
    assert out.stream.stage("quantizer").params == struct.pack("<f", 0.37)


@pytest.mark.parametrize("table_bits", [8, 16])
@pytest.mark.parametrize("shape", SHAPES)
def test_fresh_uint8(table_bits, shape):
    rng = np.random.default_rng(7 + table_bits + shape[2])
    quantizer = registry.create("quantizer", "uint8", half_range=3.1)
    latent = rng.normal(0, 2.0, size=shape).astype(np.float32)
    symbols = quantizer.quantize(latent).symbols
    for coder in (registry.create("entropy_coder", "ans", table_bits=table_bits), registry.create("entropy_coder", "zlib")):
        out = assert_same_decode(make_stream(symbols, quantizer, coder))
        assert np.array_equal(out.symbols, symbols)


@pytest.mark.parametrize("table_bits", [8, 16])
def test_fresh_sparse_alphabets(table_bits):
    """Heavy tails and far outliers: zero runs in the tables, wide alphabets."""
    rng = np.random.default_rng(table_bits)
    symbols = heavy_tailed(rng, (4, 13, 5), 3)
    symbols[1, 0, 0] = 3000
    symbols[2, 4, 4] = -40000
    symbols[3] = rng.integers(-100, 100, size=symbols.shape[1:])
    quantizer = registry.create("quantizer", "uniform", step=0.37)
    coder = registry.create("entropy_coder", "ans", table_bits=table_bits)
    out = assert_same_decode(make_stream(symbols, quantizer, coder))
    assert np.array_equal(out.symbols, symbols)


@pytest.mark.parametrize("span", [10, 300, 70000, 2**31 - 5])
def test_fresh_zlib_widths(span):
    rng = np.random.default_rng(span % 1000)
    symbols = rng.integers(0, 8, size=(4, 7, 3)).astype(np.int64)
    symbols[0, 0, 0] = span
    symbols = (symbols - span // 2).astype(np.int32)
    quantizer = registry.create("quantizer", "uniform", step=0.37)
    out = assert_same_decode(make_stream(symbols, quantizer, registry.create("entropy_coder", "zlib")))
    assert np.array_equal(out.symbols, symbols)


def test_a_full_size_latent_decodes_quickly():
    rng = np.random.default_rng(5)
    quantizer = registry.create("quantizer", "uniform")
    symbols = heavy_tailed(rng, (4, 64, 96), 4)
    data = make_stream(symbols, quantizer, registry.create("entropy_coder", "ans"))
    start = time.perf_counter()
    out = ref.decode(data)
    assert time.perf_counter() - start < 10.0
    assert np.array_equal(out.symbols, symbols)


# --- container checks (SPEC 2.4-2.6) -------------------------------------------------------


def container(width: int, height: int, records: list[bytes], payload: bytes, *, side: bytes = b"", latent: int = (3 << 5) | 3) -> bytes:
    """A stream assembled by hand from SPEC 2.1 (independent of the library's writer)."""

    def varint(v: int) -> bytes:
        out = bytearray()
        while True:
            out.append((v & 0x7F) | (0x80 if v >> 7 else 0))
            v >>= 7
            if not v:
                return bytes(out)

    body = b"\x8cLC\x01" + varint(width) + varint(height) + bytes([latent]) + b"".join(records)
    body += b"\xc0\xff\xee\x00" + varint(len(side)) + side + payload
    return body + struct.pack("<I", zlib.crc32(body))


TAESD, UNIFORM, ANS, ZLIB, VAE = b"\x01\x10", b"\x02\x10", b"\x01\x10", b"\x02\x10", b"\x01\x10"


def test_hand_built_stream_matches_library():
    symbols = np.arange(-6, 18, dtype=np.int32).reshape(4, 2, 3)
    payload = registry.create("entropy_coder", "zlib").encode(symbols)
    data = container(24, 16, [TAESD, UNIFORM, ZLIB, VAE], payload)
    out = assert_same_decode(data)
    assert np.array_equal(out.symbols, symbols)


def test_container_errors():
    symbols = np.zeros((4, 2, 3), dtype=np.int32)
    good = container(24, 16, [TAESD, UNIFORM, ZLIB, VAE], registry.create("entropy_coder", "zlib").encode(symbols))
    ref.decode(good)
    with pytest.raises(ref.BadMagicError):
        ref.decode(b"PNG" + good[3:])
    with pytest.raises(ref.TruncatedStreamError):
        ref.decode(good[:2])
    with pytest.raises(ref.UnsupportedVersionError):
        ref.decode(good[:3] + b"\x02" + good[4:])
    with pytest.raises(ref.TruncatedStreamError):
        ref.decode(good[:20])
    flipped = bytearray(good)
    flipped[10] ^= 1
    with pytest.raises(ref.CorruptStreamError):
        ref.decode(bytes(flipped))
    # entropy coder wire id 6 is retired: unknown
    with pytest.raises(ref.UnknownStageError):
        ref.decode(container(24, 16, [TAESD, UNIFORM, b"\x06\x10", VAE], b""))
    # an unsupported stage version
    with pytest.raises(ref.UnsupportedVersionError):
        ref.decode(container(24, 16, [TAESD, UNIFORM, b"\x02\x20", VAE], b""))
    # params of a stage that takes none
    with pytest.raises(ref.CorruptStreamError):
        ref.decode(container(24, 16, [TAESD, UNIFORM, b"\x02\x11\x00", VAE], b""))
    # a uniform step outside the configurable range is refused before decoding
    with pytest.raises(ref.RefusedStreamError):
        ref.decode(container(24, 16, [TAESD, b"\x02\x14" + struct.pack("<f", 2e3), ZLIB, VAE], b"garbage"))
    # zero-size images and varints over 5 bytes
    with pytest.raises(ref.LimitExceededError):
        ref.decode(container(0, 16, [TAESD, UNIFORM, ZLIB, VAE], b""))
    with pytest.raises(ref.CorruptStreamError):
        ref.decode(container(24, 16, [b"\x81\x80\x80\x80\x80\x00\x10", UNIFORM, ZLIB, VAE], b""))


def test_decode_side_pixel_limit_comes_before_entropy_decoding():
    big = container(4097, 4096, [TAESD, UNIFORM, ANS, VAE], b"not an ans payload")
    with pytest.raises(ref.ImageTooLargeError):
        ref.decode(big)
    with pytest.raises(ref.CorruptStreamError):  # with the limit raised, the garbage payload fails
        ref.decode(big, max_pixels=1 << 28)
    ref.read_stream(container(4096, 4096, [TAESD, UNIFORM, ANS, VAE], b""))  # exactly 16 MP is fine


def test_stage_written_by_name():
    symbols = np.ones((4, 2, 3), dtype=np.int32)
    payload = registry.create("entropy_coder", "zlib").encode(symbols)
    named_refiner = b"\x00\x0bmy-refiner2\x10"
    out = ref.decode(container(24, 16, [TAESD, UNIFORM, ZLIB, named_refiner], payload))
    assert out.stream.stage("refiner").name == "my-refiner2"


# --- SPEC 3.2-3.3 against constriction -------------------------------------------------------

constriction = pytest.importorskip("constriction")


def _coder_state(words: np.ndarray) -> int:
    state = 0
    for i, w in enumerate(words.tolist()):
        state |= int(w) << (32 * i)
    return state


def _random_freqs(rng: np.random.Generator, n: int, precision: int) -> np.ndarray:
    raw = rng.integers(0, 6, size=n) * (rng.random(n) < 0.7)
    raw[rng.integers(n)] += 1
    total = 1 << precision
    f = raw * total // raw.sum()
    f[np.argmax(raw)] += total - f.sum()
    return f.astype(np.int64)


def test_categorical_cdf_is_constrictions():
    """One symbol on an empty coder leaves exactly its left cumulative as the state (SPEC 3.2)."""
    rng = np.random.default_rng(0)
    for trial in range(60):
        precision = int(rng.integers(8, 17))
        n = int(rng.choice([2, 3, 7, 100, 256, 1000, 65536]))
        freqs = _random_freqs(rng, n, precision)
        model = constriction.stream.model.Categorical(freqs.astype(np.float64) / (1 << precision), perfect=False)
        ours = ref.Categorical(freqs, precision)
        for s in rng.choice(n, size=min(n, 12), replace=False).tolist() + [0, n - 1]:
            coder = constriction.stream.stack.AnsCoder()
            coder.encode_reverse(np.array([s], dtype=np.int32), model)
            words = coder.get_compressed()
            assert _coder_state(words) == ours.left[s]
            assert len(words) == (1 if ours.left[s] else 0)


def test_uniform_is_constrictions():
    for n in [2, 3, 255, 1 << 16, 12345678, (1 << 24) - 1]:
        model = constriction.stream.model.Uniform(n)
        ours = ref.Uniform(n)
        for s in [0, 1, n // 2, n - 2, n - 1]:
            coder = constriction.stream.stack.AnsCoder()
            coder.encode_reverse(np.array([s], dtype=np.int32), model)
            assert _coder_state(coder.get_compressed()) == ours.interval(s)[0]


def rans_encode(symbols_and_models) -> list[int]:
    """SPEC 3.2's encoder: symbols in decoding order, pushed in reverse; the flushed words."""
    state, out = 0, []
    for s, model in reversed(symbols_and_models):
        left, prob = model.interval(s)
        if (state >> 40) >= prob:
            out.append(state & 0xFFFFFFFF)
            state >>= 32
        state = ((state // prob) << 24) | (left + state % prob)
    if state >= 1 << 32:
        out += [state & 0xFFFFFFFF, state >> 32]
    elif state:
        out.append(state)
    return out


def test_rans_words_are_constrictions():
    rng = np.random.default_rng(1)
    for trial in range(40):
        groups, sequence = [], []
        for _ in range(int(rng.integers(1, 5))):
            count = int(rng.integers(1, 300))
            if rng.random() < 0.6:
                precision, n = int(rng.integers(8, 17)), int(rng.integers(2, 300))
                freqs = _random_freqs(rng, n, precision)
                symbols = rng.integers(0, n, size=count).astype(np.int32)
                model = constriction.stream.model.Categorical(freqs.astype(np.float64) / (1 << precision), perfect=False)
                groups.append((symbols, model, None))
                ours = ref.Categorical(freqs, precision)
                sequence += [(s, ours) for s in symbols.tolist()]
            else:
                widths = rng.choice([2, 3, 1000, 1 << 16, 1 << 22, (1 << 24) - 1], size=count).astype(np.int32)
                symbols = (rng.random(count) * widths).astype(np.int32)
                groups.append((symbols, constriction.stream.model.Uniform(), widths))
                sequence += [(s, ref.Uniform(int(w))) for s, w in zip(symbols.tolist(), widths.tolist())]
        encoder = constriction.stream.stack.AnsCoder()
        for symbols, model, widths in reversed(groups):
            if widths is None:
                encoder.encode_reverse(symbols, model)
            else:
                encoder.encode_reverse(symbols, model, widths)
        words = [int(w) for w in encoder.get_compressed()]
        assert rans_encode(sequence) == words
        data = np.asarray(words, dtype="<u4").tobytes().rstrip(b"\x00")
        decoder = ref.RansDecoder(data)
        assert [decoder.decode(model) for _, model in sequence] == [s for s, _ in sequence]
        decoder.finish()
        assert decoder.pos == 0


def test_rans_malformed_words():
    with pytest.raises(ValueError):
        constriction.stream.stack.AnsCoder(np.array([5, 0], dtype=np.uint32))
    with pytest.raises(ref.CorruptStreamError):
        ref.RansDecoder(struct.pack("<II", 5, 0))
    empty = ref.RansDecoder(b"")
    empty.finish()  # nothing coded: an empty coder, like constriction's is_empty()
    leftover = ref.RansDecoder(struct.pack("<I", 12345))
    with pytest.raises(ref.CorruptStreamError):
        leftover.finish()


# --- the other built-in stages (SPEC 5.3, 6.3-6.6, 7) -----------------------------------------


def palette_stream(latent: np.ndarray, quantizer, coder) -> bytes:
    q = quantizer.quantize(latent)
    c, h, w = latent.shape
    return bitstream.write(
        Stream(
            width=w * 8,
            height=h * 8 - 1,
            latent_channels=c,
            downsampling_factor=8,
            chain=(
                StageRecord("transform", "taesd", 1),
                StageRecord("quantizer", quantizer.name, quantizer.version, quantizer.wire_params()),
                StageRecord("entropy_coder", coder.name, coder.version, coder.wire_params()),
                StageRecord("refiner", "vae", 1),
            ),
            fingerprint=b"\x01\x02\x03\x04",
            side_info=q.side_info,
            payload=coder.encode(q.symbols),
        )
    )


PALETTE_OPTIONS = [
    {"colors": 16},
    {"colors": 40, "symbols": "rank", "palette_coding": "compact"},
    {"colors": 2, "symbols": "rank", "half_range": 3.1},
    {"colors": 64, "palette_coding": "compact", "dither": "none"},
    {"colors": 32, "codebook": "taesd-v1", "symbols": "rank"},
    {"colors": 256, "codebook": "taesd-v1"},
]


@pytest.mark.parametrize("options", PALETTE_OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("shape", [(4, 9, 14), (4, 1, 1), (4, 1, 7), (4, 6, 1)])
def test_fresh_palette(options, shape):
    rng = np.random.default_rng(shape[1] * 10 + shape[2])
    latent = (rng.normal(size=shape) * 1.5).astype(np.float32)
    quantizer = registry.create("quantizer", "palette", **options)
    for coder in (registry.create("entropy_coder", "ans-binned"), registry.create("entropy_coder", "zlib")):
        out = assert_same_decode(palette_stream(latent, quantizer, coder))
        assert out.symbols.shape == (1, *shape[1:])


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 7, 1), (1, 32, 48)])
def test_fresh_binned(shape):
    rng = np.random.default_rng(shape[1])
    ranks = np.minimum(rng.geometric(0.05, size=shape) - 1, 255).astype(np.int32) - 3
    ranks.flat[0] = 5_000_000  # a wide bin
    quantizer = registry.create("quantizer", "uniform", step=0.37)
    out = assert_same_decode(make_stream(ranks, quantizer, registry.create("entropy_coder", "ans-binned")))
    assert np.array_equal(out.symbols, ranks)


LEARNED = ("ans-factorized", "ans-hyperprior", "ans-context")


@pytest.mark.parametrize("coder_name", LEARNED)
@pytest.mark.parametrize("shape", [(4, 1, 1), (4, 7, 1), (4, 33, 17)])
def test_fresh_learned_coders(coder_name, shape):
    rng = np.random.default_rng(shape[1] * 100 + shape[2])
    y = np.rint(rng.standard_t(3, size=shape) * 2).astype(np.int32)
    if coder_name == "ans-context":
        y = np.cumsum(y, axis=2).astype(np.int32)
    y.flat[-1] = 4000  # escaped
    quantizer = registry.create("quantizer", "uniform")
    coder = registry.create("entropy_coder", coder_name)
    out = assert_same_decode(make_stream(y, quantizer, coder))
    assert np.array_equal(out.symbols, y)


def test_context_pyramid_of_three_levels():
    rng = np.random.default_rng(3)
    y = np.cumsum(rng.integers(-2, 3, size=(2, 70, 40)), axis=1).astype(np.int32)
    out = assert_same_decode(make_stream(y, registry.create("quantizer", "uniform"), registry.create("entropy_coder", "ans-context")))
    assert np.array_equal(out.symbols, y)


#: SPEC 10: identities of the shipped prior files.
SHIPPED_PRIORS = {
    "taesd-factorized-bf78acb7.npz": ("1fb1c3e5", "bf78acb7"),
    "taesd-hyperprior-5819f1d9.npz": ("c49d5497", "5819f1d9"),
    "gaussian-context-6b939baa.npz": ("9f203841", "6b939baa"),
}


@pytest.mark.parametrize("name", sorted(SHIPPED_PRIORS))
def test_prior_identities(name):
    path = ref.DATA_DIR / "priors" / name
    v1, v2 = SHIPPED_PRIORS[name]
    assert ref.prior_identity(path, 1).hex() == v1
    assert ref.prior_identity(path, 2).hex() == v2


def test_stage_version_2_names_the_prior_by_canonical_digest():
    rng = np.random.default_rng(9)
    y = rng.integers(-3, 4, size=(4, 8, 12)).astype(np.int32)
    quantizer = registry.create("quantizer", "uniform")
    coder = registry.create("entropy_coder", "ans-hyperprior")
    v1 = bitstream.read(make_stream(y, quantizer, coder))
    records = list(v1.chain)
    records[2] = StageRecord("entropy_coder", "ans-hyperprior", 2, bytes.fromhex(SHIPPED_PRIORS["taesd-hyperprior-5819f1d9.npz"][1]))
    v2 = bitstream.write(Stream(v1.width, v1.height, v1.latent_channels, v1.downsampling_factor, tuple(records), v1.fingerprint, v1.side_info, v1.payload))
    assert np.array_equal(ref.decode(v2).symbols, y)
    records[2] = StageRecord("entropy_coder", "ans-hyperprior", 1, b"\xde\xad\xbe\xef")
    unknown = bitstream.write(Stream(v1.width, v1.height, v1.latent_channels, v1.downsampling_factor, tuple(records), v1.fingerprint, v1.side_info, v1.payload))
    with pytest.raises(ref.PriorMismatchError):
        ref.decode(unknown)


def test_decoding_past_the_end_and_is_empty_match_constriction():
    """Decoding never fails; the state shrinks once the words are used up, and
    constriction's is_empty() is exactly "state == 0" (SPEC 3.2)."""
    rng = np.random.default_rng(2)
    for trial in range(20):
        freqs = _random_freqs(rng, 50, 12)
        symbols = rng.integers(0, 50, size=int(rng.integers(1, 200))).astype(np.int32)
        model = constriction.stream.model.Categorical(freqs.astype(np.float64) / 4096, perfect=False)
        encoder = constriction.stream.stack.AnsCoder()
        encoder.encode_reverse(symbols, model)
        words = encoder.get_compressed()
        theirs = constriction.stream.stack.AnsCoder(words)
        ours = ref.RansDecoder(np.asarray(words, dtype="<u4").tobytes())
        ours_cat, extra = ref.Categorical(freqs, 12), ref.Uniform(7)
        for k in range(len(symbols) + 30):
            if k < len(symbols) or k % 2:
                got = int(theirs.decode(model))
                assert ours.decode(ours_cat) == got
            else:
                got = int(theirs.decode(constriction.stream.model.Uniform(7)))
                assert ours.decode(extra) == got
            if k < len(symbols):
                assert got == symbols[k]
            assert theirs.is_empty() == (ours.state == 0)
            if k < len(symbols):
                assert theirs.is_empty() == (k == len(symbols) - 1)  # empty exactly after the last symbol
            if k == len(symbols):  # an empty coder decodes symbol 0 and stays empty
                assert got == 0 and theirs.is_empty()


def test_reference_decoder_imports_only_the_standard_library_and_numpy():
    import ast

    source = (ROOT / "bitstream" / "reference" / "decode.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported - set(sys.stdlib_module_names) == {"numpy"}
