"""SMU drivers against the emulated instruments, over pyvisa-py sockets as on a real bench.

Each emulator is served in-process on a free port and opened as
``TCPIP0::127.0.0.1::PORT::SOCKET`` (contract section 3). Two kinds of test:

- wire transcripts, PyMeasure style: for every model, channel and public
  operation, the exact command lines the instrument received over the socket,
  in order (:meth:`InstrumentServer.recording`). The tables below are the
  specification of what each driver sends;
- physics: the channels drive resistors, so every reading is checked against
  Ohm's law and the SMU's compliance behaviour.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

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

MODELS: dict[str, tuple[type[SmuEmulator], type[VisaInstrument]]] = {
    "2450": (Keithley2450Emulator, Keithley2450),
    "B2901A": (KeysightB2901AEmulator, KeysightB2900),
    "B2902A": (KeysightB2902AEmulator, KeysightB2900),
    "2636B": (Keithley2636BEmulator, Keithley2636B),
}
TARGETS = [f"{model}:{name}" for model, (emulator, _) in MODELS.items() for name in emulator.CHANNELS]
"""Every channel of every model, as "MODEL:CHANNEL"."""

# Error-queue traffic. Each configuration step is followed by one error-queue
# check; an empty queue answers the first query, so a clean step costs one line.
SCPI_ERR = ":SYSTem:ERRor:NEXT?"
TSP_COUNT = "print(errorqueue.count)"
TSP_NEXT = "print(errorqueue.next())"
ERROR_CHECK = {"2450": SCPI_ERR, "B2901A": SCPI_ERR, "B2902A": SCPI_ERR, "2636B": TSP_COUNT}
FENCE = "*OPC?"
"""Sent after a recorded action on the same connection: once answered, all earlier lines have arrived."""


@dataclass
class Bench:
    emulator: SmuEmulator
    server: InstrumentServer
    instrument: VisaInstrument


@dataclass
class Channel:
    target: str
    """"MODEL:CHANNEL", as the tables key it."""
    bench: Bench
    emulated: EmulatedChannel
    driver: SmuChannelBase

    @property
    def model(self) -> str:
        return self.target.split(":")[0]


class Call:
    """A call as a specification table spells it: ``Call("source_voltage", 1.8, 2e-3)``."""

    def __init__(self, method: str, *args: Any) -> None:
        self.method = method
        self.args = args

    def __call__(self, target: object) -> Any:
        return getattr(target, self.method)(*self.args)

    def __repr__(self) -> str:
        return f"{self.method}({', '.join(map(repr, self.args))})"


Spec = dict[str, list[tuple[Call, list[str]]]]
"""A specification table: {model or "MODEL:CHANNEL": [(call, exact transcript), ...]}."""


@pytest.fixture(scope="module")
def rm() -> pyvisa.ResourceManager:
    return pyvisa.ResourceManager("@py")


@contextmanager
def serve(emulator: SmuEmulator, rm: pyvisa.ResourceManager) -> Iterator[Bench]:
    """``emulator`` on a free loopback port, opened through :func:`open_instrument`."""
    with InstrumentServer(emulator) as server:
        instrument = open_instrument(server.resource, rm)
        try:
            yield Bench(emulator, server, instrument)
        finally:
            instrument.close()


@pytest.fixture(params=list(MODELS))
def bench(request: pytest.FixtureRequest, rm: pyvisa.ResourceManager) -> Iterator[Bench]:
    """One instrument per model; a table overrides the model through ``indirect``."""
    with serve(MODELS[request.param][0](), rm) as served:
        yield served


@pytest.fixture(params=TARGETS)
def channel(request: pytest.FixtureRequest, rm: pyvisa.ResourceManager) -> Iterator[Channel]:
    """One channel of a fresh instrument; ``request.param`` is "MODEL:CHANNEL"."""
    model, name = request.param.split(":")
    with serve(MODELS[model][0](), rm) as served:
        yield Channel(request.param, served, served.emulator.channel(name), served.instrument.channel(name))


def received(bench: Bench, action: Callable[[], object]) -> list[str]:
    """The lines ``bench``'s instrument received while ``action`` ran, exactly as they came off the wire.

    The :data:`FENCE` query closes the recording, so a write trailing the
    driver's last query cannot slip past the assertion.
    """
    with bench.server.recording() as lines:
        action()
        assert bench.instrument.query(FENCE) == "1"
    assert lines[-1] == FENCE
    return lines[:-1]


def _spec(table: Spec) -> list[Any]:
    """A specification table as pytest parameters named "target-call"."""
    return [
        pytest.param(target, call, transcript, id=f"{target}-{call!r}")
        for target, rows in table.items()
        for call, transcript in rows
    ]


# ------------------------------------------------------- identification and opening

OPENING = {
    "2450": ["*IDN?", SCPI_ERR],
    "B2901A": ["*IDN?", SCPI_ERR],
    "B2902A": ["*IDN?", SCPI_ERR],
    "2636B": ["*IDN?", TSP_COUNT],
}
"""Opening: identify, then empty the error queue. Nothing is reset (no ``*RST``) and no output is touched."""


@contextmanager
def recording_opening(emulator: SmuEmulator) -> Iterator[tuple[InstrumentServer, list[str]]]:
    """A server for ``emulator`` that records from the first line a driver sends."""
    with InstrumentServer(emulator) as server, server.recording() as lines:
        yield server, lines


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("opener", ["open_instrument", "from_resource"])
def test_opening_identifies_and_drains_the_error_queue(model: str, opener: str, rm) -> None:
    emulator_class, driver = MODELS[model]
    open_ = open_instrument if opener == "open_instrument" else driver.from_resource
    with recording_opening(emulator_class()) as (server, lines):
        instrument = open_(server.resource, rm)
        assert instrument.query(FENCE) == "1"
        instrument.close()
    assert type(instrument) is driver
    assert instrument.model == model
    assert instrument.idn == emulator_class.IDN
    assert lines == [*OPENING[model], FENCE]


STALE_ERRORS = {
    # SCPI: one query per entry, until the queue answers 0.
    "2450": ["*IDN?", SCPI_ERR, SCPI_ERR, SCPI_ERR],
    "B2902A": ["*IDN?", SCPI_ERR, SCPI_ERR, SCPI_ERR],
    # TSP: the count, then exactly that many entries.
    "2636B": ["*IDN?", TSP_COUNT, TSP_NEXT, TSP_NEXT],
}


@pytest.mark.parametrize(("model", "transcript"), STALE_ERRORS.items(), ids=list(STALE_ERRORS))
def test_opening_drains_errors_left_by_an_earlier_session(model: str, transcript: list[str], rm) -> None:
    """Errors from before this session are read out silently: they must not be blamed on our first step."""
    emulator = MODELS[model][0]()
    emulator.errors.extend([(-113, "Undefined header"), (-222, "Data out of range")])
    with recording_opening(emulator) as (server, lines):
        instrument = open_instrument(server.resource, rm)
        assert instrument.query(FENCE) == "1"
        instrument.close()
    assert lines == [*transcript, FENCE]
    assert not emulator.errors


def test_from_resource_refuses_another_model_after_idn_alone(rm) -> None:
    with recording_opening(KeysightB2902AEmulator()) as (server, lines):
        with pytest.raises(InstrumentError, match="B2902A.*not a Keithley 2450"):
            Keithley2450.from_resource(server.resource, rm)
    assert lines == ["*IDN?"]


def test_unknown_model_is_named_after_idn_alone(rm) -> None:
    class Multimeter(Keithley2450Emulator):
        IDN = "KEITHLEY INSTRUMENTS,MODEL DMM6500,04400000,1.0"

    with recording_opening(Multimeter()) as (server, lines):
        with pytest.raises(InstrumentError, match="DMM6500"):
            open_instrument(server.resource, rm)
    assert lines == ["*IDN?"]


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


# ------------------------------------------------------- wire transcripts: channels

# The B2901A's only channel and the B2902A's first speak alike.
B2900_CHANNEL_1: list[tuple[Call, list[str]]] = [
    (Call("source_voltage", 1.8, 2e-3), [
        ":SENSe1:CURRent:PROTection 0.002", SCPI_ERR,
        ":SOURce1:VOLTage 1.8", SCPI_ERR,
        ":SOURce1:FUNCtion:MODE VOLTage", SCPI_ERR,
        ":SENSe1:CURRent:RANGe:AUTO ON", SCPI_ERR,
        ":SENSe1:VOLTage:RANGe:AUTO ON", SCPI_ERR,
    ]),
    (Call("source_current", 3e-9, 1.8), [
        ":SENSe1:VOLTage:PROTection 1.8", SCPI_ERR,
        ":SOURce1:CURRent 3e-09", SCPI_ERR,
        ":SOURce1:FUNCtion:MODE CURRent", SCPI_ERR,
        ":SENSe1:CURRent:RANGe:AUTO ON", SCPI_ERR,
        ":SENSe1:VOLTage:RANGe:AUTO ON", SCPI_ERR,
    ]),
    (Call("set_voltage", -0.9), [":SOURce1:VOLTage -0.9", SCPI_ERR]),
    (Call("set_current", 1.234567891e-9), [":SOURce1:CURRent 1.234567891e-09", SCPI_ERR]),
    (Call("set_nplc", 5), [":SENSe1:CURRent:NPLCycles 5.0", SCPI_ERR, ":SENSe1:VOLTage:NPLCycles 5.0", SCPI_ERR]),
    (Call("enable_output"), [":OUTPut1:STATe ON", SCPI_ERR]),
    (Call("disable_output"), [":OUTPut1:STATe OFF", SCPI_ERR]),
    (Call("measure_current"), [":MEASure:CURRent? (@1)"]),
    (Call("measure_voltage"), [":MEASure:VOLTage? (@1)"]),
]

CHANNEL_TRANSCRIPTS: Spec = {
    # Keithley 2450, SCPI: no channel suffix; the compliance is a node of the source function.
    "2450:1": [
        (Call("source_voltage", 1.8, 2e-3), [
            ":SOURce:VOLTage:ILIMit 0.002", SCPI_ERR,
            ":SOURce:VOLTage 1.8", SCPI_ERR,
            ":SOURce:FUNCtion VOLTage", SCPI_ERR,
            ":SENSe:CURRent:RANGe:AUTO ON", SCPI_ERR,
            ":SENSe:VOLTage:RANGe:AUTO ON", SCPI_ERR,
        ]),
        (Call("source_current", 3e-9, 1.8), [
            ":SOURce:CURRent:VLIMit 1.8", SCPI_ERR,
            ":SOURce:CURRent 3e-09", SCPI_ERR,
            ":SOURce:FUNCtion CURRent", SCPI_ERR,
            ":SENSe:CURRent:RANGe:AUTO ON", SCPI_ERR,
            ":SENSe:VOLTage:RANGe:AUTO ON", SCPI_ERR,
        ]),
        (Call("set_voltage", -0.9), [":SOURce:VOLTage -0.9", SCPI_ERR]),
        (Call("set_current", 1.234567891e-9), [":SOURce:CURRent 1.234567891e-09", SCPI_ERR]),
        (Call("set_nplc", 5), [":SENSe:CURRent:NPLCycles 5.0", SCPI_ERR, ":SENSe:VOLTage:NPLCycles 5.0", SCPI_ERR]),
        (Call("enable_output"), [":OUTPut:STATe ON", SCPI_ERR]),
        (Call("disable_output"), [":OUTPut:STATe OFF", SCPI_ERR]),
        (Call("measure_current"), [":MEASure:CURRent?"]),
        (Call("measure_voltage"), [":MEASure:VOLTage?"]),
    ],
    # Keysight B2901A/B2902A, SCPI: every node carries the channel; the compliance is a sense node.
    "B2901A:1": B2900_CHANNEL_1,
    "B2902A:1": B2900_CHANNEL_1,
    "B2902A:2": [
        (Call("source_voltage", 1.8, 2e-3), [
            ":SENSe2:CURRent:PROTection 0.002", SCPI_ERR,
            ":SOURce2:VOLTage 1.8", SCPI_ERR,
            ":SOURce2:FUNCtion:MODE VOLTage", SCPI_ERR,
            ":SENSe2:CURRent:RANGe:AUTO ON", SCPI_ERR,
            ":SENSe2:VOLTage:RANGe:AUTO ON", SCPI_ERR,
        ]),
        (Call("source_current", 3e-9, 1.8), [
            ":SENSe2:VOLTage:PROTection 1.8", SCPI_ERR,
            ":SOURce2:CURRent 3e-09", SCPI_ERR,
            ":SOURce2:FUNCtion:MODE CURRent", SCPI_ERR,
            ":SENSe2:CURRent:RANGe:AUTO ON", SCPI_ERR,
            ":SENSe2:VOLTage:RANGe:AUTO ON", SCPI_ERR,
        ]),
        (Call("set_voltage", -0.9), [":SOURce2:VOLTage -0.9", SCPI_ERR]),
        (Call("set_current", 1.234567891e-9), [":SOURce2:CURRent 1.234567891e-09", SCPI_ERR]),
        (Call("set_nplc", 5), [":SENSe2:CURRent:NPLCycles 5.0", SCPI_ERR, ":SENSe2:VOLTage:NPLCycles 5.0", SCPI_ERR]),
        (Call("enable_output"), [":OUTPut2:STATe ON", SCPI_ERR]),
        (Call("disable_output"), [":OUTPut2:STATe OFF", SCPI_ERR]),
        (Call("measure_current"), [":MEASure:CURRent? (@2)"]),
        (Call("measure_voltage"), [":MEASure:VOLTage? (@2)"]),
    ],
    # Keithley 2636B, TSP: assignments, readings through print(), one NPLC for both quantities.
    "2636B:a": [
        (Call("source_voltage", 1.8, 2e-3), [
            "smua.source.limiti = 0.002", TSP_COUNT,
            "smua.source.levelv = 1.8", TSP_COUNT,
            "smua.source.func = smua.OUTPUT_DCVOLTS", TSP_COUNT,
            "smua.measure.autorangei = smua.AUTORANGE_ON", TSP_COUNT,
            "smua.measure.autorangev = smua.AUTORANGE_ON", TSP_COUNT,
        ]),
        (Call("source_current", 3e-9, 1.8), [
            "smua.source.limitv = 1.8", TSP_COUNT,
            "smua.source.leveli = 3e-09", TSP_COUNT,
            "smua.source.func = smua.OUTPUT_DCAMPS", TSP_COUNT,
            "smua.measure.autorangei = smua.AUTORANGE_ON", TSP_COUNT,
            "smua.measure.autorangev = smua.AUTORANGE_ON", TSP_COUNT,
        ]),
        (Call("set_voltage", -0.9), ["smua.source.levelv = -0.9", TSP_COUNT]),
        (Call("set_current", 1.234567891e-9), ["smua.source.leveli = 1.234567891e-09", TSP_COUNT]),
        (Call("set_nplc", 5), ["smua.measure.nplc = 5.0", TSP_COUNT]),
        (Call("enable_output"), ["smua.source.output = smua.OUTPUT_ON", TSP_COUNT]),
        (Call("disable_output"), ["smua.source.output = smua.OUTPUT_OFF", TSP_COUNT]),
        (Call("measure_current"), ["print(smua.measure.i())"]),
        (Call("measure_voltage"), ["print(smua.measure.v())"]),
    ],
    "2636B:b": [
        (Call("source_voltage", 1.8, 2e-3), [
            "smub.source.limiti = 0.002", TSP_COUNT,
            "smub.source.levelv = 1.8", TSP_COUNT,
            "smub.source.func = smub.OUTPUT_DCVOLTS", TSP_COUNT,
            "smub.measure.autorangei = smub.AUTORANGE_ON", TSP_COUNT,
            "smub.measure.autorangev = smub.AUTORANGE_ON", TSP_COUNT,
        ]),
        (Call("source_current", 3e-9, 1.8), [
            "smub.source.limitv = 1.8", TSP_COUNT,
            "smub.source.leveli = 3e-09", TSP_COUNT,
            "smub.source.func = smub.OUTPUT_DCAMPS", TSP_COUNT,
            "smub.measure.autorangei = smub.AUTORANGE_ON", TSP_COUNT,
            "smub.measure.autorangev = smub.AUTORANGE_ON", TSP_COUNT,
        ]),
        (Call("set_voltage", -0.9), ["smub.source.levelv = -0.9", TSP_COUNT]),
        (Call("set_current", 1.234567891e-9), ["smub.source.leveli = 1.234567891e-09", TSP_COUNT]),
        (Call("set_nplc", 5), ["smub.measure.nplc = 5.0", TSP_COUNT]),
        (Call("enable_output"), ["smub.source.output = smub.OUTPUT_ON", TSP_COUNT]),
        (Call("disable_output"), ["smub.source.output = smub.OUTPUT_OFF", TSP_COUNT]),
        (Call("measure_current"), ["print(smub.measure.i())"]),
        (Call("measure_voltage"), ["print(smub.measure.v())"]),
    ],
}


@pytest.mark.parametrize(("channel", "call", "transcript"), _spec(CHANNEL_TRANSCRIPTS), indirect=["channel"])
def test_channel_operation_sends_exactly(channel: Channel, call: Call, transcript: list[str]) -> None:
    assert received(channel.bench, lambda: call(channel.driver)) == transcript


def test_state_and_lookups_send_nothing(bench: Bench) -> None:
    """``output_enabled`` is what the driver last wrote, and picking a channel is local: no traffic."""

    def look() -> None:
        for name in bench.emulator.CHANNELS:
            channel = bench.instrument.channel(name)
            assert not channel.output_enabled
            assert channel.name == name

    assert received(bench, look) == []


CURRENT_LEVEL = {
    "2450:1": ":SOURce:CURRent {}",
    "B2901A:1": ":SOURce1:CURRent {}",
    "B2902A:1": ":SOURce1:CURRent {}",
    "B2902A:2": ":SOURce2:CURRent {}",
    "2636B:a": "smua.source.leveli = {}",
    "2636B:b": "smub.source.leveli = {}",
}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(3e-9, "3e-09", id="3 nA"),
        pytest.param(np.float64(3e-9), "3e-09", id="3 nA as numpy"),
        pytest.param(1.234567891e-9, "1.234567891e-09", id="10 digits"),
        pytest.param(1e-12, "1e-12", id="1 pA"),
        pytest.param(-2.5e-7, "-2.5e-07", id="negative"),
        pytest.param(0.1 + 0.2, "0.30000000000000004", id="every bit"),
    ],
)
def test_current_setpoints_go_out_in_full(channel: Channel, value: float, text: str) -> None:
    """Setpoints go out in full: the shortest text that reads back to the same float.

    Never fixed point (``%.6f`` would send 3 nA as 0); the instrument lands on exactly the value.
    """
    transcript = [CURRENT_LEVEL[channel.target].format(text), ERROR_CHECK[channel.model]]
    assert received(channel.bench, lambda: channel.driver.set_current(value)) == transcript
    assert channel.emulated.level["I"] == value


# ------------------------------------------------------- wire transcripts: instruments

INSTRUMENT_TRANSCRIPTS: Spec = {
    "2450": [
        (Call("all_outputs_off"), [":OUTPut:STATe OFF", SCPI_ERR]),
        (Call("check_errors", "now"), [SCPI_ERR]),
    ],
    "B2901A": [
        (Call("all_outputs_off"), [":OUTPut1:STATe OFF", SCPI_ERR]),
        (Call("check_errors", "now"), [SCPI_ERR]),
    ],
    "B2902A": [
        (Call("all_outputs_off"), [":OUTPut1:STATe OFF", SCPI_ERR, ":OUTPut2:STATe OFF", SCPI_ERR]),
        (Call("check_errors", "now"), [SCPI_ERR]),
    ],
    "2636B": [
        (Call("all_outputs_off"), [
            "smua.source.output = smua.OUTPUT_OFF", TSP_COUNT,
            "smub.source.output = smub.OUTPUT_OFF", TSP_COUNT,
        ]),
        (Call("check_errors", "now"), [TSP_COUNT]),
    ],
}


@pytest.mark.parametrize(("bench", "call", "transcript"), _spec(INSTRUMENT_TRANSCRIPTS), indirect=["bench"])
def test_instrument_operation_sends_exactly(bench: Bench, call: Call, transcript: list[str]) -> None:
    assert received(bench, lambda: call(bench.instrument)) == transcript


REFUSALS: Spec = {
    # Beyond every model's current rating and NPLC range. The refused step ends the operation (the
    # function is never switched), and its check empties the queue: SCPI reads the entry, then the
    # empty queue; TSP reads the count, then the entry.
    "2450:1": [
        (Call("source_current", 5.0, 1.8),
         [":SOURce:CURRent:VLIMit 1.8", SCPI_ERR, ":SOURce:CURRent 5.0", SCPI_ERR, SCPI_ERR]),
        (Call("set_nplc", 1000), [":SENSe:CURRent:NPLCycles 1000.0", SCPI_ERR, SCPI_ERR]),
    ],
    "B2901A:1": [
        (Call("source_current", 5.0, 1.8),
         [":SENSe1:VOLTage:PROTection 1.8", SCPI_ERR, ":SOURce1:CURRent 5.0", SCPI_ERR, SCPI_ERR]),
        (Call("set_nplc", 1000), [":SENSe1:CURRent:NPLCycles 1000.0", SCPI_ERR, SCPI_ERR]),
    ],
    "B2902A:1": [
        (Call("source_current", 5.0, 1.8),
         [":SENSe1:VOLTage:PROTection 1.8", SCPI_ERR, ":SOURce1:CURRent 5.0", SCPI_ERR, SCPI_ERR]),
        (Call("set_nplc", 1000), [":SENSe1:CURRent:NPLCycles 1000.0", SCPI_ERR, SCPI_ERR]),
    ],
    "B2902A:2": [
        (Call("source_current", 5.0, 1.8),
         [":SENSe2:VOLTage:PROTection 1.8", SCPI_ERR, ":SOURce2:CURRent 5.0", SCPI_ERR, SCPI_ERR]),
        (Call("set_nplc", 1000), [":SENSe2:CURRent:NPLCycles 1000.0", SCPI_ERR, SCPI_ERR]),
    ],
    "2636B:a": [
        (Call("source_current", 5.0, 1.8),
         ["smua.source.limitv = 1.8", TSP_COUNT, "smua.source.leveli = 5.0", TSP_COUNT, TSP_NEXT]),
        (Call("set_nplc", 1000), ["smua.measure.nplc = 1000.0", TSP_COUNT, TSP_NEXT]),
    ],
    "2636B:b": [
        (Call("source_current", 5.0, 1.8),
         ["smub.source.limitv = 1.8", TSP_COUNT, "smub.source.leveli = 5.0", TSP_COUNT, TSP_NEXT]),
        (Call("set_nplc", 1000), ["smub.measure.nplc = 1000.0", TSP_COUNT, TSP_NEXT]),
    ],
}


@pytest.mark.parametrize(("channel", "call", "transcript"), _spec(REFUSALS), indirect=["channel"])
def test_refused_setpoint_raises_with_instrument_text(channel: Channel, call: Call, transcript: list[str]) -> None:
    refused_command = transcript[-3]  # the last line before its two error-queue lines

    def refuse() -> None:
        with pytest.raises(InstrumentError) as caught:
            call(channel.driver)
        message = str(caught.value)
        assert message.startswith(f"{channel.bench.instrument.label} refused {refused_command!r}: -222,")
        assert "Data out of range" in message

    assert received(channel.bench, refuse) == transcript
    assert not channel.bench.emulator.errors  # drained: the next step starts clean
    channel.driver.source_current(1e-9, 1.8)


def test_specification_covers_every_model_and_channel() -> None:
    assert list(CHANNEL_TRANSCRIPTS) == list(REFUSALS) == list(CURRENT_LEVEL) == TARGETS
    assert list(INSTRUMENT_TRANSCRIPTS) == list(OPENING) == list(MODELS)


def test_specification_covers_every_role_method() -> None:
    role_methods = {
        name
        for role in (VoltageSource, CurrentSource, Ammeter, Voltmeter, Switchable, SmuChannel)
        for name, member in vars(role).items()
        if not name.startswith("_") and callable(member)
    }
    for rows in CHANNEL_TRANSCRIPTS.values():
        assert sorted(call.method for call, _ in rows) == sorted(role_methods)


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


@pytest.mark.parametrize(
    ("call", "state"),
    [
        pytest.param(Call("source_voltage", 1.8, 2e-3), ("V", 1.8, 2e-3), id="source_voltage"),
        pytest.param(Call("source_current", 3e-9, 1.8), ("I", 3e-9, 1.8), id="source_current"),
    ],
)
def test_configuration_lands_and_leaves_the_output_off(channel: Channel, call: Call, state: tuple) -> None:
    """What the transcripts send, the instrument understood: function, level and compliance; output untouched."""
    call(channel.driver)
    mode = state[0]
    compliance = "I" if mode == "V" else "V"
    assert (channel.emulated.mode, channel.emulated.level[mode], channel.emulated.limit[compliance]) == state
    assert not channel.emulated.output_on


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
    with serve(KeysightB2902AEmulator(), rm) as bench:
        readings: dict[str, list[float]] = {"1": [], "2": []}
        for name, volts in (("1", 1.0), ("2", 2.0)):
            bench.emulator.channel(name).attach(ResistorPad(1e6))
            bench.instrument.channel(name).source_voltage(volts, 1e-4)
            bench.instrument.channel(name).enable_output()

        def measure(name: str) -> None:
            for _ in range(40):
                readings[name].append(bench.instrument.channel(name).measure_current())

        def both() -> None:
            threads = [threading.Thread(target=measure, args=(name,)) for name in readings]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        lines = received(bench, both)
        assert sorted(lines) == [":MEASure:CURRent? (@1)"] * 40 + [":MEASure:CURRent? (@2)"] * 40
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
        channel.set_nplc("V", nplc)
        # the pad decides the voltage under a forced current: that reading carries the pad's noise
        readings = np.array([channel.read("V") for _ in range(2000)])
        assert readings.mean() == pytest.approx(1.0, rel=1e-3)
        assert readings.std() / 1.0 == pytest.approx(sigma, rel=0.1)


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


def test_recording_keeps_lines_as_sent(rm) -> None:
    """The transcript is the wire: unstripped lines, blank ones too; nested recordings each see theirs."""
    emulator = Keithley2450Emulator()
    with InstrumentServer(emulator) as server:
        session = rm.open_resource(server.resource, read_termination="\n", write_termination="\n")
        with server.recording() as outer:
            session.write(":OUTP ON ")
            session.write("")
            assert session.query("*OPC?") == "1"  # the writes have arrived: none can reach ``inner``
            with server.recording() as inner:
                assert session.query("*OPC?") == "1"
        session.write(":OUTP OFF")  # after the block: not recorded
        assert session.query("*OPC?") == "1"
        session.close()
    assert outer == [":OUTP ON ", "", "*OPC?", "*OPC?"]
    assert inner == ["*OPC?"]
    assert not emulator.channel("1").output_on


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


def test_an_interrupted_query_leaves_no_stale_answer_behind(channel: Channel) -> None:
    """A signal between a query's command and its answer (power-down after Ctrl-C) leaves that answer
    unread; the next exchange resynchronises with ``*IDN?`` first, so it reads its own answer and a
    setting's error check waits for the setting again (VDD must not fall before EXT_IN is off)."""
    channel.emulated.attach(ResistorPad(1e6))
    channel.driver.source_current(2e-6, 1.8)
    channel.driver.enable_output()
    session = channel.bench.instrument.session

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    session.read = interrupted
    with pytest.raises(KeyboardInterrupt):
        channel.driver.measure_voltage()   # 2 V-ish answer left unread on the wire
    del session.read
    lines = received(channel.bench, lambda: channel.driver.set_current(1e-6))
    lines = lines[lines.index("*IDN?"):]          # (the interrupted query may still arrive inside the window)
    assert len(lines) >= 4 and lines[-1] == ERROR_CHECK[channel.model] and "1e-06" in lines[-2]
    assert channel.emulated.level["I"] == 1e-6
    assert channel.driver.measure_voltage() == pytest.approx(1.0, rel=2e-3)   # its own answer, not the stale 1.8
