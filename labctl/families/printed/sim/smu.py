"""The rails' B2902A (contract 5.3): the generic emulator plus the printed bench's three nodes.

``:SOURce<c>:VOLTage:RANGe 2`` fixes the source range: afterwards no
setpoint beyond +-2.1 V is accepted (-222, as the instrument refuses a value
beyond its range), so no command can put more on a rail. ``:SENSe<c>:REMote
ON|OFF`` selects 4-wire sense (the Kelvin pair of each rail pad, 4.2; the
needles' drop is negligible at these currents, so it is stored, not
modelled). ``:SENSe<c>:CURRent:PROTection:TRIPped?`` answers 1 while the
output sits at its current compliance. Spellings are the driver's
(``labctl.drivers.keysight_b2900``) in long or short form.
"""

from __future__ import annotations

from labctl.sim.smu_emulators import (EmulatedChannel, KeysightB2902AEmulator, Refused, _number, _on_off, _setting,
                                      _show_number)

RANGE_LIMIT_V = {2.0: 2.1, 20.0: 21.0, 200.0: 210.0}
"""B2902A voltage source ranges and the largest setpoint each accepts."""


def _set_range(channel: EmulatedChannel, value: object) -> None:
    volts = float(value)  # type: ignore[arg-type]
    fitting = [r for r in RANGE_LIMIT_V if r >= abs(volts)]
    if not fitting:
        raise Refused(-222, "Data out of range")
    if abs(channel.level["V"]) > RANGE_LIMIT_V[fitting[0]]:
        raise Refused(-221, "Settings conflict")
    channel.range_v = fitting[0]  # type: ignore[attr-defined]
    channel.pad.changed()


def _set_voltage(channel: EmulatedChannel, value: object) -> None:
    volts = float(value)  # type: ignore[arg-type]
    fixed = getattr(channel, "range_v", None)
    if fixed is not None and abs(volts) > RANGE_LIMIT_V[fixed]:
        raise Refused(-222, "Data out of range")
    channel.set_level("V", volts)


def _set_remote(channel: EmulatedChannel, on: object) -> None:
    channel.remote_sense = bool(on)  # type: ignore[attr-defined]


def _tripped(channel: EmulatedChannel) -> str:
    return "1" if channel.drive(channel.pad).in_compliance else "0"


def _refuse_setting(channel: EmulatedChannel, value: object) -> None:
    raise Refused(-113, "Undefined header")


class RailB2902AEmulator(KeysightB2902AEmulator):
    """B2902A with the fixed source range, remote sense and the trip query of contract 5.3."""

    SETTINGS = [
        _setting(":SOURce#:VOLTage[:LEVel][:IMMediate][:AMPLitude]", _number, _set_voltage,
                 lambda ch: _show_number(ch.level["V"])),
        _setting(":SOURce#:VOLTage:RANGe", _number, _set_range,
                 lambda ch: _show_number(getattr(ch, "range_v", 210.0))),
        _setting(":SENSe#:REMote", _on_off, _set_remote, lambda ch: "1" if getattr(ch, "remote_sense", False) else "0"),
        _setting(":SENSe#:CURRent[:DC]:PROTection:TRIPped", _number, _refuse_setting, _tripped),
        *KeysightB2902AEmulator.SETTINGS,
    ]

    def execute(self, line: str) -> str | None:
        if line.strip().upper() == "*RST":
            for channel in self.channels.values():
                channel.range_v = None  # type: ignore[attr-defined]
                channel.remote_sense = False  # type: ignore[attr-defined]
        return super().execute(line)
