"""Fuzz harness: ``bitstream.read`` and the decode path of every built-in quantizer and coder.

The property, for any input bytes: reading and decoding (up to the dequantized latent,
:func:`latentcodec.decoding.decode_latent`; no transform or refiner runs, so no model is
needed) either raises a :class:`~latentcodec.errors.LatentCodecError` subclass or returns
a finite float32 latent of the header's shape, the same one every time.  Anything else is
a finding: another exception (``IndexError``, ``ValueError``, ``OverflowError``,
``MemoryError``), a numpy warning (turned into an error here), an input that takes too
long, or one that makes the decoder touch memory out of proportion to its symbol count.

Each input is tried twice: as it is, and with its CRC-32 recomputed (most mutations
break the CRC, and the stage decoders behind it must survive damage as well).

Like any caller, the harness applies the decode-side pixel limit (SPEC 2.6, 16 MP) from
the header, and it skips streams whose latent has more than ``LC_FUZZ_MAX_SYMBOLS``
values (default ``2**18``) to keep the executions fast: the decoders' cost is
proportional to the symbol count, which is what the memory and time checks verify.
Only built-in quantizers and coders are decoded (a plugin installed here is not this
harness's business).

Run (see tests/fuzz/README.md)::

    python tests/fuzz/corpus.py /tmp/lc-corpus        # the generated seed corpus
    python tests/fuzz/fuzz_decode.py -atheris_runs=100000 /tmp/lc-corpus
    python tests/fuzz/fuzz_decode.py crash-...        # replay one input

Without atheris, ``python tests/fuzz/fuzz_decode.py --mutate N DIR`` runs ``N``
deterministic random mutations of the inputs in ``DIR`` (no coverage guidance).
"""

from __future__ import annotations

import os
import sys
import time
import zlib
from pathlib import Path

MAX_PIXELS = 4096 * 4096  # the caller-side limit of decompress (SPEC 2.6)
MAX_SYMBOLS = int(os.environ.get("LC_FUZZ_MAX_SYMBOLS", 1 << 18))
#: Resident memory an input may add: a fixed allowance plus this much per latent value.
RSS_BASE_BYTES = 96 << 20
RSS_BYTES_PER_SYMBOL = 4096
#: CPU time an input may take: a fixed allowance plus this much per latent value
#: (generous: a hang or a superlinear decoder is what this catches; CPU time, not wall
#: time, because the fuzzer runs at low priority on a shared machine).
TIME_BASE_S = 10.0
TIME_PER_SYMBOL_S = 200e-6
#: Address-space limit of the fuzz process (``LC_FUZZ_AS_MB``); a decoder that asks for
#: gigabytes hits it and fails with MemoryError, which is a finding.
AS_LIMIT_MB = int(os.environ.get("LC_FUZZ_AS_MB", 2048))

BUILTIN_QUANTIZERS = frozenset({"uniform", "uint8", "palette"})
BUILTIN_CODERS = frozenset({"ans", "zlib", "ans-binned", "ans-factorized", "ans-hyperprior", "ans-context"})
#: Every module a built-in decode reaches, imported up front (so atheris instruments them).
MODULES = (
    "latentcodec.bitstream",
    "latentcodec.decoding",
    "latentcodec.quantizers.uniform",
    "latentcodec.quantizers.uint8",
    "latentcodec.quantizers.palette",
    "latentcodec.quantizers.codebooks",
    "latentcodec.entropy.ans",
    "latentcodec.entropy.zlib_coder",
    "latentcodec.entropy.binned",
    "latentcodec.entropy.factorized",
    "latentcodec.entropy.hyperprior",
    "latentcodec.entropy.pyramid",
)


class FuzzFinding(AssertionError):
    """The property does not hold for an input (other than by an unexpected exception)."""


def fix_crc(data: bytes) -> bytes:
    """``data`` with its last 4 bytes replaced by the CRC-32 of the rest."""
    if len(data) < 4:
        return data
    return data[:-4] + zlib.crc32(data[:-4]).to_bytes(4, "little")


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux)
        return True
    except OSError:
        return False


_STAGES: dict = {}  # stage record -> the stage built from it (a prior file unpacks once)


def _stage(record):  # type: ignore[no-untyped-def]
    from latentcodec.decoding import stage_from_record

    if record not in _STAGES:
        if len(_STAGES) > 64:  # a learned coder's unpacked prior is ~5 MB
            _STAGES.clear()
        _STAGES[record] = stage_from_record(record)
    return _STAGES[record]


def _decode(stream):  # type: ignore[no-untyped-def]
    """What :func:`~latentcodec.decoding.decode_latent` does, with the stages built once per
    distinct record (building a learned coder unpacks its prior file: the slowest part of
    a small decode).  Every decoded latent is checked against a fresh ``decode_latent``."""
    import numpy as np

    from latentcodec.errors import CorruptStreamError

    quantizer, coder = _stage(stream.stage("quantizer")), _stage(stream.stage("entropy_coder"))
    shape = tuple(quantizer.symbol_shape(stream.latent_shape))
    symbols = coder.decode(stream.payload, shape)
    if tuple(symbols.shape) != shape:
        raise CorruptStreamError("entropy coder returned symbols of the wrong shape")
    return np.asarray(quantizer.dequantize(symbols, stream.side_info), dtype=np.float32), quantizer


def check_stream(data: bytes) -> tuple | None:
    """Read and decode one candidate; None when it is refused with a LatentCodecError or
    skipped by the harness's limits, else ``(shape, latent bytes)``."""
    import numpy as np

    from latentcodec import bitstream
    from latentcodec.errors import LatentCodecError

    try:
        stream = bitstream.read(data)
    except LatentCodecError:
        return None
    if not isinstance(stream, bitstream.Stream):
        raise FuzzFinding(f"read returned {type(stream).__name__}")
    if stream.width * stream.height > MAX_PIXELS:
        return None  # decompress refuses it (ImageTooLargeError) before any decoding
    if stream.stage("quantizer").name not in BUILTIN_QUANTIZERS or stream.stage("entropy_coder").name not in BUILTIN_CODERS:
        return None
    c, h, w = stream.latent_shape
    symbols = c * h * w
    if symbols > MAX_SYMBOLS:
        return None
    measure = _reset_peak_rss()
    rss_before = _status_kb("VmRSS:") if measure else None
    start = time.process_time()
    try:
        latent, _ = _decode(stream)
    except LatentCodecError:
        latent = None
    elapsed = time.process_time() - start
    if elapsed > TIME_BASE_S + TIME_PER_SYMBOL_S * symbols:
        raise FuzzFinding(f"decoding {symbols} symbols took {elapsed:.1f} s of CPU time")
    if rss_before is not None:
        grown = ((_status_kb("VmHWM:") or 0) - rss_before) * 1024
        if grown > RSS_BASE_BYTES + RSS_BYTES_PER_SYMBOL * symbols:
            raise FuzzFinding(f"decoding {symbols} symbols touched {grown >> 20} MiB")
    if latent is None:
        return None
    if not isinstance(latent, np.ndarray) or latent.dtype != np.float32 or latent.ndim != 3 or latent.shape[1:] != (h, w):
        raise FuzzFinding(f"decoded latent is {type(latent).__name__} {getattr(latent, 'dtype', '')} {getattr(latent, 'shape', '')}, expected float32 {(c, h, w)}")
    if latent.shape[0] != c:
        # A palette of another channel count than the header's C: the identity transform
        # refuses it, as every transform refuses a latent of the wrong layout
        # (StageInputError); decode_latent does not check it itself (tests/fuzz/README.md).
        return None
    if not np.isfinite(latent).all():
        raise FuzzFinding("decoded latent is not finite")
    from latentcodec.decoding import decode_latent

    again, _ = decode_latent(bitstream.read(data))  # fresh stages, the library's own path
    if again.dtype != latent.dtype or not np.array_equal(again, latent):
        raise FuzzFinding("decoding the same stream twice gave different latents")
    return latent.shape, latent.tobytes()


def check_input(data: bytes) -> None:
    """The fuzz target: the raw input, then the input with its CRC fixed."""
    check_stream(data)
    fixed = fix_crc(data)
    if fixed != data:
        check_stream(fixed)


def _signature(exc: BaseException) -> str:
    """Type, innermost latentcodec frame and message shape of a finding (digits dropped)."""
    import re
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "latentcodec" in f.filename and "tests/fuzz" not in f.filename]
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "harness"
    return f"{type(exc).__name__} at {where}: {re.sub(r'[0-9]+', 'N', str(exc))[:80]}"


def collecting_target(findings_dir: Path):  # type: ignore[no-untyped-def]
    """A fuzz target that records each distinct finding (one input per signature) in
    ``findings_dir`` and goes on, so one long run lists every defect it meets; it also
    keeps ``progress-PID.json`` there (executions and CPU seconds so far)."""
    import atexit
    import hashlib
    import json

    findings_dir.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    progress = findings_dir / f"progress-{os.getpid()}.json"
    count = [0]
    start = time.monotonic()

    def save() -> None:
        progress.write_text(json.dumps({"executions": count[0], "seconds": round(time.monotonic() - start, 1), "findings": len(seen)}))

    atexit.register(save)

    def target(data: bytes) -> None:
        count[0] += 1
        if count[0] % 5000 == 0:
            save()
        try:
            check_input(bytes(data))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # also a Rust panic in constriction (pyo3's PanicException)
            sig = _signature(exc)
            if sig not in seen:
                seen.add(sig)
                name = hashlib.sha1(sig.encode()).hexdigest()[:12]
                (findings_dir / f"finding-{name}").write_bytes(bytes(data))
                with open(findings_dir / "findings.txt", "a") as f:
                    f.write(f"finding-{name}\t{sig}\n")
                print(f"FINDING finding-{name}: {sig}", flush=True)

    return target


def strict():  # type: ignore[no-untyped-def]
    """A context in which every warning (numpy's included) and every numpy floating-point
    error raises, so that a decoder relying on one is a finding."""
    import contextlib
    import warnings

    import numpy as np

    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("error")
    stack.enter_context(np.errstate(all="raise"))
    return stack


def setup(*, process: bool = True) -> None:
    """Import the decoders and load the shipped priors; for a fuzz process, also make
    warnings errors and limit the address space (``process``)."""
    import importlib

    if process:
        strict().__enter__()  # for the whole process
    if process and AS_LIMIT_MB > 0:
        import resource

        limit = AS_LIMIT_MB << 20
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or hard > limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    for name in MODULES:
        importlib.import_module(name)
    # load the shipped priors and the codebook now, not inside the first timed input
    from latentcodec.entropy.factorized import ANSFactorizedCoder
    from latentcodec.entropy.hyperprior import ANSHyperpriorCoder
    from latentcodec.entropy.pyramid import ANSContextCoder
    from latentcodec.quantizers.codebooks import load_codebook

    ANSFactorizedCoder().tables
    ANSHyperpriorCoder().model
    ANSContextCoder().tables
    load_codebook("taesd-v1", 2)


def _inputs(paths: list[str]) -> list[tuple[str, bytes]]:
    out = []
    for p in map(Path, paths):
        files = sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else [p]
        out += [(str(f), f.read_bytes()) for f in files]
    return out


def mutate(data: bytes, rng) -> bytes:  # type: ignore[no-untyped-def]
    """A random mutation (bit flips, byte values, insertions, deletions, splices, truncation)."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[pos % len(b)] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[pos % len(b)] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op == 2:
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3 and b:
            del b[pos : pos + rng.randint(1, 8)]
        elif op == 4:
            b = b[:pos]
        elif op == 5 and len(b) > 2:
            src = rng.randrange(len(b))
            b[pos:pos] = b[src : src + rng.randint(1, 16)]
        elif op == 6 and b:  # a varint-sized field: bump a multi-byte value
            b[pos % len(b)] = (b[pos % len(b)] + rng.choice((1, -1, 16, 128))) & 0xFF
    return bytes(b)


def run_mutations(seeds: list[bytes], executions: int, seed: int = 0, time_budget_s: float | None = None) -> int:
    """``executions`` deterministic mutations of ``seeds`` through :func:`check_input`
    (stops early at ``time_budget_s``); returns how many ran."""
    import random

    rng = random.Random(seed)
    start = time.monotonic()
    done = 0
    for done in range(1, executions + 1):
        base = seeds[rng.randrange(len(seeds))]
        data = mutate(base, rng)
        try:
            check_input(data)
        except Exception as exc:
            raise FuzzFinding(f"mutation {done} (seed {seed}) of a {len(base)}-byte seed: {type(exc).__name__}: {exc}; input {data.hex()}") from exc
        if time_budget_s is not None and time.monotonic() - start > time_budget_s:
            break
    return done


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    if argv[:1] == ["--mutate"]:
        setup()
        seeds = [d for _, d in _inputs(argv[2:])]
        n = run_mutations(seeds, int(argv[1]))
        print(f"{n} mutated inputs: no finding")
        return 0
    paths = [a for a in argv if not a.startswith("-")]
    if paths and all(Path(p).is_file() for p in paths) and not any(a.startswith("-") for a in argv):
        setup()  # replay: show the traceback of each input
        for name, data in _inputs(paths):
            check_input(data)
            print(f"{name}: ok")
        return 0
    import atheris

    with atheris.instrument_imports(include=["latentcodec"]):
        setup()
    collect = os.environ.get("LC_FUZZ_FINDINGS")
    target = collecting_target(Path(collect)) if collect else (lambda data: check_input(bytes(data)))
    atheris.Setup([sys.argv[0], *argv], target)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
