"""``ans-hyperprior``: a learned mean-scale hyperprior whose decoder side is pure integers.

Encoder: a small hyper-analysis network (any device, any precision) maps the symbols
``y`` to a hyper-latent ``z = round(h_a(y))``, coded with per-channel integer tables.
Both sides then run the hyper-synthesis ``h_s(z)`` in *fixed-point integer arithmetic*
(integer weights, integer biases, floor shifts; see :class:`IntHyperSynthesis`), giving
an integer mean ``mu`` and log-scale ``ls`` per symbol in units of ``2**-ACT_BITS``.
They become a table index with integer operations only::

    scale_index = clip((ls - LOG_SCALE_MIN + LOG_SCALE_STEP // 2) // LOG_SCALE_STEP, 0, NUM_SCALES - 1)
    mq = (mu + 2**(ACT_BITS-1-b)) >> (ACT_BITS-b)    # mean in 2**-b symbols (b = mean_bits, 3 in the shipped prior)
    table = 2**b * scale_index + (mq & (2**b - 1));  coded value = y - (mq >> b)

With a context model in the prior file (the shipped one has it), ``mu`` and ``ls`` are
then refined pass by pass from already-decoded symbols, channel by channel and phase by
phase, by small integer networks (:mod:`.context`).

The tables (discretised Gaussians for every scale and mean offset) were turned into
integer frequencies when the prior was exported and ship in the prior file.  The
hyper-analysis output is transmitted, so its float rounding never matters; nothing
the decoder computes depends on float precision, thread count or device.

Modules: :mod:`.coder` (the stage), :mod:`.model` (a prior file unpacked),
:mod:`.synthesis` (hyper-synthesis and table indices), :mod:`.context` (the context
networks and phase layouts), :mod:`.fixed_point` (the exact integer arithmetic),
:mod:`.refine` (the encoder-side search for a cheaper ``z``).
"""

from __future__ import annotations

from .coder import MAX_REFINE_STEPS, ANSHyperpriorCoder
from .model import HyperpriorModel

__all__ = ["MAX_REFINE_STEPS", "ANSHyperpriorCoder", "HyperpriorModel"]
