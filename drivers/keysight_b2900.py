"""Keysight B2901A / B2902A precision SMUs: channels "1" and (B2902A) "2".

Every node carries the channel number (``:SOURce2:VOLTage``), and the
compliance is a sense-subsystem node (``:SENSe<c>:CURRent:PROTection`` limits
the current while sourcing voltage). Command subset of contract section 5.

The printed family's rails (printed-bench.md 5.3) add a fixed source range
(``:SOURce<c>:VOLTage:RANGe 2``: the output cannot exceed +-2.1 V whatever is
commanded), remote sense (``:SENSe<c>:REMote ON``), the compliance-trip query
and one current reading of both channels at once (``:MEASure:CURRent? (@1,2)``,
22 ms instead of two readings).
"""

from __future__ import annotations

from collections.abc import Sequence

from labctl.errors import InstrumentError

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
    voltage_range_v = Setting(":SOURce{ch}:VOLTage:RANGe {value}")
    """Fixed source range (printed-bench.md 5.3: 2 V, so no command can put more than 2.1 V on a rail)."""
    remote_sense = Setting(":SENSe{ch}:REMote {value}", values=_ON_OFF)
    """4-wire sense through the rail pad's sense needle (5.3)."""
    current_nplc = Setting(":SENSe{ch}:CURRent:NPLCycles {value}")
    """Integration of the current readings alone (the rails never read voltage)."""
    MEASURE_CURRENT = ":MEASure:CURRent? (@{ch})"
    MEASURE_VOLTAGE = ":MEASure:VOLTage? (@{ch})"
    TRIP_QUERY = ":SENSe{ch}:CURRent:PROTection:TRIPped?"

    def in_compliance(self) -> bool:
        """``:SENSe<c>:CURRent:PROTection:TRIPped?``: whether the output sits at its current compliance (5.3)."""
        command = self.TRIP_QUERY.format(ch=self.name)
        answer = self.instrument.query(command)
        try:
            return int(float(answer)) == 1
        except ValueError:
            self.instrument.check_errors(command)
            raise InstrumentError(f"{self.instrument.label}: {command!r} answered {answer!r}, not 0 or 1") from None


class KeysightB2900(ScpiInstrument):
    MAKER = "Keysight"
    CHANNELS = {"B2901A": ("1",), "B2902A": ("1", "2")}
    channel_class = KeysightB2900Channel

    def measure_currents(self, names: Sequence[str]) -> list[float]:
        """``:MEASure:CURRent? (@1,2)``: one current per channel, in list order, in one exchange (5.3)."""
        for name in names:
            self.channel(name)  # refuses a channel the model lacks, before anything is sent
        return self.query_floats(f":MEASure:CURRent? (@{','.join(names)})", len(names))
