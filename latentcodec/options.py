"""Stage options as users write them: ``key=value`` strings, routed to the stage that takes them."""

from __future__ import annotations

import ast
from typing import Any, Iterable, Mapping

from . import registry
from .errors import StageConfigError
from .stages import StageKind

#: Options that say where and how models run; they go to every stage that accepts them.
RUNTIME_KEYS = ("model", "device", "dtype")

#: Options that name files or hardware of one machine (weights, priors, devices, progress
#: bars).  :meth:`latentcodec.Codec.save_config` leaves them out unless asked, so a saved
#: chain describes the stream it makes, not where this machine keeps its weights.
MACHINE_OPTIONS = frozenset(RUNTIME_KEYS) | {"prior", "refiner_model", "controlnet_model", "prompt_embedding", "quiet"}


def parse_option_value(text: str) -> Any:
    """``--option`` values: Python literals (numbers, booleans, None, lists) or strings."""
    lowered = text.strip().lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered in {"none", "null"}:
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_options(pairs: Iterable[str]) -> dict[str, Any]:
    """``["a=1", "quantizer.step=0.3"]`` -> ``{"a": 1, "quantizer.step": 0.3}``."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise StageConfigError(f"option {pair!r} is not of the form key=value")
        out[key.strip()] = parse_option_value(value)
    return out


def route_options(
    names: Mapping[StageKind, str], options: Mapping[str, Any]
) -> dict[StageKind, dict[str, Any]]:
    """Send each option to the stage that accepts it (``kind.key`` or ``name.key`` is explicit).

    >>> route_options({"transform": "taesd", "quantizer": "uniform", "entropy_coder": "ans", "refiner": "vae"},
    ...               {"step": 0.3, "entropy_coder.table_bits": 10})["quantizer"]
    {'step': 0.3}
    """
    classes = {kind: registry.load(kind, name) for kind, name in names.items()}
    routed: dict[StageKind, dict[str, Any]] = {kind: {} for kind in names}
    for key, value in options.items():
        prefix, dot, bare = key.rpartition(".")
        if dot:
            targets = [k for k in names if prefix in (k, names[k], k.replace("_", "-"))]
            if not targets:
                raise StageConfigError(f"option {key!r}: no stage {prefix!r} in this chain ({', '.join(names.values())})")
        else:
            bare = key
            targets = [k for k, cls in classes.items() if bare in cls.config_keys()]
            if len(targets) > 1 and bare in RUNTIME_KEYS:
                pass  # device/dtype apply to every stage that runs a model
            elif len(targets) > 1:
                raise StageConfigError(
                    f"option {key!r} is ambiguous between {', '.join(names[t] for t in targets)}; "
                    f"write it as STAGE.{key}"
                )
        for kind in targets:
            if bare not in classes[kind].config_keys():
                raise StageConfigError(
                    f"{kind.replace('_', ' ')} {names[kind]!r} has no option {bare!r}; "
                    f"valid: {', '.join(classes[kind].config_keys()) or '(none)'}"
                )
            routed[kind][bare] = value
        if not targets:
            valid = "; ".join(f"{names[k]}: {', '.join(c.config_keys()) or '-'}" for k, c in classes.items())
            raise StageConfigError(f"no stage in this chain takes option {key!r} (valid: {valid})")
    return routed
