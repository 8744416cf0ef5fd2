"""Keithley 2450 SourceMeter in its SCPI command set: one channel, "1".

Only the contract's command subset (section 5) is used. Limits belong to the
source function (``:SOURce:VOLTage:ILIMit`` is the current compliance while
sourcing voltage), and integration time and autorange are per measured
quantity, so both are set for current and voltage.
"""

from __future__ import annotations

from .visa_instrument import ScpiInstrument, Setting, SmuChannelBase

_FUNCTIONS = {"V": "VOLTage", "I": "CURRent"}
_ON_OFF = {True: "ON", False: "OFF"}


class Keithley2450Channel(SmuChannelBase):
    """The 2450's single source-measure output."""

    source_function = Setting(":SOURce:FUNCtion {value}", values=_FUNCTIONS)
    voltage_level_v = Setting(":SOURce:VOLTage {value}")
    current_level_a = Setting(":SOURce:CURRent {value}")
    current_limit_a = Setting(":SOURce:VOLTage:ILIMit {value}")
    voltage_limit_v = Setting(":SOURce:CURRent:VLIMit {value}")
    nplc = Setting(":SENSe:CURRent:NPLCycles {value}", ":SENSe:VOLTage:NPLCycles {value}")
    autorange = Setting(":SENSe:CURRent:RANGe:AUTO {value}", ":SENSe:VOLTage:RANGe:AUTO {value}", values=_ON_OFF)
    output = Setting(":OUTPut:STATe {value}", values=_ON_OFF)
    MEASURE_CURRENT = ":MEASure:CURRent?"
    MEASURE_VOLTAGE = ":MEASure:VOLTage?"


class Keithley2450(ScpiInstrument):
    MAKER = "Keithley"
    CHANNELS = {"2450": ("1",)}
    channel_class = Keithley2450Channel
