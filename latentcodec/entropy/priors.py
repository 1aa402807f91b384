"""Shipped prior files and the integer-table ANS machinery the learned coders share.

A prior file is an uncompressed-pickle-free ``.npz`` of integer arrays plus a JSON
``meta`` string.  Its identity is a short content hash (the first 4 bytes of the
SHA-256 of the file), carried in the stream, so a decoder refuses a stream made with
another version of the model instead of silently decoding garbage.

Table sets: ``T`` integer frequency tables (``freqs[t, :n[t]]`` summing to
``2**TABLE_BITS``), each covering the values ``lo[t] .. lo[t] + n[t] - 2``; the last
entry is an escape whose value follows as two 16-bit uniform words.  Symbols are
grouped by table and each group is coded with one constriction ``Categorical`` made of
the exact dyadic probabilities ``freq / 2**TABLE_BITS``: no Python loop per symbol, and
nothing a decoder computes depends on floating-point rounding.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import CorruptStreamError, ModelError, PriorMismatchError, StageConfigError
from ..stages import EntropyCoder
from .rans import ReverseEncoder, categorical, uniform
from .tables import pmf_to_freqs, unzigzag_array, zigzag_array

TABLE_BITS = 16
PRIOR_DIR = Path(__file__).resolve().parents[1] / "data" / "priors"
#: Extra folders (``os.pathsep``-separated) searched for priors, e.g. your own training runs.
PRIOR_PATH_ENV = "LATENTCODEC_PRIORS"
HASH_BYTES = 4


# --- files -----------------------------------------------------------------------
@dataclass(frozen=True)
class Prior:
    """A loaded prior file: its arrays, its metadata and its content hash."""

    path: Path
    kind: str
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]
    digest: bytes

    def __getitem__(self, key: str) -> np.ndarray:
        try:
            return self.arrays[key]
        except KeyError:
            raise ModelError(f"prior {self.path.name} lacks array {key!r}") from None


def content_hash(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:HASH_BYTES]


def save_prior(path: str | Path, kind: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """Write a prior file (integer arrays only) and return its content hash."""
    import io
    import zipfile

    for key, a in arrays.items():
        if not np.issubdtype(np.asarray(a).dtype, np.integer):
            raise ValueError(f"prior array {key!r} must be integer, got {np.asarray(a).dtype}")
    meta = {**meta, "kind": kind}
    # A zip with fixed timestamps, so the same tables always give the same hash.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        entries = {"meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)}
        entries.update({k: np.ascontiguousarray(v) for k, v in sorted(arrays.items())})
        for key, a in entries.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, a, allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, member.getvalue())
    data = buf.getvalue()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(data)
    return content_hash(data)


@lru_cache(maxsize=32)
def _load(path: str) -> Prior:
    p = Path(path)
    try:
        data = p.read_bytes()
        import io

        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except FileNotFoundError:
        raise ModelError(f"no such prior file: {p}") from None
    except Exception as exc:  # zip, npy or JSON damage
        raise ModelError(f"cannot read prior file {p}: {type(exc).__name__}: {exc}") from exc
    return Prior(p, str(meta.get("kind", "")), meta, arrays, content_hash(data))


def search_dirs() -> list[Path]:
    extra = [Path(d) for d in os.environ.get(PRIOR_PATH_ENV, "").split(os.pathsep) if d]
    return [PRIOR_DIR, *extra]


def load_prior(kind: str, prior: str) -> Prior:
    """Load ``prior``: a shipped name (``taesd``), a ``#hash`` from a stream, or a file path.

    Shipped priors of kind ``K`` live in ``latentcodec/data/priors/NAME-K.npz``.
    """
    if prior.startswith("#"):
        want = bytes.fromhex(prior[1:])
        candidates = [f for d in search_dirs() if d.is_dir() for f in sorted(d.glob(f"*-{kind}.npz"))]
        for f in candidates:
            loaded = _load(str(f))
            if loaded.digest == want:
                return loaded
        have = ", ".join(f"{f.name} (#{_load(str(f)).digest.hex()})" for f in candidates) or "none"
        raise PriorMismatchError(
            f"stream was coded with {kind} prior #{want.hex()}, which is not installed "
            f"(installed: {have}); add its folder to ${PRIOR_PATH_ENV} or use the latentcodec version that made it"
        )
    path = Path(prior)
    if prior.endswith(".npz") or path.is_file():
        loaded = _load(str(path.resolve()))
    else:
        f = PRIOR_DIR / f"{prior}-{kind}.npz"
        if not f.exists():
            shipped = sorted(x.name[: -len(f"-{kind}.npz")] for x in PRIOR_DIR.glob(f"*-{kind}.npz"))
            raise StageConfigError(f"no shipped {kind} prior {prior!r}; shipped: {', '.join(shipped) or 'none'}")
        loaded = _load(str(f))
    if loaded.kind != kind:
        raise ModelError(f"{loaded.path.name} is a {loaded.kind or 'unknown'} prior, not a {kind} prior")
    return loaded


def prior_from_wire(kind: str, params: bytes) -> str:
    """The ``prior`` config value for a stream's wire params (resolved lazily)."""
    if len(params) != HASH_BYTES:
        raise CorruptStreamError(f"{kind}: expected a {HASH_BYTES}-byte prior hash in the stream")
    return "#" + params.hex()


# --- integer tables ----------------------------------------------------------------
@dataclass(frozen=True)
class TableSet:
    """``freqs (T, K)`` zero-padded, ``lo (T,)`` first value, ``n (T,)`` entries incl. escape."""

    freqs: np.ndarray
    lo: np.ndarray
    n: np.ndarray
    bits: int = TABLE_BITS

    @classmethod
    def from_prior(cls, prior: Prior, prefix: str) -> "TableSet":
        t = cls(prior[f"{prefix}_freqs"].astype(np.int64), prior[f"{prefix}_lo"].astype(np.int64), prior[f"{prefix}_n"].astype(np.int64), int(prior.meta.get("table_bits", TABLE_BITS)))
        sums = np.array([t.freqs[i, : t.n[i]].sum() for i in range(len(t.n))])
        if (sums != (1 << t.bits)).any() or (t.n < 2).any():
            raise ModelError(f"{prior.path.name}: {prefix} tables are not normalised")
        return t

    @classmethod
    def build(cls, pmfs: list[np.ndarray], los: list[int], bits: int = TABLE_BITS) -> "TableSet":
        width = max(len(p) for p in pmfs)
        freqs = np.zeros((len(pmfs), width), dtype=np.int64)
        for i, p in enumerate(pmfs):
            freqs[i, : len(p)] = pmf_to_freqs(p, bits)
        return cls(freqs, np.asarray(los, dtype=np.int64), np.array([len(p) for p in pmfs], dtype=np.int64), bits)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        dtype = np.uint16 if self.freqs.max() < 65536 else np.uint32
        return {f"{prefix}_freqs": self.freqs.astype(dtype), f"{prefix}_lo": self.lo.astype(np.int32), f"{prefix}_n": self.n.astype(np.int32)}


def _indices(values: np.ndarray, table: np.ndarray, ts: TableSet) -> tuple[np.ndarray, np.ndarray]:
    """Table entry per symbol, and the mask of escaped symbols."""
    idx = values.astype(np.int64) - ts.lo[table]
    esc = (idx < 0) | (idx >= ts.n[table] - 1)
    idx[esc] = ts.n[table][esc] - 1
    return idx, esc


def ideal_bits(values: np.ndarray, table: np.ndarray, ts: TableSet) -> float:
    """Cross-entropy of the values under their tables, escapes included (the model's ideal)."""
    idx, esc = _indices(values.ravel(), table.ravel(), ts)
    f = ts.freqs[table.ravel(), idx].astype(np.float64)
    return float(np.sum(ts.bits - np.log2(f)) + 32 * int(esc.sum()))


def encode_parts(parts: list[tuple[np.ndarray, np.ndarray, TableSet]]) -> bytes:
    """ANS words of ``(values, table_ids, tables)`` parts; :class:`PartDecoder` pops them in order.

    Inside a part the symbols are grouped by table id (ascending), then the part's escape
    words follow, so a decoder has every value of a part before it derives the next
    part's contexts.
    """
    encoder = ReverseEncoder()
    for values, table, ts in parts:
        values, table = values.ravel(), table.ravel()
        idx, esc = _indices(values, table, ts)
        order = np.argsort(table, kind="stable")
        uniq, starts = np.unique(table[order], return_index=True)
        bounds = list(starts) + [len(order)]
        for k, t in enumerate(uniq.tolist()):
            encoder.add(idx[order[bounds[k] : bounds[k + 1]]], categorical(ts.freqs[t, : ts.n[t]], ts.bits))
        words = zigzag_array(values[esc])
        if words.size:
            if (words >= (1 << 32)).any():
                raise ValueError("symbol too large to escape")
            encoder.add(np.stack([(words >> 16) & 0xFFFF, words & 0xFFFF], axis=1).ravel(), uniform(1 << 16))
    return encoder.finish()


class PartDecoder:
    """Pops the parts :func:`encode_parts` coded, in order; :meth:`finish` checks the end."""

    def __init__(self, decoder) -> None:  # type: ignore[no-untyped-def]
        self.decoder = decoder

    def part(self, table: np.ndarray, ts: TableSet) -> np.ndarray:
        """The int64 values coded with these table ids (flattened)."""
        table = table.ravel()
        order = np.argsort(table, kind="stable")
        uniq, starts, counts = np.unique(table[order], return_index=True, return_counts=True)
        idx = np.empty(len(table), dtype=np.int64)
        try:
            for t, s, c in zip(uniq.tolist(), starts.tolist(), counts.tolist()):
                idx[order[s : s + c]] = self.decoder.decode(categorical(ts.freqs[t, : ts.n[t]], ts.bits), c)
            values = idx + ts.lo[table]
            esc = idx == ts.n[table] - 1
            k = int(esc.sum())
            if k:
                pairs = self.decoder.decode(uniform(1 << 16), 2 * k).astype(np.int64)
                values[esc] = unzigzag_array((pairs[0::2] << 16) | pairs[1::2])
        except Exception as exc:
            raise CorruptStreamError(f"entropy payload cannot be decoded ({exc})") from exc
        if k and np.abs(values[esc]).max() > (1 << 30):
            raise CorruptStreamError("escaped symbol out of range")
        return values

    def finish(self) -> None:
        if not self.decoder.is_empty():
            raise CorruptStreamError("entropy payload has data left over after the last symbol")


class PriorTableCoder(EntropyCoder):
    """Base of coders driven by one shipped prior file (``prior``), named in the stream by hash.

    Where the file is found is a runtime choice; what travels is its content hash, so a
    decoder with another version of the model refuses the stream.  Subclasses set
    :attr:`prior_kind` and read what they need from :attr:`prior_file` (by default the
    ``y`` table set, :attr:`tables`).
    """

    #: ``load_prior`` kind of the file this coder reads (``"factorized"``, ``"context"``, ...).
    prior_kind: ClassVar[str]
    runtime_options: ClassVar[frozenset[str]] = frozenset({"prior"})

    def __init__(self, prior: str) -> None:
        if not isinstance(prior, str) or not prior:
            raise StageConfigError(f"{self.name}: prior must be a name or path, got {prior!r}")
        self.prior = prior
        self._prior_file: Prior | None = None
        self._tables: TableSet | None = None

    @property
    def prior_file(self) -> Prior:
        """The loaded prior file (read once)."""
        if self._prior_file is None:
            self._prior_file = load_prior(self.prior_kind, self.prior)
        return self._prior_file

    @property
    def tables(self) -> TableSet:
        """The prior's ``y`` integer tables."""
        if self._tables is None:
            self._tables = TableSet.from_prior(self.prior_file, "y")
        return self._tables

    def wire_params(self) -> bytes:
        return self.prior_file.digest

    @classmethod
    def config_from_wire(cls, params: bytes) -> dict[str, Any]:
        return {"prior": prior_from_wire(cls.name, params)}
