"""Keysight B2901A / B2902A precision SMUs: channels "1" and (B2902A) "2".

Every node carries the channel number (``:SOURce2:VOLTage``), and the
compliance is a sense-subsystem node (``:SENSe<c>:CURRent:PROTection`` limits
the current while sourcing voltage). Command subset of contract section 5.
"""

from __future__ import annotations

from .visa_instrument import ScpiInstrument, Setting, SmuChannelBase

_FUNCTIONS = {"V": "VOLTage", "I": "CURRent"}
_ON_OFF = {True: "ON", False: "OFF"}


class KeysightB2900Channel(SmuChannelBase):
    """One output of a B2901A/B2902A."""

    source_function = Setting(":SOURce{ch}:FUNCtion:MODE {value}", values=_FUNCTIONS)
    voltage_level_v = Setting(":SOURce{ch}:VOLTage {value}")
    current_level_a = Setting(":SOURce{ch}:CURRent {value}")
    current_limit_a = Setting(":SENSe{ch}:CURRent:PROTection {value}")
    voltage_limit_v = Setting(":SENSe{ch}:VOLTage:PROTection {value}")
    nplc = Setting(":SENSe{ch}:CURRent:NPLCycles {value}", ":SENSe{ch}:VOLTage:NPLCycles {value}")
    autorange = Setting(
        ":SENSe{ch}:CURRent:RANGe:AUTO {value}", ":SENSe{ch}:VOLTage:RANGe:AUTO {value}", values=_ON_OFF
    )
    output = Setting(":OUTPut{ch}:STATe {value}", values=_ON_OFF)
    MEASURE_CURRENT = ":MEASure:CURRent? (@{ch})"
    MEASURE_VOLTAGE = ":MEASure:VOLTage? (@{ch})"


class KeysightB2900(ScpiInstrument):
    MAKER = "Keysight"
    CHANNELS = {"B2901A": ("1",), "B2902A": ("1", "2")}
    channel_class = KeysightB2900Channel
