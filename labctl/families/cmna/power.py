"""The die's power, measured: the supply SMU read while each test pattern is held (issue 14).

Contract section 1: the supply current is a quiescent current plus the
currents in all soma and synapse branches, and VDD times it is the die's
power. The supply SMU integrates over a power-line cycle, far longer than a
RUN_BATCH gate, so a pattern's draw is read with the pattern held by
SET_INPUTS: one reading per pattern. Every reading goes through
:meth:`Bench.read`, so a session record keeps it.

The figures (issue 14's names):

- ``supply_power_w``: VDD x the mean supply current over the patterns;
- ``dynamic_power_w``: that less the draw with every input channel at code 0
  (quiescent current and leakage), read half before and half after the
  patterns so that a slow drift of the die cancels;
- ``network_power_w``: that less VDD x the input currents themselves (bias
  gain x code x DAC LSB + offset, the characterisation's or nominal ones):
  the part the weights control;
- energies per inference at the presentation rate the user assumes, and
  operations per joule with the network's synapses as the operations (seed
  004 counts them so).

Standard errors are those of the readings: over patterns for the supply
current, over the repeated readings for the idle draw and VDD, propagated
to the other figures (the input currents are computed, not read).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from labctl.errors import ConfigError, SafetyError
from labctl.families.cmna.bench import Bench
from labctl.families.cmna.chip import ChipDescription
from labctl.families.cmna.die_parameters import DieParameters
from labctl.families.cmna.options import EvaluateOptions
from labctl.families.cmna.training.power_model import PowerPrediction, predict_power
from labctl.families.cmna.weights import WeightSet

DEFAULT_PRESENTATION_RATE_HZ: float = EvaluateOptions.model_fields["presentation_rate"].default
"""Seed 004's 66 kHz (``labctl evaluate --presentation-rate``'s default, written once in the options)."""
IDLE_READINGS = 8
"""Supply readings with every input at code 0 (half before the patterns, half after), each with a VDD reading."""
PROGRESS_EVERY = 16
"""Patterns per progress report."""


class Figure(NamedTuple):
    """A measured figure and the standard error of the readings behind it."""

    value: float
    se: float


@dataclass(frozen=True)
class PowerMeasurement:
    """The supply readings of one power measurement and the figures derived from them (SI units)."""

    supply_current_a: np.ndarray
    """One reading per pattern, the pattern held with SET_INPUTS."""
    idle_current_a: np.ndarray
    """Readings with every input channel at code 0."""
    vdd_readings_v: np.ndarray
    input_current_a: np.ndarray
    """Per pattern, the input currents themselves summed over the channels (bias gain x code x DAC LSB + offset)."""
    input_currents_from: str
    """"characterisation" (measured bias gains and offsets) or "nominal" (gain 1, offset 0)."""
    presentation_rate_hz: float
    """Patterns per second: the user's assumption behind every energy figure."""
    ops_per_inference: int
    nonzero_ops_per_inference: int
    seconds: float
    """Wall time of the measurement."""
    predicted: PowerPrediction | None = None
    """The characterisation's supply model for the same patterns (None without a fitted model)."""

    @property
    def n_patterns(self) -> int:
        return len(self.supply_current_a)

    @property
    def vdd_v(self) -> Figure:
        return _mean(self.vdd_readings_v)

    @property
    def pattern_supply_power_w(self) -> np.ndarray:
        """VDD x each pattern's supply reading."""
        return self.vdd_v.value * self.supply_current_a

    def figures(self) -> dict[str, Figure]:
        """Issue 14's figures with their standard errors, by name."""
        supply, idle = _mean(self.supply_current_a), _mean(self.idle_current_a)
        inputs = float(np.mean(self.input_current_a))
        dynamic = Figure(supply.value - idle.value, float(np.hypot(supply.se, idle.se)))
        network = Figure(dynamic.value - inputs, dynamic.se)
        vdd = self.vdd_v
        out = {"vdd_v": vdd, "idle_power_w": _times(vdd, idle), "supply_power_w": _times(vdd, supply),
               "dynamic_power_w": _times(vdd, dynamic), "input_power_w": _times(vdd, Figure(inputs, 0.0)),
               "network_power_w": _times(vdd, network)}
        rate = self.presentation_rate_hz
        energy = Figure(out["supply_power_w"].value / rate, out["supply_power_w"].se / rate)
        out["energy_per_inference_j"] = energy
        out["dynamic_energy_per_inference_j"] = Figure(out["dynamic_power_w"].value / rate,
                                                       out["dynamic_power_w"].se / rate)
        per_joule = self.ops_per_inference / energy.value
        out["ops_per_joule"] = Figure(per_joule, per_joule * energy.se / energy.value)
        return out

    def summary_lines(self) -> list[str]:
        """The figures in words (command line, GUI); the presentation rate is stated with the energies."""
        f = self.figures()
        uw = lambda name: f"{f[name].value * 1e6:.4g} ± {f[name].se * 1e6:.2g} uW"
        bias = ("the characterisation's bias gains" if self.input_currents_from == "characterisation"
                else "nominal bias gains, no characterisation")
        lines = [f"power over {self.n_patterns} test patterns: supply {uw('supply_power_w')}, dynamic "
                 f"{uw('dynamic_power_w')}, network {uw('network_power_w')} (input currents from {bias})",
                 f"  at {self.presentation_rate_hz / 1e3:g} kHz presentation rate (assumed): "
                 f"{f['energy_per_inference_j'].value * 1e12:.4g} pJ per inference "
                 f"({f['dynamic_energy_per_inference_j'].value * 1e12:.4g} pJ dynamic); {self.ops_per_inference} "
                 f"ops per inference ({self.nonzero_ops_per_inference} non-zero): {f['ops_per_joule'].value:.3g} ops/J"]
        if self.predicted is not None:
            lines.append(f"  the supply model predicts supply {np.mean(self.predicted.supply_w) * 1e6:.4g} uW, "
                         f"network {np.mean(self.predicted.network_w) * 1e6:.4g} uW")
        return lines

    def csv_text(self) -> str:
        """One row per pattern: the supply reading, VDD x it, and the model's prediction when there is one."""
        p = self.predicted
        header = "pattern,supply_current_a,supply_power_w" + (",predicted_supply_power_w" if p else "")
        rows = [f"{k},{i!r},{w!r}" + (f",{float(p.supply_w[k])!r}" if p else "")
                for k, (i, w) in enumerate(zip(self.supply_current_a.tolist(), self.pattern_supply_power_w.tolist()))]
        return "\n".join([header, *rows]) + "\n"

    def as_json(self) -> dict:
        """Flat keys: every figure and its ``<name>_se``, the assumptions, and the predictions when made."""
        out: dict = {}
        for name, figure in self.figures().items():
            out |= {name: figure.value, f"{name}_se": figure.se}
        out |= {"presentation_rate_hz": self.presentation_rate_hz, "n_patterns": self.n_patterns,
                "ops_per_inference": self.ops_per_inference,
                "nonzero_ops_per_inference": self.nonzero_ops_per_inference,
                "input_currents_from": self.input_currents_from, "power_measurement_s": self.seconds}
        p = self.predicted
        if p is not None:
            out |= {"predicted_supply_power_w": float(np.mean(p.supply_w)),
                    "predicted_dynamic_power_w": float(np.mean(p.dynamic_w)),
                    "predicted_network_power_w": float(np.mean(p.network_w))}
        return out


def measure_power(bench: Bench, weights: WeightSet, patterns: np.ndarray, *, params: DieParameters | None,
                  presentation_rate_hz: float,
                  progress: Callable[[str, int, int], None] | None = None) -> PowerMeasurement:
    """Read the supply while each of ``patterns`` (DAC codes, patterns x layer-0 channels) is held.

    The die must be powered and hold ``weights``. ``params`` (the
    characterisation) gives the input currents and, when it has a fitted
    supply model, the predicted powers; without it the bias generators are
    taken as nominal. The inputs are left at code 0.
    """
    codes = np.atleast_2d(np.asarray(patterns, dtype=np.int64))
    if not bench.powered:
        raise SafetyError("power can be measured only on a powered, programmed die")
    if not len(codes):
        raise ConfigError("no patterns to measure power on")
    chip, started = bench.chip, time.monotonic()
    idle: list[float] = []
    vdd: list[float] = []
    _read_idle(bench, IDLE_READINGS // 2, idle, vdd)
    supply = np.empty(len(codes))
    for p, pattern in enumerate(codes):
        bench.bridge.set_inputs(pattern)
        supply[p] = bench.read("supply", "current")
        if progress and (p + 1 == len(codes) or (p + 1) % PROGRESS_EVERY == 0):
            progress("power measurement", p + 1, len(codes))
    _read_idle(bench, IDLE_READINGS - IDLE_READINGS // 2, idle, vdd)
    inputs, source = input_currents_a(chip, params, codes)
    ops, nonzero = network_ops(weights)
    vdd_v = float(np.mean(vdd))
    predicted = (predict_power(params, weights.codes, codes, vdd_v=vdd_v)
                 if params is not None and params.supply is not None else None)
    return PowerMeasurement(supply, np.array(idle), np.array(vdd), inputs, source, float(presentation_rate_hz),
                            ops, nonzero, time.monotonic() - started, predicted)


def _read_idle(bench: Bench, n: int, currents: list[float], voltages: list[float]) -> None:
    """Every input at code 0, then ``n`` supply current and VDD readings."""
    bench.bridge.set_inputs(np.zeros(bench.chip.n_inputs, dtype=np.int64))
    for _ in range(n):
        currents.append(bench.read("supply", "current"))
        voltages.append(bench.read("supply", "voltage"))


def input_currents_a(chip: ChipDescription, params: DieParameters | None,
                     codes: np.ndarray) -> tuple[np.ndarray, str]:
    """Per pattern, the summed input currents (bias gain x code x DAC LSB + offset), and where the gains came from."""
    if params is None:
        return codes.sum(axis=1) * chip.dac_lsb_a, "nominal"
    currents = np.asarray(params.bias_gain) * codes * chip.dac_lsb_a + np.asarray(params.bias_offset_a)
    return currents.sum(axis=1), "characterisation"


def network_ops(weights: WeightSet) -> tuple[int, int]:
    """Multiply-accumulates per inference of the network on the die, and how many have a non-zero code.

    The network's synapses, as seed 004 counts them (sum of a x b over
    consecutive layer sizes): from the feature channels, through the hidden
    layers' first neurons, to the class outputs (:mod:`.training.network_map`);
    the constant bias channel is no synapse of the network. Weights that do
    not record their layer sizes use the die's hidden layers whole.
    """
    enc = weights.encoding
    sizes = weights.provenance.layer_sizes_used or (len(enc.input_channels), *weights.layer_sizes[1:-1],
                                                    len(enc.class_outputs))
    used = [np.asarray(enc.input_channels), *(np.arange(n) for n in sizes[1:-1]), np.asarray(enc.class_outputs)]
    nonzero = sum(int(np.count_nonzero(c[np.ix_(rows, cols)])) for c, rows, cols in zip(weights.codes, used, used[1:]))
    return int(sum(a * b for a, b in zip(sizes, sizes[1:]))), nonzero


def _mean(values: np.ndarray | list[float]) -> Figure:
    """Mean and its standard error (NaN from fewer than two readings)."""
    x = np.asarray(values, dtype=np.float64)
    return Figure(float(x.mean()), float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else float("nan"))


def _times(a: Figure, b: Figure) -> Figure:
    """The product of two independent figures."""
    return Figure(a.value * b.value, float(np.hypot(a.value * b.se, b.value * a.se)))
