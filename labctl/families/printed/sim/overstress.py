"""Overstress of a printed sample (contract 4.4, 6.4, 6.5), detected from the bench's state after every change.

The instruments know no pad rating (5.4): they execute a damaging command,
and the sample breaks silently. This module only *detects* an overstress
from a snapshot of the bench (DAC levels, rail levels, closed rail relays);
what breaks is the sample's business (:meth:`PrintedSample.overstress`):

- a D pad beyond +-2.0 V (its absolute maximum): the EGTs whose gates it
  reaches;
- a rail out of its absolute range (VDD above 2.5 V or below -0.3 V, VSS
  below -2.5 V or above +0.3 V), or the two more than 0.5 V out of symmetry,
  while a group is connected (a rail whose relay is open counts as 0 V: a
  half-powered cell sees the full rail across its electrolyte): every cell
  of that group;
- a rail relay switched while either rail's output is on beyond +-50 mV
  (hot switching, 6.4): every cell of that group.
"""

from __future__ import annotations

from dataclasses import dataclass

PAD_ABS_MAX_V = 2.0
VDD_ABS_V = (-0.3, 2.5)
VSS_ABS_V = (-2.5, 0.3)
SYMMETRY_V = 0.5
HOT_SWITCH_V = 0.05
VDD_RELAY, VSS_RELAY = 8000, 8035
GROUPS = range(1, 36)
TOLERANCE_V = 1e-9


@dataclass(frozen=True)
class BenchSnapshot:
    """The bench as the sample sees it: DAC levels of D pads (None: off), rail source levels (None: output
    off) and the closed slot-8 relays."""

    dac_v: dict[str, float | None]
    vdd_v: float | None
    vss_v: float | None
    closed: frozenset[int]

    def group_rails(self, group: int) -> tuple[float, float] | None:
        """Rail voltages a group sees (an open relay or an output off counts as 0 V); None if unconnected."""
        vdd_on, vss_on = VDD_RELAY + group in self.closed, VSS_RELAY + group in self.closed
        if not (vdd_on or vss_on):
            return None
        return (self.vdd_v or 0.0) if vdd_on else 0.0, (self.vss_v or 0.0) if vss_on else 0.0


@dataclass(frozen=True)
class Overstress:
    """What was overstressed: a D pad (``pad``) or a rail group (``group``), and why."""

    reason: str
    pad: str | None = None
    group: int | None = None


def rails_out_of_range(vdd: float, vss: float) -> bool:
    return (not VDD_ABS_V[0] - TOLERANCE_V <= vdd <= VDD_ABS_V[1] + TOLERANCE_V
            or not VSS_ABS_V[0] - TOLERANCE_V <= vss <= VSS_ABS_V[1] + TOLERANCE_V
            or abs(vdd + vss) > SYMMETRY_V + TOLERANCE_V)


class OverstressWatch:
    """Compares each snapshot with the previous one (relay switching) and with the ratings."""

    def __init__(self) -> None:
        self._closed: frozenset[int] = frozenset()

    def check(self, snap: BenchSnapshot) -> list[Overstress]:
        events = [Overstress(f"{pad} driven to {level:+.3f} V (absolute maximum +-2.0 V)", pad=pad)
                  for pad, level in snap.dac_v.items() if level is not None and abs(level) > PAD_ABS_MAX_V]
        for group in GROUPS:
            rails = snap.group_rails(group)
            if rails is not None and rails_out_of_range(*rails):
                events.append(Overstress(f"rails {rails[0]:+.3f}/{rails[1]:+.3f} V on group {group}", group=group))
        hot = max(abs(snap.vdd_v or 0.0), abs(snap.vss_v or 0.0)) > HOT_SWITCH_V
        switched = {c for c in self._closed ^ snap.closed if VDD_RELAY < c <= VSS_RELAY + GROUPS[-1]}
        if hot:
            for channel in sorted(switched):
                group = channel - VDD_RELAY if channel <= VSS_RELAY else channel - VSS_RELAY
                events.append(Overstress(f"relay {channel} switched with rails on", group=group))
        self._closed = snap.closed
        return events
