"""The raw and fitted tables of a process characterisation: one structured dtype per table, one home each.

Raw rows are what the bench read, in SI units, appended as measured
(printed-bench.md 7: "each point records the output, the input pad voltage
and current, both rail currents and the structure's power"). Fit rows are
one per structure, with named fields (drawn components included) so a reader
needs no side table.
"""

from __future__ import annotations

import numpy as np

from labctl.families.printed.printable import ACT_COMPONENTS, NEG_COMPONENTS

MAX_NODES = 4
"""Node readings of a resistor structure: the Kelvin tap (or NaN) and up to three taps."""

POINT_DTYPE = np.dtype([
    ("time_s", "f8"), ("structure", "S8"), ("direction", "i1"), ("v_set", "f8"), ("v_pad", "f8"),
    ("i_in_a", "f8"), ("v_out", "f8"), ("v_dd", "f8"), ("v_ss", "f8"), ("i_dd_a", "f8"), ("i_ss_a", "f8"),
    ("power_w", "f8"),
])
"""One sweep point of a circuit structure; direction +1 forward, -1 backward (7), +2 the transition
refinement (plan.py); power per 1.8."""

PORT_DTYPE = np.dtype([
    ("time_s", "f8"), ("structure", "S8"), ("v_set", "f8"), ("v_pad", "f8"), ("v_out_hiz", "f8"),
    ("v_out_10m", "f8"),
])
"""A circuit structure's output read at > 10 Gohm and then at 10 Mohm at one input level (5.2, 6.2): the
DMM's 10 Mohm is a known load, so the two readings give the output's source resistance (contract 1.3)."""

RESISTOR_DTYPE = np.dtype([
    ("time_s", "f8"), ("structure", "S8"), ("v_set", "f8"), ("v_pad", "f8"), ("i_a", "f8"),
    ("v_nodes", "f8", (MAX_NODES,)),
])
"""One drive level of a resistor structure: pad voltage and current (4.3), then Kelvin and tap voltages."""

RAIL_DTYPE = np.dtype([
    ("time_s", "f8"), ("structure", "S8"), ("group", "i2"), ("i_dd_a", "f8"), ("i_ss_a", "f8"),
    ("ok", "?"), ("problem", "S120"),
])
"""The rail check after each group's ramp (6.2)."""

CONTACT_DTYPE = np.dtype([("pad", "S4"), ("current_a", "f8"), ("answered", "?")])
"""The D-pad contact proof (6.2)."""

DONE_DTYPE = np.dtype([("structure", "S8"), ("status", "S24")])
"""A structure whose measurement finished (measured, skipped: why)."""

FLAG_NAMES = ("no_input", "no_output", "rail_fault", "transition_outside", "fit_failed", "high_residual",
              "high_hysteresis")
"""Flags of a circuit structure: what made it unusable (the first four, fit_failed) or suspicious."""

ETA_FIT_FIELDS = [("eta", "f8", (4,)), ("eta_se", "f8", (4,)), ("p", "f8", (3,)), ("p_se", "f8", (3,)),
                  ("rms_v", "f8"), ("power_rms_w", "f8"), ("hysteresis_v", "f8"), ("n_points", "i4"),
                  ("flags", "S80"), ("used", "?")]


def cell_fit_dtype(kind: str) -> np.dtype:
    """``/fits/ACT`` or ``/fits/NEG``: id, design, rail group, drawn components, then the fit fields."""
    names = ACT_COMPONENTS if kind == "ACT" else NEG_COMPONENTS
    return np.dtype([("id", "S8"), ("design", "S16"), ("group", "i2"),
                     *[(f"drawn_{name}", "f8") for name in names], *ETA_FIT_FIELDS])


RESISTOR_FIT_DTYPE = np.dtype([
    ("structure", "S8"), ("index", "i2"), ("layer", "S2"), ("w_um", "f8"), ("l_um", "f8"), ("drawn_ohm", "f8"),
    ("r_ohm", "f8"), ("r_se_ohm", "f8"), ("model_ohm", "f8"), ("rel_residual", "f8"), ("replica", "?"),
])
"""``/fits/resistors``: every measured resistor with its drawn geometry and the sheet-resistance model's value."""
