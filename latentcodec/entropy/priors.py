"""Prior files (the learned coders' decoding data) and the integer-table ANS machinery they share.

A prior file is a pickle-free ``.npz`` of integer arrays plus a JSON ``meta`` member.
Shipped prior files are **append-only**: a retrained prior is a new file beside the old
ones, never a replacement, so every stream ever written keeps decoding.  A stream names
its prior by a 4-byte *identity*, and the decoder looks that identity up among every
shipped file and every file in the folders on ``$LATENTCODEC_PRIORS``:

* stage version 2 (written today): the first 4 bytes of the **canonical digest**, a
  SHA-256 over the arrays' names, dtypes, shapes and bytes (:func:`canonical_digest`),
  independent of how the archive happens to be zipped;
* stage version 1 (older streams): the first 4 bytes of SHA-256 of the file's bytes.

A decoder without a matching file refuses the stream with :class:`PriorMismatchError`;
it never decodes with another model.  Shipped files are named
``NAME-KIND-<canonical 8 hex>.npz``; ``names.json`` says which file a name (``taesd``)
means when *encoding*, and the frozen list in ``tests/test_priors.py`` pins every file
ever shipped.

Table sets: ``T`` integer frequency tables (``freqs[t, :n[t]]`` summing to
``2**TABLE_BITS``), each covering the values ``lo[t] .. lo[t] + n[t] - 2``; the last
entry is an escape whose value follows as two 16-bit uniform words.  Symbols are
grouped by table and each group is coded with one constriction ``Categorical`` made of
the exact dyadic probabilities ``freq / 2**TABLE_BITS``: no Python loop per symbol, and
nothing a decoder computes depends on floating-point rounding.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping

import numpy as np

from ..errors import CorruptStreamError, ModelError, PriorMismatchError, StageConfigError
from ..stages import EntropyCoder
from .rans import ReverseEncoder, categorical, uniform
from .tables import pmf_to_freqs, unzigzag_array, zigzag_array

TABLE_BITS = 16
PRIOR_DIR = Path(__file__).resolve().parents[1] / "data" / "priors"
#: Which shipped file each prior name means for *encoding* (decoding goes by identity).
NAMES_FILE = PRIOR_DIR / "names.json"
#: Extra folders (``os.pathsep``-separated) searched for priors, e.g. your own training runs.
PRIOR_PATH_ENV = "LATENTCODEC_PRIORS"
HASH_BYTES = 4
#: How a stream names its prior, by stage version (see the module docstring).
Identity = Literal["canonical", "file"]
IDENTITY_BY_VERSION: dict[int, Identity] = {1: "file", 2: "canonical"}


# --- files -----------------------------------------------------------------------
@dataclass(frozen=True)
class Prior:
    """A loaded prior file: its arrays, its metadata and both its identities."""

    path: Path
    kind: str
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]
    #: First 4 bytes of the canonical digest (stage version 2 identity).
    digest: bytes
    #: First 4 bytes of SHA-256 of the file's bytes (stage version 1 identity).
    file_digest: bytes

    def __getitem__(self, key: str) -> np.ndarray:
        try:
            return self.arrays[key]
        except KeyError:
            raise ModelError(f"prior {self.path.name} lacks array {key!r}") from None

    def identity(self, kind: Identity) -> bytes:
        return self.digest if kind == "canonical" else self.file_digest


def content_hash(data: bytes) -> bytes:
    """The stage-version-1 identity of a prior file's bytes."""
    return hashlib.sha256(data).digest()[:HASH_BYTES]


def canonical_digest(arrays: Mapping[str, np.ndarray]) -> bytes:
    """SHA-256 over the members in ascending name order (``meta`` as its UTF-8 JSON bytes).

    Per member: ``u32 len(name) | name | u8 len(dtype) | dtype ('<' for multi-byte) |
    u8 ndim | ndim x u64 dims | u64 nbytes | C-order little-endian data`` (SPEC 7.3).

    >>> import numpy as np
    >>> a = canonical_digest({"x": np.arange(3, dtype="<i4")})
    >>> assert a == canonical_digest({"x": np.arange(3, dtype=">i4")})  # byte order does not matter
    >>> assert a != canonical_digest({"x": np.arange(3, dtype="<i8")})  # the dtype does
    """
    h = hashlib.sha256()
    for name in sorted(arrays, key=lambda n: n.encode("utf-8")):
        a = np.ascontiguousarray(arrays[name])
        if a.dtype.byteorder == ">":
            a = a.astype(a.dtype.newbyteorder("<"))
        dtype = a.dtype.str.encode("ascii")
        raw = name.encode("utf-8")
        h.update(struct.pack("<I", len(raw)) + raw + bytes([len(dtype)]) + dtype + bytes([a.ndim]))
        h.update(b"".join(struct.pack("<Q", d) for d in a.shape) + struct.pack("<Q", a.nbytes))
        h.update(a.tobytes())
    return h.digest()


def _members(kind: str, meta: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    for key, a in arrays.items():
        if not np.issubdtype(np.asarray(a).dtype, np.integer):
            raise ValueError(f"prior array {key!r} must be integer, got {np.asarray(a).dtype}")
    meta = {**meta, "kind": kind}
    members = {"meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)}
    members.update({k: np.ascontiguousarray(v) for k, v in sorted(arrays.items())})
    return members


def save_prior(path: str | Path, kind: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """Write a prior file (integer arrays only) and return its canonical identity (4 bytes)."""
    import zipfile

    members = _members(kind, meta, arrays)
    # A zip with fixed timestamps, so the same tables always give the same bytes.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, a in members.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, a, allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, member.getvalue())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)
    return canonical_digest(members)[:HASH_BYTES]


def _load(path: str | Path) -> Prior:
    p = Path(path).resolve()
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ModelError(f"no such prior file: {p}") from None
    return _load_cached(str(p), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=64)
def _load_cached(path: str, mtime_ns: int, size: int) -> Prior:
    p = Path(path)
    try:
        data = p.read_bytes()
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(arrays["meta"].tobytes().decode())
    except Exception as exc:  # zip, npy or JSON damage
        raise ModelError(f"cannot read prior file {p}: {type(exc).__name__}: {exc}") from exc
    digest = canonical_digest(arrays)[:HASH_BYTES]
    arrays.pop("meta")
    return Prior(p, str(meta.get("kind", "")), meta, arrays, digest, content_hash(data))


def search_dirs() -> list[Path]:
    """The shipped folder, then every folder on ``$LATENTCODEC_PRIORS``."""
    extra = [Path(d) for d in os.environ.get(PRIOR_PATH_ENV, "").split(os.pathsep) if d]
    return [PRIOR_DIR, *extra]


def installed_priors(kind: str) -> list[Prior]:
    """Every readable prior file of ``kind`` in :func:`search_dirs` (unreadable files are skipped)."""
    found: list[Prior] = []
    for d in search_dirs():
        for f in sorted(d.glob("*.npz")) if d.is_dir() else []:
            try:
                loaded = _load(f)
            except ModelError:
                continue
            if loaded.kind == kind:
                found.append(loaded)
    return found


def shipped_names(kind: str) -> dict[str, str]:
    """Prior name -> shipped file name, for encoding (``names.json``)."""
    try:
        names = json.loads(NAMES_FILE.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {NAMES_FILE}: {exc}") from exc
    return dict(names.get(kind, {}))


def find_prior(kind: str, identity: bytes, how: Identity = "canonical") -> Prior:
    """The installed prior of ``kind`` whose ``how`` identity is ``identity``, or a refusal."""
    candidates = installed_priors(kind)
    matches = [p for p in candidates if p.identity(how) == identity]
    if len({m.digest for m in matches}) > 1:  # two different files share 4 bytes of identity
        raise PriorMismatchError(
            f"{kind} prior #{identity.hex()} is ambiguous: {', '.join(str(m.path) for m in matches)} all match; "
            f"remove the one that did not make this stream from ${PRIOR_PATH_ENV}"
        )
    if matches:
        return matches[0]
    have = ", ".join(f"{p.path.name} (#{p.identity(how).hex()})" for p in candidates) or "none"
    version = next(v for v, i in IDENTITY_BY_VERSION.items() if i == how)
    raise PriorMismatchError(
        f"stream was coded with {kind} prior #{identity.hex()} (identity of stage version {version}), which is "
        f"not installed (installed: {have}); add the folder that holds it to ${PRIOR_PATH_ENV}, or decode with "
        "the latentcodec installation that wrote it"
    )


def load_prior(kind: str, prior: str) -> Prior:
    """Load ``prior``: a shipped name (``taesd``), a file path, or an identity from a stream
    (``#hex``: canonical, stage version 2; ``#v1:hex``: file hash, stage version 1)."""
    if prior.startswith("#"):
        how: Identity = "canonical"
        ref = prior[1:]
        if ref.startswith("v1:"):
            how, ref = "file", ref[3:]
        try:
            want = bytes.fromhex(ref)
        except ValueError:
            raise StageConfigError(f"bad prior identity {prior!r}") from None
        return find_prior(kind, want, how)
    path = Path(prior)
    if prior.endswith(".npz") or path.is_file():
        loaded = _load(path)
    else:
        names = shipped_names(kind)
        if prior not in names:
            raise StageConfigError(f"no shipped {kind} prior {prior!r}; shipped: {', '.join(sorted(names)) or 'none'}")
        loaded = _load(PRIOR_DIR / names[prior])
    if loaded.kind != kind:
        raise ModelError(f"{loaded.path.name} is a {loaded.kind or 'unknown'} prior, not a {kind} prior")
    return loaded


def prior_from_wire(kind: str, params: bytes, version: int = 2) -> str:
    """The ``prior`` config value for a stream's wire params (resolved lazily)."""
    if len(params) != HASH_BYTES:
        raise CorruptStreamError(f"{kind}: expected a {HASH_BYTES}-byte prior hash in the stream")
    if IDENTITY_BY_VERSION.get(version) == "file":
        return "#v1:" + params.hex()
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

    @classmethod
    def config_from_record(cls, params: bytes, version: int) -> dict[str, Any]:
        return {"prior": prior_from_wire(cls.name, params, version)}
