"""A simulated 34980A-class switch/measure mainframe speaking the SCPI subset of printed-bench.md 5.2.

Like the SMU emulators (:mod:`labctl.sim.smu_emulators`) it takes one command
line and returns the answer line (or None), so
:class:`~labctl.sim.instrument_server.InstrumentServer` serves it on a raw
socket and the driver cannot tell it from the instrument. It holds:

- 24 DAC channels (34951A in slots 1 to 6, ``s001``..``s004``): setpoint and
  output state; the level realised on the 16-bit grid is :meth:`dac_output_v`;
- two 34922A multiplexers (slots 7 and 8): relays ``s001``..``s070`` plus
  the analog-bus relays ``s911``..``s914``, ``s921``..``s924``;
- the internal DMM: per-channel NPLC, input impedance (10 Mohm or > 10 Gohm),
  range and channel delay, and a scan list.

The physics is not here: a reading of channel ``c`` is ``read_node(c)`` (a
callback the simulated sample supplies; 0 V by default) plus noise, and the
sample sees every state change through ``on_change`` and the public state
(:meth:`dac_output_v`, :meth:`is_closed`, :meth:`high_impedance`), as an SMU
emulator's pad sees ``pad.changed()``. Bench time goes to the shared
:class:`~labctl.sim.clock.VirtualClock`: 2 ms per setting command and, per
reading, 10 ms of relay and delay plus the channel delay plus NPLC / 50 Hz
(contract 4.5: 14 / 30 / 210 ms at NPLC 0.2 / 1 / 10).

Like the instrument, the emulator knows no pad rating: it executes any
setpoint within +-16 V (5.4). A command with an error changes nothing and
queues a standard code: -102 syntax, -109 missing parameter, -113 undefined
header, -221 settings conflict, -222 data out of range, -224 illegal
parameter value, -350 queue overflow.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from labctl.sim.clock import VirtualClock
from labctl.sim.smu_emulators import POWER_LINE_HZ, Refused, _header_regex, _on_off

DAC_SLOTS = range(1, 7)
MUX_SLOTS = (7, 8)
DAC_CHANNELS_PER_SLOT = 4
MUX_CHANNELS = 70
ABUS_RELAYS = (911, 912, 913, 914, 921, 922, 923, 924)
DAC_RANGE_V = 16.0
DAC_LSB_V = 16.0 / 32768
"""The 34951A's 16-bit grid (contract 4.3): 0.48828125 mV."""
NPLC_VALUES = (0.02, 0.2, 1.0, 2.0, 10.0, 20.0, 100.0, 200.0)
DMM_RANGES_V = (0.1, 1.0, 10.0, 100.0, 300.0)
OVERRANGE = 1.2
OVERLOAD_V = 9.9e37
MAX_CHANNEL_DELAY_S = 60.0
MAX_ERRORS = 20
SETTING_TIME_S = 2e-3
"""One setting command (4.5: 1 to 3 ms)."""
READING_OVERHEAD_S = 10e-3
"""Relay, break-before-make and settling of one scanned reading, before integration (4.5)."""
NOISE_FLOOR_V = 1e-6
"""DMM noise at NPLC 1 (a 1 kohm shunt then resolves 1 nA, inside the 2 nA of 4.3)."""
NOISE_FRACTION = 2e-6
"""Relative noise at NPLC 1 (6.5 digits)."""

IDN = "Keysight Technologies,34980A,MY54321098,2.51-2.43-2.05-1.09"
MODULE_IDN = {"34951A": "Keysight Technologies,34951A,0,1.2", "34922A": "Keysight Technologies,34922A,0,1.3"}


@dataclass
class DmmChannel:
    """The DMM configuration of one multiplexer channel; defaults are ``*RST``'s and ``CONF``'s."""

    nplc: float = 1.0
    high_impedance: bool = False
    range_v: float | None = None
    """None: autorange."""
    delay_s: float = 0.0


def _range_item(item: str) -> list[int]:
    first, _, last = item.partition(":")
    if not re.fullmatch(r"\d{4}", first) or (last and not re.fullmatch(r"\d{4}", last)):
        raise Refused(-102, "Syntax error")
    if not last:
        return [int(first)]
    start, end = int(first), int(last)
    if start // 1000 != end // 1000 or end < start:
        raise Refused(-224, "Illegal parameter value")
    return list(range(start, end + 1))


def parse_channel_list(text: str) -> list[int]:
    """``(@1001:1004,6003)`` -> [1001, 1002, 1003, 1004, 6003]; ranges stay within one slot."""
    compact = text.replace(" ", "")
    if not (compact.startswith("(@") and compact.endswith(")")) or len(compact) < 4:
        raise Refused(-102, "Syntax error")
    return [channel for item in compact[2:-1].split(",") for channel in _range_item(item)]


def _split_arguments(arg: str) -> tuple[list[str], list[int] | None]:
    """``0.25,(@1001)`` -> (["0.25"], [1001]); the channel list, if any, comes last."""
    head, marker, tail = arg.partition("(@")
    channels = parse_channel_list(marker + tail) if marker else None
    head = head.strip()
    if marker and head:
        if not head.endswith(","):
            raise Refused(-102, "Syntax error")
        head = head[:-1]
    parameters = [part.strip() for part in head.split(",")] if head else []
    if any(not part for part in parameters):
        raise Refused(-102, "Syntax error")
    return parameters, channels


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise Refused(-104, "Data type error") from None
    if not math.isfinite(value):
        raise Refused(-222, "Data out of range")
    return value


def _show(value: float) -> str:
    return f"{value:+.8E}"


class SwitchMeasureEmulator:
    """The mainframe: DACs, relays, DMM and error queue (module docstring)."""

    IDN = IDN
    MODULES = {**{slot: "34951A" for slot in DAC_SLOTS}, 7: "34922A", 8: "34922A"}

    def __init__(
        self,
        clock: VirtualClock | None = None,
        seed: int = 0,
        read_node: Callable[[int], float] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.clock = clock if clock is not None else VirtualClock()
        self.read_node: Callable[[int], float] = read_node if read_node is not None else (lambda channel: 0.0)
        self.on_change: Callable[[], None] = on_change if on_change is not None else (lambda: None)
        self._rng = np.random.default_rng(seed)
        self.errors: deque[tuple[int, str]] = deque()
        self.dac_level: dict[int, float] = {}
        self.dac_on: dict[int, bool] = {}
        self.closed: set[int] = set()
        self.dmm: dict[int, DmmChannel] = {}
        self.scan: list[int] = []
        self._reset_state()
        self._commands = self._command_table()

    # -- state the simulated sample reads ------------------------------------

    def dac_output_v(self, channel: int) -> float | None:
        """The voltage DAC ``channel`` drives (setpoint on the 16-bit grid), or None while its output is off."""
        if not self.dac_on[channel]:
            return None
        return round(self.dac_level[channel] / DAC_LSB_V) * DAC_LSB_V

    def is_closed(self, channel: int) -> bool:
        return channel in self.closed

    def high_impedance(self, channel: int) -> bool:
        """Whether the DMM reads ``channel`` at > 10 Gohm (else 10 Mohm loads the node)."""
        return self.dmm[channel].high_impedance

    # -- the line interface ----------------------------------------------------

    def execute(self, line: str) -> str | None:
        """Run one command line (``;``-joined statements); return its answer line, or None."""
        answers = []
        for statement in (part.strip() for part in line.split(";")):
            if not statement:
                continue
            try:
                answer = self._statement(statement)
            except Refused as refused:
                self._queue_error(refused.code, refused.message)
                continue
            if answer is not None:
                answers.append(answer)
        return ";".join(answers) if answers else None

    def _queue_error(self, code: int, message: str) -> None:
        """SCPI: the queue holds :data:`MAX_ERRORS`; on overflow the newest entry becomes -350."""
        if len(self.errors) >= MAX_ERRORS:
            self.errors[-1] = (-350, "Queue overflow")
            return
        self.errors.append((code, message))

    def _statement(self, statement: str) -> str | None:
        header, *rest = statement.split(None, 1)
        arg = rest[0].strip() if rest else ""
        query = header.endswith("?")
        header = header.rstrip("?").upper()
        common = self._common(header, query)
        if common is not None:
            return common or None
        if not header.startswith(":"):
            header = ":" + header
        for regex, is_query, handler in self._commands:
            if is_query == query and regex.fullmatch(header):
                if not is_query:
                    self.clock.advance(SETTING_TIME_S)
                return handler(arg)
        raise Refused(-113, "Undefined header")

    def _common(self, header: str, query: bool) -> str | None:
        """IEEE-488.2 commands: their answer, "" when they answer nothing, None when not one."""
        if not header.startswith("*"):
            return None
        if header == "*IDN" and query:
            return self.IDN
        if header == "*OPC" and query:
            return "1"
        if header == "*RST" and not query:
            self.clock.advance(SETTING_TIME_S)
            self._reset_state()
            self.on_change()
            return ""
        if header == "*CLS" and not query:
            self.errors.clear()
            return ""
        raise Refused(-113, "Undefined header")

    def _reset_state(self) -> None:
        """``*RST``: every relay open, every DAC at 0 V and off, DMM defaults, no scan list."""
        dacs = [slot * 1000 + c for slot in DAC_SLOTS for c in range(1, DAC_CHANNELS_PER_SLOT + 1)]
        self.dac_level = dict.fromkeys(dacs, 0.0)
        self.dac_on = dict.fromkeys(dacs, False)
        self.closed = set()
        self.dmm = {slot * 1000 + c: DmmChannel() for slot in MUX_SLOTS for c in range(1, MUX_CHANNELS + 1)}
        self.scan = []

    def _command_table(self) -> list[tuple[re.Pattern[str], bool, Callable[[str], str | None]]]:
        return [
            (_header_regex(":SYSTem:ERRor[:NEXT]"), True, self._error_query),
            (_header_regex(":SYSTem:CTYPe"), True, self._card_type),
            (_header_regex(":SOURce:VOLTage[:LEVel]"), False, self._set_dac_level),
            (_header_regex(":SOURce:VOLTage[:LEVel]"), True, self._dac_level_query),
            (_header_regex(":OUTPut[:STATe]"), False, self._set_dac_output),
            (_header_regex(":OUTPut[:STATe]"), True, self._dac_output_query),
            (_header_regex(":ROUTe:CLOSe"), False, lambda arg: self._switch(arg, close=True)),
            (_header_regex(":ROUTe:CLOSe"), True, self._closed_query),
            (_header_regex(":ROUTe:OPEN"), False, lambda arg: self._switch(arg, close=False)),
            (_header_regex(":MEASure:VOLTage[:DC]"), True, self._measure),
            (_header_regex(":CONFigure:VOLTage[:DC]"), False, self._configure),
            (_header_regex("[:SENSe]:VOLTage[:DC]:NPLCycles"), False, self._set_nplc),
            (_header_regex("[:SENSe]:VOLTage[:DC]:IMPedance:AUTO"), False, self._set_impedance),
            (_header_regex(":ROUTe:CHANnel:DELay"), False, self._set_delay),
            (_header_regex(":ROUTe:SCAN"), False, self._set_scan),
            (_header_regex(":READ"), True, lambda arg: self._read_all(self.scan, refuse_empty=True)),
        ]

    # -- argument checks (nothing changes before all of them pass) -------------

    @staticmethod
    def _parameters(arg: str, count: int) -> tuple[list[str], list[int]]:
        """Exactly ``count`` parameters and a channel list."""
        parameters, channels = _split_arguments(arg)
        if channels is None or len(parameters) < count:
            raise Refused(-109, "Missing parameter")
        if len(parameters) > count:
            raise Refused(-108, "Parameter not allowed")
        return parameters, channels

    def _dacs(self, channels: list[int]) -> list[int]:
        for channel in channels:
            if channel // 1000 in MUX_SLOTS:
                raise Refused(-221, "Settings conflict")
            if channel not in self.dac_level:
                raise Refused(-224, "Illegal parameter value")
        return channels

    def _relays(self, channels: list[int]) -> list[int]:
        for channel in channels:
            if channel in self.dac_level:
                raise Refused(-221, "Settings conflict")
            if channel not in self.dmm and not (channel // 1000 in MUX_SLOTS and channel % 1000 in ABUS_RELAYS):
                raise Refused(-224, "Illegal parameter value")
        return channels

    def _dmm_channels(self, channels: list[int]) -> list[int]:
        """Channels the DMM can read: multiplexer channels (a DAC channel is a settings conflict)."""
        for channel in channels:
            if channel // 1000 in DAC_SLOTS:
                raise Refused(-221, "Settings conflict")
            if channel not in self.dmm:
                raise Refused(-224, "Illegal parameter value")
        return channels

    # -- handlers ----------------------------------------------------------------

    def _error_query(self, arg: str) -> str:
        code, message = self.errors.popleft() if self.errors else (0, "No error")
        return f'{code:+d},"{message}"'

    def _card_type(self, arg: str) -> str:
        if not arg:
            raise Refused(-109, "Missing parameter")
        slot = _number(arg)
        if slot not in range(1, 9):
            raise Refused(-222, "Data out of range")
        module = self.MODULES.get(int(slot))
        return MODULE_IDN[module] if module else "0,0,0,0"

    def _set_dac_level(self, arg: str) -> None:
        (text,), channels = self._parameters(arg, 1)
        value = _number(text)
        if abs(value) > DAC_RANGE_V:
            raise Refused(-222, "Data out of range")
        for channel in self._dacs(channels):
            self.dac_level[channel] = value
        self.on_change()

    def _dac_level_query(self, arg: str) -> str:
        _, channels = self._parameters(arg, 0)
        return ",".join(_show(self.dac_level[channel]) for channel in self._dacs(channels))

    def _set_dac_output(self, arg: str) -> None:
        (text,), channels = self._parameters(arg, 1)
        on = _on_off(text)
        for channel in self._dacs(channels):
            self.dac_on[channel] = on
        self.on_change()

    def _dac_output_query(self, arg: str) -> str:
        _, channels = self._parameters(arg, 0)
        return ",".join("1" if self.dac_on[channel] else "0" for channel in self._dacs(channels))

    def _switch(self, arg: str, close: bool) -> None:
        _, channels = self._parameters(arg, 0)
        for channel in self._relays(channels):
            if close:
                self.closed.add(channel)
            else:
                self.closed.discard(channel)
        self.on_change()

    def _closed_query(self, arg: str) -> str:
        _, channels = self._parameters(arg, 0)
        return ",".join("1" if channel in self.closed else "0" for channel in self._relays(channels))

    def _dmm_function(self, arg: str) -> tuple[float | None, list[int]]:
        """``[<range>|AUTO[,<res>|DEF],](@list)`` of MEAS/CONF: the range (None = auto) and the channels."""
        parameters, channels = _split_arguments(arg)
        if channels is None:
            raise Refused(-109, "Missing parameter")
        if len(parameters) > 2:
            raise Refused(-108, "Parameter not allowed")
        range_v: float | None = None
        if parameters and parameters[0].upper() not in ("AUTO", "DEF"):
            range_v = _number(parameters[0])
            if not 0 < range_v <= DMM_RANGES_V[-1]:
                raise Refused(-222, "Data out of range")
            range_v = next(full for full in DMM_RANGES_V if full >= range_v)
        if len(parameters) == 2 and parameters[1].upper() not in ("DEF", "MIN", "MAX"):
            _number(parameters[1])
        return range_v, self._dmm_channels(channels)

    def _configure(self, arg: str) -> None:
        """CONF and MEAS: autorange (or the range given), NPLC 1, 10 Mohm; the channels become the scan list."""
        range_v, channels = self._dmm_function(arg)
        for channel in channels:
            delay = self.dmm[channel].delay_s
            self.dmm[channel] = DmmChannel(range_v=range_v, delay_s=delay)
        self.scan = list(channels)
        self.on_change()

    def _measure(self, arg: str) -> str:
        self._configure(arg)
        return self._read_all(self.scan, refuse_empty=False)

    def _for_channels(
        self, arg: str, parse: Callable[[str], object], apply: Callable[[DmmChannel, object], None]
    ) -> None:
        (text,), channels = self._parameters(arg, 1)
        value = parse(text)
        for channel in self._dmm_channels(channels):
            apply(self.dmm[channel], value)
        self.on_change()

    def _set_nplc(self, arg: str) -> None:
        def parse(text: str) -> float:
            value = _number(text)
            if not NPLC_VALUES[0] <= value <= NPLC_VALUES[-1]:
                raise Refused(-222, "Data out of range")
            if value not in NPLC_VALUES:
                raise Refused(-224, "Illegal parameter value")
            return value

        self._for_channels(arg, parse, lambda dmm, value: setattr(dmm, "nplc", value))

    def _set_impedance(self, arg: str) -> None:
        self._for_channels(arg, _on_off, lambda dmm, on: setattr(dmm, "high_impedance", on))

    def _set_delay(self, arg: str) -> None:
        def parse(text: str) -> float:
            value = _number(text)
            if not 0.0 <= value <= MAX_CHANNEL_DELAY_S:
                raise Refused(-222, "Data out of range")
            return value

        self._for_channels(arg, parse, lambda dmm, value: setattr(dmm, "delay_s", value))

    def _set_scan(self, arg: str) -> None:
        _, channels = self._parameters(arg, 0)
        self.scan = list(self._dmm_channels(channels))

    def _read_all(self, channels: list[int], refuse_empty: bool) -> str:
        if refuse_empty and not channels:
            raise Refused(-221, "Settings conflict")
        return ",".join(_show(self._reading(channel)) for channel in channels)

    def _reading(self, channel: int) -> float:
        """One DMM reading of ``channel``: the node's voltage plus noise, after relay, delay and integration."""
        config = self.dmm[channel]
        self.clock.advance(READING_OVERHEAD_S + config.delay_s + config.nplc / POWER_LINE_HZ)
        value = float(self.read_node(channel))
        sigma = math.hypot(NOISE_FLOOR_V, abs(value) * NOISE_FRACTION) / math.sqrt(config.nplc)
        reading = value + sigma * float(self._rng.standard_normal())
        full_scale = config.range_v if config.range_v is not None else DMM_RANGES_V[-1]
        if not math.isfinite(reading) or abs(reading) > OVERRANGE * full_scale:
            return OVERLOAD_V
        return reading
