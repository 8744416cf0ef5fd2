"""Resistor geometry from a value (contract 1.2): R = R_s L / W on the 1 um grid, within the layer's rules.

The exporter draws every resistor with the run's measured sheet resistance.
Preference (the issue): the narrowest width whose length lands the value
within 0.5 % (rule J3), which is also the smallest footprint on the foil;
the length is then the nearest allowed one. ``bounds`` keeps the drawn value
inside a hard range (the crossbar's 10 kohm to 10 Mohm, a cell component's
printable range), choosing the rounding of L that stays inside it.
"""

from __future__ import annotations

import math

from labctl.errors import ConfigError
from labctl.families.printed.job_records import ResistorGeometry
from labctl.families.printed.printable import INKS, R_TOLERANCE


def _candidates(r_ohm: float, w: int, r_s: float) -> list[int]:
    exact = r_ohm * w / r_s
    return sorted({math.floor(exact), math.ceil(exact)}, key=lambda l: abs(l - exact))


def draw_resistor(r_ohm: float, layer: str, r_s_ohm_sq: float, *, bounds: tuple[float, float] | None = None,
                  item: str = "resistor") -> ResistorGeometry:
    """Integer W, L (um) on ``layer`` with ``R_s L / W`` within 0.5 % of ``r_ohm`` (and inside ``bounds``).

    ConfigError (one line naming ``item``) when no geometry within contract 1.2 reaches the value.
    """
    rules = INKS[layer]
    low, high = bounds if bounds else (0.0, math.inf)
    for w in range(int(rules.w_um[0]), int(rules.w_um[1]) + 1):
        for l in _candidates(r_ohm, w, r_s_ohm_sq):
            drawn = r_s_ohm_sq * l / w
            if not rules.l_um[0] <= l <= rules.l_um[1] or not rules.aspect[0] <= l / w <= rules.aspect[1]:
                continue
            if abs(drawn / r_ohm - 1) <= R_TOLERANCE * 0.999 and low <= drawn <= high:
                return ResistorGeometry(layer, w, l, float(f"{drawn:.9g}"))
    raise ConfigError(f"{item}: {r_ohm:.6g} ohm cannot be drawn on {layer} (R_s {r_s_ohm_sq:g} ohm/sq) within "
                      f"W {rules.w_um[0]:g} to {rules.w_um[1]:g} um, L {rules.l_um[0]:g} to {rules.l_um[1]:g} um, "
                      f"L/W {rules.aspect[0]:g} to {rules.aspect[1]:g} (contract 1.2)")
