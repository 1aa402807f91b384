"""ans-factorized, ans-hyperprior and ans-context: exact round trips, model identity,
precision/thread/device independence of decoding, code length vs the model's ideal."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from latentcodec import bitstream, registry
from latentcodec.decoding import decode_symbols
from latentcodec.entropy.pyramid import ANSContextCoder
from latentcodec.entropy.factorized import ANSFactorizedCoder
from latentcodec.entropy.hyperprior import ANSHyperpriorCoder
from latentcodec.entropy.priors import PRIOR_DIR, PriorMismatchError, load_prior
from latentcodec.errors import LatentCodecError, StageInputError

CODERS = (ANSFactorizedCoder, ANSHyperpriorCoder, ANSContextCoder)


def latent_like(shape=(4, 40, 56), seed: int = 0) -> np.ndarray:
    """Spatially correlated symbols with a latent's range (std ~2 at step 0.5)."""
    rng = np.random.default_rng(seed)
    field = rng.normal(size=shape)
    for axis in (1, 2):
        field = (field + np.roll(field, 1, axis) + np.roll(field, 2, axis)) / 1.7
    return np.rint(field * 2.0).astype(np.int32)


def wire_decoder(coder):  # type: ignore[no-untyped-def]
    """The coder a decoder builds from the stream's wire params alone."""
    cls = type(coder)
    return cls.from_config(cls.config_from_wire(coder.wire_params()))


@pytest.mark.parametrize("cls", CODERS, ids=lambda c: c.name)
@pytest.mark.parametrize("shape", [(4, 40, 56), (4, 13, 21), (4, 1, 1), (4, 2, 9)])
def test_round_trip_exact(cls, shape) -> None:  # type: ignore[no-untyped-def]
    symbols = latent_like(shape, seed=sum(shape))
    symbols.flat[0] = 40000  # far outside every table: escaped
    symbols.flat[-1] = -123
    coder = cls()
    data = coder.encode(symbols)
    back = wire_decoder(coder).decode(data, shape)
    assert back.dtype == np.int32 and np.array_equal(back, symbols)


@pytest.mark.parametrize("cls", CODERS, ids=lambda c: c.name)
def test_payload_close_to_ideal_code_length(cls) -> None:  # type: ignore[no-untyped-def]
    symbols = latent_like((4, 64, 96), seed=3)
    coder = cls()
    ideal = coder.ideal_bits(symbols) / 8
    size = len(coder.encode(symbols))
    assert ideal - 8 <= size <= 1.01 * ideal + 8, (size, ideal)


@pytest.mark.parametrize("name", ["ans-factorized", "ans-hyperprior", "ans-context"])
def test_registered_with_ids(name: str) -> None:
    from latentcodec.wire_ids import WIRE_IDS

    cls = registry.load("entropy_coder", name)
    assert cls.name == name and name in WIRE_IDS["entropy_coder"]
    assert len(cls().wire_params()) == 4  # the prior's content hash


def test_learned_coders_beat_static_ans_on_correlated_symbols() -> None:
    from latentcodec.entropy.ans import ANSCoder

    symbols = latent_like((4, 64, 96), seed=5)
    static = len(ANSCoder().encode(symbols))
    assert len(ANSContextCoder().encode(symbols)) < static


def test_other_prior_version_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from latentcodec.entropy.priors import save_prior

    shipped = load_prior("factorized", "taesd")
    other = tmp_path / "other-factorized.npz"
    # same tables, other metadata: another model version as far as a stream is concerned
    save_prior(other, "factorized", {**shipped.meta, "note": "retrained"}, shipped.arrays)
    symbols = latent_like((4, 8, 8))
    coder = ANSFactorizedCoder(prior=str(other))
    payload = coder.encode(symbols)
    assert coder.wire_params() != ANSFactorizedCoder().wire_params()
    with pytest.raises(PriorMismatchError, match="not installed"):
        wire_decoder(coder).decode(payload, symbols.shape)
    monkeypatch.setenv("LATENTCODEC_PRIORS", str(tmp_path))  # make it findable: decodes
    assert np.array_equal(wire_decoder(coder).decode(payload, symbols.shape), symbols)


def test_stream_with_unknown_prior_fails_with_one_clear_error(taesd) -> None:  # type: ignore[no-untyped-def]
    from latentcodec import Codec
    from latentcodec.quantizers.uniform import UniformQuantizer

    latent = latent_like((4, 8, 8)).astype(np.float32) * 0.5
    data = Codec(taesd, UniformQuantizer(), ANSHyperpriorCoder()).compress_latent(latent, (64, 64))
    stream = bitstream.read(data)
    assert np.array_equal(decode_symbols(stream)[0], np.rint(latent / 0.5).astype(np.int32))
    chain = tuple(
        dataclasses.replace(r, params=b"\x00\x01\x02\x03") if r.kind == "entropy_coder" else r for r in stream.chain
    )
    tampered = bitstream.write(dataclasses.replace(stream, chain=chain))
    with pytest.raises(PriorMismatchError, match="000102"):
        decode_symbols(bitstream.read(tampered))


@pytest.mark.parametrize("cls", CODERS, ids=lambda c: c.name)
def test_damaged_payload_raises_specific_error(cls) -> None:  # type: ignore[no-untyped-def]
    symbols = latent_like((4, 16, 24))
    coder = cls()
    data = coder.encode(symbols)
    for bad in (data[: len(data) // 2], data + b"\x01\x02\x03\x04\x05"):
        try:
            back = wire_decoder(coder).decode(bad, symbols.shape)
        except LatentCodecError:
            continue
        assert not np.array_equal(back, symbols)  # garbage in may decode, but never silently to the input


@pytest.mark.parametrize("cls", CODERS, ids=lambda c: c.name)
def test_bad_input_is_a_stage_input_error(cls) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StageInputError):
        cls().encode(np.zeros((4, 4, 4), dtype=np.float32))
    if cls is not ANSContextCoder:
        with pytest.raises(StageInputError):
            cls().encode(np.zeros((3, 4, 4), dtype=np.int32))


def _encode_with(threads: int, dtype: str, symbols: np.ndarray) -> bytes:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return ANSHyperpriorCoder(dtype=dtype).encode(symbols)
    finally:
        torch.set_num_threads(before)


def _decode_with(threads: int, data: bytes, shape) -> np.ndarray:  # type: ignore[no-untyped-def]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return wire_decoder(ANSHyperpriorCoder()).decode(data, shape)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(("enc", "dec"), [((1, "bfloat16"), 2), ((2, "float32"), 1), ((2, "bfloat16"), 2)])
def test_hyperprior_decodes_across_precision_and_threads(enc, dec) -> None:  # type: ignore[no-untyped-def]
    symbols = latent_like((4, 48, 72), seed=11)
    data = _encode_with(*enc, symbols)
    assert np.array_equal(_decode_with(dec, data, symbols.shape), symbols)


def test_hyperprior_table_indices_do_not_depend_on_torch_settings() -> None:
    """The decoder-side parameters come from integer maths: same z and y, same indices."""
    coder = ANSHyperpriorCoder()
    m = coder.model
    shape = (4, 32, 40)
    z = np.random.default_rng(2).integers(-6, 7, size=m.z_shape(shape))
    y = latent_like(shape, seed=3).astype(np.int64)

    def all_params() -> list[np.ndarray]:
        mu_h, ls_h = m.hyper(z, shape)
        return [a for k, p, sel in m.groups(shape) for a in m.group_params(y, mu_h, ls_h, k, p, sel)]

    ref = all_params()
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                got = all_params()
            assert all(np.array_equal(a, b) for a, b in zip(got, ref, strict=True))
    finally:
        torch.set_num_threads(before)
    assert m.context is not None and len(ref) == 2 * 4 * m.context.phases  # one pass per channel and phase
    assert ref[0].dtype == np.int64 and len(np.unique(np.concatenate(ref[0::2]))) > 1


def test_hyperprior_context_uses_only_decoded_symbols() -> None:
    """A pass's parameters must not change when not-yet-decoded symbols change."""
    m = ANSHyperpriorCoder().model
    assert m.context is not None
    shape = (4, 24, 28)
    y = latent_like(shape, seed=5).astype(np.int64)
    z = np.random.default_rng(6).integers(-4, 5, size=m.z_shape(shape))
    mu_h, ls_h = m.hyper(z, shape)
    groups = m.groups(shape)
    decoded = np.zeros(shape, dtype=bool)
    rng = np.random.default_rng(7)
    for k, p, sel in groups:
        noisy = np.where(decoded, y, rng.integers(-9, 10, size=shape))
        for a, b in zip(m.group_params(y, mu_h, ls_h, k, p, sel), m.group_params(noisy, mu_h, ls_h, k, p, sel), strict=True):
            assert np.array_equal(a, b)
        decoded[m.channel_of(k)] |= sel


@pytest.mark.parametrize(("phases", "kernel2", "size"), [(4, 1, (14, 18)), (4, 3, (14, 18)), (4, 3, (13, 11)), (7, 3, (14, 18)), (7, 3, (17, 10))])
def test_integer_context_computes_what_training_computed(phases: int, kernel2: int, size: tuple[int, int]) -> None:
    """The decoder's integer passes must be the trained float networks, up to fixed-point
    rounding: same inputs, same positions, same (subgrid) layout of the later layers."""
    from latentcodec.entropy.hyperprior import context as hc

    torch.manual_seed(0)
    channels, order = 4, [0, 1, 2, 3]
    nets = hc.torch_context(channels, phases, hidden=8, kernel=5, all_hyper=True, kernel2=kernel2)
    ctx = hc.IntContext(hc.IntContext.export(nets, phases), channels, phases, order, all_hyper=True)
    shape = (channels, *size)
    y = latent_like(shape, seed=3).astype(np.int64)
    rng = np.random.default_rng(4)
    mu_h, ls_h = (rng.integers(-600, 600, size=shape) for _ in range(2))
    scale = float(1 << hc.ACT_BITS)
    def as_float(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a / scale).float()[None]

    with torch.no_grad():
        mu_f, ls_f = hc.torch_context_forward(nets, as_float(y * (1 << hc.ACT_BITS)), as_float(mu_h), as_float(ls_h), phases, order, all_hyper=True)
    phase = hc.phase_map(shape[1], shape[2], phases)
    for k, c in enumerate(order):
        for p in range(phases):
            dmu, dls = ctx.refine(ctx.group_inputs(y, mu_h, ls_h, phase, k, p), k * phases + p)
            sel = phase == p
            assert dmu.shape == (int(sel.sum()),)
            np.testing.assert_allclose((mu_h[c][sel] + dmu) / scale, mu_f[0, c].numpy()[sel], atol=0.05)
            np.testing.assert_allclose((ls_h[c][sel] + dls) / scale, ls_f[0, c].numpy()[sel], atol=0.05)


@pytest.mark.parametrize("shape", [(4, 40, 56), (4, 13, 21)])
def test_refined_z_decodes_exactly_and_never_costs_more(shape) -> None:  # type: ignore[no-untyped-def]
    """``refine_z`` only changes which ``z`` the encoder sends: a plain decoder reads it
    exactly, and the coder never keeps a ``z`` whose exact code length is larger."""
    symbols = latent_like(shape, seed=21)
    plain, refined = ANSHyperpriorCoder(), ANSHyperpriorCoder(refine_z=8)
    assert refined.wire_params() == plain.wire_params()  # nothing about it in the stream
    data = refined.encode(symbols)
    assert np.array_equal(wire_decoder(plain).decode(data, shape), symbols)
    assert refined.ideal_bits(symbols) <= plain.ideal_bits(symbols)
    assert len(data) <= 1.01 * refined.ideal_bits(symbols) / 8 + 8


def test_refine_z_saves_bytes_on_a_real_latent(taesd, kodak_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from latentcodec.imageio import to_tensor
    from latentcodec.quantizers.uniform import UniformQuantizer

    image = to_tensor(kodak_dir / "kodim23.png")[..., :256, 256:512]
    symbols = UniformQuantizer().quantize(taesd.analysis(image)[0].numpy()).symbols
    plain = ANSHyperpriorCoder().ideal_bits(symbols)
    refined = ANSHyperpriorCoder(refine_z=20).ideal_bits(symbols)
    assert refined < plain, (refined, plain)


def test_float_twin_computes_what_the_integer_decoder_computes() -> None:
    """The refinement's float networks are the decoder's integer ones, up to fixed point."""
    from latentcodec.entropy.hyperprior import context as hc
    from latentcodec.entropy.hyperprior.refine import float_twin

    m = ANSHyperpriorCoder().model
    shape = (4, 24, 32)
    y = latent_like(shape, seed=8).astype(np.int64)
    z = np.rint(m.analysis(y, "cpu", "float32")[0].numpy()).astype(np.int64)
    mu_h, ls_h = m.hyper(z, shape)
    h_s, ctx = float_twin(m)
    scale = float(1 << hc.ACT_BITS)
    with torch.no_grad():
        mu_f, ls_f = h_s(torch.from_numpy(z).float()[None]).chunk(2, dim=1)
        mu_f, ls_f = mu_f[..., : shape[1], : shape[2]], ls_f[..., : shape[1], : shape[2]]
        np.testing.assert_allclose(mu_f[0].numpy(), mu_h / scale, atol=0.05)
        np.testing.assert_allclose(ls_f[0].numpy(), ls_h / scale, atol=0.05)
        ic = m.context
        mu_c, ls_c = hc.torch_context_forward(ctx, torch.from_numpy(y).float()[None], mu_f, ls_f, ic.phases, ic.order, ic.all_hyper)
    phase = hc.phase_map(shape[1], shape[2], ic.phases)
    for k, c in enumerate(ic.order):
        for p in range(ic.phases):
            dmu, dls = ic.refine(ic.group_inputs(y, mu_h, ls_h, phase, k, p), k * ic.phases + p)
            sel = phase == p
            np.testing.assert_allclose((mu_h[c][sel] + dmu) / scale, mu_c[0, c].numpy()[sel], atol=0.1)
            np.testing.assert_allclose((ls_h[c][sel] + dls) / scale, ls_c[0, c].numpy()[sel], atol=0.1)


@pytest.mark.parametrize("value", [-1, 1.5, True, "10", 10**6])
def test_bad_refine_z_is_a_config_error(value) -> None:  # type: ignore[no-untyped-def]
    from latentcodec.errors import StageConfigError

    with pytest.raises(StageConfigError, match="refine_z"):
        ANSHyperpriorCoder(refine_z=value)


@pytest.mark.gpu
def test_hyperprior_cuda_encode_cpu_decode_and_back() -> None:
    symbols = latent_like((4, 48, 72), seed=12)
    for dtype in ("float16", "bfloat16", "float32"):
        data = ANSHyperpriorCoder(device="cuda", dtype=dtype).encode(symbols)
        assert np.array_equal(wire_decoder(ANSHyperpriorCoder()).decode(data, symbols.shape), symbols)
    refined = ANSHyperpriorCoder(device="cuda", dtype="float16", refine_z=5).encode(symbols)  # the z search runs on CUDA
    assert np.array_equal(wire_decoder(ANSHyperpriorCoder()).decode(refined, symbols.shape), symbols)
    data = ANSHyperpriorCoder(device="cpu").encode(symbols)
    gpu_decoder = ANSHyperpriorCoder.from_config({**ANSHyperpriorCoder.config_from_wire(ANSHyperpriorCoder().wire_params()), "device": "cuda"})
    assert np.array_equal(gpu_decoder.decode(data, symbols.shape), symbols)


def test_shipped_priors_are_integer_and_record_their_step() -> None:
    from latentcodec.quantizers.uniform import DEFAULT_STEP

    for kind in ("factorized", "hyperprior"):
        p = load_prior(kind, "taesd")
        assert p.meta["step"] == DEFAULT_STEP and p.meta["kind"] == kind
        assert all(np.issubdtype(a.dtype, np.integer) for a in p.arrays.values())
    assert load_prior("context", "gaussian").meta["kind"] == "context"


def test_shipped_priors_are_package_data() -> None:
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"data/priors/*"' in pyproject  # shipped as package data
    # small files: the newest hyperprior is ~900 KB (28 context networks); all eleven ~2.6 MB
    assert sum(p.stat().st_size for p in PRIOR_DIR.glob("*.npz")) < 3_000_000


def test_spatial_later_context_layers_need_a_phase_subgrid() -> None:
    from latentcodec.entropy.hyperprior.context import torch_context

    with pytest.raises(ValueError, match="4 or 7 phases"):
        torch_context(4, 2, hidden=4, kernel=3, kernel2=3)


def test_hyperprior_file_with_missing_context_weights_is_a_model_error(tmp_path: Path) -> None:
    from latentcodec.entropy.priors import save_prior
    from latentcodec.errors import ModelError

    shipped = load_prior("hyperprior", "taesd")
    arrays = {k: v for k, v in shipped.arrays.items() if k != "ctx3_1_w"}
    meta = {k: v for k, v in shipped.meta.items() if k != "kind"}
    path = tmp_path / "broken-hyperprior.npz"
    save_prior(path, "hyperprior", meta, arrays)
    with pytest.raises(ModelError, match="ctx3_1_w"):
        ANSHyperpriorCoder(prior=str(path)).encode(latent_like((4, 8, 8), seed=1))
