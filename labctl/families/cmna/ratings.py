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


TARGET_SOMA_INPUT_A = 200e-9
"""Largest soma input current labctl plans for (characterisation's drive levels, the trained encoding on
the training split): two thirds of the ~300 nA where compression starts (section 1); less on a die whose
somas were measured to compress early (:func:`soma_input_limit_a`)."""

DEFAULT_GATE_MS = 20
"""C2F gate per pattern when classifying (evaluation, in-situ rounds): 20 ms keeps the count noise
well below the class margins the trainer asks for (docs/training.md)."""

# -- proving the wiring before power (contract section 4; labctl.families.cmna.wiring) --------------

WIRING_PROBE_V = 1.5e-3
"""Unpowered probe level: under the contract's 2 mV with room for an SMU's setpoint error
(a 2450 on its 200 mV range: 0.015 % + 200 uV)."""
WIRING_PROBE_CURRENT_LIMIT_A = 1e-6
"""Compliance while a channel not yet known to be VDD is held at the probe level."""
VDD_PROBE_EXPECTED_A = 2e-6 * WIRING_PROBE_V / 1.2
"""What the unpowered VDD pad draws at the probe level: quiescent 2 uA x V / 1.2 V = 2.5 nA."""
VDD_PROBE_WINDOW_A = (1e-9, 100e-9)
"""A channel reaches VDD when it draws this at the probe level: 0.4 to 40 x the expected 2.5 nA."""
PAD_PROBE_MAX_A = 0.1e-9
"""A channel does not reach VDD when it draws less: EXT_IN and MON carry under 10 pA (x 10 margin;
the readings' floor is about 1 pA)."""
TAKEOVER_SUPPLY_CURRENT_A = (1e-6, VDD_CURRENT_LIMIT_A)
"""A supply left on by an earlier session must read this current at 1.71-1.89 V: the die's quiescent
2 uA (x 0.5 margin) plus its branches, below compliance."""

WIRING_PROOF_NPLC = 1.0
"""Integration time of the proof's readings, at least (a bench set faster is raised for them)."""
EXT_IN_PROOF_A = 20e-9
"""Current forced by the channel under test while EXT_IN is routed to input channel 0."""
EXT_IN_PROOF_COMPLIANCE_V = MON_V
"""Its voltage compliance: a channel that is really on MON (nothing selected) or open goes no higher
than the 0.9 V MON is held at, and an EXT_IN pad no higher than half of VDD."""
EXT_IN_SETTLED_V = (0.3, 0.8)
"""A routed EXT_IN settles here (contract: near 0.5 to 0.7 V); at 0.8 V and above the channel is
running to its 0.9 V compliance: it does not reach EXT_IN."""
MON_PROOF_IDLE_MAX_A = 1e-9
"""The monitor role with SET_MONITOR disconnected reads less than this (a MON pad: about 1 pA)."""
MON_PROOF_COPY_A = (2e-9, 200e-9)
"""...and this with the EXT_IN-driven neuron selected (about a+ x 20 nA: 0.1 to 10 x)."""
