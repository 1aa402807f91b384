"""What ``latentcodec info`` prints: a stream's chain, sizes, rate and overhead (no model needed)."""

from __future__ import annotations

from typing import Any

from . import bitstream, registry


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
    }
