"""The family-blind training loop: variation-aware gradient descent on a family's device model.

A family's model (:class:`TrainableModel`) is one torch implementation of its
device: a forward pass from input features to class scores for one drawn
device, the variation it samples around what characterisation measured, and
the quantiser onto the device's weight levels (:func:`nearest_level`, with a
straight-through gradient). This loop knows nothing else of the device: every
step averages the loss over a few drawn devices, so the weights that come out
hold on the die that was measured and not only on its mean model; the epoch
whose weights score best on the nominal device is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

EpochReport = Callable[[int, int, float, float], None]
"""``on_epoch(epoch, epochs, loss, training accuracy)``."""


class TrainableModel(Protocol):
    """What the loop needs of a family's device model."""

    def parameters(self) -> Iterable[torch.nn.Parameter]:
        """The latent (continuous) weights and any other learnable circuit values."""

    def forward(self, features: torch.Tensor, device: Any) -> torch.Tensor:
        """Class scores (patterns x classes) of ``device`` for ``features``, with quantised weights."""

    def sample_devices(self, count: int, generator: torch.Generator) -> Sequence[Any]:
        """Devices drawn from the measured distribution (what characterisation could not pin down)."""

    def nominal_device(self) -> Any:
        """The measured device's mean model."""


@dataclass(frozen=True)
class LoopSettings:
    epochs: int = 200
    learning_rate: float = 0.05
    devices_per_step: int = 4
    seed: int = 0


@dataclass(frozen=True)
class LoopResult:
    losses: tuple[float, ...]
    train_accuracies: tuple[float, ...]
    best_epoch: int
    train_accuracy: float


def nearest_level(latent: torch.Tensor, levels: Sequence[float]) -> torch.Tensor:
    """The nearest of the device's weight ``levels`` forward; the identity's gradient backward (STE)."""
    grid = torch.as_tensor(sorted(levels), dtype=latent.dtype)
    index = torch.argmin((latent[..., None] - grid).abs(), dim=-1)
    return latent + (grid[index] - latent).detach()


def accuracy(scores: torch.Tensor, labels: torch.Tensor) -> float:
    return float((scores.argmax(dim=1) == labels).double().mean())


def train_device_model(model: TrainableModel, features: np.ndarray, labels: np.ndarray, settings: LoopSettings,
                       on_epoch: EpochReport | None = None) -> LoopResult:
    """Fit ``model``'s parameters to the training split; leave it at the best epoch's parameters."""
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    x = torch.as_tensor(features, dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.int64)
    params = list(model.parameters())
    optimiser = torch.optim.Adam(params, lr=settings.learning_rate)
    losses, accuracies = [], []
    best: tuple[float, int, list[torch.Tensor]] = (-1.0, 0, [p.detach().clone() for p in params])
    for epoch in range(1, settings.epochs + 1):
        optimiser.zero_grad()
        devices = model.sample_devices(settings.devices_per_step, generator)
        loss = torch.stack([torch.nn.functional.cross_entropy(model.forward(x, d), y) for d in devices]).mean()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            acc = accuracy(model.forward(x, model.nominal_device()), y)
        losses.append(float(loss.detach()))
        accuracies.append(acc)
        if acc > best[0]:
            best = (acc, epoch, [p.detach().clone() for p in params])
        if on_epoch:
            on_epoch(epoch, settings.epochs, losses[-1], acc)
    with torch.no_grad():
        for p, kept in zip(params, best[2]):
            p.copy_(kept)
    return LoopResult(tuple(losses), tuple(accuracies), best[1], best[0])
