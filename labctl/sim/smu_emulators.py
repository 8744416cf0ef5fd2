"""Simulated SMUs that speak the command sets of contract section 5.

Each emulator takes one command line and returns the answer line (or None),
so :class:`~labctl.sim.instrument_server.InstrumentServer` can put it behind
a raw socket and the drivers cannot tell it from the instrument:

- SCPI (Keithley 2450, Keysight B2901A/B2902A): short and long forms,
  any case, optional leading colon and optional nodes (``[:STATe]``),
  channel suffixes (``:SOURce2``), ``;``-joined commands, and an error queue
  with the standard codes (-113 undefined header, -222 data out of range,
  -221 settings conflict, ...) read by ``:SYSTem:ERRor[:NEXT]?``.
- TSP (Keithley 2636B): attribute assignments on ``smua``/``smub``,
  ``print(...)`` for every answer, ``errorqueue.count`` and
  ``errorqueue.next()``, and syntax/runtime errors for anything else.

Every channel is a :class:`~labctl.sim.pads.PadDriver`: wired to a die pad,
it settles on the pad's I(V) curve like a real output (compliance included),
and calls ``pad.changed()`` after every state change so the die sees
overstress or a power-up at once. Readings carry noise (the pad's relative
noise over sqrt(NPLC), with a 1 pA / 1 uV floor) and spend bench time on the
shared :class:`~labctl.sim.clock.VirtualClock`.

The emulators are stricter than some real units in one place: changing the
source function of an output that is on is refused (-221). The drivers never
do it, and a bench should not switch a live pad between source modes.
"""

from __future__ import annotations

import math
import re
import string
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from labctl.sim.clock import VirtualClock
from labctl.sim.pads import OpenPad, OperatingPoint, Pad, SourceMode, solve_operating_point

CURRENT_FLOOR_A = 1e-12
VOLTAGE_FLOOR_V = 1e-6
POWER_LINE_HZ = 50.0
READING_OVERHEAD_S = 1e-3


class Refused(Exception):
    """A command the instrument rejects; it goes to the error queue as (code, message)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code},{message}")
        self.code = code
        self.message = message


def _out_of_range() -> Refused:
    return Refused(-222, "Data out of range")


@dataclass(frozen=True)
class Ratings:
    """Source and limit ranges of one model (datasheet values) and its limits after reset."""

    max_voltage_v: float
    max_current_a: float
    current_limit_a: tuple[float, float]
    voltage_limit_v: tuple[float, float]
    nplc: tuple[float, float]
    reset_current_limit_a: float
    reset_voltage_limit_v: float


RATINGS_2450 = Ratings(210.0, 1.05, (1e-9, 1.05), (0.02, 210.0), (0.01, 10.0), 1.05e-4, 21.0)
RATINGS_B2900 = Ratings(210.0, 3.03, (1e-12, 3.03), (0.0, 210.0), (4e-4, 100.0), 1e-4, 2.0)
RATINGS_2636B = Ratings(202.0, 1.515, (1e-11, 1.515), (0.02, 202.0), (0.001, 25.0), 0.1, 20.0)


class EmulatedChannel:
    """One SMU output: its settings, and the pad it drives.

    ``limit["I"]`` is the current compliance used while sourcing voltage,
    ``limit["V"]`` the voltage compliance used while sourcing current.
    """

    def __init__(self, name: str, ratings: Ratings, clock: VirtualClock, rng: np.random.Generator) -> None:
        self.name = name
        self.ratings = ratings
        self.clock = clock
        self._rng = rng
        self._restore_defaults()
        self.pad: Pad = OpenPad()
        self.pad.attach(self)

    def _restore_defaults(self) -> None:
        self.mode: SourceMode = "V"
        self.level: dict[SourceMode, float] = {"V": 0.0, "I": 0.0}
        self.limit: dict[SourceMode, float] = {
            "I": self.ratings.reset_current_limit_a,
            "V": self.ratings.reset_voltage_limit_v,
        }
        self.nplc: dict[SourceMode, float] = {"V": 1.0, "I": 1.0}
        self.autorange: dict[SourceMode, bool] = {"V": True, "I": True}
        self.sense: SourceMode = "I"
        self.output_on = False

    def attach(self, pad: Pad | None = None) -> None:
        """Wire this output to ``pad`` (an open terminal by default), releasing the previous pad."""
        previous = self.pad
        self.pad = pad if pad is not None else OpenPad()
        if previous is not self.pad:
            previous.attach(None)
        self.pad.attach(self)

    def drive(self, pad: Pad) -> OperatingPoint:
        """Operating point on ``pad`` for the present settings (the PadDriver role)."""
        limit = self.limit["I"] if self.mode == "V" else self.limit["V"]
        return solve_operating_point(pad.current_into, self.mode, self.level[self.mode], limit, self.output_on)

    def reset(self) -> None:
        """``*RST`` / ``smuX.reset()``: output off, source 0 V, limits and NPLC at their defaults."""
        self._restore_defaults()
        self.pad.changed()

    def set_mode(self, mode: SourceMode) -> None:
        if mode != self.mode and self.output_on:
            raise Refused(-221, "Settings conflict")
        self.mode = mode
        self.pad.changed()

    def set_level(self, quantity: SourceMode, value: float) -> None:
        peak = self.ratings.max_voltage_v if quantity == "V" else self.ratings.max_current_a
        if not abs(value) <= peak:
            raise _out_of_range()
        self.level[quantity] = value
        self.pad.changed()

    def set_limit(self, quantity: SourceMode, value: float) -> None:
        low, high = self.ratings.current_limit_a if quantity == "I" else self.ratings.voltage_limit_v
        if not low <= value <= high:
            raise _out_of_range()
        self.limit[quantity] = value
        self.pad.changed()

    def set_nplc(self, quantity: SourceMode, value: float) -> None:
        low, high = self.ratings.nplc
        if not low <= value <= high:
            raise _out_of_range()
        self.nplc[quantity] = value
        self.pad.changed()

    def set_autorange(self, quantity: SourceMode, on: bool) -> None:
        self.autorange[quantity] = on
        self.pad.changed()

    def set_sense(self, quantity: SourceMode) -> None:
        self.sense = quantity
        self.pad.changed()

    def set_output(self, on: bool) -> None:
        self.output_on = on
        self.pad.changed()

    def read(self, quantity: SourceMode) -> float:
        """One reading of current ("I") or voltage ("V") at the operating point, with noise.

        An open output reads 0 (plus the floor noise); a current source in
        compliance reads its compliance voltage.
        """
        point = self.drive(self.pad)
        if quantity == "I":
            value, floor = point.current_a, CURRENT_FLOOR_A
        else:
            value, floor = (point.voltage_v or 0.0), VOLTAGE_FLOOR_V
        nplc = self.nplc[quantity]
        # the pad's noise is in what the pad decides: the current under a forced voltage, the voltage under
        # a forced current (or in compliance); the read-back of a forced level has the instrument's floor only
        forced = quantity == self.mode and self.output_on and not point.in_compliance
        noise_frac = 0.0 if forced else self.pad.noise_frac
        sigma = math.hypot(abs(value) * noise_frac / math.sqrt(nplc), floor)
        self.clock.advance(nplc / POWER_LINE_HZ + READING_OVERHEAD_S)
        return value + sigma * float(self._rng.standard_normal())


class SmuEmulator:
    """Channels, error queue and the IEEE-488.2 common commands shared by all models."""

    IDN: ClassVar[str]
    CHANNELS: ClassVar[tuple[str, ...]]
    RATINGS: ClassVar[Ratings]

    def __init__(self, clock: VirtualClock | None = None, seed: int = 0) -> None:
        self.clock = clock if clock is not None else VirtualClock()
        rng = np.random.default_rng(seed)
        self.channels = {name: EmulatedChannel(name, self.RATINGS, self.clock, rng) for name in self.CHANNELS}
        self.errors: deque[tuple[int, str]] = deque()

    def channel(self, name: str) -> EmulatedChannel:
        return self.channels[name]

    def execute(self, line: str) -> str | None:
        """Run one command line; return its answer line, or None when it asks nothing."""
        answers = []
        for statement in self._split(line):
            try:
                answer = self._common(statement)
                if answer is None:
                    answer = self._run(statement)
            except Refused as refused:
                self.errors.append((refused.code, refused.message))
                continue
            if answer:
                answers.append(answer)
        return ";".join(answers) if answers else None

    def _common(self, statement: str) -> str | None:
        """The IEEE-488.2 commands; "" for a handled command without answer, None if not one."""
        command = statement.upper()
        if command == "*IDN?":
            return self.IDN
        if command == "*OPC?":
            return "1"
        if command == "*RST":
            for channel in self.channels.values():
                channel.reset()
            return ""
        if command == "*CLS":
            self.errors.clear()
            return ""
        if command.startswith("*"):
            raise Refused(-113, "Undefined header")
        return None

    def _split(self, line: str) -> list[str]:
        raise NotImplementedError

    def _run(self, statement: str) -> str | None:
        raise NotImplementedError


# ----------------------------------------------------------------- SCPI


def _header_regex(pattern: str) -> re.Pattern[str]:
    """``:SOURce#:CURRent[:LEVel]`` -> a regex for every legal spelling of that header.

    Upper-case letters are the short form, the lower-case rest completes the
    long form (nothing in between is legal); ``[:NODE]`` may be left out; ``#``
    is an optional numeric suffix, captured as the channel.
    """
    parts = []
    for optional, node, suffix in re.findall(r"(\[?):([A-Za-z]+)(#?)\]?", pattern):
        short = node.rstrip(string.ascii_lowercase)
        rest = node[len(short):].upper()
        text = ":" + short + (f"(?:{rest})?" if rest else "") + (r"(?P<c>\d+)?" if suffix else "")
        parts.append(f"(?:{text})?" if optional else text)
    return re.compile("".join(parts), re.IGNORECASE)


def _number(arg: str) -> float:
    if not arg:
        raise Refused(-109, "Missing parameter")
    try:
        return float(arg)
    except ValueError:
        raise Refused(-104, "Data type error") from None


def _function(arg: str) -> SourceMode:
    """CURRent|VOLTage, bare or quoted (``"CURR"``, ``"VOLT:DC"``)."""
    if not arg:
        raise Refused(-109, "Missing parameter")
    word = arg.strip("\"'").split(":")[0].upper()
    if word in ("CURR", "CURRENT"):
        return "I"
    if word in ("VOLT", "VOLTAGE"):
        return "V"
    raise Refused(-224, "Illegal parameter value")


def _on_off(arg: str) -> bool:
    if not arg:
        raise Refused(-109, "Missing parameter")
    word = arg.upper()
    if word in ("ON", "1"):
        return True
    if word in ("OFF", "0"):
        return False
    raise Refused(-224, "Illegal parameter value")


def _show_number(value: float) -> str:
    return f"{value:+.6E}"


def _show_function(mode: SourceMode) -> str:
    return "VOLT" if mode == "V" else "CURR"


def _show_bool(on: bool) -> str:
    return "1" if on else "0"


@dataclass(frozen=True)
class ScpiSetting:
    """A settable and queryable node: ``HEADER value`` or ``HEADER?``."""

    regex: re.Pattern[str]
    parse: Callable[[str], object]
    apply: Callable[[EmulatedChannel, object], None]
    show: Callable[[EmulatedChannel], str]


def _setting(
    pattern: str,
    parse: Callable[[str], object],
    apply: Callable[[EmulatedChannel, object], None],
    show: Callable[[EmulatedChannel], str],
) -> ScpiSetting:
    return ScpiSetting(_header_regex(pattern), parse, apply, show)


def _limit_setting(pattern: str, quantity: SourceMode) -> ScpiSetting:
    """A compliance limit: each instrument family spells the node its own way, it behaves alike."""
    return _setting(pattern, _number, lambda ch, x: ch.set_limit(quantity, x),
                    lambda ch: _show_number(ch.limit[quantity]))


def _mode_setting(pattern: str) -> ScpiSetting:
    """The source function (current or voltage), at each family's node."""
    return _setting(pattern, _function, EmulatedChannel.set_mode, lambda ch: _show_function(ch.mode))


def _quantity_settings(quantity: SourceMode, word: str) -> list[ScpiSetting]:
    """Nodes present for both measured quantities: NPLC and autorange (``word`` = CURRent|VOLTage)."""
    return [
        _setting(
            f":SENSe#:{word}[:DC]:NPLCycles",
            _number,
            lambda ch, x: ch.set_nplc(quantity, x),
            lambda ch: _show_number(ch.nplc[quantity]),
        ),
        _setting(
            f":SENSe#:{word}[:DC]:RANGe:AUTO",
            _on_off,
            lambda ch, on: ch.set_autorange(quantity, on),
            lambda ch: _show_bool(ch.autorange[quantity]),
        ),
    ]


def _common_scpi_settings() -> list[ScpiSetting]:
    """Nodes both SCPI families spell alike: levels, output, NPLC, autorange."""
    return [
        _setting(
            ":SOURce#:CURRent[:LEVel][:IMMediate][:AMPLitude]",
            _number,
            lambda ch, x: ch.set_level("I", x),
            lambda ch: _show_number(ch.level["I"]),
        ),
        _setting(
            ":SOURce#:VOLTage[:LEVel][:IMMediate][:AMPLitude]",
            _number,
            lambda ch, x: ch.set_level("V", x),
            lambda ch: _show_number(ch.level["V"]),
        ),
        _setting(":OUTPut#[:STATe]", _on_off, EmulatedChannel.set_output, lambda ch: _show_bool(ch.output_on)),
        *_quantity_settings("I", "CURRent"),
        *_quantity_settings("V", "VOLTage"),
    ]


_ERROR_QUERY = _header_regex(":SYSTem:ERRor[:NEXT]")
_MEASURE = {"I": _header_regex(":MEASure:CURRent[:DC]"), "V": _header_regex(":MEASure:VOLTage[:DC]")}
_READ = _header_regex(":READ")
_CHANNEL_LIST = re.compile(r"\(@([\d,]+)\)")


class ScpiSmuEmulator(SmuEmulator):
    """A SCPI SMU: settings from ``SETTINGS``, plus error and measurement queries."""

    SETTINGS: ClassVar[list[ScpiSetting]]
    HAS_READ: ClassVar[bool] = False
    """Whether ``:READ?`` (a reading of the sense function) exists: the 2450's, not the B2900's."""

    def _split(self, line: str) -> list[str]:
        return [part.strip() for part in line.split(";") if part.strip()]

    def _run(self, statement: str) -> str | None:
        header, *rest = statement.split(None, 1)
        arg = rest[0].strip() if rest else ""
        query = header.endswith("?")
        header = header.rstrip("?")
        if not header.startswith(":"):
            header = ":" + header
        if query and _ERROR_QUERY.fullmatch(header):
            code, message = self.errors.popleft() if self.errors else (0, "No error")
            return f'{code},"{message}"'
        for quantity, regex in _MEASURE.items():
            if query and regex.fullmatch(header):
                return ",".join(_show_number(ch.read(quantity)) for ch in self._measured_channels(arg))
        if query and self.HAS_READ and _READ.fullmatch(header):
            channel = self._channel(None)
            return _show_number(channel.read(channel.sense))
        for setting in self.SETTINGS:
            match = setting.regex.fullmatch(header)
            if match:
                channel = self._channel(match.groupdict().get("c"))
                if query:
                    return setting.show(channel)
                setting.apply(channel, setting.parse(arg))
                return None
        raise Refused(-113, "Undefined header")

    def _channel(self, suffix: str | None) -> EmulatedChannel:
        name = suffix or "1"
        if name not in self.channels:
            raise Refused(-114, "Header suffix out of range")
        return self.channels[name]

    def _measured_channels(self, arg: str) -> list[EmulatedChannel]:
        """The channel list ``(@1,2)`` of a measurement query; channel 1 without one."""
        if not arg:
            return [self._channel(None)]
        match = _CHANNEL_LIST.fullmatch(arg.replace(" ", ""))
        if match is None:
            raise Refused(-104, "Data type error")
        return [self._channel(name) for name in match.group(1).split(",")]


class Keithley2450Emulator(ScpiSmuEmulator):
    """Keithley 2450 in SCPI mode: limits under ``:SOURce``, a sense function for ``:READ?``."""

    IDN = "KEITHLEY INSTRUMENTS,MODEL 2450,04512345,1.7.12b"
    CHANNELS = ("1",)
    RATINGS = RATINGS_2450
    HAS_READ = True
    SETTINGS = [
        _mode_setting(":SOURce#:FUNCtion[:MODE]"),
        _limit_setting(":SOURce#:CURRent:VLIMit[:LEVel]", "V"),
        _limit_setting(":SOURce#:VOLTage:ILIMit[:LEVel]", "I"),
        _setting(
            ":SENSe#:FUNCtion[:ON]",
            _function,
            EmulatedChannel.set_sense,
            lambda ch: f'"{_show_function(ch.sense)}:DC"',
        ),
        *_common_scpi_settings(),
    ]


class KeysightB2901AEmulator(ScpiSmuEmulator):
    """Keysight B2901A: one channel; compliance is ``:SENSe<c>:<func>:PROTection``."""

    IDN = "Keysight Technologies,B2901A,MY51141234,3.4.2011.5100"
    CHANNELS = ("1",)
    RATINGS = RATINGS_B2900
    SETTINGS = [
        _mode_setting(":SOURce#:FUNCtion:MODE"),
        _limit_setting(":SENSe#:CURRent[:DC]:PROTection[:LEVel]", "I"),
        _limit_setting(":SENSe#:VOLTage[:DC]:PROTection[:LEVel]", "V"),
        *_common_scpi_settings(),
    ]


class KeysightB2902AEmulator(KeysightB2901AEmulator):
    """Keysight B2902A: the B2901A with a second channel."""

    IDN = "Keysight Technologies,B2902A,MY51145678,3.4.2011.5100"
    CHANNELS = ("1", "2")


# ------------------------------------------------------------------ TSP

_TSP_CONSTANTS = {
    "OUTPUT_DCAMPS": 0.0,
    "OUTPUT_DCVOLTS": 1.0,
    "OUTPUT_OFF": 0.0,
    "OUTPUT_ON": 1.0,
    "AUTORANGE_OFF": 0.0,
    "AUTORANGE_ON": 1.0,
}


def _tsp_mode(value: float) -> SourceMode:
    if value not in (0.0, 1.0):
        raise _out_of_range()
    return "V" if value == 1.0 else "I"


def _tsp_bool(value: float) -> bool:
    if value not in (0.0, 1.0):
        raise _out_of_range()
    return value == 1.0


def _set_tsp_nplc(channel: EmulatedChannel, nplc: float) -> None:
    """The 2636B integrates current and voltage readings alike: one NPLC for both."""
    channel.set_nplc("I", nplc)
    channel.set_nplc("V", nplc)


_TSP_ATTRIBUTES: dict[str, tuple[Callable[[EmulatedChannel, float], None], Callable[[EmulatedChannel], float]]] = {
    "source.func": (
        lambda ch, x: ch.set_mode(_tsp_mode(x)),
        lambda ch: _TSP_CONSTANTS["OUTPUT_DCVOLTS" if ch.mode == "V" else "OUTPUT_DCAMPS"],
    ),
    "source.levelv": (lambda ch, x: ch.set_level("V", x), lambda ch: ch.level["V"]),
    "source.leveli": (lambda ch, x: ch.set_level("I", x), lambda ch: ch.level["I"]),
    "source.limitv": (lambda ch, x: ch.set_limit("V", x), lambda ch: ch.limit["V"]),
    "source.limiti": (lambda ch, x: ch.set_limit("I", x), lambda ch: ch.limit["I"]),
    "source.output": (lambda ch, x: ch.set_output(_tsp_bool(x)), lambda ch: float(ch.output_on)),
    "measure.nplc": (_set_tsp_nplc, lambda ch: ch.nplc["I"]),
    "measure.autorangei": (lambda ch, x: ch.set_autorange("I", _tsp_bool(x)), lambda ch: float(ch.autorange["I"])),
    "measure.autorangev": (lambda ch, x: ch.set_autorange("V", _tsp_bool(x)), lambda ch: float(ch.autorange["V"])),
}

_ASSIGNMENT = re.compile(r"smu(\w)\.([\w.]+)\s*=\s*(\S+)")
_PRINT = re.compile(r"print\s*\((.*)\)")
_MEASURE_CALL = re.compile(r"smu(\w)\.measure\.([iv])\(\)")
_ATTRIBUTE = re.compile(r"smu(\w)\.([\w.]+)")
_RESET = re.compile(r"(?:smu(\w)\.)?reset\(\)")


def _tsp_number(value: float) -> str:
    """A number as ``print`` shows it at the default ``format.asciiprecision`` (6 digits)."""
    return f"{value:.5e}"


class Keithley2636BEmulator(SmuEmulator):
    """Keithley 2636B over TSP (a Lua subset: assignments, ``print``, ``reset()``)."""

    IDN = "Keithley Instruments Inc., Model 2636B, 4401234, 4.0.4"
    CHANNELS = ("a", "b")
    RATINGS = RATINGS_2636B

    def _split(self, line: str) -> list[str]:
        return [line.strip()] if line.strip() else []

    def _run(self, statement: str) -> str | None:
        if match := _RESET.fullmatch(statement):
            targets = [self._smu(match.group(1))] if match.group(1) else self.channels.values()
            for channel in targets:
                channel.reset()
            return None
        if statement == "errorqueue.clear()":
            self.errors.clear()
            return None
        if match := _ASSIGNMENT.fullmatch(statement):
            channel = self._smu(match.group(1))
            setter, _ = self._attribute(match.group(2))
            setter(channel, self._value(match.group(3)))
            return None
        if match := _PRINT.fullmatch(statement):
            return self._print(match.group(1).strip())
        raise Refused(-285, f"TSP Syntax error at line 1: unexpected symbol near `{statement[:20]}'")

    def _print(self, expression: str) -> str:
        if expression == "errorqueue.count":
            return _tsp_number(len(self.errors))
        if expression == "errorqueue.next()":
            code, message = self.errors.popleft() if self.errors else (0, "Queue Is Empty")
            return "\t".join((_tsp_number(code), message, _tsp_number(0), _tsp_number(0)))
        if match := _MEASURE_CALL.fullmatch(expression):
            return _tsp_number(self._smu(match.group(1)).read(match.group(2).upper()))
        if match := _ATTRIBUTE.fullmatch(expression):
            _, getter = self._attribute(match.group(2))
            return _tsp_number(getter(self._smu(match.group(1))))
        raise Refused(-286, f"TSP Runtime error at line 1: cannot evaluate `{expression[:20]}'")

    def _smu(self, letter: str) -> EmulatedChannel:
        if letter not in self.channels:
            raise Refused(-286, f"TSP Runtime error at line 1: attempt to index global `smu{letter}' (a nil value)")
        return self.channels[letter]

    def _attribute(
        self, path: str
    ) -> tuple[Callable[[EmulatedChannel, float], None], Callable[[EmulatedChannel], float]]:
        if path not in _TSP_ATTRIBUTES:
            raise Refused(-286, f"TSP Runtime error at line 1: attempt to access unknown field `{path}'")
        return _TSP_ATTRIBUTES[path]

    def _value(self, text: str) -> float:
        """A number literal or a constant such as ``smua.OUTPUT_ON``."""
        constant = text.split(".", 1)[1] if text.startswith("smu") and "." in text else text
        if constant in _TSP_CONSTANTS:
            return _TSP_CONSTANTS[constant]
        try:
            return float(text)
        except ValueError:
            raise Refused(-286, f"TSP Runtime error at line 1: `{text}' is not a number") from None
