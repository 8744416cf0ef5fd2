"""Numbers with their standard errors, the same on the HTML page and in the GUI panels.

Every fitted TTFS figure carries a standard error (:class:`~labctl.families.ttfs.die_parameters.Measured`);
a number is written to the precision its error allows, in the unit a chip
engineer reads it in (fF, mV, nA), so the page and the panel never disagree.
"""

from __future__ import annotations

from labctl.families.ttfs.die_parameters import Measured
from labctl.report_page import with_se


def measured(m: Measured, scale: float = 1.0, unit: str = "") -> str:
    """A scalar fitted value with its error and unit, e.g. ``1291.4 ± 0.3 mV``."""
    text = with_se(float(m.value), float(m.se), scale)
    return f"{text} {unit}" if unit else text
