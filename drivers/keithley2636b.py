"""Keithley 2636B SourceMeter over TSP: channels "a" and "b" (``smua``, ``smub``).

TSP is Lua: settings are assignments (``smua.source.leveli = 3e-09``), readings
come back only through ``print(...)``, and errors sit in ``errorqueue``
(contract section 5). The 2636B has one integration time for both measured
quantities but separate current and voltage autorange.
"""

from __future__ import annotations

from .visa_instrument import Setting, SmuChannelBase, TspInstrument

_FUNCTIONS = {"V": "smu{ch}.OUTPUT_DCVOLTS", "I": "smu{ch}.OUTPUT_DCAMPS"}
_OUTPUT = {True: "smu{ch}.OUTPUT_ON", False: "smu{ch}.OUTPUT_OFF"}
_AUTORANGE = {True: "smu{ch}.AUTORANGE_ON", False: "smu{ch}.AUTORANGE_OFF"}


class Keithley2636BChannel(SmuChannelBase):
    """``smua`` or ``smub`` of a 2636B."""

    source_function = Setting("smu{ch}.source.func = {value}", values=_FUNCTIONS)
    voltage_level_v = Setting("smu{ch}.source.levelv = {value}")
    current_level_a = Setting("smu{ch}.source.leveli = {value}")
    current_limit_a = Setting("smu{ch}.source.limiti = {value}")
    voltage_limit_v = Setting("smu{ch}.source.limitv = {value}")
    nplc = Setting("smu{ch}.measure.nplc = {value}")
    autorange = Setting("smu{ch}.measure.autorangei = {value}", "smu{ch}.measure.autorangev = {value}", values=_AUTORANGE)
    output = Setting("smu{ch}.source.output = {value}", values=_OUTPUT)
    MEASURE_CURRENT = "print(smu{ch}.measure.i())"
    MEASURE_VOLTAGE = "print(smu{ch}.measure.v())"


class Keithley2636B(TspInstrument):
    MAKER = "Keithley"
    CHANNELS = {"2636B": ("a", "b")}
    channel_class = Keithley2636BChannel
