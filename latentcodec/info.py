"""What ``latentcodec info`` prints: a stream's chain, sizes, rate and overhead (no model needed)."""

from __future__ import annotations

from typing import Any

from . import bitstream, registry
from .bitstream import Stream


def stream_rate(stream: Stream) -> tuple[str | None, Any]:
    """The quantizer's rate parameter and the value a stream was made with, e.g.
    ``("step", 0.5)``; ``(None, None)`` when the quantizer declares none or is not installed."""
    record = stream.stage("quantizer")
    try:
        cls = registry.load(record.kind, record.name)
        config = cls.config_from_record(record.params, record.version)
    except Exception:  # noqa: BLE001 - a missing plugin only hides the value
        return None, None
    p = getattr(cls, "rate_parameter", None)
    return (p.name, config.get(p.name)) if p is not None else (None, None)


def describe(data: bytes) -> dict[str, Any]:
    """What ``latentcodec info`` prints: chain, sizes, rate and overhead."""
    stream = bitstream.read(data)
    chain = []
    for record in stream.chain:
        item: dict[str, Any] = {"kind": record.kind, "name": record.name, "version": record.version}
        try:
            cls = registry.load(record.kind, record.name)
            item["params"] = cls.config_from_record(record.params, record.version)
        except Exception:  # noqa: BLE001 - info works even without the plugin installed
            item["params_hex"] = record.params.hex()
        chain.append(item)
    pixels = stream.width * stream.height
    return {
        "format_version": stream.version,
        "width": stream.width,
        "height": stream.height,
        "latent_shape": list(stream.latent_shape),
        "chain": chain,
        "fingerprint": stream.fingerprint.hex(),
        "total_bytes": stream.total_bytes,
        "side_info_bytes": len(stream.side_info),
        "payload_bytes": len(stream.payload),
        "overhead_bytes": stream.overhead_bytes,
        "bpp": 8.0 * stream.total_bytes / pixels,
        "rate_parameter": dict(zip(("name", "value"), stream_rate(stream), strict=True)),
    }
