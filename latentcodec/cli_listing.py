"""The read-only commands: ``info``, ``stages`` and ``presets``.

None of them imports torch: they read stream headers, entry-point metadata and stage
classes (whose modules load without torch), so they answer at once.
"""

from __future__ import annotations

import argparse
import inspect
import json
from typing import Any

from . import registry

EXIT_ERROR = 1


def cmd_info(args: argparse.Namespace) -> int:
    from .batch import read_input
    from .info import describe

    info = describe(read_input(args.input))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    chain = " -> ".join(f"{s['name']}@{s['version']}" + (f"{s['params']}" if s.get("params") else "") for s in info["chain"])
    rate = info["rate_parameter"]
    print(f"file:      {args.input}")
    print(f"chain:     {chain}")
    print(f"image:     {info['width']}x{info['height']}, latent {'x'.join(map(str, info['latent_shape']))}")
    print(f"bytes:     {info['total_bytes']} (payload {info['payload_bytes']}, side info {info['side_info_bytes']}, overhead {info['overhead_bytes']})")
    print(f"rate:      {info['bpp']:.4f} bpp" + (f", {rate['name']}={rate['value']:g}" if rate["name"] and rate["value"] is not None else ""))
    print(f"weights:   {info['fingerprint']}")
    return 0


def _format_default(value: Any) -> str:
    return "(required)" if value is inspect.Parameter.empty else repr(value)


def cmd_stages(args: argparse.Namespace) -> int:
    from .stages import config_defaults

    failures = 0
    total = 0
    for kind, group in registry.GROUPS.items():
        print(f"{registry.KIND_LABELS[kind]} ({group}):")
        found = registry.entries(kind)
        dups = registry.duplicates(kind)
        if not found:
            print("  (none)")
        for name, e in sorted(found.items()):
            total += 1
            try:
                cls = registry.load(kind, name)
                defaults = config_defaults(cls)
                error = None
            except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, the listing goes on
                error = str(exc)
            status = ("  ok" if error is None else f"  FAILED: {error}") if args.check else ""
            failures += error is not None
            print(f"  {name:<18} {e.distribution:<28} {e.value}{status}")
            if error is None:
                options = ", ".join(f"{k}={_format_default(v)}" for k, v in defaults.items()) or "(none)"
                runtime = sorted(set(defaults) & set(cls.runtime_options))
                print(f"      options: {options}" + (f"  (not in the stream: {', '.join(runtime)})" if runtime else ""))
            elif not args.check:
                print(f"      cannot load: {error}")
            for other in dups.get(name, ())[1:]:
                print(f"  {name:<18} {other.distribution:<28} {other.value}  (duplicate name)")
    if args.check:
        print(f"{total - failures} of {total} stages ok" + (f", {failures} failed" if failures else ""))
        return EXIT_ERROR if failures else 0
    return 0


def preset_rows() -> list[dict[str, Any]]:
    """Every preset with its chain, options and what ``--quality`` 0 and 100 mean for it."""
    from .presets import DEFAULT_PRESET, PRESETS
    from .stages import config_defaults

    rows = []
    for name, p in PRESETS.items():
        row: dict[str, Any] = {
            "name": name,
            "default": name == DEFAULT_PRESET,
            "chain": dict(p.stages),
            "description": p.description,
            "purpose": p.purpose,
            "options": {k: dict(v) for k, v in p.options.items()},
        }
        try:
            cls = registry.load("quantizer", p.stages["quantizer"])
            rp = getattr(cls, "rate_parameter", None)
        except Exception:  # noqa: BLE001 - a preset naming a missing plugin still lists
            rp = None
        if rp is not None:
            default = p.options.get("quantizer", {}).get(rp.name, config_defaults(cls).get(rp.name))
            row["quality"] = {"parameter": rp.name, "at_0": rp.value_for_quality(0), "at_100": rp.value_for_quality(100), "default": default}
        rows.append(row)
    return rows


def cmd_presets(args: argparse.Namespace) -> int:
    rows = preset_rows()
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    for row in rows:
        chain = " -> ".join(row["chain"][k] for k in ("transform", "quantizer", "entropy_coder", "refiner"))
        print(f"{row['name']}{' (default)' if row['default'] else ''}: {chain}")
        print(f"    {row['description']}")
        if row["purpose"]:
            print(f"    for: {row['purpose']}")
        q = row.get("quality")
        if q:
            print(f"    --quality 0..100: {q['parameter']} {q['at_0']:g} .. {q['at_100']:g} (without it: {q['parameter']} {q['default']:g})")
    return 0
