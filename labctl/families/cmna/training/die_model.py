"""Differentiable model of a die, built only from what characterisation measured (contract section 1).

Physics (contract sections 1 and 4):

- layer-0 input current ``I = bias_gain * code * dac_lsb + bias_offset`` (the
  measured offset holds the layer-0 somas' leakage: it is the bias sweep's
  intercept);
- a soma with input ``r_i`` drives its synapses with ``a+_i * (max(0, r_i) + leak_i)``
  (positive code) or ``a-_i * (...)`` (negative code), times the unit weight
  ``w_lsb = 1/12`` and the magnitude code; with per-bit mirror gains ``g`` a
  magnitude ``m`` passes ``sum_b bit_b(m) 2^b g_b`` instead of ``m``;
- a soma of layer l > 0 receives the column sum (Kirchhoff);
- output rate ``= c2f_gain * a+ * max(0, r) + dark`` (the measured dark rate
  holds the output soma's leakage).

Gains are normalised per layer (mean a+ = 1, seed 004 section 3.3); the layer
``scale`` turns them back into absolute gains where it was measured (1 where
it is NaN), so that the currents are physical and can be kept in the linear
range. Hidden somas leak the contract's nominal 20 pA.

The torch functions work on :class:`DieDraws` (a leading die dimension, for
variation-aware training); the numpy functions compute the measured die's mean
model for evaluation and the choice of the input scale, and agree with them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from labctl.families.cmna.die_parameters import DieParameters
from labctl.families.cmna.training.variation import DieDraws, MeasuredDistribution
from labctl.families.cmna.weights import WeightSet


def soma_currents_a(params: DieParameters, codes: Sequence[np.ndarray], dac_codes: np.ndarray) -> list[np.ndarray]:
    """Input current of every soma, layer by layer (patterns x neurons, A), for signed codes and DAC codes."""
    with torch.no_grad():
        draws = MeasuredDistribution(params, dtype=torch.float64).mean()
        dac = torch.as_tensor(np.atleast_2d(np.asarray(dac_codes, dtype=np.float64)))
        q = [torch.as_tensor(np.asarray(c, dtype=np.float64)) for c in codes]
        currents = soma_inputs(draws, input_currents_a(draws, dac, params.chip.dac_lsb_a), q)
    return [c[0].numpy() for c in currents]


def rates_from_currents(params: DieParameters, last_layer_a: np.ndarray) -> np.ndarray:
    """C2F rates (Hz) of the output neurons for their input currents (contract section 4)."""
    with torch.no_grad():
        draws = MeasuredDistribution(params, dtype=torch.float64).mean()
        return output_rates_hz(draws, torch.as_tensor(np.asarray(last_layer_a, dtype=np.float64))[None])[0].numpy()


def predict_rates(params: DieParameters, weights: WeightSet, dac_codes: np.ndarray) -> np.ndarray:
    """Software prediction of the output rates (patterns x n_out, Hz) of a programmed die."""
    if tuple(weights.layer_sizes) != tuple(params.chip.layer_sizes):
        raise ValueError(f"weights are for geometry {weights.layer_sizes}, die is {params.chip.layer_sizes}")
    return rates_from_currents(params, soma_currents_a(params, weights.codes, dac_codes)[-1])


def rectify(r: torch.Tensor, leak: float = 0.0) -> torch.Tensor:
    """max(0, r) forward; gradient 1 above zero and ``leak`` below (0: the plain ReLU gradient)."""
    out = torch.relu(r)
    if leak == 0.0:
        return out
    below = leak * (r - out)
    return out + below - below.detach()


def input_currents_a(draws: DieDraws, dac_codes: torch.Tensor, dac_lsb_a: float) -> torch.Tensor:
    """Layer-0 input currents (D, patterns, n0) for DAC codes (patterns, n0)."""
    return draws.bias_gain[:, None, :] * (dac_codes * dac_lsb_a)[None] + draws.bias_offset_a[:, None, :]


def mirror_factors(codes: torch.Tensor, bit_gains: torch.Tensor) -> torch.Tensor:
    """Per synapse (D, rows, cols): the magnitude the mirrors really pass, over the nominal magnitude.

    ``codes`` hold integers (their values are used, no gradient flows through
    this factor); magnitude 0 gives 1 (nothing flows anyway).
    """
    q = codes.detach().round().to(torch.int64)
    magnitude = q.abs()
    bits = ((magnitude[..., None] >> torch.arange(bit_gains.shape[-1])) & 1).to(bit_gains.dtype)
    bits = bits * (2.0 ** torch.arange(bit_gains.shape[-1], dtype=bit_gains.dtype))
    branch = torch.where((q < 0)[None, ..., None], bit_gains[..., 1, :], bit_gains[..., 0, :])
    passed = (branch * bits).sum(dim=-1)
    return torch.where(magnitude > 0, passed / magnitude.clamp(min=1).to(bit_gains.dtype), torch.ones_like(passed))


def effective_matrices(draws: DieDraws, codes: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Signed current gain of every synapse (D, rows, cols): w_lsb * scale * (a+ max(q,0) + a- min(q,0)) * mirrors."""
    out = []
    for m, q in enumerate(codes):
        w = draws.pos[m][:, :, None] * q.clamp(min=0) + draws.neg[m][:, :, None] * q.clamp(max=0)
        if draws.bit_gains is not None:
            w = w * mirror_factors(q, draws.bit_gains[m])
        out.append(w)
    return out


def soma_inputs(draws: DieDraws, r0: torch.Tensor, codes: Sequence[torch.Tensor],
                gradient_leak: float = 0.0) -> list[torch.Tensor]:
    """Soma input currents of all layers (each D, patterns, n_l) for layer-0 currents ``r0``.

    ``gradient_leak`` is the slope of the rectifier's gradient below zero (the
    forward pass is always the die's exact rectifier), so that training can
    bring back a neuron that is off for every input.
    """
    currents = [r0]
    for m, w in enumerate(effective_matrices(draws, codes)):
        drive = rectify(currents[-1], gradient_leak) + draws.leak_a[m][:, None, :]
        currents.append(torch.bmm(drive, w))
    return currents


def output_rates_hz(draws: DieDraws, last_layer_a: torch.Tensor, gradient_leak: float = 0.0) -> torch.Tensor:
    """C2F rates (D, patterns, n_out) for the input currents of the last layer."""
    return draws.rate_gain[:, None, :] * rectify(last_layer_a, gradient_leak) + draws.dark_hz[:, None, :]


class DieModel(torch.nn.Module):
    """The measured die (mean model) as a torch module: rates for DAC codes and signed synapse codes."""

    def __init__(self, params: DieParameters, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.params = params
        self.draws = MeasuredDistribution(params, dtype=dtype).mean()

    def forward(self, dac_codes: torch.Tensor, codes: Sequence[torch.Tensor]) -> torch.Tensor:
        """Output rates (patterns x n_out, Hz)."""
        r0 = input_currents_a(self.draws, dac_codes, self.params.chip.dac_lsb_a)
        return output_rates_hz(self.draws, soma_inputs(self.draws, r0, codes)[-1])[0]
