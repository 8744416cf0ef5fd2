"""A whole simulated printed bench (contract 4): one sample, the 34980A-class mainframe and the B2902A, on loopback.

The pipeline reaches it exactly as it reaches hardware: pyvisa-py over
``TCPIP0::127.0.0.1::PORT::SOCKET``. The wiring is 4.2's channel map:

- mainframe channel ``7000+k`` reads Dk's shunt (DAC side minus pad side,
  positive for current into the pad), ``7024+n`` reads sense pad Sn; a
  reading at 10 Mohm loads the pad (6.2); a floating S pad reads 0 V at
  10 Mohm and the previous reading at > 10 Gohm;
- DAC ``s00c`` drives Dk (k = 4(s-1)+c); a DAC that is off leaves its pad to
  the bleed;
- slot-8 relays ``8000+kk`` / ``8035+kk`` join rail group kk's VDD / VSS pad
  to SMU channel 1 / 2; each SMU channel's pad is the sum of the closed
  groups' rail currents (no current through open relays).

One :class:`VirtualClock` accounts every setting, reading and integration;
one re-entrant lock serialises both instruments with the sample, and after
every state change the sample checks for overstress (6.5) and notes sweep
direction and powered time (1.9).
"""

from __future__ import annotations

import threading
from pathlib import Path

from labctl.families.printed.sim.overstress import BenchSnapshot, OverstressWatch
from labctl.families.printed.sim.sample import PrintedSample
from labctl.families.printed.sim.smu import RailB2902AEmulator
from labctl.sim.clock import VirtualClock
from labctl.sim.instrument_server import InstrumentServer
from labctl.sim.pads import Pad
from labctl.sim.switch_emulator import SwitchMeasureEmulator

SHUNT_BASE, SENSE_BASE = 7000, 7024
VDD_RELAY, VSS_RELAY = 8000, 8035
D_PADS = tuple(f"D{k:02d}" for k in range(1, 25))
RAIL_CHANNEL = {"VDD": "1", "VSS": "2"}
GROUPS = range(1, 36)
SIM_TIMEOUT_S = 30.0
"""The VISA timeout the simulated bench's file asks for (the bench file's default is 3 s, for hardware): the
emulators solve the printed circuit in Python for every reading, and on a shared 2-core host a mainframe
``READ?`` during a cardiotocography verification missed 3 s (measured, printed_tables at eps 5 % beside a
second run)."""


def dac_channel(pad: str) -> int:
    """Dk -> ``s00c`` (4.2)."""
    k = int(pad[1:])
    slot = (k + 3) // 4
    return slot * 1000 + k - 4 * (slot - 1)


class RailPad(Pad):
    """SMU channel 1 (VDD) or 2 (VSS): the closed groups' rail pads in parallel."""

    def __init__(self, bench: "SimulatedPrintedBench", kind: str) -> None:
        super().__init__()
        self.bench, self.kind, self.name = bench, kind, kind

    def current_into(self, voltage_v: float) -> float:
        return self.bench.sample.rail_current(self.kind, voltage_v, self.bench)


class SimulatedPrintedBench:
    """Mainframe and SMU emulators wired to ``sample``; also the sample's :class:`BenchView`."""

    def __init__(self, sample: PrintedSample, seed: int, *, realtime: bool = False, served: bool = False) -> None:
        self.sample = sample
        self.clock = VirtualClock(realtime=realtime, served=served)
        self.lock = threading.RLock()
        self.watch = OverstressWatch()
        self.last_reading_v = 0.0
        self.mainframe = SwitchMeasureEmulator(self.clock, seed * 31 + 1, read_node=self._read_node,
                                               on_change=self._changed)
        self.smu = RailB2902AEmulator(clock=self.clock, seed=seed * 31 + 2)
        for kind, name in RAIL_CHANNEL.items():
            pad = RailPad(self, kind)
            pad.on_change(self._changed)
            self.smu.channel(name).attach(pad)
        self.servers = {"mainframe": InstrumentServer(self.mainframe, lock=self.lock),
                        "smu": InstrumentServer(self.smu, lock=self.lock)}

    def start(self) -> "SimulatedPrintedBench":
        for server in self.servers.values():
            server.start()
        return self

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()

    # -- BenchView ---------------------------------------------------------------------------------

    def dac_v(self, pad: str) -> float | None:
        return self.mainframe.dac_output_v(dac_channel(pad))

    def rail_v(self, kind: str) -> float | None:
        """The rail's source level while its output is on (the setpoint: a rail in compliance is a fault)."""
        channel = self.smu.channel(RAIL_CHANNEL[kind])
        return channel.level["V"] if channel.output_on and channel.mode == "V" else None

    def rail_groups(self, kind: str) -> set[int]:
        base = VDD_RELAY if kind == "VDD" else VSS_RELAY
        return {g for g in GROUPS if self.mainframe.is_closed(base + g)}

    def now(self) -> float:
        return self.clock.now()

    # -- callbacks -----------------------------------------------------------------------------------

    def snapshot(self) -> BenchSnapshot:
        closed = frozenset(c for c in range(VDD_RELAY + 1, VSS_RELAY + 36) if self.mainframe.is_closed(c))
        return BenchSnapshot({pad: self.dac_v(pad) for pad in D_PADS}, self.rail_v("VDD"), self.rail_v("VSS"), closed)

    def _changed(self) -> None:
        if not hasattr(self, "smu"):
            return  # the SMU is being wired
        with self.lock:
            for event in self.watch.check(self.snapshot()):
                self.sample.overstress(event)
            self.sample.note_change(self, GROUPS)

    def _read_node(self, channel: int) -> float:
        with self.lock:
            if SHUNT_BASE < channel <= SHUNT_BASE + 24:
                value = self.sample.shunt_volts(f"D{channel - SHUNT_BASE:02d}", self)
            elif SENSE_BASE < channel <= SENSE_BASE + 46:
                value = self._sense(channel)
            else:
                value = 0.0
            self.last_reading_v = value
            return value

    def _sense(self, channel: int) -> float:
        high_z = self.mainframe.high_impedance(channel)
        pad = f"S{channel - SENSE_BASE:02d}"
        value = self.sample.sense_volts(pad, self, not high_z, self.mainframe.dmm[channel].nplc)
        if value is None:  # a floating DMM input (6.2, G)
            return self.last_reading_v if high_z else 0.0
        return value

    def true_power_w(self) -> float:
        """The sample's dissipation at the present state (tests compare the measured power of 1.8 with it)."""
        with self.lock:
            return self.sample.dissipation_w(self)

    def bench_text(self, name: str, sample_lines: list[str]) -> str:
        """The bench file of contract 4.6 for this bench's servers."""
        instruments = [line for role in ("mainframe", "smu") for line in (
            f"[instruments.{role}]", f'resource = "{self.servers[role].resource}"', f"timeout_s = {SIM_TIMEOUT_S}", "")]
        lines = ['family = "printed"', f'name = "{name}"', "", *instruments, "[probe_card]", 'model = "PC-PNC-144"',
                 "shunt_ohm = 1000.0", "", "[sample]", *sample_lines]
        return "\n".join(lines) + "\n"

    def write_text(self, path: Path, text: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path
