"""Proving the bench file's wiring before power (contract section 4, "Proving the wiring before power").

A bench file is only a claim about which instrument channel reaches which pad.
Believed blindly, a file with two roles swapped makes the power-up ramp VDD to
1.8 V on EXT_IN or MON and drive the others wrongly, and the die is overstressed
before anything is checked. :class:`WiringProof` proves the claim with what the
contract says every die does, at levels that keep every pad inside its
*recommended* rating whatever the real wiring is (the six permutations of the
three roles, and a channel that is not connected at all):

(a) **VDD, unpowered** (:meth:`WiringProof.prove_supply_unpowered`). The supply
    role's channel is turned on at 0 V (with its own 2 mA compliance, as the
    power-up always did: at 0 V no pad of an unpowered die carries current), its
    compliance drops to 1 uA, and it holds ``WIRING_PROBE_V`` = 1.5 mV (the
    contract allows 2 mV; 0.5 mV is left for an SMU's setpoint error) for one
    current reading. The unpowered VDD pad draws the quiescent current x V /
    1.2 V, 2.5 nA; EXT_IN and MON draw under 10 pA, an open channel about 1 pA
    (the emulators' reading floor; real SMUs resolve 10 fA on these ranges).
    The supply role reaches VDD when it reads 1 nA to 100 nA (0.4 to 40 x the
    expected 2.5 nA, relative noise of a reading at 1 NPLC 0.2-1 %), and a
    channel does not when it reads under 0.1 nA (10 x the contract's bound).
    When the supply passes, it stays on at 0 V with its 2 mA compliance and the
    power-up ramps it from there; nothing else was touched. When it fails, it
    goes off and the source and monitor channels are probed the same way, one
    at a time (1 uA compliance, output off again after the reading), only to
    name which role reaches VDD in the one-line :class:`SafetyError` ("supply
    (smu_b:2) does not reach VDD ...; source (smu_a:1) does ...: supply and
    source look swapped; nothing was powered").

(b) **EXT_IN and MON, powered** (:meth:`WiringProof.prove_source_and_monitor`),
    once VDD is proven and ramped to 1.8 V. EXT_IN is unrouted and MON
    deselected (FPGA registers), input channel 0's DAC code is set to 0
    (RESET's value) so the neuron used below carries only what the proof
    gives it. The source role's channel turns on as a current source at 0 A
    with a **0.9 V compliance**, EXT_IN is routed to input channel 0 and 20 nA
    are forced: a channel on EXT_IN settles near 0.65 V (the input soma's
    diode; accepted 0.3 to 0.8 V, contract 0.5 to 0.7 V), a channel on MON
    (nothing selected: a 1 TOhm pad) or on nothing runs to its 0.9 V
    compliance. The compliance is the level MON is held at anyway, and half of
    VDD on EXT_IN, so neither pad can leave its recommended rating. Only then
    does the monitor role's channel hold 0.9 V (1 uA compliance): it can no
    longer be on EXT_IN, since the source proved to be. With SET_MONITOR
    disconnected it must read under 1 nA, with the EXT_IN-driven neuron
    selected 2 nA to 200 nA (about a+ x 20 nA). When the source fails, the
    monitor channel is tested as the source was (current source, 0.9 V
    compliance, 20 nA into the routed EXT_IN): if it settles, the message says
    source and monitor look swapped. Either failure turns the channels it drove
    off and raises; :meth:`Bench.power_up` then ramps VDD down.

    The monitor role never holds 0.9 V before the source role has proven to
    be EXT_IN, and never while EXT_IN could be the pad it holds: 0.9 V on a
    routed EXT_IN would forward-bias the input soma to the compliance current.
    A current is never forced with a compliance above 0.9 V, so a swapped
    channel on MON stays at most at MON's own 0.9 V, sinking picoamperes.

A die left powered by an earlier session (``keep_powered``; STATUS says VDD is
in range) cannot be probed unpowered without dropping VDD and losing the
latches. :meth:`WiringProof.prove_supply_powered` then only *reads* the supply
role's channel, commanding nothing: it must show VDD (1.71 to 1.89 V) carrying
the die's supply current (1 uA, half the quiescent 2 uA, up to 2 mA). A channel
that is not the one holding VDD is off (open: 0 V, no current, section 4) or
holds some other pad, and is refused before anything is sent to it; (b) then
proves source and monitor as after a fresh power-up.

Cost, at 1 NPLC (50 Hz): one reading for (a) on a correct bench, three for (b)
(source voltage, MON idle, MON copy): 84 ms of integration (the simulated
bench's power-up goes from 21 ms to 105 ms of bench time) plus about 25
setpoint commands and seven bridge requests. A bench set to integrate faster
than ``WIRING_PROOF_NPLC`` is raised to it for the proof's readings only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from labctl.drivers.smu_roles import SmuChannel
from labctl.errors import SafetyError
from labctl.families.cmna import ratings

PROOF_INPUT_CHANNEL = 0
"""Layer-0 channel EXT_IN is routed to during the proof (every die has it)."""
ROLES = ("supply", "source", "monitor")

Reader = Callable[[str, str], float]
"""``read(role, quantity)`` with quantity 'current' or 'voltage' (the Bench's reading, recorded)."""


class ProofBridge(Protocol):
    """The bridge operations the proof uses: FPGA registers only (they always succeed, section 4)."""

    def route_ext_in(self, channel: int | None) -> None: ...

    def set_monitor(self, layer: int, neuron: int | None) -> None: ...

    def set_inputs(self, codes: Sequence[int], first_channel: int = 0) -> None: ...


class WiringProof:
    """Proves that each role's channel reaches its pad (see the module text); refuses with a
    one-line :class:`SafetyError` naming the roles that look swapped."""

    def __init__(self, channels: Mapping[str, SmuChannel], labels: Mapping[str, str], bridge: ProofBridge,
                 read: Reader, nplc: float) -> None:
        self._channels = channels
        self._labels = labels
        self._bridge = bridge
        self._reader = read
        self._nplc = nplc

    # -- (a) VDD -------------------------------------------------------------------------------------

    def prove_supply_unpowered(self) -> None:
        """Unpowered die: the supply role must draw the VDD pad's nanoamperes at 1.5 mV.

        On success the supply output is on at 0 V with its 2 mA compliance (the ramp starts
        there); on failure every output this probe touched is off and nothing was powered.
        """
        supply = self._channels["supply"]
        supply.source_voltage(0.0, ratings.VDD_CURRENT_LIMIT_A)
        supply.enable_output()
        reading = self._probe("supply")
        if _reaches_vdd(reading):
            supply.source_voltage(0.0, ratings.VDD_CURRENT_LIMIT_A)
            return
        supply.disable_output()
        readings = {"supply": reading}
        for role in ("source", "monitor"):
            channel = self._channels[role]
            channel.source_voltage(0.0, ratings.WIRING_PROBE_CURRENT_LIMIT_A)
            channel.enable_output()
            try:
                readings[role] = self._probe(role)
            finally:
                channel.disable_output()
        raise SafetyError(self._supply_refusal(readings))

    def prove_supply_powered(self) -> None:
        """A die already powered (kept on by an earlier session): the supply role must read VDD
        at the die's supply current. Only reads; refuses before anything is commanded."""
        voltage = self._read("supply", "voltage")
        current = self._read("supply", "current")
        low, high = ratings.VDD_IN_RANGE_V
        i_low, i_high = ratings.TAKEOVER_SUPPLY_CURRENT_A
        if low <= voltage <= high and i_low <= current < i_high:
            return
        raise SafetyError(
            f"bench file roles: the die is already powered (STATUS: VDD in range) but supply "
            f"({self._labels['supply']}) reads {_si(voltage, 'V')} and {_si(current, 'A')}, not VDD "
            f"({low}-{high} V carrying {_si(i_low, 'A')} or more): it is not the channel holding VDD; "
            f"no output was touched, and the die stays powered by whatever holds VDD")

    # -- (b) EXT_IN and MON ----------------------------------------------------------------------------

    def prove_source_and_monitor(self) -> None:
        """Powered die, VDD proven: the source role must settle on a routed EXT_IN and the monitor
        role must read a MON copy that follows SET_MONITOR. Leaves the source on at 0 A (0.9 V
        compliance), the monitor on at 0.9 V, EXT_IN unrouted and MON deselected."""
        bridge = self._bridge
        bridge.route_ext_in(None)
        bridge.set_monitor(0, None)
        bridge.set_inputs([0], first_channel=PROOF_INPUT_CHANNEL)
        source, monitor = self._channels["source"], self._channels["monitor"]
        source.source_current(0.0, ratings.EXT_IN_PROOF_COMPLIANCE_V)
        source.enable_output()
        try:
            bridge.route_ext_in(PROOF_INPUT_CHANNEL)
            source.set_current(ratings.EXT_IN_PROOF_A)
            settled_v = self._read("source", "voltage")
            if not _settled(settled_v):
                source.set_current(0.0)
                source.disable_output()
                raise SafetyError(self._source_refusal(settled_v))
            # the source is EXT_IN, so the monitor channel is not: 0.9 V on it is safe
            monitor.source_voltage(ratings.MON_V, ratings.MON_CURRENT_LIMIT_A)
            monitor.enable_output()
            idle_a = self._read("monitor", "current")
            bridge.set_monitor(0, PROOF_INPUT_CHANNEL)
            try:
                copy_a = self._read("monitor", "current")
            finally:
                bridge.set_monitor(0, None)
        finally:
            source.set_current(0.0)
            bridge.route_ext_in(None)
        copy_low, copy_high = ratings.MON_PROOF_COPY_A
        if abs(idle_a) < ratings.MON_PROOF_IDLE_MAX_A and copy_low <= copy_a - idle_a <= copy_high:
            return
        monitor.disable_output()
        raise SafetyError(
            f"bench file roles: monitor ({self._labels['monitor']}) does not reach MON: held at "
            f"{ratings.MON_V} V it reads {_si(copy_a, 'A')} with the neuron on EXT_IN's 20 nA selected and "
            f"{_si(idle_a, 'A')} with none (a MON pad: {_si(copy_low, 'A')} to {_si(copy_high, 'A')} more "
            f"with it, under {_si(ratings.MON_PROOF_IDLE_MAX_A, 'A')} without); the die was powered down again")

    def _source_refusal(self, source_v: float) -> str:
        """The source did not settle: test the monitor channel as a source (same levels) to say which."""
        monitor = self._channels["monitor"]
        monitor.source_current(0.0, ratings.EXT_IN_PROOF_COMPLIANCE_V)
        monitor.enable_output()
        try:
            monitor.set_current(ratings.EXT_IN_PROOF_A)
            try:
                monitor_v = self._read("monitor", "voltage")
            finally:
                monitor.set_current(0.0)
        finally:
            monitor.disable_output()
        low, high = ratings.EXT_IN_SETTLED_V
        source = (f"source ({self._labels['source']}) does not reach EXT_IN: 20 nA forced into it with EXT_IN "
                  f"routed reads {_si(source_v, 'V')} (a routed EXT_IN settles at {low}-{high} V, "
                  f"{ratings.EXT_IN_PROOF_COMPLIANCE_V} V is compliance)")
        if _settled(monitor_v):
            return (f"bench file roles: {source}; monitor ({self._labels['monitor']}) does "
                    f"({_si(monitor_v, 'V')}): source and monitor look swapped; the die was powered down again")
        return (f"bench file roles: {source}, nor does monitor ({self._labels['monitor']}, "
                f"{_si(monitor_v, 'V')}): check the EXT_IN wiring; the die was powered down again")

    # -- helpers -----------------------------------------------------------------------------------------

    def _probe(self, role: str) -> float:
        """Hold ``role``'s channel (output on, at 0 V) at the probe level with a 1 uA compliance; one
        current reading; back to 0 V."""
        channel = self._channels[role]
        channel.source_voltage(0.0, ratings.WIRING_PROBE_CURRENT_LIMIT_A)
        channel.set_voltage(ratings.WIRING_PROBE_V)
        try:
            return self._read(role, "current")
        finally:
            channel.set_voltage(0.0)

    def _read(self, role: str, quantity: str) -> float:
        """One reading, integrated at least ``WIRING_PROOF_NPLC`` (the bench's own NPLC restored)."""
        slow = self._nplc < ratings.WIRING_PROOF_NPLC
        channel = self._channels[role]
        if slow:
            channel.set_nplc(ratings.WIRING_PROOF_NPLC)
        try:
            return self._reader(role, quantity)
        finally:
            if slow:
                channel.set_nplc(self._nplc)

    def _supply_refusal(self, readings: Mapping[str, float]) -> str:
        at = f"at {_si(ratings.WIRING_PROBE_V, 'V')} unpowered"
        expected = f"the VDD pad about {_si(ratings.VDD_PROBE_EXPECTED_A, 'A')}"
        supply = f"supply ({self._labels['supply']})"
        reaching = [r for r in ("source", "monitor") if _reaches_vdd(readings[r])]
        if len(reaching) == 1:
            other = reaching[0]
            return (f"bench file roles: {supply} does not reach VDD ({_si(readings['supply'], 'A')} {at}, "
                    f"{expected}); {other} ({self._labels[other]}) does ({_si(readings[other], 'A')}): "
                    f"supply and {other} look swapped; nothing was powered")
        drawn = ", ".join(f"{r} {_si(readings[r], 'A')}" for r in ROLES)
        if reaching:
            return (f"bench file roles: source and monitor both draw like VDD {at} ({drawn}; {expected}): "
                    f"the wiring cannot be proven; nothing was powered")
        if not _clearly_not_vdd(readings["supply"]):
            low, high = ratings.VDD_PROBE_WINDOW_A
            return (f"bench file roles: {supply} draws {_si(readings['supply'], 'A')} {at}: neither VDD "
                    f"({_si(low, 'A')}-{_si(high, 'A')}) nor EXT_IN or MON (under "
                    f"{_si(ratings.PAD_PROBE_MAX_A, 'A')}): the wiring cannot be proven; nothing was powered")
        return (f"bench file roles: {supply} does not reach VDD and no role does ({drawn} {at}; {expected}): "
                f"check the supply wiring; nothing was powered")


def _reaches_vdd(current_a: float) -> bool:
    low, high = ratings.VDD_PROBE_WINDOW_A
    return low <= current_a <= high


def _clearly_not_vdd(current_a: float) -> bool:
    return abs(current_a) < ratings.PAD_PROBE_MAX_A


def _settled(voltage_v: float) -> bool:
    low, high = ratings.EXT_IN_SETTLED_V
    return low <= voltage_v <= high


_PREFIXES = ((1.0, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p"), (1e-15, "f"))


def _si(value: float, unit: str) -> str:
    """``2.5e-09, 'A'`` -> ``2.5 nA`` (three significant digits)."""
    magnitude = abs(value)
    if magnitude == 0 or magnitude != magnitude:
        return f"{value:g} {unit}"
    for scale, prefix in _PREFIXES:
        if magnitude >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value / 1e-15:.3g} f{unit}"
