"""Proving a TTFS bench's wiring before and after VDD (contract 5.1): no pad is hurt by it.

Before power, every SMU output is on at 0 V; each role in turn holds 1.5 mV at
a 1 uA compliance for one reading, and the current says what is on the
channel: the unpowered VDD network draws 1 to 100 nA, a bias pad's 10 Mohm
bleeder 0.05 to 0.5 nA, an open channel picoamperes. After VDD is up and in
range, each bias role in turn sources 0.60 V at a 10 uA compliance and
READ_MONITORS must show exactly its pad at 0.60 V within 20 mV, the other bias
pads below 0.05 V. Anything else is a wiring fault: the role goes back to
0 V and the power-up is refused with one line naming the role.
"""

from __future__ import annotations

from typing import Callable, Mapping

from labctl.errors import SafetyError
from labctl.families.ttfs.probe_ops import Monitors

CONTACT_V = 1.5e-3
CONTACT_COMPLIANCE_A = 1e-6
SUPPLY_CONTACT_A = (1e-9, 100e-9)
BIAS_CONTACT_A = (0.05e-9, 0.5e-9)
PROOF_V = 0.60
PROOF_COMPLIANCE_A = 10e-6
PROOF_TOLERANCE_V = 0.020
OTHERS_BELOW_V = 0.05
MONITOR_FIELD = {"threshold": "vth", "rev_exc": "erev_exc", "rev_inh": "erev_inh"}
PAD_OF_ROLE = {"supply": "VDD", "threshold": "VTH", "rev_exc": "EREV_EXC", "rev_inh": "EREV_INH"}


def prove_contacts(channels: Mapping, labels: Mapping[str, str], read_current: Callable[[str], float],
                   compliance_a: Mapping[str, float]) -> None:
    """Before power (5.1): the supply role, then each bias role, at 1.5 mV and 1 uA; back to 0 V after each."""
    for role, (low, high) in [("supply", SUPPLY_CONTACT_A)] + [(r, BIAS_CONTACT_A) for r in MONITOR_FIELD]:
        channel = channels[role]
        channel.source_voltage(CONTACT_V, CONTACT_COMPLIANCE_A)
        try:
            current = read_current(role)
        finally:
            channel.source_voltage(0.0, compliance_a[role])
        if not low <= current <= high:
            what = "the unpowered VDD network" if role == "supply" else "a bias pad's 10 Mohm bleeder"
            raise SafetyError(f"wiring: {role} ({labels[role]}) draws {current:.3g} A at 1.5 mV, not {what} "
                              f"({low:g} to {high:g} A): check that it reaches {PAD_OF_ROLE[role]}; nothing powered")


def prove_biases(channels: Mapping, labels: Mapping[str, str], monitors: Callable[[], Monitors],
                 compliance_a: Mapping[str, float]) -> None:
    """With VDD up (5.1): each bias role alone at 0.60 V must move its own pad and no other."""
    for role, field in MONITOR_FIELD.items():
        channel = channels[role]
        channel.source_voltage(PROOF_V, PROOF_COMPLIANCE_A)
        try:
            seen = monitors()
        finally:
            channel.source_voltage(0.0, compliance_a[role])
        own = getattr(seen, field)
        others = {r: getattr(seen, f) for r, f in MONITOR_FIELD.items() if r != role}
        moved = [PAD_OF_ROLE[r] for r, v in others.items() if v >= OTHERS_BELOW_V]
        if abs(own - PROOF_V) > PROOF_TOLERANCE_V or moved:
            found = f"{', '.join(moved)} moved instead" if moved else f"{PAD_OF_ROLE[role]} reads {own:.3f} V"
            raise SafetyError(f"wiring: {role} ({labels[role]}) at {PROOF_V} V does not reach "
                              f"{PAD_OF_ROLE[role]} alone ({found}); power-up refused")
