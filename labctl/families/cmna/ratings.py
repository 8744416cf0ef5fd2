"""Recommended operating ratings of a CMNA die (contract sections 1 and 3).

The bench refuses any setpoint outside these before it reaches an instrument;
the absolute maximum ratings (which damage the die) lie beyond them.
"""

from collections.abc import Iterable

import numpy as np

VDD_V = 1.80
"""Supply setpoint."""
VDD_IN_RANGE_V = (1.71, 1.89)
"""Supply window inside which the bridge accepts MEASURE and latch operations (section 4)."""
VDD_CURRENT_LIMIT_A = 2e-3
VDD_RAMP_STEP_V = 0.1
"""Ramp step: VDD rises and falls in steps, never jumps (section 3, safe operation)."""

EXT_IN_MAX_A = 500e-9
"""Largest current sourced into EXT_IN (recommended 0 to 500 nA)."""
EXT_IN_COMPLIANCE_V = 1.8
"""EXT_IN voltage compliance; never above the VDD setpoint (section 4)."""

MON_V = 0.9
"""MON is held at 0.9 V while measured; the copy is accurate only there (section 4)."""
MON_CURRENT_LIMIT_A = 1e-6
MON_MAX_A = 500e-9

LINEAR_RANGE_A = 300e-9
"""Soma input currents above about this compress (section 1)."""
ONSET_MARGIN = 0.8
"""Operating points (characterisation's and the trained encoding's) stay below this share of the
lowest compression onset measured on the die."""


def soma_input_limit_a(target_a: float, onsets_a: Iterable[np.ndarray | None]) -> float:
    """The soma input operating points may reach: ``target_a``, or ``ONSET_MARGIN`` times the lowest
    compression onset measured in any layer when that is lower (NaN or None: not measured)."""
    values = np.concatenate([np.ravel(o) for o in onsets_a if o is not None] or [np.zeros(0)])
    measured = values[np.isfinite(values)]
    return float(min(target_a, ONSET_MARGIN * measured.min())) if len(measured) else float(target_a)
SAFE_SOMA_INPUT_A = 250e-9
"""Largest soma input labctl plans for: a margin below the onset of compression."""
