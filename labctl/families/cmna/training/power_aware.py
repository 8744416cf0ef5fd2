"""Power-aware training: trade accuracy for network power on purpose (seeds 001 and 002; issue 14).

The loss becomes ``(1 - alpha) x task loss + alpha x P / P_blind``, where ``P``
is the model's mean controlled power (:meth:`power_model.PowerModel.controlled_current_a`:
every branch above the quiescent current under the pattern and in the idle
state, less the input currents; at least the network power, and not lowered
by raising the idle draw as the network power would be) and ``P_blind`` that
of the power-blind tailored weights. A budget bounds it, hence the network power. With a budget instead, ``alpha`` is
a multiplier that rises while the predicted power is above the budget and
falls below it (dual ascent), and only epochs within the budget may be kept.

The input encoding stays the power-blind weights' (the same DAC scale): a
smaller input scale lowers every current without any training, and seed 004
shows that this does not lower the energy per operation once the circuit's
settling is counted; the savings must come from the weights. Training
therefore starts from the power-blind weights and fine-tunes them under that
fixed encoding. Stuck-bit retraining and in-situ rounds keep the same goal
(:func:`power_term_of` reads it back from the weights' provenance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from labctl.errors import ConfigError
from labctl.families.cmna.die_parameters import DieParameters
from labctl.families.cmna.training.power_model import PowerModel, predict_power
from labctl.families.cmna.training.variation import DieDraws
from labctl.families.cmna.weights import InputEncoding, WeightSet
from labctl.train.datasets import Dataset

POWER_AWARE_STEPS = 2400
POWER_AWARE_LEARNING_RATE = 0.05
"""Optimiser steps and learning rate of the power-aware fine-tuning: four times a fine-tuning's steps, at
a higher rate. Weights must move far from the power-blind ones: on MNIST (CMNA-L) alpha 0.5 with a
fine-tuning's 600 steps at 0.02 found 1.4x lower network power for 3.1 points of accuracy, with these
2.8x for 1.4 points; on Iris alpha 0.9 went from 1.4x to 2.1x, accuracy unchanged."""
BUDGET_START_WEIGHT = 0.3
"""alpha a budget run starts from."""
BUDGET_STEP = 2.0
"""Dual ascent: alpha is multiplied by exp(step x (P / budget - 1)) after every epoch."""
BUDGET_WEIGHT_RANGE = (0.01, 0.99)
BUDGET_TARGET = 0.97
"""A budget run aims a little below the budget: the die's power scatters around the model's."""


@dataclass(frozen=True)
class PowerGoal:
    """What the user asked for: a fixed trade-off ``weight`` (alpha) or a ``budget_w`` (W)."""

    weight: float = 0.0
    budget_w: float | None = None

    @property
    def active(self) -> bool:
        return self.weight > 0.0 or self.budget_w is not None


@dataclass(frozen=True)
class PredictedPower:
    """The model's mean powers over a set of features (the training split): what the weights file records."""

    supply_w: float
    network_w: float
    controlled_w: float
    """What power-aware training minimises and a budget bounds (>= ``network_w``)."""


def predicted_power(params: DieParameters, weights: WeightSet, features: np.ndarray) -> PredictedPower:
    p = predict_power(params, weights.codes, weights.encoding.encode(features))
    return PredictedPower(float(p.supply_w.mean()), float(p.network_w.mean()), float(p.controlled_w.mean()))


class PowerTerm:
    """The power part of the loss and of the choice of epoch, for a fixed input encoding."""

    def __init__(self, params: DieParameters, goal: PowerGoal, encoding: InputEncoding, reference_w: float,
                 n_train: int, dtype: torch.dtype = torch.float32) -> None:
        if not reference_w > 0:
            raise ConfigError(f"the power-blind weights draw no power above the quiescent current and the inputs "
                              f"in the model ({reference_w:g} W): nothing to trade")
        self.goal = goal
        self.encoding = encoding
        self.model = PowerModel(params, dtype=dtype)
        vdd = self.model.supply.vdd_v
        self.reference_a = reference_w / vdd
        self.budget_a = None if goal.budget_w is None else goal.budget_w / vdd
        self.weight = BUDGET_START_WEIGHT if goal.budget_w is not None else goal.weight
        self.n_train = n_train
        self.lowest_a = math.inf

    def loss(self, draws: DieDraws, dac: torch.Tensor, codes: list[torch.Tensor]) -> torch.Tensor:
        """Mean predicted controlled power of the batch over the dies drawn, relative to the power-blind weights'."""
        return self.model.controlled_current_a(draws, dac, codes).mean() / self.reference_a

    def blend(self, task: torch.Tensor, power: torch.Tensor) -> torch.Tensor:
        return (1.0 - self.weight) * task + self.weight * power

    @torch.no_grad()
    def predicted_a(self, mean: DieDraws, dac: torch.Tensor, codes: list[torch.Tensor]) -> float:
        """The measured die's mean controlled current over the training split."""
        return float(self.model.controlled_current_a(mean, dac, codes).mean())

    def judge_epoch(self, expected_errors: float, predicted_a: float) -> float | None:
        """The epoch's score (lower is better), or None if it breaks the budget; then adapt alpha."""
        self.lowest_a = min(self.lowest_a, predicted_a)
        if self.budget_a is None:
            score = (1.0 - self.weight) * expected_errors / self.n_train + self.weight * predicted_a / self.reference_a
            return score
        within = predicted_a <= self.budget_a
        ratio = predicted_a / (BUDGET_TARGET * self.budget_a)
        self.weight = float(np.clip(self.weight * math.exp(BUDGET_STEP * (ratio - 1.0)), *BUDGET_WEIGHT_RANGE))
        return expected_errors if within else None

    def unreachable(self) -> ConfigError:
        vdd = self.model.supply.vdd_v
        return ConfigError(f"no weights within the power budget of {self.goal.budget_w:g} W were found: the lowest "
                           f"predicted power bound was {self.lowest_a * vdd:g} W (raise the budget or --epochs)")


def power_term_for(params: DieParameters, blind: WeightSet, goal: PowerGoal, dataset: Dataset) -> PowerTerm:
    """The power term of training from ``blind`` (the power-blind weights) with their encoding."""
    reference = predicted_power(params, blind, dataset.X_train).controlled_w
    return PowerTerm(params, goal, blind.encoding, reference, len(dataset.y_train))


def power_term_of(params: DieParameters, weights: WeightSet, dataset: Dataset) -> PowerTerm | None:
    """The power goal ``weights`` were trained with (from their provenance), for retraining them; None if none."""
    p = weights.provenance
    goal = PowerGoal(p.power_weight or 0.0, p.power_budget_w)
    if not goal.active or p.power_reference_w is None:
        return None
    return PowerTerm(params, goal, weights.encoding, p.power_reference_w, len(dataset.y_train))


def record_power_goal(weights: WeightSet, term: PowerTerm) -> None:
    """Keep the goal and the power-blind reference with the weights (retraining keeps the same goal)."""
    vdd = term.model.supply.vdd_v
    weights.provenance = replace(weights.provenance, power_weight=term.goal.weight if term.goal.budget_w is None
                                 else None, power_budget_w=term.goal.budget_w,
                                 power_reference_w=term.reference_a * vdd)
