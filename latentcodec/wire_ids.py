"""Registered wire ids of stages, one byte each in the stream (see bitstream/SPEC.md).

Ids are assigned here, by hand, and never reused or derived from ordering.  A stage
without a registered id is written by name (id 0 followed by the name), which costs a
few bytes more but needs no registration.  Ids 1-63 are for this project, 64-127 for
third-party stages registered through a pull request.
"""

from __future__ import annotations

from .stages import StageKind

WIRE_IDS: dict[StageKind, dict[str, int]] = {
    "transform": {"taesd": 1, "sd-vae": 2, "onnx-vaelight": 64},
    "quantizer": {"uint8": 1, "uniform": 2, "palette": 3},
    "entropy_coder": {
        "ans": 1,
        "zlib": 2,
        "ans-factorized": 3,
        "ans-hyperprior": 4,
        "ans-context": 5,
        "ans-binned": 7,
    },
    "refiner": {"vae": 1, "unet-denoise": 2, "ddim-inversion": 3, "controlnet-canny": 4},
}

#: Ids that were registered once and must never be given to another stage.
RETIRED_IDS: dict[StageKind, dict[int, str]] = {
    "entropy_coder": {6: "palette-zlib (registered, never written by any release)"},
}

NAMES_BY_ID: dict[StageKind, dict[int, str]] = {
    kind: {i: n for n, i in table.items()} for kind, table in WIRE_IDS.items()
}

for _kind, _table in WIRE_IDS.items():  # guard against an editing mistake
    assert len(set(_table.values())) == len(_table), f"duplicate wire id in {_kind}"
    assert all(1 <= i <= 127 for i in _table.values())
    assert not set(_table.values()) & set(RETIRED_IDS.get(_kind, {})), f"retired wire id reused in {_kind}"
