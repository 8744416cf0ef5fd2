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

This module is the family's one model of a die: training, replay
(:class:`MomentModel`: the mean with its first-order variance, for a die state
set by latch codes, DAC codes and EXT_IN routing), the live view and
characterisation's planning (:func:`nominal_column_input_a`) all compute with
it. The unit weight ``w_lsb`` is :data:`NOMINAL_W_LSB`, the mirror bits weigh
:data:`MIRROR_BIT_WEIGHTS`, the hidden somas' leakage and the draws come from
:mod:`labctl.families.cmna.training.variation`. The simulator keeps its own
physics on purpose and is not used here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from labctl.families.cmna.die_parameters import NOMINAL_W_LSB, DieParameters
from labctl.families.cmna.training.variation import (
    MAGNITUDE_BITS,
    DieDraws,
    MeasuredDistribution,
    _relative_error,
    layer_scale,
)
from labctl.families.cmna.weights import WeightSet

MIRROR_BIT_WEIGHTS = 2.0 ** np.arange(MAGNITUDE_BITS)
"""Current of each magnitude bit's mirror in units of ``w_lsb`` (W/L 0.5, 1, 2 against the soma's 6)."""

Moments = list[tuple[np.ndarray, np.ndarray]]
"""Per layer: (mean, variance) of every soma's output (patterns x neurons)."""


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


def nominal_column_input_a(codes: np.ndarray, source_output_a: np.ndarray) -> np.ndarray:
    """Input of each column (A) on a nominal die, from its positive connections (negatives only lower it).

    ``codes`` (rows, cols) are signed latch codes, ``source_output_a`` (rows,)
    or (patterns, rows) what each row's soma drives its synapses with (a MON
    reading, or a MON slope for a slope); a row is a source through
    ``code * w_lsb`` with matched mirrors, i.e. the model's column sum
    (:func:`column_currents`) with unit gains.
    """
    q = torch.as_tensor(np.maximum(np.asarray(codes), 0), dtype=torch.float64)[None]
    unit = torch.full((1, q.shape[1]), NOMINAL_W_LSB, dtype=torch.float64)
    source = torch.as_tensor(np.asarray(source_output_a, dtype=np.float64))
    with torch.no_grad():
        out = column_currents(torch.atleast_2d(source)[None], synapse_gains(unit, unit, q))[0]
    return out.numpy().reshape(tuple(source.shape[:-1]) + (q.shape[2],))


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


def _magnitude_bits(codes: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Per synapse the set magnitude bits (..., MAGNITUDE_BITS) of integer codes, 0 or 1."""
    q = codes.detach()
    magnitude = (q.round() if q.is_floating_point() else q).to(torch.int64).abs()
    return ((magnitude[..., None] >> torch.arange(MAGNITUDE_BITS)) & 1).to(dtype)


def mirror_factors(codes: torch.Tensor, bit_gains: torch.Tensor) -> torch.Tensor:
    """Per synapse (D, rows, cols): the magnitude the mirrors really pass, over the nominal magnitude.

    ``codes`` hold integers (their values are used, no gradient flows through
    this factor); magnitude 0 gives 1 (nothing flows anyway).
    """
    q = codes.detach().round().to(torch.int64)
    magnitude = q.abs()
    bits = _magnitude_bits(q, bit_gains.dtype) * torch.as_tensor(MIRROR_BIT_WEIGHTS, dtype=bit_gains.dtype)
    branch = torch.where((q < 0)[None, ..., None], bit_gains[..., 1, :], bit_gains[..., 0, :])
    passed = (branch * bits).sum(dim=-1)
    return torch.where(magnitude > 0, passed / magnitude.clamp(min=1).to(bit_gains.dtype), torch.ones_like(passed))


def synapse_gains(pos: torch.Tensor, neg: torch.Tensor, codes: torch.Tensor,
                  bit_gains: torch.Tensor | None = None) -> torch.Tensor:
    """Signed current gain of every synapse of one matrix (D, rows, cols): ``pos``/``neg`` (D, rows) per
    unit code of each row's positive/negative synapses, times the code, times the mirrors' factor."""
    w = pos[:, :, None] * codes.clamp(min=0) + neg[:, :, None] * codes.clamp(max=0)
    return w if bit_gains is None else w * mirror_factors(codes, bit_gains)


def effective_matrices(draws: DieDraws, codes: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Signed current gain of every synapse (D, rows, cols): w_lsb * scale * (a+ max(q,0) + a- min(q,0)) * mirrors."""
    return [synapse_gains(draws.pos[m], draws.neg[m], q, None if draws.bit_gains is None else draws.bit_gains[m])
            for m, q in enumerate(codes)]


def soma_outputs(draws: DieDraws, currents: torch.Tensor, layer: int, gradient_leak: float = 0.0) -> torch.Tensor:
    """What the somas of ``layer`` drive their synapses with (per unit gain): max(0, r) plus their leakage."""
    return rectify(currents, gradient_leak) + draws.leak_a[layer][:, None, :]


def column_currents(drive: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
    """Input current of every column (D, patterns, cols): the sum of its synapse currents (Kirchhoff)."""
    return torch.bmm(drive, gains)


def soma_inputs(draws: DieDraws, r0: torch.Tensor, codes: Sequence[torch.Tensor],
                gradient_leak: float = 0.0) -> list[torch.Tensor]:
    """Soma input currents of all layers (each D, patterns, n_l) for layer-0 currents ``r0``.

    ``gradient_leak`` is the slope of the rectifier's gradient below zero (the
    forward pass is always the die's exact rectifier), so that training can
    bring back a neuron that is off for every input.
    """
    currents = [r0]
    for m, w in enumerate(effective_matrices(draws, codes)):
        currents.append(column_currents(soma_outputs(draws, currents[-1], m, gradient_leak), w))
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


class MomentModel:
    """The measured die's mean model with its first-order variance, for one die state (numpy in and out).

    The mean is the forward pass above on the measured die (absolute gains,
    matched mirrors, the hidden somas' nominal leakage). The variance is
    propagated layer by layer to first order from what the measurement leaves
    open: every synapse's mirror mismatch (the measured per-bit spread, bits
    weighted :data:`MIRROR_BIT_WEIGHTS`) and every neuron's gain-fit error
    (relative, of a+; it scales both of a source's branches). It is kept
    through the rectifier: near 0 a soma may be on or off.
    """

    def __init__(self, params: DieParameters) -> None:
        self.params = params
        self.chip = params.chip
        dist = MeasuredDistribution(params, dtype=torch.float64)
        self.draws = dist.mean()
        self.spread = dist.synapse_spread
        self.a_plus = [np.asarray(layer.a_plus, np.float64) * layer_scale(layer.scale) for layer in params.layers]
        """Absolute a+ per layer: the gain of a soma's MON copy and of its positive synapses per w_lsb."""
        self.rel_error = [_relative_error(layer.a_plus_std, layer.a_plus) for layer in params.layers]

    def synapses(self, codes: Sequence[np.ndarray]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(mean, variance) of every synapse's transfer (1, rows, cols), per matrix, for signed latch codes."""
        out = []
        for m, c in enumerate(codes):
            q = torch.as_tensor(np.asarray(c, np.float64))
            mean = synapse_gains(self.draws.pos[m], self.draws.neg[m], q)
            unit = torch.where(q < 0, self.draws.neg[m][:, :, None], self.draws.pos[m][:, :, None])
            bits = (_magnitude_bits(q, torch.float64) * torch.as_tensor(MIRROR_BIT_WEIGHTS ** 2)).sum(dim=-1)
            rel = torch.as_tensor(self.rel_error[m])[None, :, None]
            out.append((mean, unit ** 2 * (self.spread ** 2 * bits + (rel * q) ** 2)))
        return out

    def somas(self, synapses: list[tuple[torch.Tensor, torch.Tensor]], dac: np.ndarray,
              ext_channel: int | None = None, ext_a: float = 0.0) -> Moments:
        """(mean, variance) of every soma's output per layer for DAC codes (P, n0) or (n0,) and the
        current forced into EXT_IN on ``ext_channel``."""
        dac = torch.as_tensor(np.atleast_2d(np.asarray(dac, np.float64)))
        r = input_currents_a(self.draws, dac, self.chip.dac_lsb_a)
        if ext_channel is not None:
            r[..., ext_channel] += ext_a
        with torch.no_grad():
            z = soma_outputs(self.draws, r, 0)
            var = torch.zeros_like(z)
            out = [(z, var)]
            for m, (mean, v) in enumerate(synapses):
                r = column_currents(z, mean)
                var = column_currents(z ** 2, v) + column_currents(var, mean ** 2)
                z = soma_outputs(self.draws, r, m + 1)
                out.append((z, var))
        return [(z[0].numpy(), var[0].numpy()) for z, var in out]

    def mon_a(self, somas: Moments, layer: int, neuron: int) -> tuple[float, float]:
        """MON copy a+ * z of one neuron (first pattern) and its model sigma (A)."""
        z, var = somas[layer]
        a, rel = self.a_plus[layer][neuron], self.rel_error[layer][neuron]
        mean = float(a * z[0, neuron])
        return mean, float(np.sqrt(a ** 2 * var[0, neuron] + (rel * mean) ** 2))

    def rates_hz(self, somas: Moments) -> tuple[np.ndarray, np.ndarray]:
        """C2F rates (P, n_out) and their model sigma: C2F gain x a+ x z + dark (contract section 4)."""
        z, var = somas[-1]
        gain = self.draws.rate_gain[0].numpy()
        with torch.no_grad():
            rates = output_rates_hz(self.draws, torch.as_tensor(z)[None])[0].numpy()
        signal = gain * z
        return rates, np.sqrt(gain ** 2 * var + (self.rel_error[-1] * signal) ** 2)
