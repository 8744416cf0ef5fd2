"""What the programmed die computes, measured, fed back into the model: the mirror gains of its synapses.

Per-neuron characterisation cannot separate the mirror gain of each synapse
bit (contract section 1: 2 to 8 %), so the model only knows their spread,
and variation-aware training makes weights that work on any die with that
spread. Once weights are programmed, though, the die's own outputs on the
training inputs (RUN_BATCH: a measurement through the contract, like any
other) tell how the synapses in use really pass current. This module
estimates, for the programmed codes, each synapse's factor ``F`` (the
current its mirrors pass over the nominal, ``sum_b bit_b 2^b g_b / m``) as
the maximum a posteriori value under the measured spread as prior and the
counting noise as likelihood, and turns it into per-bit gains for the next
training (:class:`labctl.families.cmna.training.variation.MeasuredDistribution`): bits are
drawn from their prior conditioned on the measured combination, so a synapse
that keeps its code is known, and one whose code changes is known in part.
Nothing here touches a bench; :mod:`labctl.families.cmna.stuck_bits` does the measuring.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from labctl.families.cmna.die_parameters import DieParameters
from labctl.families.cmna.training.die_model import input_currents_a, output_rates_hz, soma_inputs
from labctl.families.cmna.training.objectives import noise_variance_hz2
from labctl.families.cmna.training.variation import DEFAULT_SYNAPSE_SPREAD, READING_NOISE_FRAC, MAGNITUDE_BITS, MeasuredDistribution
from labctl.families.cmna.weights import WeightSet

FIT_STEPS = 400


@dataclass
class MirrorEstimate:
    """Measured mirror factors of the synapses of one set of programmed codes."""

    codes: list[np.ndarray]
    """The signed codes the latches held when the die was measured."""
    factors: list[np.ndarray]
    """Per matrix (rows, cols): MAP of ``F`` (1 where the code is 0)."""
    spread: float
    """Per-bit prior spread used."""
    chi2_before: float
    chi2_after: float
    """Mean squared normalised residual of the measured rates, without and with the factors (1: noise level)."""

    def bit_priors(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per matrix, for :class:`MeasuredDistribution`: bit-gain means and measured directions."""
        return [self.bit_means_and_directions(m) for m in range(len(self.codes))]

    def bit_means_and_directions(self, matrix: int) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean of every bit gain (rows, cols, 2, 3), and the measured combination's unit direction."""
        q = self.codes[matrix].astype(np.int64)
        magnitude = np.abs(q)
        bits = ((magnitude[..., None] >> np.arange(MAGNITUDE_BITS)) & 1) * 2.0 ** np.arange(MAGNITUDE_BITS)
        c = bits / np.maximum(magnitude, 1)[..., None]  # F = c . g
        cc = (c**2).sum(axis=-1, keepdims=True)
        shift = np.where(cc > 0, c * (self.factors[matrix][..., None] - 1.0) / np.where(cc > 0, cc, 1.0), 0.0)
        branch = (q < 0).astype(np.int64)
        means = np.ones((*q.shape, 2, MAGNITUDE_BITS))
        directions = np.zeros_like(means)
        rows, cols = np.indices(q.shape)
        means[rows, cols, branch] += shift
        unit = np.where(cc > 0, c / np.sqrt(np.where(cc > 0, cc, 1.0)), 0.0)
        directions[rows, cols, branch] = unit
        return means, directions


def fit_mirror_factors(params: DieParameters, held_codes: list[np.ndarray], dac_codes: np.ndarray,
                       rates_hz: np.ndarray, gate_s: float, *, outputs: np.ndarray | None = None,
                       steps: int = FIT_STEPS) -> MirrorEstimate:
    """MAP mirror factors of the synapses in use, from the die's rates for DAC patterns with ``held_codes``.

    ``rates_hz`` (patterns x n_out) were measured at ``gate_s``; ``outputs``
    restricts the fit to some output neurons (default all).
    """
    spread = float(params.synapse_spread) if np.isfinite(params.synapse_spread) else DEFAULT_SYNAPSE_SPREAD
    outputs = np.arange(params.chip.n_outputs) if outputs is None else np.asarray(outputs)
    draws = MeasuredDistribution(params, dtype=torch.float64).mean()
    q = [torch.as_tensor(np.asarray(c, dtype=np.float64)) for c in held_codes]
    r0 = input_currents_a(draws, torch.as_tensor(np.asarray(dac_codes, dtype=np.float64)), params.chip.dac_lsb_a)
    measured = torch.as_tensor(np.asarray(rates_hz, dtype=np.float64))[:, outputs]
    prior = [torch.as_tensor(_factor_prior(c, spread)) for c in held_codes]
    active = [c != 0 for c in q]
    log_f = [torch.zeros_like(c, requires_grad=True) for c in q]

    def rates(factors: list[torch.Tensor]) -> torch.Tensor:
        scaled = [c * f for c, f in zip(q, factors)]
        return output_rates_hz(draws, soma_inputs(draws, r0, scaled)[-1])[0][:, outputs]

    variance = noise_variance_hz2(measured, gate_s, READING_NOISE_FRAC) + 1.0 / gate_s**2
    with torch.no_grad():
        chi2_before = float((((rates([torch.ones_like(c) for c in q]) - measured) ** 2) / variance).mean())
    optimiser = torch.optim.Adam(log_f, lr=0.01)
    for _ in range(steps):
        optimiser.zero_grad()
        fit = ((rates([torch.exp(f) for f in log_f]) - measured) ** 2 / variance).sum() / 2
        penalty = sum(((f / p) ** 2 * a).sum() / 2 for f, p, a in zip(log_f, prior, active))
        (fit + penalty).backward()
        optimiser.step()
    with torch.no_grad():
        factors = [torch.where(a, torch.exp(f), torch.ones_like(f)) for f, a in zip(log_f, active)]
        chi2_after = float((((rates(factors) - measured) ** 2) / variance).mean())
    return MirrorEstimate([np.asarray(c).astype(np.int8) for c in held_codes], [f.numpy() for f in factors], spread,
                          chi2_before, chi2_after)


def _factor_prior(codes: np.ndarray, spread: float) -> np.ndarray:
    """1-sigma relative spread of a synapse's factor for its code: independent bits weighted 1, 2, 4 (1 for 0)."""
    magnitude = np.abs(np.asarray(codes, dtype=np.int64))
    bits = ((magnitude[..., None] >> np.arange(MAGNITUDE_BITS)) & 1) * 2.0 ** np.arange(MAGNITUDE_BITS)
    return np.where(magnitude > 0, spread * np.sqrt((bits**2).sum(axis=-1)) / np.maximum(magnitude, 1), 1.0)


def estimate_from_chip(params: DieParameters, weights: WeightSet, held_codes: list[np.ndarray],
                       features: np.ndarray, rates_hz: np.ndarray, gate_s: float) -> MirrorEstimate:
    """:func:`fit_mirror_factors` for rates measured with ``weights``' encoding of ``features``."""
    return fit_mirror_factors(params, held_codes, weights.encoding.encode(features), rates_hz, gate_s,
                              outputs=weights.encoding.class_outputs)
