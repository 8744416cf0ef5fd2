"""Losses and the robustness score: classification margins counted in units of the die's own noise.

On the die, a class wins when its C2F counts in one gate exceed the others'
(contract section 4: rates are counts over the gate). Counts are Poisson, and
every reading carries up to 1 % relative noise (contract section 1), so two
outputs at rates r1 > r2 swap with probability about ``Phi(-z)``,

    z = (r1 - r2) / sqrt((r1 + r2) / gate + nf^2 (r1^2 + r2^2)).

A margin measured in these units is what protects a sample on the die; a
margin in relative rate units would not see that a winner at 20 kHz is far
more fragile at a 20 ms gate than one at 150 kHz. The ``"margin"`` loss asks
every training sample for ``margin_sigmas`` of such a margin (a soft hinge
over all competing classes); averaged over sampled dies
(:mod:`labctl.families.cmna.training.variation`) it also asks for a margin that survives
synapse mismatch. ``"mse"`` (the paper's) and ``"ce"`` work on scale-free
normalised rates and ignore the noise.
"""

from __future__ import annotations

import math

import torch

LOSSES = ("margin", "mse", "ce")
DEFAULT_MARGIN_SIGMAS = 4.0


def noise_variance_hz2(rates_hz: torch.Tensor, gate_s: float, noise_frac: float) -> torch.Tensor:
    """Variance of one rate reading (Hz^2): Poisson counts over the gate plus relative reading noise."""
    r = rates_hz.clamp(min=0.0)
    return r / gate_s + (noise_frac * r) ** 2


def z_margins(rates_hz: torch.Tensor, labels: torch.Tensor, gate_s: float, noise_frac: float) -> torch.Tensor:
    """(..., patterns, classes): margin of the true class over each class in noise sigmas (+inf on itself)."""
    true = rates_hz.gather(-1, labels.expand(*rates_hz.shape[:-1])[..., None])
    var = noise_variance_hz2(rates_hz, gate_s, noise_frac)
    true_var = var.gather(-1, labels.expand(*var.shape[:-1])[..., None])
    z = (true - rates_hz) / torch.sqrt(true_var + var + 1.0 / gate_s**2)
    own = torch.nn.functional.one_hot(labels, rates_hz.shape[-1]).to(torch.bool)
    return z.masked_fill(own, math.inf)


def margin_loss(rates_hz: torch.Tensor, labels: torch.Tensor, gate_s: float, noise_frac: float,
                margin_sigmas: float = DEFAULT_MARGIN_SIGMAS) -> torch.Tensor:
    """Mean over dies and patterns of log(1 + sum_c exp(margin - z_c)): a soft hinge at ``margin_sigmas``."""
    z = z_margins(rates_hz, labels, gate_s, noise_frac)
    shortfall = (margin_sigmas - z).masked_fill(torch.isinf(z), -math.inf)
    return torch.nn.functional.softplus(torch.logsumexp(shortfall, dim=-1)).mean()


def scale_free_loss(name: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The paper's MSE against one-hot targets, or cross-entropy, on normalised rates (D, patterns, classes)."""
    flat, y = logits.reshape(-1, logits.shape[-1]), labels.expand(*logits.shape[:-1]).reshape(-1)
    if name == "ce":
        return torch.nn.functional.cross_entropy(flat, y)
    one_hot = torch.eye(logits.shape[-1], dtype=logits.dtype)
    return ((flat - one_hot[y]) ** 2).sum(dim=1).mean()


def error_probability(rates_hz: torch.Tensor, labels: torch.Tensor, gate_s: float, noise_frac: float) -> torch.Tensor:
    """(..., patterns): probability that one on-chip reading misclassifies (union bound over classes, <= 1)."""
    z = z_margins(rates_hz, labels, gate_s, noise_frac)
    phi = 0.5 * torch.erfc(z / math.sqrt(2.0))
    return phi.sum(dim=-1).clamp(max=1.0)
