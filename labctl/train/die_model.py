"""Differentiable model of one die, built only from its :class:`DieParameters` (contract section 1).

Physics (contract section 1 and clarifications, section 4):

- layer-0 input current ``I = bias_gain * code * dac_lsb + bias_offset``;
- a soma with input ``r_i`` drives its synapses with ``a+_i * max(0, r_i)``
  (positive code) or ``a-_i * max(0, r_i)`` (negative code), times the unit
  weight ``w_lsb = 1/12`` and the magnitude code: the effective matrix is
  ``a+[:, None] * max(q, 0) + a-[:, None] * min(q, 0)``;
- a soma of layer l > 0 receives the column sum (Kirchhoff);
- output rate ``= c2f_gain * a+ * max(0, r) + dark``.

Gains are normalised per layer (mean a+ = 1, seed 004 section 3.3); the layer
``scale`` turns them back into absolute gains where it was measured (1 where
it is NaN), so that the currents are physical and can be kept in the linear
range. Training uses :class:`DieModel` (torch, with gradients); evaluation and
the choice of the input scale use the numpy functions, which compute the same
thing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from labctl.die_parameters import NOMINAL_W_LSB, DieParameters, LayerGains
from labctl.weights import WeightSet


def layer_scale(gains: LayerGains) -> float:
    """Absolute gain factor of a layer: the measured scale, or 1 where it is unknown."""
    return float(gains.scale) if np.isfinite(gains.scale) else 1.0


def negative_gains(gains: LayerGains) -> np.ndarray:
    """a- of a layer; where it was not measured, assume it equals a+ (nominal ratio 1.0)."""
    return np.where(np.isfinite(gains.a_minus), gains.a_minus, gains.a_plus)


def soma_currents_a(params: DieParameters, codes: Sequence[np.ndarray], dac_codes: np.ndarray) -> list[np.ndarray]:
    """Input current of every soma, layer by layer (patterns x neurons, A), for signed codes and DAC codes."""
    chip = params.chip
    dac = np.atleast_2d(np.asarray(dac_codes, dtype=np.float64))
    r = params.bias_gain * dac * chip.dac_lsb_a + params.bias_offset_a
    currents = [r]
    for m, q in enumerate(codes):
        gains = params.layers[m]
        q = np.asarray(q, dtype=np.float64)
        w = gains.a_plus[:, None] * np.maximum(q, 0) + negative_gains(gains)[:, None] * np.minimum(q, 0)
        r = np.maximum(r, 0.0) @ (NOMINAL_W_LSB * layer_scale(gains) * w)
        currents.append(r)
    return currents


def rates_from_currents(params: DieParameters, last_layer_a: np.ndarray) -> np.ndarray:
    """C2F rates (Hz) of the output neurons for their input currents (contract section 4)."""
    out = params.layers[-1]
    gain = params.c2f_gain_hz_per_a * out.a_plus * layer_scale(out)
    return gain * np.maximum(last_layer_a, 0.0) + params.c2f_dark_hz


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


class DieModel(torch.nn.Module):
    """The die as a torch module: same equations as :func:`soma_currents_a`, differentiable in the codes."""

    def __init__(self, params: DieParameters, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.params = params
        self.dac_lsb_a = params.chip.dac_lsb_a

        def buf(name: str, values: np.ndarray | float) -> None:
            self.register_buffer(name, torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=dtype))

        buf("bias_gain", params.bias_gain)
        buf("bias_offset_a", params.bias_offset_a)
        for m in range(params.chip.n_matrices):
            gains = params.layers[m]
            unit = NOMINAL_W_LSB * layer_scale(gains)
            buf(f"pos_{m}", unit * gains.a_plus)
            buf(f"neg_{m}", unit * negative_gains(gains))
        out = params.layers[-1]
        buf("rate_gain", params.c2f_gain_hz_per_a * out.a_plus * layer_scale(out))
        buf("dark_hz", params.c2f_dark_hz)

    def input_currents_a(self, dac_codes: torch.Tensor) -> torch.Tensor:
        """Layer-0 input currents (A) for DAC codes."""
        return self.bias_gain * dac_codes * self.dac_lsb_a + self.bias_offset_a

    def effective_matrices(self, codes: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Current gain of every synapse (signed, absolute): w_lsb * scale * (a+ max(q,0) + a- min(q,0))."""
        pos = [getattr(self, f"pos_{m}") for m in range(len(codes))]
        neg = [getattr(self, f"neg_{m}") for m in range(len(codes))]
        return [p[:, None] * q.clamp(min=0) + n[:, None] * q.clamp(max=0) for p, n, q in zip(pos, neg, codes)]

    def soma_inputs(
        self,
        r0: torch.Tensor,
        codes: Sequence[torch.Tensor],
        weight_factors: Sequence[torch.Tensor] | None = None,
        leak: float = 0.0,
    ) -> list[torch.Tensor]:
        """Soma input currents of all layers for layer-0 currents ``r0``.

        ``weight_factors`` multiply the effective weights elementwise (synapse
        mirror mismatch sampled for variation-aware training). ``leak`` is the
        slope of the rectifier's gradient below zero (the forward pass is always
        the die's exact rectifier), so that training can bring back a neuron
        that is off for every input.
        """
        matrices = self.effective_matrices(codes)
        if weight_factors is not None:
            matrices = [w * f for w, f in zip(matrices, weight_factors)]
        currents = [r0]
        for w in matrices:
            currents.append(rectify(currents[-1], leak) @ w)
        return currents

    def output_rates_hz(self, last_layer_a: torch.Tensor) -> torch.Tensor:
        """C2F rates for the input currents of the last layer."""
        return self.rate_gain * torch.relu(last_layer_a) + self.dark_hz

    def forward(self, dac_codes: torch.Tensor, codes: Sequence[torch.Tensor]) -> torch.Tensor:
        """Output rates (patterns x n_out, Hz) for DAC codes and signed synapse codes."""
        return self.output_rates_hz(self.soma_inputs(self.input_currents_a(dac_codes), codes)[-1])
