"""Plugin discovery through entry points, the same path for built-ins and plugins.

Stages (four groups, below) and evaluation metrics (``latentcodec.metrics``) are found
here.  Discovery only reads distribution metadata; a plugin's module is imported the
first time it is loaded.  A plugin that fails to import is reported (name, entry point,
distribution) without affecting the other stages, and a name registered twice is an
error when it is used, never a silent overwrite.
"""

from __future__ import annotations

import importlib.metadata as md
from dataclasses import dataclass
from functools import lru_cache

from .errors import DuplicateStageError, PluginLoadError, UnknownStageError
from .stages import STAGE_BASES, STAGE_KINDS, Stage, StageKind

GROUPS: dict[StageKind, str] = {
    "transform": "latentcodec.transforms",
    "quantizer": "latentcodec.quantizers",
    "entropy_coder": "latentcodec.entropy_coders",
    "refiner": "latentcodec.refiners",
}

KIND_LABELS: dict[StageKind, str] = {
    "transform": "transforms",
    "quantizer": "quantizers",
    "entropy_coder": "entropy coders",
    "refiner": "refiners",
}


@dataclass(frozen=True)
class StageEntry:
    """One discovered entry point, not yet imported (``kind``: a stage kind, or ``metric``)."""

    kind: str
    name: str
    value: str  # "module:attr"
    distribution: str  # "name version", or "?" when unknown

    def describe(self) -> str:
        return f"{self.kind} {self.name!r} (entry point {self.value!r} from {self.distribution})"


def _distribution_label(ep: md.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "?"
    return f"{dist.metadata['Name']} {dist.version}"


@lru_cache(maxsize=None)
def discover(group: str, kind: str) -> tuple[dict[str, StageEntry], dict[str, tuple[StageEntry, ...]]]:
    """``(name -> entry, name -> every claimant of a name registered twice)`` of one group."""
    entries: dict[str, StageEntry] = {}
    duplicates: dict[str, list[StageEntry]] = {}
    for ep in md.entry_points(group=group):
        entry = StageEntry(kind, ep.name, ep.value, _distribution_label(ep))
        seen = entries.get(ep.name)
        if seen is None:
            entries[ep.name] = entry
        elif seen != entry:  # identical rows (the same dist seen twice on sys.path) are fine
            duplicates.setdefault(ep.name, [seen]).append(entry)
    return entries, {k: tuple(v) for k, v in duplicates.items()}


def refresh() -> None:
    """Forget discovered and loaded stages (after installing a plugin at run time)."""
    discover.cache_clear()
    load.cache_clear()


def entries(kind: StageKind) -> dict[str, StageEntry]:
    """Name -> entry for every stage of ``kind``, without importing anything."""
    return dict(discover(GROUPS[kind], kind)[0])


def duplicates(kind: StageKind) -> dict[str, tuple[StageEntry, ...]]:
    """Names registered more than once for ``kind``, with every claimant."""
    return dict(discover(GROUPS[kind], kind)[1])


def import_entry(e: StageEntry) -> object:
    """Import the object an entry point names; any failure is a :class:`PluginLoadError`."""
    module_name, _, attr = e.value.partition(":")
    try:
        import importlib

        obj: object = importlib.import_module(module_name)
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
    except Exception as exc:  # a broken plugin must not take the others down
        raise PluginLoadError(f"cannot load {e.describe()}: {type(exc).__name__}: {exc}") from exc
    return obj


def names(kind: StageKind) -> list[str]:
    return sorted(entries(kind))


def entry(kind: StageKind, name: str) -> StageEntry:
    """The entry for ``name``, or :class:`UnknownStageError` listing the valid names."""
    found = entries(kind)
    if name not in found:
        hint = f" (it may come from a plugin distribution: {known_distribution(kind, name)})" if known_distribution(kind, name) else ""
        raise UnknownStageError(
            f"unknown {kind.replace('_', ' ')} {name!r}{hint}; "
            f"installed: {', '.join(sorted(found)) or '(none)'}"
        )
    clash = duplicates(kind).get(name)
    if clash:
        raise DuplicateStageError(
            f"{kind.replace('_', ' ')} {name!r} is registered more than once: "
            + "; ".join(e.describe() for e in clash)
        )
    return found[name]


@lru_cache(maxsize=None)
def load(kind: StageKind, name: str) -> type[Stage]:
    """Import and validate the stage class registered as ``name``."""
    e = entry(kind, name)
    obj = import_entry(e)
    base = STAGE_BASES[kind]
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise PluginLoadError(f"{e.describe()} is not a subclass of latentcodec.{base.__name__}")
    if getattr(obj, "name", None) != name:
        raise PluginLoadError(f"{e.describe()} declares name {getattr(obj, 'name', None)!r}, not {name!r}")
    version = getattr(obj, "version", None)
    if not isinstance(version, int) or not 0 <= version <= 15:
        raise PluginLoadError(f"{e.describe()} has version {version!r}; it must be an int in 0..15")
    return obj


def create(kind: StageKind, name: str, **config: object) -> Stage:
    """Load ``name`` and build it from ``config``."""
    return load(kind, name).from_config(config)


# Stages that ship in separate distributions, so an error can say what to install.
KNOWN_PLUGIN_DISTRIBUTIONS: dict[tuple[str, str], str] = {
    ("transform", "onnx-vaelight"): "latentcodec-onnx (pip install ./plugins/latentcodec-onnx)",
}


def known_distribution(kind: str, name: str) -> str | None:
    return KNOWN_PLUGIN_DISTRIBUTIONS.get((kind, name))


@dataclass(frozen=True)
class CheckResult:
    entry: StageEntry
    error: str | None  # None: the stage loaded and validated


def check_all() -> list[CheckResult]:
    """Import and validate every discovered stage; never raises for a single plugin."""
    results: list[CheckResult] = []
    for kind in STAGE_KINDS:
        for name, e in sorted(entries(kind).items()):
            try:
                cls = load(kind, name)
                cls.config_keys()
                error = None
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                error = str(exc)
            results.append(CheckResult(e, error))
    return results
