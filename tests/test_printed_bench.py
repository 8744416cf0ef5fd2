"""The printed bench (printed-bench.md 4, 5.3, 6) against the mainframe and B2902A emulators.

The sample here is a stand-in written for these tests (:class:`FakeSample`):
resistors for the bleeds, the ID ladder and a resistor chain, one ACT-like and
one NEG-like structure whose outputs follow a tanh of their input pad while
their rail group is powered, and rails that draw 0.8 mA when closed. Enough
physics to pin the bench's order of operations (6.3) as exact transcripts,
the identification (6.1), the contact proofs (6.2) and the refusals (4.4,
6.4), without the process simulator.

Also here: the B2902A driver's printed-bench additions (5.3), pinned as exact
transcripts, and the layout and bench files' one-line errors.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import pyvisa

from labctl.drivers.keysight_34980a import dac_channel
from labctl.drivers.keysight_b2900 import KeysightB2900
from labctl.errors import ConfigError, SafetyError
from labctl.families.printed.bench import (
    PrintedBench,
    RailFault,
    check_pad_setpoint,
    check_rails,
    decode_id,
    ramp_levels,
)
from labctl.families.printed.bench_file import load_printed_bench_file, load_sample
from labctl.families.printed.layout import load_layout
from labctl.sim.clock import VirtualClock
from labctl.sim.instrument_server import InstrumentServer
from labctl.sim.pads import Pad
from labctl.sim.smu_emulators import KeysightB2902AEmulator, _on_off, _setting
from labctl.sim.switch_emulator import SwitchMeasureEmulator

SCPI_ERR = ":SYSTem:ERRor:NEXT?"
MF_ERR = "SYST:ERR?"


# ---------------------------------------------------------------- emulators and a stand-in sample


class RailB2902AEmulator(KeysightB2902AEmulator):
    """The B2902A emulator with the printed bench's nodes (5.3): fixed range, remote sense, trip query."""

    SETTINGS = [
        *KeysightB2902AEmulator.SETTINGS,
        _setting(":SOURce#:VOLTage:RANGe", float, lambda ch, x: setattr(ch, "range_v", x),
                 lambda ch: f"{getattr(ch, 'range_v', 0):+.6E}"),
        _setting(":SENSe#:REMote", _on_off, lambda ch, on: setattr(ch, "remote", on),
                 lambda ch: "1" if getattr(ch, "remote", False) else "0"),
        _setting(":SENSe#:CURRent:PROTection:TRIPped", float, lambda ch, x: None,
                 lambda ch: "1" if ch.drive(ch.pad).in_compliance else "0"),
    ]


class RailPad(Pad):
    """A rail pad of the stand-in sample: ``sample.rail_ohm`` to ground while a rail group is closed, else open."""

    def __init__(self, sample: "FakeSample") -> None:
        super().__init__()
        self.sample = sample

    def current_into(self, voltage_v: float) -> float:
        closed = self.sample.closed_group() is not None
        return voltage_v / self.sample.rail_ohm if closed else voltage_v * 1e-12


@dataclass
class Logged:
    """An emulator whose every line also goes to one shared, ordered transcript (instrument tag first)."""

    tag: str
    emulator: object
    lines: list[tuple[str, str]]

    def execute(self, line: str) -> str | None:
        self.lines.append((self.tag, line))
        return self.emulator.execute(line)  # type: ignore[attr-defined]


@dataclass
class FakeSample:
    """Resistive stand-in for a PNC-TS sample (see the module docstring)."""

    mainframe: SwitchMeasureEmulator
    smu: RailB2902AEmulator
    id_ladder: tuple[float, float, float] = (10e3, 10e3, 31.6e3)
    chain: tuple[float, ...] = (100e3, 100e3, 100e3, 100e3)
    bleed_ohm: float = 10e6
    neg_input_ohm: float = 100e3
    open_pads: set[str] = field(default_factory=set)
    rail_ohm: float = 2500.0

    def closed_group(self) -> int | None:
        groups = [c - 8000 for c in self.mainframe.closed if 8001 <= c <= 8035]
        return groups[0] if groups else None

    def dac(self, pad: int) -> float:
        level = self.mainframe.dac_output_v(dac_channel(pad))
        return 0.0 if level is None else level

    def load_ohm(self, pad: int) -> float | None:
        """The pad's resistance to ground (None: nothing connected)."""
        if f"D{pad:02d}" in self.open_pads:
            return None
        if pad == 24:
            return sum(self.id_ladder)
        if pad == 19:
            return sum(self.chain)
        if pad == 1:
            return self.bleed_ohm
        if pad == 13:
            return 1 / (1 / self.bleed_ohm + 1 / self.neg_input_ohm)
        return None

    def current(self, pad: int) -> float:
        load = self.load_ohm(pad)
        return 0.0 if load is None else self.dac(pad) / (1000.0 + load)

    def pad_v(self, pad: int) -> float:
        return self.dac(pad) - 1000.0 * self.current(pad)

    def rails_up(self, group: int) -> bool:
        vdd, vss = (self.smu.channel(c).drive(self.smu.channel(c).pad).voltage_v for c in ("1", "2"))
        return self.closed_group() == group and vdd is not None and vss is not None and vdd > 1.9 and vss < -1.9

    def read_node(self, channel: int) -> float:
        if 7001 <= channel <= 7024:
            return 1000.0 * self.current(channel - 7000)
        pad = channel - 7024
        if pad == 45:
            return self.current(24) * sum(self.id_ladder[1:])
        if pad == 46:
            return self.current(24) * self.id_ladder[2]
        if 36 <= pad <= 38:
            return self.current(19) * sum(self.chain[pad - 35:])
        if pad == 13 and self.rails_up(13) and "S13" not in self.open_pads:
            return 0.1 + 0.8 * math.tanh((self.pad_v(1) - 0.2) * 8.0)
        if pad == 30 and self.rails_up(30) and "S30" not in self.open_pads:
            return -(0.1 + 0.8 * math.tanh((self.pad_v(13) - 0.2) * 8.0))
        return 0.0


LAYOUT = """\
format = "pnc-ts-layout/1"
layout = "PNC-TS-A"
id_code = 1
process = "sim-7"
sample = "sim-7/PNC-TS-A/S0"
frame = "PF-144"
inks = { RH_ohm_sq = 50000.0, RL_ohm_sq = 25.0 }
bleed = { pads = ["D01", "D13"], R_ohm = 1.0e7, W_um = 50, L_um = 10000 }

[[structure]]
id = "A13"
kind = "ACT"
design = "ACT-REF"
pads = { IN = "D01", OUT = "S13", VDD = "VDD13", VSS = "VSS13" }
R1 = { layer = "RH", W_um = 50, L_um = 1000, R_ohm = 1.0e6 }
R2 = { layer = "RH", W_um = 1000, L_um = 300, R_ohm = 1.5e4 }
T1 = { W_um = 90, L_um = 60 }
T2 = { W_um = 490, L_um = 35 }

[[structure]]
id = "N12"
kind = "NEG"
design = "NEG-REF"
pads = { IN = "D13", OUT = "S30", VDD = "VDD30", VSS = "VSS30" }
R1 = { layer = "RL", W_um = 100, L_um = 800, R_ohm = 200.0 }
R2 = { layer = "RL", W_um = 200, L_um = 400, R_ohm = 50.0 }
R3 = { layer = "RH", W_um = 50, L_um = 200, R_ohm = 2.0e5 }
R4 = { layer = "RH", W_um = 100, L_um = 200, R_ohm = 1.0e5 }
R5 = { layer = "RH", W_um = 100, L_um = 200, R_ohm = 1.0e5 }
T = { W_um = 500, L_um = 40 }

[[structure]]
id = "H1"
kind = "RCHAIN"
pads = { DRIVE = "D19", TAPS = ["S36", "S37", "S38"] }
resistors = [
  { layer = "RH", W_um = 50, L_um = 100, R_ohm = 1.0e5 },
  { layer = "RH", W_um = 100, L_um = 200, R_ohm = 1.0e5 },
  { layer = "RH", W_um = 250, L_um = 500, R_ohm = 1.0e5 },
  { layer = "RH", W_um = 1000, L_um = 2000, R_ohm = 1.0e5 },
]

[[structure]]
id = "ID"
kind = "ID"
pads = { DRIVE = "D24", TAPS = ["S45", "S46"] }
resistors = [
  { layer = "RH", W_um = 500, L_um = 100, R_ohm = 1.0e4 },
  { layer = "RH", W_um = 500, L_um = 100, R_ohm = 1.0e4 },
  { layer = "RH", W_um = 500, L_um = 316, R_ohm = 3.16e4 },
]
"""


def bench_text(mainframe: str, smu: str, *, process: str = "sim-7", layout: str = "layout.toml",
               extra: str = "") -> str:
    return f"""\
family = "printed"
name = "test bench"
[instruments.mainframe]
resource = "{mainframe}"
[instruments.smu]
resource = "{smu}"
[probe_card]
model = "PC-PNC-144"
{extra}[sample]
kind = "test-structures"
layout = "{layout}"
process = "{process}"
id = "sim-7/PNC-TS-A/S0"
"""


@dataclass
class Rig:
    sample: FakeSample
    lines: list[tuple[str, str]]
    bench_file: Path
    clock: VirtualClock
    mf_server: InstrumentServer
    smu_server: InstrumentServer

    def bench(self) -> PrintedBench:
        return PrintedBench.from_file(self.bench_file, pause=self.clock.advance)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    clock = VirtualClock()
    mainframe = SwitchMeasureEmulator(clock=clock)
    smu = RailB2902AEmulator(clock=clock)
    sample = FakeSample(mainframe, smu)
    mainframe.read_node = sample.read_node
    for name in ("1", "2"):
        smu.channel(name).attach(RailPad(sample))
    lines: list[tuple[str, str]] = []
    with InstrumentServer(Logged("MF", mainframe, lines)) as mf_server, \
            InstrumentServer(Logged("SMU", smu, lines)) as smu_server:
        (tmp_path / "layout.toml").write_text(LAYOUT)
        path = tmp_path / "bench.toml"
        path.write_text(bench_text(mf_server.resource, smu_server.resource))
        yield Rig(sample, lines, path, clock, mf_server, smu_server)


def commands(lines: list[tuple[str, str]], *, errors: bool = False) -> list[str]:
    """The transcript as ``MF > ...`` / ``SMU > ...``, error-queue checks left out unless asked."""
    return [f"{tag} > {line}" for tag, line in lines if errors or line not in (SCPI_ERR, MF_ERR)]


# ---------------------------------------------------------------- B2902A additions (5.3)


def test_b2902a_rail_nodes_send_exactly(rig: Rig) -> None:
    smu = KeysightB2900.from_resource(rig.smu_server.resource, pyvisa.ResourceManager("@py"))
    try:
        rig.lines.clear()
        ch1, ch2 = smu.channel("1"), smu.channel("2")
        ch1.voltage_range_v = 2
        ch2.remote_sense = True
        ch2.current_nplc = 1
        assert ch1.in_compliance() is False
        assert smu.measure_currents(["1", "2"]) == pytest.approx([0.0, 0.0], abs=1e-9)
        assert [line for _, line in rig.lines] == [
            ":SOURce1:VOLTage:RANGe 2.0", SCPI_ERR,
            ":SENSe2:REMote ON", SCPI_ERR,
            ":SENSe2:CURRent:NPLCycles 1.0", SCPI_ERR,
            ":SENSe1:CURRent:PROTection:TRIPped?",
            ":MEASure:CURRent? (@1,2)",
        ]
    finally:
        smu.close()


# ---------------------------------------------------------------- pure rules (4.4, 2.2)


def test_ramp_levels_are_half_volt_steps() -> None:
    assert ramp_levels(0.0, 2.0) == [0.5, 1.0, 1.5, 2.0]
    assert ramp_levels(2.0, 0.0) == [1.5, 1.0, 0.5, 0.0]
    assert ramp_levels(1.2, 2.0) == [pytest.approx(1.6), 2.0]


@pytest.mark.parametrize(("vdd", "vss", "rule"), [
    (2.2, -2.0, "VDD setpoint"), (-0.1, 0.0, "VDD setpoint"), (0.0, 0.1, "VSS setpoint"),
    (2.0, -1.4, "out of symmetry"), (0.6, 0.0, "out of symmetry"), (math.nan, 0.0, "finite"),
])
def test_rail_rules_refuse(vdd: float, vss: float, rule: str) -> None:
    with pytest.raises(SafetyError, match=rule):
        check_rails(vdd, vss)


def test_rail_rules_accept_the_ramp() -> None:
    for vdd, vss in [(0, -0.5), (0.5, -0.5), (0.5, -1.0), (2.0, -2.0), (2.1, -2.1), (1.5, -2.0)]:
        check_rails(vdd, vss)


def test_id_decoding_of_the_contract() -> None:
    assert decode_id([10e3, 10e3, 31.6e3]) == ((0, 0, 1), 1)
    assert decode_id([1e6 * 1.38, 316e3 * 0.68, 100e3]) == ((4, 3, 2), 100 + 15 + 2)
    with pytest.raises(SafetyError, match="R_ID2 reads 5.62e\\+04 ohm, more than a factor 1.68"):
        decode_id([10e3, 56.2e3, 10e3])
    with pytest.raises(SafetyError, match="R_ID3"):
        decode_id([10e3, 10e3, 3.5e6])


def test_pad_ratings_depend_on_the_state(tmp_path: Path) -> None:
    (tmp_path / "layout.toml").write_text(LAYOUT)
    (tmp_path / "bench.toml").write_text(bench_text("TCPIP0::127.0.0.1::1::SOCKET", "TCPIP0::127.0.0.1::2::SOCKET"))
    plan = load_sample(load_printed_bench_file(tmp_path / "bench.toml"))
    assert check_pad_setpoint("D01", 1.5, plan, 13, True) == 1.5
    for pad, volts, group, full, rule in [
        ("D01", 1.6, 13, True, "-1.5 to 1.5 V"),
        ("D01", 0.3, None, False, "-0.2 to 0.2 V"),
        ("D01", 0.3, 30, True, "-0.2 to 0.2 V"),         # D01 drives no circuit of group 30
        ("D13", -0.25, 13, True, "-0.2 to 0.2 V"),
        ("D19", 0.51, None, False, "-0.5 to 0.5 V"),
        ("D24", -0.01, None, False, "0 to 0.2 V"),
        ("D05", 0.01, None, False, "0 to 0 V"),          # a pad the sample does not use
        ("D01", math.inf, 13, True, "not a finite number"),
    ]:
        with pytest.raises(SafetyError, match=rule):
            check_pad_setpoint(pad, volts, plan, group, full)


# ---------------------------------------------------------------- order of operations (6.3)

START = [
    "MF > *RST",
    "MF > CONF:VOLT:DC (@7001:7070)",
    "MF > VOLT:DC:NPLC 1.0,(@7001:7070)",
    "MF > VOLT:DC:IMP:AUTO ON,(@7001:7070)",
    "SMU > *RST",
    *[f"SMU > {line}" for c in "12" for line in (
        f":SOURce{c}:FUNCtion:MODE VOLTage", f":SOURce{c}:VOLTage:RANGe 2.0", f":SOURce{c}:VOLTage 0.0",
        f":SENSe{c}:CURRent:PROTection 0.003", f":SENSe{c}:CURRent:NPLCycles 1.0", f":SENSe{c}:REMote ON",
        f":OUTPut{c}:STATe ON")],
    "MF > SOUR:VOLT 0.0,(@1001:1004,2001:2004,3001:3004,4001:4004,5001:5004,6001:6004)",
    "MF > OUTP:STAT ON,(@1001:1004,2001:2004,3001:3004,4001:4004,5001:5004,6001:6004)",
    *[f"MF > SYST:CTYP? {slot}" for slot in range(1, 9)],
    # offset null: every shunt at NPLC 10, the first after the 10 ms settling delay
    "MF > VOLT:DC:NPLC 10.0,(@7001:7024)",
    "MF > ROUT:CHAN:DEL 0.01,(@7001)",
    "MF > ROUT:SCAN (@7001:7024)",
    "MF > READ?",
    # ID ladder
    "MF > SOUR:VOLT 0.2,(@6004)",
    "MF > VOLT:DC:NPLC 10.0,(@7069,7070)",
    "MF > ROUT:CHAN:DEL 0.01,(@7024)",
    "MF > ROUT:SCAN (@7024,7069,7070)",
    "MF > READ?",
    "MF > SOUR:VOLT 0.0,(@6004)",
    # D-pad contact proof: circuit inputs and the resistor pad at +0.100 V at once
    "MF > SOUR:VOLT 0.1,(@1001,4001,5003)",
    "MF > ROUT:SCAN (@7001,7013,7019)",
    "MF > READ?",
    "MF > SOUR:VOLT 0.0,(@1001,4001,5003)",
]

SELECT_13 = [
    "MF > ROUT:CLOS (@8048)", "MF > ROUT:CLOS (@8013)", "MF > *OPC?",
    "SMU > :SOURce2:VOLTage -0.5", "SMU > :SOURce1:VOLTage 0.5",
    "SMU > :SOURce2:VOLTage -1.0", "SMU > :SOURce1:VOLTage 1.0",
    "SMU > :SOURce2:VOLTage -1.5", "SMU > :SOURce1:VOLTage 1.5",
    "SMU > :SOURce2:VOLTage -2.0", "SMU > :SOURce1:VOLTage 2.0",
    "SMU > :MEASure:CURRent? (@1,2)",
    "SMU > :SENSe1:CURRent:PROTection:TRIPped?", "SMU > :SENSe2:CURRent:PROTection:TRIPped?",
]

LEAVE_13 = [
    "SMU > :SOURce1:VOLTage 1.5", "SMU > :SOURce2:VOLTage -1.5",
    "SMU > :SOURce1:VOLTage 1.0", "SMU > :SOURce2:VOLTage -1.0",
    "SMU > :SOURce1:VOLTage 0.5", "SMU > :SOURce2:VOLTage -0.5",
    "SMU > :SOURce1:VOLTage 0.0", "SMU > :SOURce2:VOLTage 0.0",
    "MF > ROUT:OPEN (@8013)", "MF > ROUT:OPEN (@8048)",
]

POWER_DOWN = [
    "SMU > :OUTPut1:STATe OFF", "SMU > :OUTPut2:STATe OFF",
    "MF > OUTP:STAT OFF,(@1001:1004,2001:2004,3001:3004,4001:4004,5001:5004,6001:6004)",
]


def test_power_up_sequence_is_the_contracts_order(rig: Rig) -> None:
    """6.3 steps 1 to 6 and their reverse, as exact transcripts across both instruments (8.1's point at 0.25 V)."""
    with rig.bench() as bench:
        rig.lines.clear()
        report = bench.start()
        assert commands(rig.lines) == START
        rig.lines.clear()
        with bench.powered(13) as reading:
            assert commands(rig.lines) == SELECT_13
            assert (reading.i_dd_a, reading.i_ss_a) == pytest.approx((0.8e-3, -0.8e-3), rel=1e-3)
            assert reading.power_w == pytest.approx(3.2e-3, rel=1e-3)
            rig.lines.clear()
            bench.set_pad("D01", 0.25)
            out, shunt = bench.read_volts([7037, 7001], 1.0, settle=True)
            assert commands(rig.lines) == [
                "MF > SOUR:VOLT 0.25,(@1001)", "MF > VOLT:DC:NPLC 1.0,(@7001)", "MF > ROUT:CHAN:DEL 0.01,(@7037)",
                "MF > ROUT:CHAN:DEL 0.0,(@7001)", "MF > ROUT:SCAN (@7037,7001)", "MF > READ?"]
            assert out == pytest.approx(0.1 + 0.8 * math.tanh((0.25 - 0.25 / 10.001e3 - 0.2) * 8), abs=2e-5)
            assert bench.shunt_current("D01", shunt) == pytest.approx(0.25 / 10.001e6, abs=3e-9)  # 4.3: 0.1 % + 2 nA
            rig.lines.clear()
        assert commands(rig.lines) == ["MF > SOUR:VOLT 0.0,(@1001)", *LEAVE_13]
        rig.lines.clear()
    assert commands(rig.lines) == POWER_DOWN
    assert report.identification.code == 1
    assert report.identification.resistances_ohm == pytest.approx((10e3, 10e3, 31.6e3), rel=2e-3)
    assert report.drive_proof.failed == ()
    assert report.drive_proof.currents_a["D01"] == pytest.approx(0.1 / 10.001e6, rel=0.05)
    assert report.drive_proof.currents_a["D19"] == pytest.approx(0.1 / 401e3, rel=1e-3)
    # host waits: three 5 ms ramp pauses each way, 50 ms for the double layers
    assert bench.waited_s == pytest.approx(6 * 0.005 + 0.05)


def test_identification_refuses_another_sample_before_any_rail(rig: Rig) -> None:
    layout = rig.bench_file.parent / "layout.toml"
    layout.write_text(LAYOUT.replace("id_code = 1", "id_code = 7"))
    with pytest.raises(SafetyError, match=r"^ID code read 1 \(digits \(0, 0, 1\)\), expected 7 from the layout"):
        with rig.bench() as bench:
            bench.start()
    sent = commands(rig.lines)
    assert not any(":SOURce1:VOLTage 0.5" in line or "ROUT:CLOS" in line for line in sent)
    assert sent[-3:] == POWER_DOWN


def test_no_sample_is_refused(rig: Rig) -> None:
    rig.sample.open_pads.add("D24")
    with pytest.raises(SafetyError, match="under 2e-08 A: no sample on the card"):
        with rig.bench() as bench:
            bench.start()


def test_a_d_pad_that_does_not_answer_is_named(rig: Rig) -> None:
    rig.sample.open_pads.add("D13")
    with rig.bench() as bench:
        proof = bench.start().drive_proof
        assert proof.failed == ("D13",)
        assert abs(proof.currents_a["D13"]) < 2e-9
        with pytest.raises(SafetyError, match=r"^pad D13 \(N12.IN\) does not answer: .* A at 0.1 V"):
            bench.require_drive_pads(proof)


def test_overvoltage_is_refused_before_it_is_sent(rig: Rig) -> None:
    with rig.bench() as bench:
        bench.start()
        with pytest.raises(SafetyError, match="pad D01 .*0.3 V is outside its operating range -0.2 to 0.2 V"):
            bench.set_pad("D01", 0.3)                # rails not up: +-0.2 V
        with bench.powered(13):
            rig.lines.clear()
            with pytest.raises(SafetyError, match="1.6 V is outside its operating range -1.5 to 1.5 V"):
                bench.set_pad("D01", 1.6)
            with pytest.raises(SafetyError, match="pad D13"):
                bench.set_pad("D13", 0.5)            # N12's rails are not up
            with pytest.raises(SafetyError, match="two rail groups are never closed at once"):
                bench.power_up_group(30)
            with pytest.raises(SafetyError, match="out of symmetry"):
                bench._set_rail(0, 1.0)              # VDD alone down to 1 V against VSS -2 V
            assert bench._mf().query("*OPC?") == "1"
            assert commands(rig.lines) == ["MF > *OPC?"]   # the instruments heard none of it
        assert rig.sample.mainframe.dac_level[1001] == 0.0


def test_rail_in_compliance_is_a_fault_with_the_group_ramped_down(rig: Rig) -> None:
    rig.sample.rail_ohm = 100.0                      # 20 mA at 2 V: beyond the 3 mA compliance
    with rig.bench() as bench:
        bench.start()
        with pytest.raises(RailFault, match=r"^rail group 13: VDD in compliance \(0.003 A\); ramped down"):
            bench.power_up_group(13)
        assert bench.group is None and not rig.sample.mainframe.closed
        assert [ch.level["V"] for ch in rig.sample.smu.channels.values()] == [0.0, 0.0]


def test_an_exception_powers_everything_down_in_order(rig: Rig) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with rig.bench() as bench:
            bench.start()
            with bench.powered(13):
                bench.set_pad("D01", 1.0)
                rig.lines.clear()
                raise RuntimeError("boom")
    assert commands(rig.lines) == ["MF > SOUR:VOLT 0.0,(@1001)", *LEAVE_13, *POWER_DOWN]
    assert not any(ch.output_on for ch in rig.sample.smu.channels.values())
    assert not any(rig.sample.mainframe.dac_on.values())


def test_rails_go_down_even_when_the_mainframe_vanishes(rig: Rig) -> None:
    with pytest.raises(RuntimeError) as caught:
        with rig.bench() as bench:
            bench.start()
            with bench.powered(13):
                rig.mf_server.stop()
                rig.lines.clear()
                raise RuntimeError("mainframe gone")
    smu_lines = [line for line in commands(rig.lines) if line.startswith("SMU")]
    assert smu_lines == [line for line in LEAVE_13 if line.startswith("SMU")] + POWER_DOWN[:2]
    assert "at power-down" in "".join(caught.value.__notes__)


# ---------------------------------------------------------------- bad input: one line, nothing opened


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.replace('model = "PC-PNC-144"', 'model = "PC-PNC-144"\ncolour = "red"'),
     "bench.toml: probe_card.colour is not a known key"),
    (lambda t: t.replace('process = "sim-7"', 'process = "sim-8"'),
     "sample.process is 'sim-8', but layout file .* is for process 'sim-7': refused before anything is switched"),
    (lambda t: t.replace('layout = "layout.toml"', 'job = "x.toml"'),
     "sample job is not a key of a test-structures sample"),
    (lambda t: t.replace('family = "printed"', 'family = "cmna"'), "family Input should be 'printed'"),
])
def test_bad_bench_files_are_one_line(tmp_path: Path, edit, message: str) -> None:
    (tmp_path / "layout.toml").write_text(LAYOUT)
    path = tmp_path / "bench.toml"
    path.write_text(edit(bench_text("TCPIP0::127.0.0.1::1::SOCKET", "TCPIP0::127.0.0.1::2::SOCKET")))
    with pytest.raises(ConfigError, match=message) as caught:
        PrintedBench.from_file(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.replace('T2 = { W_um = 490, L_um = 35 }', 'T2 = { W_um = 490, L_um = 35, V_t = 0.3 }'),
     r"structure\[0\] \(A13\).T2.V_t is not a known key"),
    (lambda t: t.replace('kind = "NEG"', 'kind = "NOR"'), r"structure\[1\] \(N12\) kind must be ACT, NEG"),
    (lambda t: t.replace('OUT = "S13"', 'OUT = "S47"'), "'S47' is not a S pad of PF-144"),
    (lambda t: t.replace('VSS = "VSS13"', 'VSS = "VSS14"'), "structure A13: pads VDD VDD13 and VSS VSS14"),
    (lambda t: t.replace('TAPS = ["S36", "S37", "S38"]', 'TAPS = ["S36", "S37"]'), "2 TAPS for 4 resistors"),
    (lambda t: t.replace('W_um = 50, L_um = 1000, R_ohm = 1.0e6', 'W_um = 50, L_um = 1000, R_ohm = -1.0'),
     r"structure\[0\] \(A13\).R1.R_ohm -1.0 must be a finite positive number"),
    (lambda t: t.replace('format = "pnc-ts-layout/1"', 'format = "pnc-ts-layout/2"'), "format Input should be"),
])
def test_bad_layout_files_are_one_line(tmp_path: Path, edit, message: str) -> None:
    path = tmp_path / "layout.toml"
    path.write_text(edit(LAYOUT))
    with pytest.raises(ConfigError, match=message) as caught:
        load_layout(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_layout_records(tmp_path: Path) -> None:
    path = tmp_path / "layout.toml"
    path.write_text(LAYOUT)
    layout = load_layout(path)
    act = layout.cell("A13")
    assert (act.input_pad, act.output_pad, act.rail_group) == ("D01", "S13", 13)
    assert act.drawn_components() == {"R1": 1e6, "R2": 1.5e4, "W1": 90, "L1": 60, "W2": 490, "L2": 35}
    assert list(layout.cell("N12").drawn_components()) == ["R1", "R2", "R3", "R4", "R5", "W", "L"]
    chain = layout.resistor_structures[0]
    assert (chain.drive_pad, chain.taps, len(chain.resistors)) == ("D19", ("S36", "S37", "S38"), 4)


# ---------------------------------------------------------------- a printed network (8.2)

from test_print_job import small_job  # noqa: E402  (the print-job tests' valid two-input network)

from labctl.families.printed.network_link import measure_patterns  # noqa: E402
from labctl.families.printed.print_job import job_toml  # noqa: E402


class NetworkSample(FakeSample):
    """The tiny job of test_print_job printed: inputs D01, D02 (bleeds; D02 also feeds a NEG), bias D23,
    class outputs S01, S02 that follow the inputs while rail group 1 is up; ID code 30 = digits (1, 1, 0)."""

    def load_ohm(self, pad: int) -> float | None:
        if f"D{pad:02d}" in self.open_pads:
            return None
        return {1: self.bleed_ohm, 2: 1 / (1 / self.bleed_ohm + 1 / self.neg_input_ohm), 23: 200e3,
                24: sum(self.id_ladder)}.get(pad)

    last_v: float = 0.0

    def read_node(self, channel: int) -> float:
        """A floating S pad reads 0 V at 10 Mohm and the previous reading at > 10 Gohm (6.2, G)."""
        if f"S{channel - 7024:02d}" in self.open_pads:
            value = self.last_v if self.mainframe.high_impedance(channel) else 0.0
        else:
            value = self.node(channel)
        self.last_v = value
        return value

    def node(self, channel: int) -> float:
        if 7001 <= channel <= 7024 or channel in (7069, 7070):
            return super().read_node(channel)
        up = self.rails_up(1)
        if channel == 7025 and up:
            return 0.6 + 0.5 * math.tanh(4 * (self.pad_v(1) - self.pad_v(2)))
        if channel == 7026 and up:
            return -0.3 + 0.5 * math.tanh(4 * (self.pad_v(2) - self.pad_v(1)))
        return 0.0


@pytest.fixture
def network_rig(rig: Rig) -> Rig:
    network = NetworkSample(rig.sample.mainframe, rig.sample.smu, id_ladder=(31.6e3, 31.6e3, 10e3))
    rig.sample.mainframe.read_node = network.read_node
    for name in ("1", "2"):
        rig.sample.smu.channel(name).attach(RailPad(network))
    rig.sample = network
    (rig.bench_file.parent / "job.toml").write_text(job_toml(small_job()))
    text = rig.bench_file.read_text().replace('kind = "test-structures"\nlayout = "layout.toml"',
                                              'kind = "network"\njob = "job.toml"')
    rig.bench_file.write_text(text)
    return rig


PATTERN_8_2 = [
    # the inputs at full precision, then the class outputs (the first channel waits the 10 ms of 4.5) ...
    "MF > SOUR:VOLT 0.4166666666666667,(@1001)", "MF > SOUR:VOLT 0.2916666666666667,(@1002)",
    "MF > ROUT:CHAN:DEL 0.01,(@7025)", "MF > READ?",           # (the S-pad proof left the scan at S01, S02)
    # ... then the shunts of the inputs and the bias, and both rails in one query
    "MF > VOLT:DC:NPLC 1.0,(@7001,7002,7023)", "MF > ROUT:CHAN:DEL 0.0,(@7001)",
    "MF > ROUT:SCAN (@7001,7002,7023)", "MF > READ?", "SMU > :MEASure:CURRent? (@1,2)",
    "MF > SOUR:VOLT -0.5,(@1001)", "MF > SOUR:VOLT 1.25,(@1002)", "MF > ROUT:SCAN (@7025,7026)",
]


def test_network_patterns_with_power_follow_8_2(network_rig: Rig) -> None:
    rig = network_rig
    rows = np.array([[0.41666666666666669, 0.29166666666666669], [-0.5, 1.25]])
    readings = measure_patterns(rig.bench_file, rows, with_power=True, pause=rig.clock.advance)
    pattern = [line for line in commands(rig.lines) if "0.4166666666666667" in line or "0.2916666666666667" in line]
    assert pattern == ["MF > SOUR:VOLT 0.4166666666666667,(@1001)", "MF > SOUR:VOLT 0.2916666666666667,(@1002)"]
    sent = commands(rig.lines)
    first = sent.index(pattern[0])
    assert sent[first:first + 12] == PATTERN_8_2
    assert sent.index("MF > SOUR:VOLT 1.0,(@6003)") > sent.index("SMU > :SOURce1:VOLTage 2.0")  # bias after rails
    assert sent.index("MF > SOUR:VOLT 1.0,(@6003)") < first                                     # inputs after bias
    assert sent.index("SMU > :SENSe1:CURRent:PROTection 0.006") > 0                            # 2 mA x 3 cells
    sample = rig.sample
    v1, v2 = (rows[:, 0] - 1000 * rows[:, 0] / (1000 + sample.bleed_ohm),
              rows[:, 1] - 1000 * rows[:, 1] / (1000 + 1 / (1 / sample.bleed_ohm + 1 / sample.neg_input_ohm)))
    assert readings.outputs_v[:, 0] == pytest.approx(0.6 + 0.5 * np.tanh(4 * (v1 - v2)), abs=1e-4)
    assert readings.predictions.tolist() == [0, 1]
    i_bias = 1.0 / 201e3
    expected = v1 * v1 / (1000 + sample.bleed_ohm) + v2 * rows[:, 1] / 1000 * (1 - v2 / rows[:, 1]) \
        + (1.0 - 1000 * i_bias) * i_bias + 2 * 2.0 * (2.0 / 2500.0)
    assert readings.power_w == pytest.approx(expected, rel=1e-4)
    assert readings.bias_current_a == pytest.approx([i_bias, i_bias], rel=1e-3)
    assert readings.rail_currents_a[:, 0] == pytest.approx(0.8e-3, rel=1e-3)


def test_network_stops_on_a_floating_output_before_inputs_move(network_rig: Rig) -> None:
    network_rig.sample.open_pads.add("S02")
    with pytest.raises(SafetyError, match=r"^pad S02 \(a.1.1\) does not answer: -?0.0000 V at 10 Mohm but 0.6000 V at > 10 Gohm \(6.2\)"):
        measure_patterns(network_rig.bench_file, np.zeros((1, 2)), with_power=False, pause=network_rig.clock.advance)
    sent = commands(network_rig.lines)
    assert "MF > SOUR:VOLT 1.0,(@6003)" not in sent and sent[-3:] == POWER_DOWN


def test_network_rows_outside_the_inputs_range_are_refused_before_opening(network_rig: Rig) -> None:
    with pytest.raises(SafetyError, match="test rows hold 1.6 V, outside the inputs' operating range"):
        measure_patterns(network_rig.bench_file, np.array([[0.0, 1.6]]), with_power=False)
    assert network_rig.lines == []


def test_sigterm_powers_down_in_order(rig: Rig) -> None:
    import signal

    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        with rig.bench() as bench:
            bench.start()
            with bench.powered(13):
                bench.set_pad("D01", -1.2)
                rig.lines.clear()
                signal.raise_signal(signal.SIGTERM)
    assert commands(rig.lines) == ["MF > SOUR:VOLT 0.0,(@1001)", *LEAVE_13, *POWER_DOWN]


def test_network_power_on_the_first_rows_only(network_rig: Rig) -> None:
    rows = np.array([[0.1, 0.2], [0.3, -0.4], [0.0, 0.0]])
    readings = measure_patterns(network_rig.bench_file, rows, power_rows=2, pause=network_rig.clock.advance,
                                transcript=None, on_reading=None)
    assert readings.outputs_v.shape == (3, 2)
    assert readings.power_w.shape == (2,) and readings.input_currents_a.shape == (2, 2)
    assert readings.power_w == pytest.approx(2 * 2.0 * 2.0 / 2500.0 + 1.0 / 201e3, rel=1e-3)  # rails + bias


def test_identify_sample_powers_nothing_but_the_id_ladder(rig: Rig) -> None:
    from labctl.families.printed.bench import identify_sample

    config, reading, idns = identify_sample(rig.bench_file)
    assert reading.code == 1 and config.sample_id == "sim-7/PNC-TS-A/S0"
    assert idns["mainframe"].startswith("Keysight Technologies,34980A") and "B2902A" in idns["smu"]
    sent = commands(rig.lines)
    assert not any("ROUT:CLOS" in line or (":SOURce" in line and "VOLTage 0.0" not in line and "VOLTage:" not in
                                           line and "FUNCtion" not in line) for line in sent)
    assert [line for line in sent if line.startswith("MF > SOUR:VOLT") and "0.0," not in line] == \
        ["MF > SOUR:VOLT 0.2,(@6004)"]
