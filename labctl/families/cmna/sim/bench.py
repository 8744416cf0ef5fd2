"""A whole simulated bench: one die, its bridge and its SMUs, served on loopback.

Everything labctl does to a real bench it does to this one, through the same
drivers and sockets (pyserial ``socket://`` for the bridge, pyvisa-py
``TCPIP0::...::SOCKET`` for the SMUs). The die's pads are wired to emulated
instrument channels exactly as a bench file says, so power sequencing,
compliance and damage behave physically. Only tests, benchmarks and the
commands that start a simulated bench import this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labctl.families.cmna.sim.bridge_server import BridgeServer
from labctl.sim.bridge_server import FaultPlan
from labctl.sim.clock import VirtualClock
from labctl.families.cmna.sim.die import SimulatedDie
from labctl.sim.instrument_server import InstrumentServer
from labctl.sim.loopback_bench import LoopbackBench
from labctl.sim.smu_emulators import (
    Keithley2450Emulator,
    Keithley2636BEmulator,
    KeysightB2901AEmulator,
    KeysightB2902AEmulator,
    SmuEmulator,
)
from labctl.families.cmna.sim.truth import DieTruth


@dataclass(frozen=True)
class Wiring:
    """Instrument models by name, and which channel is wired to which pad."""

    instruments: dict[str, type[SmuEmulator]]
    pads: dict[str, tuple[str, str]]
    """pad -> (instrument name, channel)."""


WIRINGS: dict[str, Wiring] = {
    # the example: a 2450 sources EXT_IN, a B2902A holds MON (ch 1) and VDD (ch 2)
    "default": Wiring({"smu_a": Keithley2450Emulator, "smu_b": KeysightB2902AEmulator},
                      {"EXT_IN": ("smu_a", "1"), "MON": ("smu_b", "1"), "VDD": ("smu_b", "2")}),
    # the usual 2636B wiring (section 4): smua to EXT_IN, smub to MON; a 2450 supplies VDD
    "2636b": Wiring({"smu_a": Keithley2636BEmulator, "smu_b": Keithley2450Emulator},
                    {"EXT_IN": ("smu_a", "a"), "MON": ("smu_a", "b"), "VDD": ("smu_b", "1")}),
    # one single-channel B2901A per role
    "b2901a": Wiring({"smu_s": KeysightB2901AEmulator, "smu_x": KeysightB2901AEmulator,
                      "smu_m": KeysightB2901AEmulator},
                     {"VDD": ("smu_s", "1"), "EXT_IN": ("smu_x", "1"), "MON": ("smu_m", "1")}),
}

ROLE_OF_PAD = {"VDD": "supply", "EXT_IN": "source", "MON": "monitor"}


class SimulatedBench(LoopbackBench):
    """Start with ``with SimulatedBench("CMNA-777", seed=3) as sim:``; ``sim.bench_text`` is its bench file.

    Gates and integrations are accounted, not waited (``realtime=True`` waits
    them); ``sim.clock.accounted_s`` is the bench time real hardware would spend.
    ``served=True`` (what ``labctl sim serve`` uses, :mod:`labctl.sim.clock`):
    bench time never falls behind wall time since the bench started, so STATUS
    uptime, die temperature and drift move while clients are idle, as on a
    real bench other programs talk to. The default keeps time purely virtual,
    so a run in-process (tests, the demo, benchmarks) repeats bit for bit: a
    served timeline carries the wall time of the run's idle spells (opening
    the bench, software between gates), and the smallest shift of the drift
    changes how many random draws a Poisson count takes, so every later
    reading differs.
    """

    family = "cmna"

    def __init__(self, part: str = "CMNA-777", seed: int = 0, *, realtime: bool = False, wiring: str = "default",
                 faults: FaultPlan | None = None, truth: DieTruth | None = None, bridge_timeout_s: float = 0.25,
                 served: bool = False) -> None:
        if wiring not in WIRINGS:
            raise ValueError(f"unknown wiring {wiring!r}; known: {', '.join(WIRINGS)}")
        self.clock = VirtualClock(realtime=realtime, served=served)
        self.die = SimulatedDie(part, seed, clock=self.clock, truth=truth)
        self.wiring = WIRINGS[wiring]
        self.emulators = {name: cls(clock=self.clock, seed=seed * 31 + i)
                          for i, (name, cls) in enumerate(self.wiring.instruments.items())}
        for pad, (name, channel) in self.wiring.pads.items():
            self.emulators[name].channel(channel).attach(self.die.pads[pad])
        self.bridge_server = BridgeServer(self.die, faults=faults)
        self.instrument_servers = {name: InstrumentServer(emu, lock=self.die.lock) for name, emu in self.emulators.items()}
        self.bridge_timeout_s = bridge_timeout_s

    def channel_of(self, pad: str):
        """The emulated channel wired to ``pad`` (tests inspect output state through it)."""
        name, channel = self.wiring.pads[pad]
        return self.emulators[name].channel(channel)

    @property
    def label(self) -> str:
        return f"simulated {self.die.chip.part} {self.die.chip.serial}"

    def role_lines(self) -> list[str]:
        return [f'{ROLE_OF_PAD[pad]} = "{name}:{channel}"' for pad, (name, channel) in self.wiring.pads.items()]

    @property
    def bench_seconds(self) -> float:
        """Bench time real hardware would have spent (the virtual clock's accounting)."""
        return self.clock.accounted_s

    def save_truth(self, path: Path) -> None:
        self.die.truth.save(path)
