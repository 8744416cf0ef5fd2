"""The die's supply current and power for a state: part of the family's one model (:mod:`die_model`).

Contract section 1: the supply current is a quiescent current plus the
currents flowing in all soma and synapse branches, and VDD times it is the
die's power. The branch currents follow from the same forward pass that
predicts the rates, so the prediction is differentiable in the weights:

- every soma's input branch carries its output ``z`` (rectified input plus
  leakage);
- its two drivers carry ``a+ z`` and ``a- z`` (the branches that set the gate
  voltages of its positive and negative synapses);
- every synapse carries ``|w_ij| z_i`` and every output soma's unit synapse
  into its C2F ``a+ z``.

The contract gives no coefficients, so each kind of branch gets one
(:class:`~labctl.families.cmna.die_parameters.SupplyModel`), fitted by
characterisation to supply readings of states it set up; without a fit the
contract's words are taken literally (2 uA, each branch once).

The powers (issue 14's names): ``supply`` is VDD x the supply current,
``dynamic`` that less the draw with every input at code 0, and ``network``
that less VDD x the input currents themselves (bias gain x code x DAC LSB +
offset): the part the weights control.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from labctl.families.cmna.die_parameters import DieParameters, SupplyModel
from labctl.families.cmna.training.die_model import (
    effective_matrices,
    input_currents_a,
    soma_inputs,
    soma_outputs,
)
from labctl.families.cmna.training.variation import DieDraws, MeasuredDistribution, layer_scale

BRANCHES = ("soma", "drive", "synapse")
"""The kinds of branch, in the order of :meth:`PowerModel.branch_currents_a`'s last axis."""


class PowerModel:
    """Supply current of the measured die (torch, differentiable in the weights) for any forward pass."""

    def __init__(self, params: DieParameters, dtype: torch.dtype = torch.float64) -> None:
        self.params = params
        self.chip = params.chip
        self.supply = params.supply or SupplyModel.nominal()
        self.dtype = dtype
        self.drive_gain = [torch.as_tensor(_drive_gain(layer), dtype=dtype) for layer in params.layers]
        """Per layer: absolute a+ + a- of every soma (a+ twice where a- is not measured)."""
        out = params.layers[-1]
        self.output_gain = torch.as_tensor(np.asarray(out.a_plus, np.float64) * layer_scale(out.scale), dtype=dtype)
        self.coefficients = torch.as_tensor([self.supply.soma, self.supply.drive, self.supply.synapse], dtype=dtype)

    def branch_currents_a(self, draws: DieDraws, currents: Sequence[torch.Tensor],
                          codes: Sequence[torch.Tensor]) -> torch.Tensor:
        """(D, patterns, 3): total current of the soma, drive and synapse branches for soma inputs ``currents``."""
        z = [soma_outputs(draws, r, layer) for layer, r in enumerate(currents)]
        soma = sum(zl.sum(dim=-1) for zl in z)
        drive = sum((zl * gain).sum(dim=-1) for zl, gain in zip(z, self.drive_gain))
        synapse = (z[-1] * self.output_gain).sum(dim=-1)
        for zl, w in zip(z, effective_matrices(draws, codes)):
            synapse = synapse + torch.bmm(zl, w.abs()).sum(dim=-1)
        return torch.stack([soma, drive, synapse], dim=-1)

    def supply_current_a(self, draws: DieDraws, currents: Sequence[torch.Tensor],
                         codes: Sequence[torch.Tensor]) -> torch.Tensor:
        """(D, patterns): the supply current of each state."""
        return self.supply.quiescent_a + self.branch_currents_a(draws, currents, codes) @ self.coefficients

    def controlled_current_a(self, draws: DieDraws, dac_codes: torch.Tensor,
                             codes: Sequence[torch.Tensor]) -> torch.Tensor:
        """(D, patterns): what the weights control, as power-aware training counts it: every branch current
        above the quiescent current under the pattern and in the idle state (every input at code 0), less
        the input currents themselves.

        The network power subtracts the idle draw, and the idle draw depends on the weights too (every
        soma leaks, and positive weights amplify the leakage layer by layer: on a CMNA-L die, weights
        trained against the network power drew 11.4 uA idle against 9.3 uA under a typical pattern, and
        a negative network power was measured). Counting the idle draw in instead of out leaves nothing
        to gain by raising it, and bounds the network power from above: what bounds this bounds that.
        """
        r0 = input_currents_a(draws, dac_codes, self.chip.dac_lsb_a)
        supply = self.supply_current_a(draws, soma_inputs(draws, r0, codes), codes)
        zero = input_currents_a(draws, torch.zeros_like(dac_codes[:1]), self.chip.dac_lsb_a)
        idle = self.supply_current_a(draws, soma_inputs(draws, zero, codes), codes)
        return supply + idle - 2.0 * self.supply.quiescent_a - r0.sum(dim=-1)


@dataclass(frozen=True)
class PowerPrediction:
    """The model's powers of a programmed die, per pattern (W)."""

    supply_w: np.ndarray
    idle_w: float
    """Supply power with every input at code 0."""
    input_w: np.ndarray
    """VDD x the input currents (bias gain x code x DAC LSB + offset)."""
    vdd_v: float
    quiescent_w: float
    """VDD x the fitted quiescent current."""

    @property
    def dynamic_w(self) -> np.ndarray:
        return self.supply_w - self.idle_w

    @property
    def network_w(self) -> np.ndarray:
        return self.dynamic_w - self.input_w

    @property
    def controlled_w(self) -> np.ndarray:
        """What power-aware training minimises (:meth:`PowerModel.controlled_current_a`): >= ``network_w``."""
        return self.supply_w + self.idle_w - 2.0 * self.quiescent_w - self.input_w


def predict_power(params: DieParameters, codes: Sequence[np.ndarray], dac_codes: np.ndarray,
                  vdd_v: float | None = None) -> PowerPrediction:
    """The measured die's predicted powers for signed latch codes and DAC patterns (patterns, n0)."""
    model = PowerModel(params)
    vdd = model.supply.vdd_v if vdd_v is None else vdd_v
    with torch.no_grad():
        draws = MeasuredDistribution(params, dtype=torch.float64).mean()
        q = [torch.as_tensor(np.asarray(c, np.float64)) for c in codes]
        dac = torch.as_tensor(np.atleast_2d(np.asarray(dac_codes, np.float64)))
        states = torch.cat([torch.zeros_like(dac[:1]), dac])
        r0 = input_currents_a(draws, states, params.chip.dac_lsb_a)
        supply = model.supply_current_a(draws, soma_inputs(draws, r0, q), q)[0].numpy()
        inputs = r0[0, 1:].sum(dim=-1).numpy()
    return PowerPrediction(vdd * supply[1:], float(vdd * supply[0]), vdd * inputs, vdd, vdd * model.supply.quiescent_a)


def state_branch_currents_a(params: DieParameters, codes: Sequence[np.ndarray], dac_codes: np.ndarray) -> np.ndarray:
    """(patterns, 3): the branch currents of the measured die's mean model (the design matrix of the fit)."""
    model = PowerModel(params)
    with torch.no_grad():
        draws = MeasuredDistribution(params, dtype=torch.float64).mean()
        q = [torch.as_tensor(np.asarray(c, np.float64)) for c in codes]
        dac = torch.as_tensor(np.atleast_2d(np.asarray(dac_codes, np.float64)))
        currents = soma_inputs(draws, input_currents_a(draws, dac, params.chip.dac_lsb_a), q)
        return model.branch_currents_a(draws, currents, q)[0].numpy()


def _drive_gain(layer) -> np.ndarray:
    a_plus = np.asarray(layer.a_plus, np.float64)
    a_minus = np.where(np.isfinite(layer.a_minus), layer.a_minus, a_plus)
    return (a_plus + a_minus) * layer_scale(layer.scale)
