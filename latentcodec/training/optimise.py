"""The optimisation loop of a prior training run, and all the state that continuing it needs.

:class:`Optimisation` holds the networks, Adam, the cosine learning-rate schedule, the
numpy RNG that draws the crops, the torch RNG state that draws ``z``'s training noise,
the step count and the recent per-step bits.  Its :meth:`~Optimisation.state_dict` is
what a checkpoint stores: a run restored from it takes exactly the steps an
uninterrupted run would have taken (on the same device and thread count).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .nets import PriorNets
from .settings import PriorSettings

#: The reported training bits are the mean of this many last steps.
REPORT_STEPS = 100
#: The progress bar's bits are refreshed (as the mean of as many steps) this often.
PROGRESS_STEPS = 50


def random_crops(symbols: list[np.ndarray], size: int, batch: int, rng: np.random.Generator) -> np.ndarray:
    """``batch`` random ``size x size`` crops of random latents, each flipped left-right half the time."""
    out = np.empty((batch, symbols[0].shape[0], size, size), dtype=np.float32)
    for b in range(batch):
        s = symbols[int(rng.integers(len(symbols)))]
        i = int(rng.integers(s.shape[1] - size + 1))
        j = int(rng.integers(s.shape[2] - size + 1))
        crop = s[:, i : i + size, j : j + size]
        if rng.random() < 0.5:
            crop = crop[:, :, ::-1]
        out[b] = crop
    return out


class Optimisation:
    """A run's state at ``step`` of ``settings.steps``; built from ``settings.seed``."""

    def __init__(self, channels: int, settings: PriorSettings, device: torch.device) -> None:
        torch.manual_seed(settings.seed)
        self.settings, self.device = settings, device
        self.rng = np.random.default_rng(settings.seed)
        self.nets = PriorNets(channels, settings).to(device)
        self.opt = torch.optim.Adam(self.nets.trainable(), lr=settings.lr)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, settings.steps, eta_min=1e-4)
        self.step = 0
        self.history: list[torch.Tensor] = []  # per-step (hyper, factorized) bits, on the device: no sync per step

    def train_step(self, symbols: list[np.ndarray]) -> None:
        """One Adam step on a fresh batch of crops."""
        s = self.settings
        y = torch.from_numpy(random_crops(symbols, s.crop, s.batch, self.rng)).to(self.device)
        bits_hyper, bits_fact = self.nets.bits(y)
        loss = bits_hyper + bits_fact
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.sched.step()
        self.step += 1
        self.history.append(torch.stack([bits_hyper.detach(), bits_fact.detach()]))
        del self.history[:-REPORT_STEPS]

    def recent_bits(self, steps: int = REPORT_STEPS) -> tuple[float, float]:
        """Mean ``(hyperprior, factorized)`` bits per symbol of the last ``steps`` steps."""
        h, f = torch.stack(self.history[-steps:]).mean(0).tolist()
        return float(h), float(f)

    def run(self, symbols: list[np.ndarray], bar: Any, on_step: Callable[[Optimisation], None]) -> None:
        """Train to ``settings.steps``, calling ``on_step`` after each step; ``bar`` is a tqdm."""
        for _ in range(self.step, self.settings.steps):
            self.train_step(symbols)
            bar.update()
            if self.step % PROGRESS_STEPS == 0:
                h, f = self.recent_bits(PROGRESS_STEPS)
                bar.set_postfix(hyper=f"{h:.3f}", fact=f"{f:.3f}")
            on_step(self)

    def state_dict(self) -> dict[str, Any]:
        """Everything :meth:`load_state_dict` needs, as tensors and plain values."""
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return {
            "nets": self.nets.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "step": self.step,
            "history": torch.stack(self.history).cpu() if self.history else torch.zeros((0, 2)),
            "rng": {"numpy": self.rng.bit_generator.state, "torch": torch.get_rng_state(), "cuda": cuda},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output (the CUDA RNG only when training on CUDA)."""
        self.nets.load_state_dict(state["nets"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.history = list(state["history"].to(self.device))
        self.rng.bit_generator.state = state["rng"]["numpy"]
        torch.set_rng_state(state["rng"]["torch"])
        if self.device.type == "cuda" and state["rng"]["cuda"] is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
