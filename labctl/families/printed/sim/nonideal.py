"""Typical non-idealities of a printed cell output (contract 1.9, T), added to what the DC solve gives.

The DC solve is the cell's static truth; a real output also shows reading
noise (0.1 to 0.5 mV rms at 1 PLC, falling as 1/sqrt(NPLC)), a hysteresis
between up and down sweeps (<= 5 mV) and a bias-stress drift while powered
(<= 1 mV/min). Each cell draws its own values once; a sample repeats for its
seed. They apply only while the cell is powered: an unpowered output floats
at what the solve says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NOISE_V = (0.1e-3, 0.5e-3)
HYSTERESIS_V = (0.5e-3, 4.0e-3)
DRIFT_V_PER_S = 0.8e-3 / 60.0
"""Largest drift rate drawn (contract 1.9: <= 1 mV/min)."""


@dataclass(frozen=True)
class OutputQuirks:
    """One cell output's noise, hysteresis and drift, the cell's rail group and its input pad (if on a pad)."""

    cell: str
    group: int
    input_pad: str | None
    noise_v: float
    hysteresis_v: float
    drift_v_per_s: float

    def offset_v(self, direction: float, powered_s: float, nplc: float, rng: np.random.Generator) -> float:
        """Added to the DC output: half the hysteresis in the sweep's direction, drift, reading noise."""
        noise = self.noise_v / math.sqrt(nplc) * float(rng.standard_normal())
        return 0.5 * self.hysteresis_v * direction + self.drift_v_per_s * powered_s + noise


def draw_quirks(cell: str, group: int, input_pad: str | None, rng: np.random.Generator) -> OutputQuirks:
    """A cell output's quirks within contract 1.9's typical ranges."""
    return OutputQuirks(cell, group, input_pad, float(rng.uniform(*NOISE_V)), float(rng.uniform(*HYSTERESIS_V)),
                        float(rng.uniform(-DRIFT_V_PER_S, DRIFT_V_PER_S)))
