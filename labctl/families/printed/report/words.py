"""The report's words, the same on the HTML page and in the GUI panel: numbers with their standard
errors, and why a test structure was flagged.

The flag names are the characterisation's (:data:`..characterisation.tables.FLAG_NAMES`);
the limits quoted are the ones the fit applied, read from where they are defined.
"""

from __future__ import annotations

from labctl.families.printed.characterisation.plan import SWEEP_LIMIT_V
from labctl.families.printed.characterisation.transfer_fit import HIGH_HYSTERESIS_V, HIGH_RESIDUAL_V

REASONS = {
    "no_input": "its input pad did not answer the contact proof: not swept",
    "no_output": "its output did not answer: no usable sweep",
    "rail_fault": "its rails did not come up within compliance: not swept",
    "transition_outside": f"its transition lies outside the +-{SWEEP_LIMIT_V:g} V sweep window: an unmeasurable "
                          "design, left out of the process map",
    "fit_failed": "the tanh fit did not converge",
    "high_residual": f"the tanh form misses the sweep by more than {HIGH_RESIDUAL_V * 1e3:g} mV rms",
    "high_hysteresis": f"the up and down sweeps differ by more than {HIGH_HYSTERESIS_V * 1e3:g} mV",
}


def reason(flags: tuple[str, ...]) -> str:
    """The flags of one structure as a sentence (an unknown flag is named as it is)."""
    return "; ".join(REASONS.get(flag, flag) for flag in flags)


