"""Keysight 34980A-class switch/measure mainframe: 34951A DACs, 34922A multiplexers, internal DMM.

The printed-circuit bench (docs/specs/printed-bench.md, sections 4 and 5.2)
drives sample inputs from DAC channels (slots 1 to 6, ``s00c``), reads shunts
and sense pads through the slot-7 multiplexer into the internal DMM, and
reaches the rail pads through the slot-8 multiplexer. This driver speaks the
contract's SCPI subset in its short forms, exactly as section 8 prints them:
``SOUR:VOLT 0.25,(@1001)``, ``ROUT:SCAN (@7037,7001)``, ``READ?``.

What it refuses before anything is sent (the instrument itself would execute
a damaging command, contract 5.4):

- a DAC setpoint that is not a finite number or beyond the pads' absolute
  maximum of +-2.0 V (4.4), as :class:`~labctl.errors.SafetyError`. The
  state-dependent operating ranges (+-1.5 V with rails up, +-0.2 V without,
  resistor and ID pads narrower) need the bench's state and are the host's
  duty; this driver only guarantees that no command can exceed what every
  pad survives;
- the stateless rules of 6.4: ``ROUT:CLOS`` on slot 7 (two sense channels
  closed together short an input), the analog-bus relays of slots 7 and 8
  (``s911``..``s924``), and any slot-8 channel in a DMM command (the
  instrument would close a slot-8 analog-bus relay, joining a rail to a pad).

Every configuration step is followed by the error queue (``SYST:ERR?`` until
``+0,"No error"``), so a refusal surfaces at once naming the command.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import ClassVar

from labctl.errors import ConfigError, InstrumentError, SafetyError

from .visa_instrument import SmuChannelBase, VisaInstrument, _error_code, format_number

Channels = int | Iterable[int]
"""One channel number ``sccc`` or several, in the order they are to be used."""

DAC_SLOTS = range(1, 7)
"""Slots holding 34951A 4-channel DACs (contract 4.1)."""
SENSE_SLOT = 7
"""The 34922A whose channels the DMM reads: shunts 7001-7024, sense pads 7025-7070."""
RAIL_SLOT = 8
"""The 34922A joining the B2902A to one rail group: never read by the DMM (6.4)."""
ABUS_FIRST_CHANNEL = 900
"""Channels ``s9xx`` of a 34922A are its analog-bus relays (7911..7924, 8911..8924)."""

DAC_LSB_V = 16.0 / 32768
"""The 34951A's 16-bit grid (contract 4.3): a setpoint is realised as the nearest multiple of 0.48828125 mV."""
PAD_ABSOLUTE_MAX_V = 2.0
"""Every D pad's absolute maximum (contract 4.4): beyond it EGT gates break down."""
NPLC_VALUES = (0.02, 0.2, 1.0, 2.0, 10.0, 20.0, 100.0, 200.0)
"""The integration times the contract's DMM accepts (5.2)."""
OVERLOAD_V = 9.9e37
"""What the DMM answers for an overload (5.1); returned as an infinity so no arithmetic takes it for volts."""
RANGE_RUN = 3
"""Consecutive channels are sent as a range ``first:last`` from this many on (``7025:7027``, ``7001,7002``)."""


def _checked_channels(channels: Channels) -> list[int]:
    """``channels`` as a non-empty list of ``sccc`` numbers (slot 1-8, channel 1-999)."""
    items = [channels] if isinstance(channels, int) else list(channels)
    if not items:
        raise ConfigError("empty channel list")
    for channel in items:
        if isinstance(channel, bool) or not isinstance(channel, int):
            raise ConfigError(f"channel {channel!r} is not a channel number sccc (e.g. 1001, 7037)")
        slot, number = divmod(channel, 1000)
        if not (1 <= slot <= 8 and 1 <= number <= 999):
            raise ConfigError(f"channel {channel} is not a mainframe channel sccc (slot 1-8, channel 001-999)")
    return items


def format_channel_list(channels: Channels) -> str:
    """A SCPI channel list in the given order: ``(@1001)``, ``(@7037,7001)``, ``(@1001:1004,6003)``.

    Order is kept (``ROUT:SCAN`` reads in list order); runs of at least
    :data:`RANGE_RUN` consecutive channels of one slot become ``first:last``
    to keep lines short, as the contract's examples write them.
    """
    items = _checked_channels(channels)
    parts: list[str] = []
    start = 0
    while start < len(items):
        end = start
        while (end + 1 < len(items) and items[end + 1] == items[end] + 1
               and items[end + 1] // 1000 == items[start] // 1000):
            end += 1
        if end - start + 1 >= RANGE_RUN:
            parts.append(f"{items[start]}:{items[end]}")
        else:
            parts.extend(str(channel) for channel in items[start:end + 1])
        start = end + 1
    return f"(@{','.join(parts)})"


def _dac_channels(channels: Channels) -> list[int]:
    items = _checked_channels(channels)
    wrong = [channel for channel in items if channel // 1000 not in DAC_SLOTS]
    if wrong:
        raise ConfigError(f"channel {wrong[0]} is not a DAC channel (slots 1 to 6)")
    return items


def _dmm_channels(channels: Channels) -> list[int]:
    """Channels the DMM may read: slot-7 multiplexer channels only (contract 4.2, 6.4)."""
    items = _checked_channels(channels)
    for channel in items:
        slot, number = divmod(channel, 1000)
        if slot == RAIL_SLOT or number >= ABUS_FIRST_CHANNEL:
            raise SafetyError(
                f"channel {channel} must not be read by the DMM: it would join a rail or the analog bus to a pad"
            )
        if slot != SENSE_SLOT:
            raise ConfigError(f"channel {channel} is not a DMM channel (slot 7)")
    return items


def _dac_setpoint(volts: float) -> float:
    """``volts`` if every D pad survives it; checked before anything is sent."""
    if isinstance(volts, bool) or not isinstance(volts, numbers.Real):
        raise SafetyError(f"DAC setpoint {volts!r} is not a number")
    value = float(volts)
    if not math.isfinite(value):
        raise SafetyError(f"DAC setpoint {volts!r} is not a finite number")
    if abs(value) > PAD_ABSOLUTE_MAX_V:
        raise SafetyError(
            f"DAC setpoint {value!r} V is beyond the pads' absolute maximum of +-{PAD_ABSOLUTE_MAX_V} V"
        )
    return value


class Keysight34980A(VisaInstrument):
    """A 34980A-class mainframe (contract 5.2); methods take channel numbers ``sccc``.

    It has no SMU channels: :meth:`channel` refuses every name, so a CMNA
    bench file that binds an SMU role to it fails when opened.
    """

    MAKER = "Keysight"
    CHANNELS: ClassVar[dict[str, tuple[str, ...]]] = {"34980A": ()}
    channel_class = SmuChannelBase
    ERROR_QUERY = "SYST:ERR?"
    MAX_ERRORS = 32
    """Bound on one drain (the queue holds 20 and an overflow entry), in case it never reports empty."""

    # -- identity and housekeeping -----------------------------------------

    def identify(self) -> str:
        """Ask ``*IDN?`` again (e.g. for a run record): ``Keysight Technologies,34980A,<serial>,<fw>``."""
        return self.query("*IDN?")

    def reset(self) -> None:
        """``*RST``: every relay open, every DAC at 0 V and off, DMM defaults.

        The host must only call it with both rails within +-50 mV (6.4): it
        opens the rail relays whatever flows through them.
        """
        self.configure("*RST")

    def module_type(self, slot: int) -> str:
        """The model in ``slot`` from ``SYST:CTYP?`` (``34951A``, ``34922A``), or "" for an empty slot."""
        answer = self.query(f"SYST:CTYP? {int(slot)}")
        fields = [field.strip() for field in answer.split(",")]
        if len(fields) < 2:
            self.check_errors(f"SYST:CTYP? {int(slot)}")
            raise InstrumentError(f"{self.label}: 'SYST:CTYP? {int(slot)}' answered {answer!r}")
        return "" if fields[1] == "0" else fields[1]

    def wait_complete(self) -> None:
        """``*OPC?``: return once every command sent before it has been executed."""
        answer = self.query("*OPC?")
        if answer != "1":
            raise InstrumentError(f"{self.label}: '*OPC?' answered {answer!r}, not 1")

    def all_outputs_off(self) -> None:
        """Every DAC to 0 V, then disconnected. Relays stay as they are: opening a live rail relay is hot switching."""
        every_dac = [slot * 1000 + channel for slot in DAC_SLOTS for channel in range(1, 5)]
        self.set_dac_voltage(every_dac, 0.0)
        self.set_dac_output(every_dac, False)

    # -- DACs --------------------------------------------------------------

    def set_dac_voltage(self, channels: Channels, volts: float) -> None:
        """``SOUR:VOLT <v>,(@list)`` at full precision (``3e-09``, never ``0.000``), within +-2.0 V."""
        value = _dac_setpoint(volts)
        listed = format_channel_list(_dac_channels(channels))
        self.configure(f"SOUR:VOLT {format_number(value)},{listed}")

    def dac_voltage(self, channels: Channels) -> list[float]:
        """``SOUR:VOLT? (@list)``: the setpoints, in list order."""
        items = _dac_channels(channels)
        return self._query_floats(f"SOUR:VOLT? {format_channel_list(items)}", len(items))

    def set_dac_output(self, channels: Channels, on: bool) -> None:
        """``OUTP:STAT ON|OFF,(@list)``: connect the DACs, or leave their pads to the bleeds."""
        listed = format_channel_list(_dac_channels(channels))
        self.configure(f"OUTP:STAT {'ON' if on else 'OFF'},{listed}")

    # -- relays ------------------------------------------------------------

    def close_routes(self, channels: Channels) -> None:
        """``ROUT:CLOS (@list)``: slot-8 rail channels only (6.4: slot 7 and the analog bus never)."""
        items = _checked_channels(channels)
        for channel in items:
            slot, number = divmod(channel, 1000)
            if slot == SENSE_SLOT or number >= ABUS_FIRST_CHANNEL:
                raise SafetyError(
                    f"channel {channel} is never closed by command: a slot-7 channel or an analog-bus relay "
                    "would short a pad or join a rail to it (only MEAS?/READ? close slot 7)"
                )
            if slot != RAIL_SLOT:
                raise ConfigError(f"channel {channel} is not a relay channel (slot 8)")
        self.configure(f"ROUT:CLOS {format_channel_list(items)}")

    def open_routes(self, channels: Channels) -> None:
        """``ROUT:OPEN (@list)``: any multiplexer channel (opening is always allowed)."""
        items = self._relay_channels(channels)
        self.configure(f"ROUT:OPEN {format_channel_list(items)}")

    def routes_closed(self, channels: Channels) -> list[bool]:
        """``ROUT:CLOS? (@list)``: whether each relay is closed, in list order."""
        items = self._relay_channels(channels)
        command = f"ROUT:CLOS? {format_channel_list(items)}"
        answer = self.query(command)
        states = [field.strip() for field in answer.split(",")]
        if len(states) != len(items) or any(state not in ("0", "1") for state in states):
            self.check_errors(command)
            raise InstrumentError(f"{self.label}: {command!r} answered {answer!r}")
        return [state == "1" for state in states]

    @staticmethod
    def _relay_channels(channels: Channels) -> list[int]:
        items = _checked_channels(channels)
        wrong = [channel for channel in items if channel // 1000 not in (SENSE_SLOT, RAIL_SLOT)]
        if wrong:
            raise ConfigError(f"channel {wrong[0]} is not a multiplexer channel (slots 7 and 8)")
        return items

    # -- DMM ---------------------------------------------------------------

    def measure_voltage(self, channels: Channels) -> list[float]:
        """``MEAS:VOLT:DC? (@list)``: one DC reading per channel in list order.

        The instrument resets those channels to autorange, NPLC 1 and
        10 Mohm and makes them the scan list (5.2); for readings at
        > 10 Gohm, configure and use :meth:`set_scan` and :meth:`read`.
        """
        items = _dmm_channels(channels)
        return self._query_floats(f"MEAS:VOLT:DC? {format_channel_list(items)}", len(items))

    def configure_voltage(self, channels: Channels) -> None:
        """``CONF:VOLT:DC (@list)``: autorange, NPLC 1, 10 Mohm, without reading."""
        self.configure(f"CONF:VOLT:DC {format_channel_list(_dmm_channels(channels))}")

    def set_nplc(self, nplc: float, channels: Channels) -> None:
        """``VOLT:DC:NPLC <n>,(@list)``: integration time, one of :data:`NPLC_VALUES`."""
        value = float(nplc)
        if value not in NPLC_VALUES:
            raise ConfigError(f"NPLC {nplc!r} is not one of {', '.join(map(str, NPLC_VALUES))}")
        self.configure(f"VOLT:DC:NPLC {format_number(value)},{format_channel_list(_dmm_channels(channels))}")

    def set_high_impedance(self, on: bool, channels: Channels) -> None:
        """``VOLT:DC:IMP:AUTO ON|OFF,(@list)``: ON reads at > 10 Gohm (cell outputs, shunts), OFF at 10 Mohm."""
        listed = format_channel_list(_dmm_channels(channels))
        self.configure(f"VOLT:DC:IMP:AUTO {'ON' if on else 'OFF'},{listed}")

    def set_channel_delay(self, seconds: float, channels: Channels) -> None:
        """``ROUT:CHAN:DEL <s>,(@list)``: settling between closing a channel and reading it (20 ms for probe-hiz)."""
        listed = format_channel_list(_dmm_channels(channels))
        self.configure(f"ROUT:CHAN:DEL {format_number(seconds)},{listed}")

    def set_scan(self, channels: Channels) -> None:
        """``ROUT:SCAN (@list)``: the channels :meth:`read` reads, in this order."""
        self.configure(f"ROUT:SCAN {format_channel_list(_dmm_channels(channels))}")

    def read(self) -> list[float]:
        """``READ?``: one reading per scan-list channel, in scan order, with each channel's configuration."""
        return self._query_floats("READ?", None)

    # -- plumbing ----------------------------------------------------------

    def _query_floats(self, command: str, count: int | None) -> list[float]:
        """Numbers of a query, an overload (+-9.9E37) as an infinity."""
        return [math.copysign(math.inf, value) if abs(value) >= OVERLOAD_V else value
                for value in self.query_floats(command, count)]

    def _drain_errors(self) -> list[str]:
        """``SYST:ERR?`` until ``+0,"No error"``, oldest first."""
        errors = []
        for _ in range(self.MAX_ERRORS):
            answer = self.query(self.ERROR_QUERY)
            code, _, text = answer.partition(",")
            if _error_code(code, answer, self.label) == 0:
                break
            errors.append(f"{code.strip()},{text.strip()}")
        return errors


def dac_channel(pad: int) -> int:
    """The DAC channel of pad D<pad> (contract 4.2): D01 1001, D05 2001, D24 6004."""
    if not 1 <= pad <= 24:
        raise ConfigError(f"there is no pad D{pad:02d} (D01 to D24)")
    slot = (pad + 3) // 4
    return slot * 1000 + pad - 4 * (slot - 1)


def shunt_channel(pad: int) -> int:
    """The slot-7 channel reading pad D<pad>'s shunt (contract 4.2): 7000 + k."""
    if not 1 <= pad <= 24:
        raise ConfigError(f"there is no pad D{pad:02d} (D01 to D24)")
    return 7000 + pad



def dac_realised_v(volts: float) -> float:
    """The level a DAC realises for setpoint ``volts``: the nearest point of its 16-bit grid (contract 4.3)."""
    return round(float(volts) / DAC_LSB_V) * DAC_LSB_V


def sense_channel(pad: int) -> int:
    """The slot-7 channel reading sense pad S<pad> (contract 4.2): 7024 + n, S01 7025, S46 7070."""
    if not 1 <= pad <= 46:
        raise ConfigError(f"there is no pad S{pad:02d} (S01 to S46)")
    return 7024 + pad


def rail_channels(group: int) -> tuple[int, int]:
    """The slot-8 channels (VDD, VSS) of rail group ``group`` (contract 4.2): VDD13 8013, VSS13 8048."""
    if not 1 <= group <= 35:
        raise ConfigError(f"there is no rail group {group} (1 to 35)")
    return RAIL_SLOT * 1000 + group, RAIL_SLOT * 1000 + 35 + group
