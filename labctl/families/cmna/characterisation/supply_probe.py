"""The supply-current run: states of the whole die whose supply current pins the supply model (issue 14).

Contract section 1 says what the supply current is made of (a quiescent
current plus the currents in all soma and synapse branches), not how much of
each: characterisation sets up states and reads the supply SMU, and
:mod:`labctl.families.cmna.characterisation.supply_fit` fits the coefficients.

A state is a weight configuration (random sparse signed codes over the whole
die, seeded: a resume plans the same) and an input pattern. Each
configuration is one job: it is programmed, read back (a stuck bit changes
the currents; the fit uses what the latches hold), VDD is read once, and each
of its patterns is held with SET_INPUTS while the supply is read a few times.
The first pattern of every configuration is all zero: the quiescent current,
which no other pattern isolates.

The patterns are planned on the held codes with the nominal die model
(:func:`~labctl.families.cmna.training.die_model.soma_currents_a`): every soma
input stays below a share of the characterisation's target, less for every
layer of gain spread (contract: up to 25 % per soma) between it and the inputs,
so that the supply current is read with every soma in its linear range, where
the model holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labctl.families.cmna.characterisation.probing import Prober
from labctl.families.cmna.chip import ChipDescription
from labctl.families.cmna.die_parameters import DieParameters
from labctl.families.cmna.latch_codes import nibbles_to_signed
from labctl.families.cmna.storage import supply_configuration_dtype, supply_reading_dtype
from labctl.families.cmna.training.die_model import soma_currents_a

SUPPLY_KIND = "supply"
"""Job kind of one configuration of the supply run (job tag: the configuration's index)."""
SEED_STREAM = 14
"""Seed stream of the supply plan, apart from the chains' and probes' draws of the same run seed."""
SUPPLY_NPLC = 1.0
"""Integration of a supply reading: its noise is relative to the whole current, of which one branch
is a small part, so it integrates a power-line cycle also where the MON readings are faster."""
INPUT_SHARE = 0.75
"""Largest planned soma input, as a share of the characterisation's target (200 nA: half the
contract's ~300 nA linear range)..."""
GAIN_MARGIN = 1.25
"""...divided by this for every layer of soma gains (contract: 10 to 25 % spread) feeding the soma."""
NEGATIVE_SHARE = 1.0 / 3.0
"""Share of negative codes: enough to load the negative drivers, few enough to keep deeper somas on."""
PLAN_CODE = 1000
"""DAC scale at which a pattern's direction is planned (the model is linear in it)."""


@dataclass(frozen=True)
class SupplyPlan:
    """How many states the supply run reads."""

    configurations: int
    patterns: int
    """Per configuration, the all-zero pattern included."""
    density: float
    """Largest share of non-zero codes in a configuration (each draws between half of it and it)."""
    readings: int
    """Supply readings averaged per pattern."""


def supply_plan(chip: ChipDescription) -> SupplyPlan:
    """By die size: on a large die programming dominates the bench time, so fewer configurations with
    more patterns each, and sparse ones (a column sums many rows)."""
    if sum(chip.layer_sizes) <= 64:
        return SupplyPlan(configurations=6, patterns=8, density=0.5, readings=3)
    return SupplyPlan(configurations=4, patterns=12, density=0.08, readings=3)


def configuration_codes(chip: ChipDescription, seed: int, state: int, plan: SupplyPlan) -> list[np.ndarray]:
    """Signed latch codes (per matrix) of configuration ``state``: random magnitudes 1..7, sparse."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), SEED_STREAM, int(state)]))
    density = plan.density * rng.uniform(0.5, 1.0)
    codes = []
    for m in range(chip.n_matrices):
        shape = chip.matrix_shape(m)
        magnitude = rng.integers(1, 8, shape) * (rng.random(shape) < density)
        codes.append(np.where(rng.random(shape) < NEGATIVE_SHARE, -magnitude, magnitude).astype(np.int8))
    return codes


def input_patterns(chip: ChipDescription, held: list[np.ndarray], seed: int, state: int, plan: SupplyPlan,
                   target_a: float) -> np.ndarray:
    """DAC codes (patterns, n0) for the held codes: the all-zero pattern, then random patterns (a random
    share of channels on) each scaled to a random level up to the planned limits (module docstring)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), SEED_STREAM, int(state), 1]))
    n = plan.patterns - 1
    on = rng.random((n, chip.n_inputs)) < rng.uniform(0.3, 1.0, (n, 1))
    on[np.arange(n), rng.integers(0, chip.n_inputs, n)] = True
    direction = PLAN_CODE * rng.uniform(0.2, 1.0, on.shape) * on
    limits = INPUT_SHARE * target_a / GAIN_MARGIN ** np.arange(chip.n_layers)
    currents = soma_currents_a(DieParameters.nominal(chip), held, direction)
    worst = np.max([np.max(c, axis=1) / limit for c, limit in zip(currents, limits)], axis=0)
    level = rng.uniform(0.2, 1.0, n) / np.maximum(worst, 1e-12)
    dac = np.clip(np.round(direction * level[:, None]), 0, chip.max_dac_code).astype(np.uint16)
    return np.concatenate([np.zeros((1, chip.n_inputs), np.uint16), dac])


def estimate_s(chip: ChipDescription, reading_s: float) -> float:
    """Bench time of one configuration of the supply run, for one reading taking ``reading_s``."""
    plan = supply_plan(chip)
    return (plan.patterns * plan.readings + 1) * reading_s


def measure_configuration(prober: Prober, config_id: int, state: int, seed: int) -> None:
    """Program configuration ``state``, read VDD, hold each of its patterns and read the supply current;
    record the latches as read back, the patterns and the readings (``/raw/supply_*``)."""
    chip, bench = prober.chip, prober.bench
    plan = supply_plan(chip)
    nibbles = prober.program(configuration_codes(chip, seed, state, plan))
    patterns = input_patterns(chip, [nibbles_to_signed(n) for n in nibbles], seed, state, plan,
                              prober.settings.target_soma_input_a)
    bench.route_ext_in(None)
    bench.set_nplc(SUPPLY_NPLC)
    try:
        time_s = bench.bridge.status().uptime_ms / 1000.0  # bench time, as every run stamps it
        vdd = bench.read("supply", "voltage")
        readings = np.zeros(len(patterns), supply_reading_dtype(chip.n_inputs))
        for p, dac in enumerate(patterns):
            bench.bridge.set_inputs(dac.tolist())
            current = np.array([bench.read("supply", "current") for _ in range(plan.readings)])
            readings[p] = (time_s, config_id, state, p, dac, current.mean(),
                           current.std(ddof=1) / np.sqrt(len(current)), len(current))
            prober.progress("supply current", state * plan.patterns + p + 1, plan.configurations * plan.patterns)
    finally:
        bench.bridge.set_inputs([0] * chip.n_inputs)
        bench.set_nplc(prober.settings.nplc)
    flat = np.concatenate([np.asarray(n, np.uint8).ravel() for n in nibbles])
    configuration = np.zeros(1, supply_configuration_dtype(flat.size))
    configuration[0] = (time_s, config_id, state, vdd, flat)
    prober.store.append_supply(configuration, readings)
