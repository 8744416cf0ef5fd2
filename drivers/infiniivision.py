"""Keysight InfiniiVision oscilloscopes (2000X, 3000T, 4000X): the command subset of ttfs-bench.md 6.2.

The scope reads the die's MON output (contract 3.4). What labctl needs is
small: channel set-up (DC, 1 Mohm, never 50 ohm: section 5.3), timebase, an
edge trigger on the bridge's SYNC in NORMal sweep, averaging, one
``:DIGitize``, and the record as WORD, LSBFirst, unsigned. Times and volts come
from the preamble only (3.4 step 4), never from the settings sent.

Settings are sent at full precision (``repr``, :func:`~.visa_instrument.format_number`)
and each is followed by an error-queue check, like the SMU drivers. Two
exchanges are special: ``:DIGitize`` is written without a check (the scope's
parser holds every later command, the error query included, until the record
is complete), and :meth:`InfiniiVision.wait_complete` asks ``*OPC?`` with a
caller's timeout and reports a timeout instead of raising: contract 3.4's
last paragraph (run an IDLE batch, whose SYNC edges complete the acquisition,
and discard it) is the caller's rule, and the session's stale ``1`` is then
discarded by the resynchronisation every driver does after an interrupted
exchange.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyvisa

from labctl.errors import InstrumentError

from .visa_instrument import ScpiInstrument, Setting, format_number

_ON_OFF = {True: "ON", False: "OFF"}
_FORMATS = {0: "BYTE", 1: "WORD", 4: "ASCii"}
_TYPES = {0: "NORMal", 1: "PEAK", 2: "AVERage", 3: "HRESolution"}
_REFERENCES = {"LEFT": "LEFT", "CENTER": "CENTer", "RIGHT": "RIGHt"}
_SERIES = {"2": ("A",), "3": ("A", "T"), "4": ("A",)}


def _models() -> dict[str, tuple[str, ...]]:
    """Every InfiniiVision 2000X/3000T/4000X model name as ``*IDN?`` spells it -> its analog channels."""
    models: dict[str, tuple[str, ...]] = {}
    for series, suffixes in _SERIES.items():
        for bandwidth in ("00", "01", "02", "03", "05", "10", "15"):
            for n in ("2", "4"):
                for suffix in suffixes:
                    for prefix in ("DSOX", "MSOX", "DSO-X ", "MSO-X "):
                        models[f"{prefix}{series}{bandwidth}{n}{suffix}"] = tuple(str(c) for c in range(1, int(n) + 1))
    return models


@dataclass(frozen=True)
class Preamble:
    """``:WAVeform:PREamble?`` (6.2): the record's format, size and axes."""

    format: int
    type: int
    points: int
    count: int
    x_increment_s: float
    x_origin_s: float
    x_reference: float
    y_increment_v: float
    y_origin_v: float
    y_reference: float

    def times_s(self, n: int) -> np.ndarray:
        """``t = (index - xreference) x xincrement + xorigin``, from the trigger (3.4 step 4)."""
        return (np.arange(n) - self.x_reference) * self.x_increment_s + self.x_origin_s

    def volts(self, codes: np.ndarray) -> np.ndarray:
        """``V = (code - yreference) x yincrement + yorigin`` (3.4 step 4)."""
        return (np.asarray(codes, float) - self.y_reference) * self.y_increment_v + self.y_origin_v


def parse_preamble(text: str) -> Preamble:
    """The ten comma-separated fields of a preamble; anything else is an InstrumentError."""
    fields = text.strip().split(",")
    try:
        if len(fields) != 10:
            raise ValueError
        ints = [int(float(f)) for f in fields[:4]]
        floats = [float(f) for f in fields[4:]]
    except ValueError:
        raise InstrumentError(f"unreadable waveform preamble {text!r} (6.2: ten comma-separated numbers)") from None
    return Preamble(*ints, *floats)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Waveform:
    """One record: times from the trigger (s) and volts at the input, with the preamble it came with."""

    t_s: np.ndarray
    v: np.ndarray
    preamble: Preamble


class ScopeChannel:
    """One analog input; set up only for a high-impedance DC measurement (MON is never loaded, 5.3)."""

    coupling = Setting(":CHANnel{ch}:COUPling {value}", values={"DC": "DC"})
    impedance = Setting(":CHANnel{ch}:IMPedance {value}", values={"ONEMEG": "ONEMeg"})
    probe = Setting(":CHANnel{ch}:PROBe {value}")
    bw_limit = Setting(":CHANnel{ch}:BWLimit {value}", values=_ON_OFF)
    display = Setting(":CHANnel{ch}:DISPlay {value}", values=_ON_OFF)
    scale_v = Setting(":CHANnel{ch}:SCALe {value}")
    offset_v = Setting(":CHANnel{ch}:OFFSet {value}")

    def __init__(self, instrument: "InfiniiVision", name: str) -> None:
        self.instrument = instrument
        self.name = name
        self.written: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<{self.instrument.label} channel {self.name}>"

    def set_input(self) -> None:
        """DC, 1 Mohm, probe 1:1, displayed: how MON is read (3.1, 3.4 step 2)."""
        with self.instrument.lock:
            self.coupling = "DC"
            self.impedance = "ONEMEG"
            self.probe = 1
            self.display = True

    def set_vertical(self, scale_v: float, offset_v: float) -> None:
        """Volts per division (8 divisions) and the voltage at the screen centre."""
        with self.instrument.lock:
            self.scale_v = scale_v
            self.offset_v = offset_v


class InfiniiVision(ScpiInstrument):
    """An InfiniiVision scope through VISA (a raw socket on port 5025 or USB-TMC)."""

    MAKER = "Keysight"
    CHANNELS = _models()
    channel_class = ScopeChannel  # type: ignore[assignment]

    def _drain_errors(self) -> list[str]:
        """``:SYSTem:ERRor?`` until ``+0,"No error"`` (6.2 names the short node)."""
        errors = []
        for _ in range(self.MAX_ERRORS):
            answer = self.query(":SYSTem:ERRor?")
            code, _, text = answer.partition(",")
            try:
                number = int(float(code))
            except ValueError:
                raise InstrumentError(f"{self.label}: unreadable error-queue entry {answer!r}") from None
            if number == 0:
                break
            errors.append(f"{code.strip()},{text.strip()}")
        return errors

    def input_names(self) -> tuple[str, ...]:
        """What a bench file may name: the analog channels and the external trigger input."""
        return self.CHANNELS[self.model] + ("EXT",)

    def set_timebase(self, scale_s: float, position_s: float = 0.0, reference: str = "LEFT") -> None:
        """Seconds per division (10 divisions); the trigger ``position_s`` before the reference point."""
        with self.lock:
            self.configure(f":TIMebase:SCALe {format_number(scale_s)}")
            self.configure(f":TIMebase:POSition {format_number(position_s)}")
            self.configure(f":TIMebase:REFerence {_REFERENCES[reference.upper()]}")

    def set_edge_trigger(self, source: str, level_v: float) -> None:
        """Rising edge on ``source`` ("EXT" or a channel), NORMal sweep: acquire only on a trigger (3.4)."""
        node = "EXTernal" if source.upper() == "EXT" else f"CHANnel{self.channel(source).name}"
        with self.lock:
            self.configure(":TRIGger:MODE EDGE")
            self.configure(f":TRIGger:EDGE:SOURce {node}")
            self.configure(f":TRIGger:EDGE:LEVel {format_number(level_v)}")
            self.configure(":TRIGger:EDGE:SLOPe POSitive")
            self.configure(":TRIGger:SWEep NORMal")

    def set_averaging(self, count: int) -> None:
        """AVERage over ``count`` triggers (2 to 65536); 1 means a single NORMal record."""
        with self.lock:
            if count <= 1:
                self.configure(":ACQuire:TYPE NORMal")
                return
            self.configure(":ACQuire:TYPE AVERage")
            self.configure(f":ACQuire:COUNt {int(count)}")

    def digitize(self, channel: str) -> None:
        """``:DIGitize CHANnel<n>``: arm and acquire; no check (the parser holds until the record is done)."""
        self.write(f":DIGitize CHANnel{self.channel(channel).name}")

    def wait_complete(self, timeout_s: float) -> bool:
        """``*OPC?`` within ``timeout_s``; False on a timeout (the caller runs an IDLE batch, 3.4)."""
        with self.lock:
            previous = self.session.timeout
            self.session.timeout = max(1, int(timeout_s * 1000))
            try:
                return self.query("*OPC?").strip().lstrip("+") == "1"
            except InstrumentError:
                return False
            finally:
                self.session.timeout = previous

    def read_waveform(self, channel: str, points: int) -> Waveform:
        """The last record of ``channel``: WORD, LSBFirst, unsigned; axes from the preamble (3.4 step 4)."""
        name = self.channel(channel).name
        with self.lock:
            for command in (f":WAVeform:SOURce CHANnel{name}", ":WAVeform:FORMat WORD",
                            ":WAVeform:BYTeorder LSBFirst", ":WAVeform:UNSigned ON",
                            f":WAVeform:POINts {int(points)}"):
                self.configure(command)
            preamble = parse_preamble(self.query(":WAVeform:PREamble?"))
            codes = self._read_block(":WAVeform:DATA?")
            self.check_errors(":WAVeform:DATA?")
        if preamble.format != 1 or codes.size != preamble.points:
            raise InstrumentError(f"{self.label}: record of {codes.size} points in format {preamble.format}, "
                                  f"preamble says {preamble.points} in format 1 (WORD)")
        return Waveform(preamble.times_s(codes.size), preamble.volts(codes), preamble)

    def _read_block(self, command: str) -> np.ndarray:
        """An IEEE 488.2 definite-length block (``#8`` + byte count + data + ``\\n``) of u16 LSB-first."""
        with self.lock, self._exchange():
            try:
                return self.session.query_binary_values(command, datatype="H", is_big_endian=False,
                                                        container=np.array, header_fmt="ieee",
                                                        expect_termination=True)
            except (pyvisa.errors.Error, OSError, ValueError) as err:
                raise InstrumentError(f"{self.label}: no valid data block for {command!r}: {err}") from err
