"""Plausible dies for variation-aware training: the measured die with its errors, or the contract's population.

Characterisation pins every soma's gains to a fraction of a percent, but the
mirror gain of each synapse bit (2 to 8 %, contract section 1) cannot be
separated per synapse, and the per-neuron fits have errors of their own. The
weights must therefore work on every die that the measurement cannot tell
apart from the one measured. Following the variation-aware training of the
printed-circuit papers (seeds 000 to 002), every training step draws such
dies and the loss is averaged over them.

Two distributions supply the draws (:class:`DieDraws`, torch tensors with a
leading die dimension ``D``):

- :class:`MeasuredDistribution`: one characterised die. a+ and a- are drawn
  from their measured value and 1-sigma error, every synapse bit's mirror gain
  from the measured ``synapse_spread`` (renormalised so that a column keeps
  the unit gain that the a+ of its neuron already holds, as the measurement
  sees it), and the leakage of every hidden soma from the contract's range.
- :class:`ContractPopulation`: dies drawn from the spreads of contract section
  1 alone, for pre-training once per part and data set (never from a
  simulator's internals).

What the contract says that characterisation folds into other numbers is
kept folded: the leakage of layer-0 somas is inside the measured bias offset
(the bias sweep's intercept), the output somas' leakage inside the measured
dark rate. Only hidden somas get an explicit leakage term.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from labctl.families.cmna.chip import ChipDescription
from labctl.families.cmna.die_parameters import NOMINAL_W_LSB, DieParameters

LEAK_RANGE_A = (10e-12, 50e-12)
"""Soma leakage, output when off (contract section 1)."""
NOMINAL_LEAK_A = 20e-12
"""Nominal soma leakage (contract section 1); the hidden somas' value in the mean model."""
IN_SITU_RESIDUAL = 0.3
"""Uncertainty left on a synapse's measured combination of bit gains, as a fraction of its prior (the fit's error)."""
DEFAULT_SYNAPSE_SPREAD = 0.05
"""Per-bit mirror spread assumed when characterisation could not estimate it (contract: 2 to 8 %)."""
READING_NOISE_FRAC = 0.01
"""Relative noise of one C2F reading, worst case of the contract's 0.2 to 1 %."""

# contract section 1, "Mismatch and non-idealities" (1 sigma unless noted)
A_PLUS_SIGMA = (0.10, 0.25)
RATIO_SIGMA = (0.05, 0.15)
RATIO_OFFSET_SIGMA = 0.05
SYNAPSE_SPREAD = (0.02, 0.08)
BIAS_GAIN_SIGMA = (0.03, 0.06)
BIAS_OFFSET_MAX_A = 0.2e-9
C2F_SIGMA = (0.03, 0.06)
DARK_MAX_HZ = 5.0
MAGNITUDE_BITS = 3


@dataclass
class DieDraws:
    """``D`` dies as tensors: every quantity the forward pass needs, absolute units.

    ``pos[m]``/``neg[m]`` are the current gain per unit code of the rows of
    matrix m (``w_lsb * scale * a+`` / ``a-``); ``bit_gains[m]`` the mirror
    gain of every synapse bit (D, rows, cols, 2 signs, 3 bits), None for a
    perfectly matched die; ``leak_a[l]`` the leakage of the somas of layer l
    (zeros where it is folded into measured offsets).
    """

    bias_gain: torch.Tensor
    bias_offset_a: torch.Tensor
    pos: list[torch.Tensor]
    neg: list[torch.Tensor]
    bit_gains: list[torch.Tensor] | None
    leak_a: list[torch.Tensor]
    rate_gain: torch.Tensor
    """C2F rate per A of the output soma's input current (Hz/A): C2F gain x a+ x scale."""
    dark_hz: torch.Tensor

    @property
    def count(self) -> int:
        return int(self.bias_gain.shape[0])


class MeasuredDistribution:
    """Dies consistent with one characterisation: measured values, measured errors, unmeasurable mismatch."""

    def __init__(self, params: DieParameters, *, dtype: torch.dtype = torch.float32,
                 synapse_spread: float | None = None,
                 bit_priors: list[tuple[np.ndarray, np.ndarray]] | None = None) -> None:
        """``bit_priors`` (per matrix: bit-gain means and the unit direction of the measured combination,
        both rows x cols x 2 x 3) come from measuring the programmed die (:mod:`labctl.families.cmna.training.in_situ`)."""
        self.params = params
        self.chip = params.chip
        self.dtype = dtype
        spread = params.synapse_spread if synapse_spread is None else synapse_spread
        self.synapse_spread = float(spread) if np.isfinite(spread) else DEFAULT_SYNAPSE_SPREAD
        t = lambda v: torch.as_tensor(np.asarray(v, dtype=np.float64), dtype=dtype)
        self._bias_gain = t(params.bias_gain)
        self._bias_offset = t(params.bias_offset_a)
        self._pos, self._neg, self._pos_rel, self._neg_rel = [], [], [], []
        for m in range(self.chip.n_matrices):
            layer = params.layers[m]
            unit = NOMINAL_W_LSB * layer_scale(layer.scale)
            a_minus = np.where(np.isfinite(layer.a_minus), layer.a_minus, layer.a_plus)
            self._pos.append(t(unit * layer.a_plus))
            self._neg.append(t(unit * a_minus))
            self._pos_rel.append(t(_relative_error(layer.a_plus_std, layer.a_plus)))
            self._neg_rel.append(t(_relative_error(layer.a_minus_std, a_minus)))
        out = params.layers[-1]
        out_gain = params.c2f_gain_hz_per_a * out.a_plus * layer_scale(out.scale)
        self._rate_gain = t(out_gain)
        self._rate_rel = t(_relative_error(out.a_plus_std, out.a_plus))
        self._dark = t(params.c2f_dark_hz)
        self._bit_priors = None if bit_priors is None else [(t(m), t(d)) for m, d in bit_priors]

    def mean(self) -> DieDraws:
        """The measured die itself (one draw): nominal leakage, matched synapses or their measured gains."""
        one = lambda v: v[None]
        bits = None if self._bit_priors is None else [one(m) for m, _ in self._bit_priors]
        return DieDraws(one(self._bias_gain), one(self._bias_offset), [one(p) for p in self._pos],
                        [one(n) for n in self._neg], bits, _nominal_leak(self.chip, 1, self.dtype),
                        one(self._rate_gain), one(self._dark))

    def sample(self, count: int, generator: torch.Generator) -> DieDraws:
        """``count`` dies the characterisation cannot tell from this one."""
        g = lambda shape: torch.randn(shape, generator=generator, dtype=self.dtype)
        pos = [p * torch.exp(r * g((count, len(p)))) for p, r in zip(self._pos, self._pos_rel)]
        neg = [n * torch.exp(r * g((count, len(n)))) for n, r in zip(self._neg, self._neg_rel)]
        shapes = [(count, *self.chip.matrix_shape(m), 2, MAGNITUDE_BITS) for m in range(self.chip.n_matrices)]
        if self._bit_priors is None:
            bits = [_seen_bit_gains(torch.exp(self.synapse_spread * g(shape))) for shape in shapes]
        else:  # drawn from the prior given the measured combination: only a residual along it is left
            bits = []
            for (means, direction), shape in zip(self._bit_priors, shapes):
                eps = self.synapse_spread * g(shape)
                along = (eps * direction).sum(dim=-1, keepdim=True)
                bits.append(means + eps - (1.0 - IN_SITU_RESIDUAL) * along * direction)
        rate = self._rate_gain * torch.exp(self._rate_rel * g((count, len(self._rate_gain))))
        return DieDraws(self._bias_gain.expand(count, -1), self._bias_offset.expand(count, -1), pos, neg, bits,
                        _sampled_leak(self.chip, count, generator, self.dtype), rate,
                        self._dark.expand(count, -1))


class ContractPopulation:
    """Dies drawn from the typical spreads of contract section 1: what any CMNA of this geometry may be.

    Per die, each spread is drawn inside the contract's range; per neuron,
    channel and synapse bit the values are drawn from it (log-normal where the
    contract says so). a+ is normalised to mean 1 per layer, as characterisation
    reports it.
    """

    def __init__(self, chip: ChipDescription, *, dtype: torch.dtype = torch.float32) -> None:
        self.chip = chip
        self.dtype = dtype
        self._nominal = MeasuredDistribution(DieParameters.nominal(chip), dtype=dtype, synapse_spread=0.0)

    def mean(self) -> DieDraws:
        return self._nominal.mean()

    def sample(self, count: int, generator: torch.Generator) -> DieDraws:
        chip, dt = self.chip, self.dtype
        u = lambda lo, hi, shape: lo + (hi - lo) * torch.rand(shape, generator=generator, dtype=dt)
        g = lambda shape: torch.randn(shape, generator=generator, dtype=dt)
        sigma_a = u(*A_PLUS_SIGMA, (count, 1))
        sigma_r = u(*RATIO_SIGMA, (count, 1))
        offset_r = torch.exp(RATIO_OFFSET_SIGMA * g((count, 1)))
        a_plus = []
        for n in chip.layer_sizes:
            a = torch.exp(sigma_a * g((count, n)))
            a_plus.append(a / a.mean(dim=1, keepdim=True))
        pos = [NOMINAL_W_LSB * a for a in a_plus[:-1]]
        neg = [p * offset_r * torch.exp(sigma_r * g(p.shape)) for p in pos]
        spread = u(*SYNAPSE_SPREAD, (count, 1, 1, 1, 1))
        bits = [_seen_bit_gains(torch.exp(spread * g((count, *chip.matrix_shape(m), 2, MAGNITUDE_BITS))))
                for m in range(chip.n_matrices)]
        bias_gain = torch.exp(u(*BIAS_GAIN_SIGMA, (count, 1)) * g((count, chip.n_inputs)))
        bias_offset = u(-BIAS_OFFSET_MAX_A, BIAS_OFFSET_MAX_A, (count, chip.n_inputs))
        c2f = chip.c2f_gain_hz_per_a * torch.exp(u(*C2F_SIGMA, (count, 1)) * g((count, chip.n_outputs)))
        rate = c2f * a_plus[-1]
        dark = u(0.0, DARK_MAX_HZ, (count, chip.n_outputs)) + rate * u(*LEAK_RANGE_A, (count, chip.n_outputs))
        return DieDraws(bias_gain, bias_offset, pos, neg, bits, _sampled_leak(chip, count, generator, dt), rate,
                        dark)


def layer_scale(scale: float) -> float:
    """Absolute gain factor of a layer: the measured scale, or 1 where it is unknown."""
    return float(scale) if np.isfinite(scale) else 1.0


def _relative_error(std: np.ndarray, value: np.ndarray) -> np.ndarray:
    """1-sigma relative error of a measured gain; 0 where unknown, capped at 50 %."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(np.asarray(std, dtype=np.float64) / np.asarray(value, dtype=np.float64))
    return np.clip(np.where(np.isfinite(rel), rel, 0.0), 0.0, 0.5)


def _seen_bit_gains(gains: torch.Tensor) -> torch.Tensor:
    """Bit gains (D, rows, cols, 2, 3) relative to what characterisation folds into the somas' gains.

    A neuron's measured a+ already holds the mean unit (code 7) gain of the
    positive synapses of its column, and a source's measured a- the mean unit
    gain of its negative synapses (its row); only the scatter around those
    means is left for training to be robust against.
    """
    weights = torch.tensor([1.0, 2.0, 4.0], dtype=gains.dtype) / 7.0
    unit = (gains * weights).sum(dim=-1)  # (D, rows, cols, 2)
    column_mean = unit[..., 0].mean(dim=1, keepdim=True)  # positive branch, over rows
    row_mean = unit[..., 1].mean(dim=2, keepdim=True)  # negative branch, over columns
    return torch.stack([gains[..., 0, :] / column_mean[..., None], gains[..., 1, :] / row_mean[..., None]], dim=-2)


def _nominal_leak(chip: ChipDescription, count: int, dtype: torch.dtype) -> list[torch.Tensor]:
    return [torch.full((count, n), NOMINAL_LEAK_A if _hidden(chip, l) else 0.0, dtype=dtype)
            for l, n in enumerate(chip.layer_sizes)]


def _sampled_leak(chip: ChipDescription, count: int, generator: torch.Generator,
                  dtype: torch.dtype) -> list[torch.Tensor]:
    lo, hi = LEAK_RANGE_A
    return [(lo + (hi - lo) * torch.rand((count, n), generator=generator, dtype=dtype)) if _hidden(chip, l)
            else torch.zeros((count, n), dtype=dtype) for l, n in enumerate(chip.layer_sizes)]


def _hidden(chip: ChipDescription, layer: int) -> bool:
    return 0 < layer < chip.n_layers - 1
