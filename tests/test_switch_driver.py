"""34980A-class mainframe driver against its emulator, over pyvisa-py sockets as on a real bench.

The emulator is served in-process on a free port and opened as
``TCPIP0::127.0.0.1::PORT::SOCKET`` (printed-bench.md 5.1). The transcript
tables pin, PyMeasure style, the exact lines the instrument receives for each
public operation: they are the specification of what the driver sends (5.2,
in the short forms of the worked examples of section 8). Then the emulator's
own behaviour: error codes, ``*RST`` state, bench time, readings from the
sample callback.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pyvisa

from labctl.drivers.instruments import open_instrument
from labctl.drivers.keysight_34980a import (
    Keysight34980A,
    dac_channel,
    format_channel_list,
    shunt_channel,
)
from labctl.errors import ConfigError, InstrumentError, SafetyError
from labctl.sim.clock import VirtualClock
from labctl.sim.instrument_server import InstrumentServer
from labctl.sim.switch_emulator import DAC_LSB_V, SwitchMeasureEmulator, parse_channel_list

ERR = "SYST:ERR?"
FENCE = "*OPC?"


@dataclass
class Bench:
    emulator: SwitchMeasureEmulator
    server: InstrumentServer
    mainframe: Keysight34980A


@pytest.fixture(scope="module")
def rm() -> pyvisa.ResourceManager:
    return pyvisa.ResourceManager("@py")


def node_voltages(emulator: SwitchMeasureEmulator) -> Callable[[int], float]:
    """A stand-in sample: S13 (7037) reads 0.58 V, each shunt 7000+k reads 1e-4 of its DAC's setpoint."""

    def read(channel: int) -> float:
        if channel == 7037:
            return 0.58
        if 7001 <= channel <= 7024:
            level = emulator.dac_output_v(dac_channel(channel - 7000))
            return 0.0 if level is None else level * 1e-4
        return 0.0

    return read


@pytest.fixture
def bench(rm: pyvisa.ResourceManager) -> Iterator[Bench]:
    emulator = SwitchMeasureEmulator()
    emulator.read_node = node_voltages(emulator)
    with InstrumentServer(emulator) as server:
        mainframe = open_instrument(server.resource, rm)
        assert isinstance(mainframe, Keysight34980A)
        try:
            yield Bench(emulator, server, mainframe)
        finally:
            mainframe.close()


def received(bench: Bench, action: Callable[[Keysight34980A], object]) -> tuple[list[str], Any]:
    """The lines the instrument received while ``action`` ran, closed by a :data:`FENCE` query."""
    with bench.server.recording() as lines:
        result = action(bench.mainframe)
        assert bench.mainframe.query(FENCE) == "1"
    assert lines[-1] == FENCE
    return lines[:-1], result


# ------------------------------------------------------------- channel lists


@pytest.mark.parametrize(("channels", "text"), [
    (1001, "(@1001)"),
    ([7001, 7037], "(@7001,7037)"),
    ([7037, 7001], "(@7037,7001)"),                       # order kept: the scan reads in list order
    ([7001, 7002], "(@7001,7002)"),                       # two in a row stay a pair
    ([7025, 7026, 7027], "(@7025:7027)"),
    (list(range(7001, 7025)), "(@7001:7024)"),
    ([1001, 1002, 1003, 1004, 6003], "(@1001:1004,6003)"),
    ([7001, 7002, 7003, 7004, 7023], "(@7001:7004,7023)"),
    ([1003, 1004, 2001, 2002], "(@1003,1004,2001,2002)"),  # a run never crosses a slot
    ([7003, 7002, 7001], "(@7003,7002,7001)"),            # only ascending runs are ranges
])
def test_channel_list_formatting(channels: Any, text: str) -> None:
    assert format_channel_list(channels) == text
    assert parse_channel_list(text) == ([channels] if isinstance(channels, int) else channels)


@pytest.mark.parametrize("channels", [[], [999], [9001], [1000], [True], ["1001"], [1001.0]])
def test_channel_list_refuses_what_is_not_a_channel(channels: list[Any]) -> None:
    with pytest.raises(ConfigError):
        format_channel_list(channels)


def test_pad_map_of_the_contract() -> None:
    assert [dac_channel(k) for k in (1, 4, 5, 23, 24)] == [1001, 1004, 2001, 6003, 6004]
    assert [shunt_channel(k) for k in (1, 24)] == [7001, 7024]
    with pytest.raises(ConfigError):
        dac_channel(25)


# ------------------------------------------------------------- wire transcripts


def test_opening_identifies_and_drains_the_error_queue(rm: pyvisa.ResourceManager) -> None:
    emulator = SwitchMeasureEmulator()
    emulator.errors.extend([(-113, "Undefined header"), (-222, "Data out of range")])
    with InstrumentServer(emulator) as server, server.recording() as lines:
        mainframe = Keysight34980A.from_resource(server.resource, rm)
        assert mainframe.query(FENCE) == "1"
        mainframe.close()
    assert lines == ["*IDN?", ERR, ERR, ERR, FENCE]
    assert mainframe.model == "34980A"
    assert not emulator.errors


TRANSCRIPTS: list[tuple[Callable[[Keysight34980A], object], list[str], Any]] = [
    (lambda mf: mf.identify(), ["*IDN?"], SwitchMeasureEmulator.IDN),
    (lambda mf: mf.reset(), ["*RST", ERR], None),
    (lambda mf: mf.wait_complete(), ["*OPC?"], None),
    (lambda mf: mf.module_type(1), ["SYST:CTYP? 1"], "34951A"),
    (lambda mf: mf.module_type(8), ["SYST:CTYP? 8"], "34922A"),
    (lambda mf: mf.set_dac_voltage(1001, 0.25), ["SOUR:VOLT 0.25,(@1001)", ERR], None),
    (lambda mf: mf.set_dac_voltage(1002, 3e-9), ["SOUR:VOLT 3e-09,(@1002)", ERR], None),
    (lambda mf: mf.set_dac_voltage(6004, -1.5), ["SOUR:VOLT -1.5,(@6004)", ERR], None),
    (lambda mf: mf.set_dac_voltage(1003, 0.41666666666666669), ["SOUR:VOLT 0.4166666666666667,(@1003)", ERR], None),
    (lambda mf: mf.set_dac_voltage([1001, 1002, 1003, 1004, 6003], 0), ["SOUR:VOLT 0.0,(@1001:1004,6003)", ERR], None),
    (lambda mf: mf.dac_voltage([1001, 1002]), ["SOUR:VOLT? (@1001,1002)"], [0.0, 0.0]),
    (lambda mf: mf.set_dac_output([1001, 1002, 1003, 1004], True), ["OUTP:STAT ON,(@1001:1004)", ERR], None),
    (lambda mf: mf.set_dac_output(6004, False), ["OUTP:STAT OFF,(@6004)", ERR], None),
    (lambda mf: mf.close_routes(8048), ["ROUT:CLOS (@8048)", ERR], None),
    (lambda mf: mf.open_routes([8013, 8048]), ["ROUT:OPEN (@8013,8048)", ERR], None),
    (lambda mf: mf.routes_closed([8013, 8048]), ["ROUT:CLOS? (@8013,8048)"], [False, False]),
    (lambda mf: mf.configure_voltage(list(range(7001, 7071))), ["CONF:VOLT:DC (@7001:7070)", ERR], None),
    (lambda mf: mf.set_nplc(0.2, [7025, 7026, 7027]), ["VOLT:DC:NPLC 0.2,(@7025:7027)", ERR], None),
    (lambda mf: mf.set_nplc(10, 7024), ["VOLT:DC:NPLC 10.0,(@7024)", ERR], None),
    (lambda mf: mf.set_high_impedance(True, [7001, 7037]), ["VOLT:DC:IMP:AUTO ON,(@7001,7037)", ERR], None),
    (lambda mf: mf.set_channel_delay(0.02, 7040), ["ROUT:CHAN:DEL 0.02,(@7040)", ERR], None),
    (lambda mf: mf.set_scan([7037, 7001]), ["ROUT:SCAN (@7037,7001)", ERR], None),
]


@pytest.mark.parametrize(("action", "transcript", "result"), TRANSCRIPTS,
                         ids=[lines[0] for _, lines, _ in TRANSCRIPTS])
def test_transcript(bench: Bench, action: Callable[[Keysight34980A], object], transcript: list[str],
                    result: Any) -> None:
    lines, answer = received(bench, action)
    assert lines == transcript
    assert answer == result
    assert not bench.emulator.errors


def test_measure_one_channel(bench: Bench) -> None:
    lines, volts = received(bench, lambda mf: mf.measure_voltage(7037))
    assert lines == ["MEAS:VOLT:DC? (@7037)"]
    assert volts == [pytest.approx(0.58, abs=2e-5)]


def test_measure_several_channels_in_list_order(bench: Bench) -> None:
    bench.mainframe.set_dac_voltage([1001, 1002, 1003, 1004], 1.0)
    bench.mainframe.set_dac_output([1001, 1002, 1003, 1004], True)
    bench.mainframe.set_dac_voltage(6003, -0.5)
    bench.mainframe.set_dac_output(6003, True)
    lines, volts = received(bench, lambda mf: mf.measure_voltage([7001, 7002, 7003, 7004, 7023, 7037]))
    assert lines == ["MEAS:VOLT:DC? (@7001:7004,7023,7037)"]
    assert volts == pytest.approx([1e-4, 1e-4, 1e-4, 1e-4, -0.5e-4, 0.58], abs=1e-5)


def test_scan_then_read_as_in_worked_example_8_1(bench: Bench) -> None:
    mf = bench.mainframe
    mf.set_dac_output(1001, True)
    mf.set_dac_voltage(1001, 0.25)
    mf.set_high_impedance(True, [7037, 7001])
    mf.set_scan([7037, 7001])
    lines, volts = received(bench, lambda mf: mf.read())
    assert lines == ["READ?"]
    assert volts == pytest.approx([0.58, 0.25e-4], abs=1e-5)
    assert bench.emulator.high_impedance(7037) and not bench.emulator.high_impedance(7002)


def test_dac_setpoint_and_routes_reach_the_instrument(bench: Bench) -> None:
    mf = bench.mainframe
    mf.set_dac_voltage([1001, 2001], 3e-9)
    mf.set_dac_voltage(6004, -1.5)
    mf.close_routes([8048, 8013])
    assert mf.dac_voltage([1001, 2001, 6004]) == [3e-9, 3e-9, -1.5]
    assert mf.routes_closed([8013, 8048, 8014]) == [True, True, False]
    mf.open_routes(8013)
    assert mf.routes_closed([8013, 8048]) == [False, True]
    mf.reset()
    assert mf.routes_closed([8048]) == [False]
    assert mf.dac_voltage(6004) == [0.0]


def test_an_emulator_refusal_is_one_error_naming_the_command(bench: Bench) -> None:
    """Channel 1005 passes the driver's syntax check; the 4-channel 34951A refuses it (-224)."""
    with bench.server.recording() as lines:
        with pytest.raises(InstrumentError) as caught:
            bench.mainframe.set_dac_voltage(1005, 0.1)
    message = str(caught.value)
    assert "'SOUR:VOLT 0.1,(@1005)'" in message
    assert '-224,"Illegal parameter value"' in message
    assert "34980A" in message and "\n" not in message
    assert lines == ["SOUR:VOLT 0.1,(@1005)", ERR, ERR]
    assert not bench.emulator.errors


def test_a_command_with_an_error_changes_nothing(bench: Bench) -> None:
    with pytest.raises(InstrumentError, match="-224"):
        bench.mainframe.set_dac_voltage([1001, 1002, 1005], 0.5)  # no partial channel list (5.1)
    assert bench.mainframe.dac_voltage([1001, 1002]) == [0.0, 0.0]


@pytest.mark.parametrize("volts", [2.0000001, -2.5, 16.0, 17.0, math.nan, math.inf, "0.5"])
def test_a_setpoint_beyond_the_pads_absolute_maximum_sends_nothing(bench: Bench, volts: Any) -> None:
    with bench.server.recording() as lines:
        with pytest.raises(SafetyError, match="DAC setpoint"):
            bench.mainframe.set_dac_voltage(1001, volts)
        assert bench.mainframe.query(FENCE) == "1"
    assert lines == [FENCE]
    assert bench.emulator.dac_level[1001] == 0.0


@pytest.mark.parametrize("volts", [2.0, -2.0])
def test_the_absolute_maximum_itself_is_allowed(bench: Bench, volts: float) -> None:
    bench.mainframe.set_dac_voltage(1001, volts)
    assert bench.emulator.dac_level[1001] == volts


@pytest.mark.parametrize(("action", "error"), [
    (lambda mf: mf.close_routes(7001), SafetyError),        # 6.4: only MEAS?/READ? close slot 7
    (lambda mf: mf.close_routes(8911), SafetyError),        # 6.4: analog-bus relay of slot 8
    (lambda mf: mf.close_routes([8013, 7921]), SafetyError),
    (lambda mf: mf.measure_voltage(8013), SafetyError),     # 6.4: a slot-8 channel in MEAS?
    (lambda mf: mf.configure_voltage([7001, 8036]), SafetyError),
    (lambda mf: mf.set_scan(8001), SafetyError),
    (lambda mf: mf.measure_voltage(1001), ConfigError),     # a DAC is not a DMM channel
    (lambda mf: mf.set_dac_voltage(7001, 0.1), ConfigError),
    (lambda mf: mf.close_routes(1001), ConfigError),
    (lambda mf: mf.set_nplc(3, 7001), ConfigError),          # not one of the DMM's NPLC values
])
def test_never_commanded_channels_send_nothing(bench: Bench, action: Callable[[Keysight34980A], object],
                                               error: type[Exception]) -> None:
    with bench.server.recording() as lines:
        with pytest.raises(error):
            action(bench.mainframe)
        assert bench.mainframe.query(FENCE) == "1"
    assert lines == [FENCE]


def test_all_outputs_off_zeroes_then_disconnects_every_dac(bench: Bench) -> None:
    bench.mainframe.set_dac_output(1001, True)
    bench.mainframe.set_dac_voltage(1001, 1.0)
    lines, _ = received(bench, lambda mf: mf.all_outputs_off())
    every = "(@1001:1004,2001:2004,3001:3004,4001:4004,5001:5004,6001:6004)"
    assert lines == [f"SOUR:VOLT 0.0,{every}", ERR, f"OUTP:STAT OFF,{every}", ERR]
    assert bench.emulator.dac_output_v(1001) is None and bench.emulator.dac_level[1001] == 0.0


def test_an_overload_reads_as_an_infinity(bench: Bench) -> None:
    """Contract 5.1: an overload answers +9.90000000E+37 whatever its sign."""
    bench.emulator.read_node = lambda channel: -1e3
    assert bench.mainframe.measure_voltage([7030, 7031]) == [math.inf, math.inf]
    bench.emulator.read_node = lambda channel: 1.5
    assert bench.mainframe.measure_voltage(7030) == [pytest.approx(1.5, abs=1e-4)]


def test_the_mainframe_has_no_smu_channel(bench: Bench) -> None:
    with pytest.raises(ConfigError, match="no channel '1'"):
        bench.mainframe.channel("1")


# ------------------------------------------------------------- the emulator itself


def run(emulator: SwitchMeasureEmulator, *lines: str) -> list[str | None]:
    return [emulator.execute(line) for line in lines]


def errors(emulator: SwitchMeasureEmulator) -> list[int]:
    codes = []
    while (answer := emulator.execute("SYST:ERR?")) != '+0,"No error"':
        assert answer is not None
        codes.append(int(answer.split(",")[0]))
    return codes


@pytest.mark.parametrize(("line", "code"), [
    ("SOUR:VOLT:FOO 1,(@1001)", -113),
    ("*FOO", -113),
    ("SOUR:VOLT 16.5,(@1001)", -222),
    ("SOUR:VOLT 0.1,(@1005)", -224),
    ("SOUR:VOLT 0.1,(@9001)", -224),
    ("SOUR:VOLT 0.1,(@7001)", -221),
    ("SOUR:VOLT (@1001)", -109),
    ("SOUR:VOLT 0.1,(@1001", -102),
    ("SOUR:VOLT 0.1,(@1001:2002)", -224),
    ("READ?", -221),                              # empty scan list
    ("MEAS:VOLT:DC? (@1001)", -221),              # a DMM command naming a DAC channel
    ("ROUT:SCAN (@3002)", -221),
    ("ROUT:CLOS (@7071)", -224),
    ("VOLT:DC:NPLC 500,(@7001)", -222),
    ("VOLT:DC:NPLC 3,(@7001)", -224),
    ("SYST:CTYP? 9", -222),
])
def test_emulator_error_codes(line: str, code: int) -> None:
    emulator = SwitchMeasureEmulator()
    assert emulator.execute(line) is None
    assert errors(emulator) == [code]


def test_emulator_executes_what_the_driver_refuses() -> None:
    """The instrument knows no pad rating (5.4): 15 V and slot-7 closures are executed."""
    emulator = SwitchMeasureEmulator()
    run(emulator, "sour:volt 15,(@1001)", "OUTP ON,(@1001)", ":ROUTe:CLOSe (@7001,7911)")
    assert errors(emulator) == []
    assert emulator.dac_output_v(1001) == 15.0
    assert emulator.is_closed(7001) and emulator.is_closed(7911)


def test_emulator_reset_state_and_modules() -> None:
    emulator = SwitchMeasureEmulator()
    run(emulator, "SOUR:VOLT 1.25,(@2003)", "OUTP:STAT ON,(@2003)", "ROUT:CLOS (@8001,8036)",
        "VOLT:DC:IMP:AUTO ON,(@7001)", "VOLT:DC:NPLC 10,(@7001)", "ROUT:SCAN (@7001)")
    assert emulator.execute("SOUR:VOLT? (@2003)") == "+1.25000000E+00"
    assert emulator.execute("OUTP:STAT? (@2003,2004)") == "1,0"
    assert emulator.execute("ROUT:CLOS? (@8001,8036,8002)") == "1,1,0"
    emulator.execute("*RST")
    assert emulator.execute("SOUR:VOLT? (@2003)") == "+0.00000000E+00"
    assert emulator.execute("OUTP:STAT? (@2003)") == "0"
    assert emulator.execute("ROUT:CLOS? (@8001,8036)") == "0,0"
    assert not emulator.high_impedance(7001) and emulator.dmm[7001].nplc == 1.0
    assert emulator.execute("READ?") is None
    assert errors(emulator) == [-221]
    assert emulator.execute("SYST:CTYP? 6") == "Keysight Technologies,34951A,0,1.2"
    assert emulator.execute("SYST:CTYP? 7").split(",")[1] == "34922A"


def test_dac_realises_the_16_bit_grid() -> None:
    emulator = SwitchMeasureEmulator()
    run(emulator, "SOUR:VOLT 0.2501,(@1001)", "OUTP:STAT ON,(@1001)")
    assert emulator.dac_output_v(1001) == 512 * DAC_LSB_V == 0.25
    assert emulator.execute("SOUR:VOLT? (@1001)") == "+2.50100000E-01"


def test_measure_resets_the_channels_configuration_and_sets_the_scan() -> None:
    emulator = SwitchMeasureEmulator()
    run(emulator, "VOLT:DC:IMP:AUTO ON,(@7001,7002)", "VOLT:DC:NPLC 10,(@7001)")
    emulator.execute("MEAS:VOLT:DC? AUTO,DEF,(@7001)")
    assert not emulator.high_impedance(7001) and emulator.dmm[7001].nplc == 1.0
    assert emulator.high_impedance(7002)
    assert emulator.scan == [7001]
    assert errors(emulator) == []


@pytest.mark.parametrize(("nplc", "cost_s"), [(0.2, 0.014), (1, 0.030), (10, 0.210)])
def test_a_reading_costs_the_bench_time_of_4_5(nplc: float, cost_s: float) -> None:
    clock = VirtualClock()
    emulator = SwitchMeasureEmulator(clock=clock)
    run(emulator, f"VOLT:DC:NPLC {nplc},(@7001)", "ROUT:SCAN (@7001)")
    before = clock.accounted_s
    emulator.execute("READ?")
    assert clock.accounted_s - before == pytest.approx(cost_s)
    run(emulator, "ROUT:CHAN:DEL 0.02,(@7001)")
    before = clock.accounted_s
    emulator.execute("READ?")
    assert clock.accounted_s - before == pytest.approx(cost_s + 0.02)


def test_readings_carry_noise_that_falls_with_nplc() -> None:
    emulator = SwitchMeasureEmulator(seed=3, read_node=lambda channel: 0.5)

    def spread(nplc: float) -> float:
        emulator.execute(f"VOLT:DC:NPLC {nplc},(@7001);ROUT:SCAN (@7001)")
        values = [float(emulator.execute("READ?") or "nan") for _ in range(200)]
        mean = sum(values) / len(values)
        return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))

    fast, slow = spread(0.2), spread(20)
    assert 0 < slow < fast / 5
    assert fast < 1e-5


def test_the_error_queue_overflows_at_20() -> None:
    emulator = SwitchMeasureEmulator()
    for _ in range(25):
        emulator.execute("FOO")
    assert errors(emulator) == [-113] * 19 + [-350]


def test_state_changes_reach_the_sample() -> None:
    changes: list[int] = []
    emulator = SwitchMeasureEmulator(on_change=lambda: changes.append(1))
    run(emulator, "SOUR:VOLT 0.1,(@1001)", "ROUT:CLOS (@8001)", "*RST")
    assert len(changes) == 3
    emulator.execute("SOUR:VOLT 99,(@1001)")
    assert len(changes) == 3
