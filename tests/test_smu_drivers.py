"""SMU drivers against the emulated instruments, over pyvisa-py sockets as on a real bench.

Each emulator is served in-process on a free port and opened as
``TCPIP0::127.0.0.1::PORT::SOCKET`` (contract section 3); the channels drive
resistors, so every reading can be checked against Ohm's law and the SMU's
compliance behaviour.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import pyvisa

from labctl.drivers.instruments import open_instrument
from labctl.drivers.keithley2450 import Keithley2450
from labctl.drivers.keithley2636b import Keithley2636B
from labctl.drivers.keysight_b2900 import KeysightB2900
from labctl.drivers.smu_roles import Ammeter, CurrentSource, SmuChannel, Switchable, VoltageSource, Voltmeter
from labctl.drivers.visa_instrument import SmuChannelBase, VisaInstrument, format_number
from labctl.errors import ConfigError, InstrumentError
from labctl.sim.instrument_server import InstrumentServer
from labctl.sim.pads import OPEN, ResistorPad
from labctl.sim.smu_emulators import (
    EmulatedChannel,
    Keithley2450Emulator,
    Keithley2636BEmulator,
    KeysightB2901AEmulator,
    KeysightB2902AEmulator,
    SmuEmulator,
)

MODELS = [
    (Keithley2450Emulator, "2450", Keithley2450),
    (KeysightB2901AEmulator, "B2901A", KeysightB2900),
    (KeysightB2902AEmulator, "B2902A", KeysightB2900),
    (Keithley2636BEmulator, "2636B", Keithley2636B),
]
CHANNELS = [(model, name) for model in MODELS for name in model[0].CHANNELS]


@dataclass
class Bench:
    emulator: SmuEmulator
    server: InstrumentServer
    instrument: VisaInstrument


@dataclass
class Channel:
    bench: Bench
    emulated: EmulatedChannel
    driver: SmuChannelBase


@pytest.fixture(scope="module")
def rm() -> pyvisa.ResourceManager:
    return pyvisa.ResourceManager("@py")


def _serve(emulator: SmuEmulator, rm: pyvisa.ResourceManager) -> Iterator[Bench]:
    server = InstrumentServer(emulator).start()
    try:
        instrument = open_instrument(server.resource, rm)
        yield Bench(emulator, server, instrument)
        instrument.close()
    finally:
        server.stop()


@pytest.fixture(params=MODELS, ids=[model[1] for model in MODELS])
def bench(request: pytest.FixtureRequest, rm: pyvisa.ResourceManager) -> Iterator[Bench]:
    yield from _serve(request.param[0](), rm)


@pytest.fixture(params=CHANNELS, ids=[f"{model[1]}:{name}" for model, name in CHANNELS])
def channel(request: pytest.FixtureRequest, rm: pyvisa.ResourceManager) -> Iterator[Channel]:
    (emulator_class, _, _), name = request.param
    for bench in _serve(emulator_class(), rm):
        yield Channel(bench, bench.emulator.channel(name), bench.instrument.channel(name))


def _record(emulator: SmuEmulator) -> list[str]:
    """Keep a transcript of every line the emulator receives."""
    lines: list[str] = []
    execute = emulator.execute

    def recording(line: str) -> str | None:
        lines.append(line)
        return execute(line)

    emulator.execute = recording  # type: ignore[method-assign]
    return lines


# ------------------------------------------------------- identification


@pytest.mark.parametrize(("emulator_class", "model", "driver"), MODELS, ids=[m[1] for m in MODELS])
def test_open_instrument_picks_the_driver_from_idn(emulator_class, model, driver, rm) -> None:
    for bench in _serve(emulator_class(), rm):
        assert type(bench.instrument) is driver
        assert bench.instrument.model == model
        assert bench.instrument.idn == emulator_class.IDN
        reopened = driver.from_resource(bench.server.resource, rm)
        assert reopened.model == model
        reopened.close()


def test_from_resource_refuses_another_model(rm) -> None:
    for bench in _serve(KeysightB2902AEmulator(), rm):
        with pytest.raises(InstrumentError, match="B2902A.*not a Keithley 2450"):
            Keithley2450.from_resource(bench.server.resource, rm)


def test_unknown_model_is_named(rm) -> None:
    class Multimeter(Keithley2450Emulator):
        IDN = "KEITHLEY INSTRUMENTS,MODEL DMM6500,04400000,1.0"

    with InstrumentServer(Multimeter()) as server:
        with pytest.raises(InstrumentError, match="DMM6500"):
            open_instrument(server.resource, rm)


def test_unreachable_resource_fails_fast(rm) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    resource = f"TCPIP0::127.0.0.1::{port}::SOCKET"
    start = time.monotonic()
    with pytest.raises(InstrumentError, match=resource) as caught:
        open_instrument(resource, rm)
    assert time.monotonic() - start < 5.0
    assert "\n" not in str(caught.value)


def test_unknown_channel_names_the_valid_ones(bench: Bench) -> None:
    valid = bench.emulator.CHANNELS
    with pytest.raises(ConfigError, match=f"no channel 'c'.*{', '.join(valid)}"):
        bench.instrument.channel("c")


def test_channels_fulfil_every_role(channel: Channel) -> None:
    for role in (VoltageSource, CurrentSource, Ammeter, Voltmeter, Switchable, SmuChannel):
        assert isinstance(channel.driver, role)


# ------------------------------------------------------- physics


def test_nanoamp_current_source_keeps_full_precision(channel: Channel) -> None:
    """3 nA into 1 MOhm reads back 3 nA and 3 mV: the setpoint went out unrounded."""
    channel.emulated.attach(ResistorPad(1e6))
    channel.driver.source_current(3e-9, 1.8)
    channel.driver.enable_output()
    assert channel.emulated.level["I"] == 3e-9
    assert channel.driver.measure_current() == pytest.approx(3e-9, rel=2e-3)
    assert channel.driver.measure_voltage() == pytest.approx(3e-3, rel=2e-3)
    channel.driver.set_current(1.234567891e-9)
    assert channel.emulated.level["I"] == 1.234567891e-9


def test_voltage_source_lands_on_current_compliance(channel: Channel) -> None:
    """1.8 V into 100 kOhm would draw 18 uA; with a 1 uA limit the output settles at 0.1 V."""
    channel.emulated.attach(ResistorPad(1e5))
    channel.driver.source_voltage(1.8, 1e-6)
    channel.driver.enable_output()
    assert channel.driver.measure_current() == pytest.approx(1e-6, rel=1e-3)
    assert channel.driver.measure_voltage() == pytest.approx(0.1, rel=1e-3)
    channel.driver.set_voltage(0.05)  # inside the limit: Ohm's law
    assert channel.driver.measure_current() == pytest.approx(5e-7, rel=1e-3)
    assert channel.driver.measure_voltage() == pytest.approx(0.05, rel=1e-3)


def test_current_source_lands_on_voltage_compliance(channel: Channel) -> None:
    """10 uA into 1 MOhm needs 10 V; a 1.8 V limit gives 1.8 V and 1.8 uA."""
    channel.emulated.attach(ResistorPad(1e6))
    channel.driver.source_current(1e-5, 1.8)
    channel.driver.enable_output()
    assert channel.driver.measure_voltage() == pytest.approx(1.8, rel=1e-3)
    assert channel.driver.measure_current() == pytest.approx(1.8e-6, rel=1e-3)


def test_output_off_is_open(channel: Channel) -> None:
    pad = ResistorPad(1e3)
    channel.emulated.attach(pad)
    channel.driver.source_voltage(1.0, 1e-2)
    channel.driver.enable_output()
    assert channel.driver.output_enabled
    assert channel.driver.measure_current() == pytest.approx(1e-3, rel=1e-3)
    channel.driver.disable_output()
    assert not channel.driver.output_enabled
    assert pad.operating_point() == OPEN
    assert abs(channel.driver.measure_current()) < 1e-11
    assert abs(channel.driver.measure_voltage()) < 1e-5


def test_configuration_sets_compliance_before_level_and_leaves_output(channel: Channel) -> None:
    lines = _record(channel.bench.emulator)
    channel.driver.source_voltage(1.8, 2e-3)
    writes = [line for line in lines if "?" not in line and "print" not in line]
    limit = next(i for i, line in enumerate(writes) if "0.002" in line)
    level = next(i for i, line in enumerate(writes) if "1.8" in line)
    assert limit < level
    assert not any(":OUTP" in line.upper() or "source.output" in line for line in writes)
    assert not channel.emulated.output_on
    assert (channel.emulated.mode, channel.emulated.level["V"], channel.emulated.limit["I"]) == ("V", 1.8, 2e-3)


def test_refused_setpoint_raises_with_instrument_text(channel: Channel) -> None:
    with pytest.raises(InstrumentError, match=r"refused .*5\.0.*-222,.*Data out of range") as caught:
        channel.driver.source_current(5.0, 1.8)  # beyond every model's current rating
    assert channel.bench.instrument.model in str(caught.value)
    with pytest.raises(InstrumentError, match="-222"):
        channel.driver.set_nplc(1000)
    # the queue was drained: the next step is clean
    channel.driver.source_current(1e-9, 1.8)


def test_each_reading_spends_its_integration_time(channel: Channel) -> None:
    clock = channel.bench.emulator.clock
    channel.driver.set_nplc(5)
    before = clock.now()
    channel.driver.measure_current()
    assert clock.now() - before == pytest.approx(5 / 50 + 1e-3)
    channel.driver.set_nplc(0.1)
    before = clock.now()
    channel.driver.measure_voltage()
    assert clock.now() - before == pytest.approx(0.1 / 50 + 1e-3)


def test_all_outputs_off(bench: Bench) -> None:
    for name in bench.emulator.CHANNELS:
        bench.instrument.channel(name).source_voltage(0.5, 1e-3)
        bench.instrument.channel(name).enable_output()
    assert all(ch.output_on for ch in bench.emulator.channels.values())
    bench.instrument.all_outputs_off()
    assert not any(ch.output_on for ch in bench.emulator.channels.values())


def test_two_channels_from_two_threads_never_mix_answers(rm) -> None:
    for bench in _serve(KeysightB2902AEmulator(), rm):
        readings: dict[str, list[float]] = {"1": [], "2": []}
        for name, volts in (("1", 1.0), ("2", 2.0)):
            bench.emulator.channel(name).attach(ResistorPad(1e6))
            bench.instrument.channel(name).source_voltage(volts, 1e-4)
            bench.instrument.channel(name).enable_output()

        def measure(name: str) -> None:
            for _ in range(40):
                readings[name].append(bench.instrument.channel(name).measure_current())

        threads = [threading.Thread(target=measure, args=(name,)) for name in readings]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert np.allclose(readings["1"], 1e-6, rtol=1e-3)
        assert np.allclose(readings["2"], 2e-6, rtol=1e-3)


# ------------------------------------------------------- emulator details


def test_reading_noise_falls_with_sqrt_nplc() -> None:
    pad = ResistorPad(1e6)
    pad.noise_frac = 0.01
    channel = Keithley2450Emulator(seed=3).channel("1")
    channel.attach(pad)
    channel.set_level("I", 1e-6)
    channel.set_limit("V", 20.0)
    channel.set_mode("I")
    channel.set_output(True)
    for nplc, sigma in ((1.0, 0.01), (4.0, 0.005)):
        channel.set_nplc("I", nplc)
        readings = np.array([channel.read("I") for _ in range(2000)])
        assert readings.mean() == pytest.approx(1e-6, rel=1e-3)
        assert readings.std() / 1e-6 == pytest.approx(sigma, rel=0.1)


def test_pad_sees_every_change_at_once() -> None:
    pad = ResistorPad(1e6)
    seen: list[float] = []
    pad.on_change(lambda: seen.append(pad.operating_point().current_a))
    emulator = Keithley2636BEmulator()
    emulator.channel("a").attach(pad)
    for line in ("smua.source.limiti = 1e-3", "smua.source.levelv = 1.8", "smua.source.output = smua.OUTPUT_ON"):
        emulator.execute(line)
    assert seen[-2] == 0.0
    assert seen[-1] == pytest.approx(1.8e-6)
    emulator.execute("smua.reset()")
    assert seen[-1] == 0.0


@pytest.mark.parametrize(
    "command",
    [
        ":SOURce:CURRent 2e-9",
        ":SOUR:CURR 2e-9",
        "sour:curr 2e-9",
        "SOURce1:CURRent:LEVel:IMMediate:AMPLitude 2e-9",
        ":sour1:curr:lev 2e-9",
    ],
)
def test_scpi_short_long_and_optional_forms(command: str) -> None:
    emulator = Keithley2450Emulator()
    assert emulator.execute(command) is None
    assert emulator.execute(":SYST:ERR?") == '0,"No error"'
    assert emulator.channel("1").level["I"] == 2e-9
    assert float(emulator.execute(":SOURce:CURRent?")) == 2e-9


def test_scpi_error_queue_codes() -> None:
    emulator = KeysightB2902AEmulator()
    emulator.execute(":SOURce:CURRency 1")  # no such node
    emulator.execute(":SOUR3:VOLT 1")  # no channel 3
    emulator.execute(":SOUR2:VOLT 300")  # beyond 210 V
    emulator.execute(":OUTP2 ON;:SOUR2:FUNC:MODE CURR")  # live output changes function
    assert emulator.execute(":SYSTem:ERRor:NEXT?") == '-113,"Undefined header"'
    assert emulator.execute(":SYST:ERR?") == '-114,"Header suffix out of range"'
    assert emulator.execute("syst:err:next?") == '-222,"Data out of range"'
    assert emulator.execute(":SYST:ERR?") == '-221,"Settings conflict"'
    assert emulator.execute(":SYST:ERR?") == '0,"No error"'
    assert emulator.execute(":OUTPut2:STATe?") == "1"
    assert emulator.execute(":OUTP2:STAT OFF;:OUTP2?") == "0"


def test_rst_restores_defaults_and_opens_outputs() -> None:
    emulator = Keithley2450Emulator()
    for line in (":SOUR:FUNC CURR", ":SOUR:CURR 1e-6", ":SOUR:CURR:VLIM 5", ":OUTP ON", ":SENS:CURR:NPLC 10"):
        emulator.execute(line)
    emulator.execute("*RST")
    channel = emulator.channel("1")
    assert (channel.output_on, channel.mode, channel.level["V"], channel.limit["V"]) == (False, "V", 0.0, 21.0)
    assert channel.nplc["I"] == 1.0
    assert emulator.execute("*OPC?") == "1"


def test_2450_read_follows_sense_function() -> None:
    emulator = Keithley2450Emulator()
    emulator.channel("1").attach(ResistorPad(1e3))
    for line in (":SOUR:VOLT:ILIM 0.01", ":SOUR:VOLT 1", ":OUTP ON", ':SENS:FUNC "VOLT"'):
        emulator.execute(line)
    assert float(emulator.execute(":READ?")) == pytest.approx(1.0, rel=1e-4)
    emulator.execute(':SENSe:FUNCtion "CURR"')
    assert float(emulator.execute("READ?")) == pytest.approx(1e-3, rel=1e-4)


def test_tsp_statements_and_errors() -> None:
    emulator = Keithley2636BEmulator()
    assert emulator.execute("smub.source.leveli = 3e-09") is None
    assert emulator.execute("print(smub.source.leveli)") == "3.00000e-09"
    assert emulator.execute("print(errorqueue.count)") == "0.00000e+00"
    emulator.execute("smuc.source.leveli = 1")  # no such SMU
    emulator.execute("smua.source.levelv = 500")  # beyond 202 V
    emulator.execute("beep the instrument")  # not Lua
    assert emulator.execute("print(errorqueue.count)") == "3.00000e+00"
    codes = [float(emulator.execute("print(errorqueue.next())").split("\t")[0]) for _ in range(3)]
    assert codes == [-286, -222, -285]
    assert emulator.execute("print(errorqueue.next())").split("\t")[:2] == ["0.00000e+00", "Queue Is Empty"]
    assert emulator.execute("*IDN?") == Keithley2636BEmulator.IDN


# ------------------------------------------------------- server and formatting


def test_server_serves_successive_connections_under_the_die_lock(rm) -> None:
    die_lock = threading.Lock()
    with InstrumentServer(Keithley2450Emulator(), lock=die_lock) as server:
        for _ in range(2):
            session = rm.open_resource(server.resource, read_termination="\n", write_termination="\n")
            assert session.query("*IDN?") == Keithley2450Emulator.IDN
            session.close()
        session = rm.open_resource(server.resource, read_termination="\n", write_termination="\n", timeout=2000)
        answers: list[str] = []
        with die_lock:
            reader = threading.Thread(target=lambda: answers.append(session.query("*OPC?")))
            reader.start()
            time.sleep(0.1)
            assert answers == []  # held back while the die is busy
        reader.join()
        assert answers == ["1"]
        session.close()


@pytest.mark.parametrize("value", [3e-9, 1.234567891e-9, 1.8, -0.9, 2e-3, 1e-12, 0.1 + 0.2])
def test_setpoints_round_trip_exactly(value: float) -> None:
    assert float(format_number(value)) == value


def test_setpoints_are_never_fixed_point() -> None:
    assert format_number(3e-9) == "3e-09"
    assert format_number(5e-7) == "5e-07"


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_setpoint_is_refused(value: float) -> None:
    with pytest.raises(ConfigError, match="not a finite number"):
        format_number(value)
