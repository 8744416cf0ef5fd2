"""A circuit structure's ports: output source resistance at both levels, NEG input line (contract 1.3, 1.5).

Why: in a printed network a cell output drives crossbar rows and a NEG
input loads the line it hangs on (1.3: "this loading is the process's
behaviour"); a model without them predicts unloaded lines and misses by
tenths of a volt. The PNC-TS layout has no load resistor, but it has two
known loads:

- the DMM's 10 Mohm input (5.2): the output read at > 10 Gohm and at
  10 Mohm gives ``r_out = 10 Mohm (V_hiz - V_10M) / V_10M``; read at both
  sweep ends, i.e. at both output levels, whose source resistances differ by
  an order of magnitude (the output inverter off: its load resistors; on: its
  channel). ``r_out_ohm`` is the high level's, ``r_out_low_ohm`` the low's.
  Near 0 V (an ACT's low level) the load draws nA and the value is mostly
  noise: it is kept, clipped at 0, with its large standard error, so the
  cell map's weighted fit gives it little say.
- the NEG's own input pad (2.3: every NEG has its own D pad): its shunt
  current during the sweep, less the pad's bleed, is the NEG input current,
  fitted as ``I = i_in0 + V / r_in`` (1.5: the input is resistive).
"""

from __future__ import annotations

import numpy as np

DMM_LOAD_OHM = 10e6
"""The slot-7 DMM input resistance at ``VOLT:DC:IMP:AUTO OFF`` (contract 5.2)."""
READ_NOISE_V = 0.2e-3
"""One output reading's noise at NPLC 10 (1.9: 0.1 to 0.5 mV rms at NPLC 1), the bound on a difference."""

Estimate = tuple[float, float]
"""(value, standard error); NaN when not measured."""
_NONE: Estimate = (np.nan, np.nan)


def _resistance(v_hiz: float, v_loaded: float) -> Estimate:
    """Source resistance from an unloaded and a 10 Mohm-loaded reading (module docstring)."""
    if not abs(v_loaded) > 0:
        return _NONE
    r = DMM_LOAD_OHM * (v_hiz - v_loaded) / v_loaded
    se = DMM_LOAD_OHM * READ_NOISE_V * np.sqrt(1.5) / abs(v_loaded)
    return float(max(r, 0.0)), float(se)


def output_resistances(rows: np.ndarray, kind: str) -> dict[str, Estimate]:
    """``r_out_ohm`` (the output's high level) and ``r_out_low_ohm`` from a structure's ``/raw/ports`` rows.

    For a NEG the output's level is ``-V`` in the tanh form's sign, so "high" is the electrically higher
    output for both kinds: the level the cell drives when its own inverter is off.
    """
    if rows.size < 2:
        return {"r_out_ohm": _NONE, "r_out_low_ohm": _NONE}
    order = np.argsort(rows["v_out_hiz"])
    low, high = rows[order[0]], rows[order[-1]]
    return {"r_out_ohm": _resistance(float(high["v_out_hiz"]), float(high["v_out_10m"])),
            "r_out_low_ohm": _resistance(float(low["v_out_hiz"]), float(low["v_out_10m"]))}


def input_line(points: np.ndarray, bleed_ohm: float) -> dict[str, Estimate]:
    """``r_in_ohm`` and ``i_in0_a`` of a NEG from its sweep points: the shunt current less the bleed's."""
    v, i = points["v_pad"], points["i_in_a"] - points["v_pad"] / bleed_ohm
    keep = np.isfinite(v) & np.isfinite(i)
    v, i = v[keep], i[keep]
    if v.size < 4 or np.ptp(v) <= 0:
        return {"r_in_ohm": _NONE, "i_in0_a": _NONE}
    x = np.column_stack([np.ones_like(v), v])
    coef, *_ = np.linalg.lstsq(x, i, rcond=None)
    resid = i - x @ coef
    cov = np.linalg.inv(x.T @ x) * float(resid @ resid) / max(v.size - 2, 1)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    if not coef[1] > 0:
        return {"r_in_ohm": _NONE, "i_in0_a": (float(coef[0]), float(se[0]))}
    return {"r_in_ohm": (float(1.0 / coef[1]), float(se[1] / coef[1] ** 2)), "i_in0_a": (float(coef[0]), float(se[0]))}
