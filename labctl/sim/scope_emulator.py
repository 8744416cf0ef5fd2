"""A simulated Keysight InfiniiVision oscilloscope: the command subset of ttfs-bench.md 6.2.

Like the SMU emulators, :class:`InfiniiVisionEmulator` takes one command
line and returns the answer (text, or bytes for a binary block), so
:class:`ScopeServer` can put it on a raw socket and the driver cannot tell it
from the instrument: short and long forms, any case, ``;``-joined commands,
an error queue (-113 undefined header, -222 data out of range, -224 illegal
parameter value) read by ``:SYSTem:ERRor?``.

Acquisition behaves as the real scope's ``:DIGitize``: it arms (up to
:data:`ARM_LATENCY_S` after the command), then takes one record per trigger
edge of the selected source, re-arming :data:`REARM_S` after each record, and
averages ``:ACQuire:COUNt`` of them in AVERage mode; every command after it
(``*OPC?`` included) waits until the record is complete. The signals come
from outside: whoever drives the scope's inputs (a bench's link) calls
:meth:`InfiniiVisionEmulator.trigger_train` with the times of the trigger
edges and a function that gives each input's voltage around each edge. Trains
are kept, so a ``:DIGitize`` that the server reads after the train arrived
(two sockets race on loopback) still sees the edges that lie after it on the
bench clock.

Realism: each channel has its own small gain and offset error (drawn from
the seed: the reason a probe chain is calibrated in place), 0.02 division rms
vertical noise per record, an 8-bit ADC over the 8 divisions of the screen
(codes clipped at its ends), and averaged records delivered as 16-bit WORD
codes of the same 8 divisions (``yincrement = 8 x scale / 65536``).
"""

from __future__ import annotations

import math
import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from labctl.sim.clock import VirtualClock
from labctl.sim.instrument_server import InstrumentServer
from labctl.sim.smu_emulators import Refused, _header_regex, _number, _on_off

ARM_LATENCY_S = 0.05
"""A :DIGitize arms this long after the command (contract 3.4: up to 100 ms, T)."""
REARM_S = 150e-6
"""Dead time after the end of a record before the next trigger is accepted."""
DIVISIONS_X = 10
DIVISIONS_Y = 8
ADC_LEVELS = 256
WORD_LEVELS = 65536
NOISE_DIV = 0.02
GAIN_ERROR = 0.005
OFFSET_ERROR_DIV = 0.01
RECORD_POINTS = 4000
"""Points of an acquired record over the 10 divisions; ``:WAVeform:POINts`` returns every k-th of them."""
OPC_GUARD_S = 120.0
"""Longest wall time a command waits behind a :DIGitize that never triggers (a real scope waits forever)."""
CHANNELS = ("1", "2", "3", "4")
INPUTS = CHANNELS + ("EXT",)

Waveform = Callable[[int, str, np.ndarray], np.ndarray]
"""(edge index in its train, input name, times from that edge in s) -> volts at that input."""


def _keyword(*words: str) -> Callable[[str], str]:
    """A parser of one enumerated SCPI keyword: returns the canonical (long, upper-case) word."""
    patterns = [(_header_regex(":" + w), w.upper()) for w in words]

    def parse(arg: str) -> str:
        if not arg:
            raise Refused(-109, "Missing parameter")
        for regex, canonical in patterns:
            if regex.fullmatch(":" + arg.strip()):
                return canonical
        raise Refused(-224, "Illegal parameter value")

    return parse


def _source(arg: str) -> str:
    """``CHANnel<n>`` -> "n"; ``EXTernal`` -> "EXT"."""
    word = arg.strip()
    match = _header_regex(":CHANnel#").fullmatch(":" + word)
    if match and match.group("c") in CHANNELS:
        return match.group("c")
    if _header_regex(":EXTernal").fullmatch(":" + word):
        return "EXT"
    raise Refused(-224, "Illegal parameter value")


def _ranged(low: float, high: float) -> Callable[[str], float]:
    def parse(arg: str) -> float:
        value = _number(arg)
        if not low <= value <= high:
            raise Refused(-222, "Data out of range")
        return value

    return parse


@dataclass
class Channel:
    scale_v: float = 1.0
    offset_v: float = 0.0
    coupling: str = "DC"
    impedance: str = "ONEMEG"
    probe: float = 1.0
    bw_limit: bool = False
    display: bool = True
    gain: float = 1.0
    """True gain of the input (its error is the scope's, found by calibration, never reported)."""
    offset_error_div: float = 0.0


@dataclass
class Record:
    """A completed acquisition of one channel: its codes and the preamble numbers."""

    volts: np.ndarray
    x_increment_s: float
    x_origin_s: float
    scale_v: float
    offset_v: float
    count: int
    acquire_type: str


@dataclass
class Train:
    edges_s: np.ndarray
    source: str
    high_v: float
    waveform: Waveform


@dataclass
class Pending:
    """A :DIGitize waiting for triggers: where it stands."""

    channel: str
    count: int
    armed_at_s: float
    sums: np.ndarray | None = None
    taken: int = 0
    next_ok_s: float = 0.0
    done_at_s: float | None = None
    times: np.ndarray = field(default_factory=lambda: np.zeros(0))


class InfiniiVisionEmulator:
    """A DSOX3024T-class scope; inputs are driven through :meth:`trigger_train`."""

    IDN = "KEYSIGHT TECHNOLOGIES,DSOX3024T,MY00000001,07.50.2021102830"

    def __init__(self, clock: VirtualClock | None = None, seed: int = 0) -> None:
        self.clock = clock if clock is not None else VirtualClock()
        self._rng = np.random.default_rng(seed)
        self._errors: deque[tuple[int, str]] = deque()
        self._cond = threading.Condition()
        self._trains: deque[Train] = deque(maxlen=8)
        self._used_until_s = -math.inf
        self._true = {ch: (1.0 + GAIN_ERROR * float(self._rng.standard_normal()),
                           OFFSET_ERROR_DIV * float(self._rng.standard_normal())) for ch in CHANNELS}
        self._reset()
        self._commands = self._command_table()

    def _reset(self) -> None:
        self.channels = {ch: Channel(gain=self._true[ch][0], offset_error_div=self._true[ch][1]) for ch in CHANNELS}
        self.time_scale_s, self.time_position_s, self.time_reference = 1e-4, 0.0, "CENTER"
        self.trigger = {"mode": "EDGE", "source": "1", "level": 0.0, "slope": "POSITIVE", "sweep": "AUTO"}
        self.acquire_type, self.acquire_count = "NORMAL", 8
        self.wave = {"source": "1", "format": "BYTE", "byteorder": "MSBFIRST", "unsigned": False, "points": 1000,
                     "points_mode": "NORMAL"}
        self.records: dict[str, Record] = {}
        self.pending: Pending | None = None

    # -- the outside world -------------------------------------------------------------

    def true_chain(self, channel: str) -> tuple[float, float]:
        """The channel's true gain and offset error (V at its present scale): for tests only."""
        ch = self.channels[channel]
        return ch.gain, ch.offset_error_div * ch.scale_v

    def trigger_train(self, source: str, edges_s: np.ndarray, high_v: float, waveform: Waveform) -> None:
        """Rising edges from 0 V to ``high_v`` at ``source`` (bench-clock times); ``waveform`` gives every input."""
        with self._cond:
            self._trains.append(Train(np.asarray(edges_s, float), source, high_v, waveform))
            if self.pending is not None:
                self._take(self._trains[-1])
                self._cond.notify_all()

    # -- acquisition -------------------------------------------------------------------

    def _x_axis(self) -> tuple[np.ndarray, float, float]:
        span = DIVISIONS_X * self.time_scale_s
        ref_div = {"LEFT": 1.0, "CENTER": 5.0, "RIGHT": 9.0}[self.time_reference]
        step = span / RECORD_POINTS
        origin = self.time_position_s - ref_div * self.time_scale_s
        return origin + step * np.arange(RECORD_POINTS), step, origin

    def _triggers(self, train: Train) -> bool:
        t = self.trigger
        return (t["mode"] == "EDGE" and t["sweep"] == "NORMAL" and t["source"] == train.source
                and t["slope"] == "POSITIVE" and 0.0 < t["level"] < train.high_v) or \
            (t["sweep"] == "AUTO" and t["source"] == train.source)

    def _take(self, train: Train) -> None:
        """Use this train's edges for the pending acquisition (caller holds the condition)."""
        p = self.pending
        if p is None or p.done_at_s is not None or not self._triggers(train):
            return
        times, _, _ = self._x_axis()
        record_end_s = float(times[-1])
        ch = self.channels[p.channel]
        for k in np.flatnonzero(train.edges_s >= max(p.armed_at_s, p.next_ok_s, self._used_until_s)):
            edge = float(train.edges_s[k])
            if edge < p.next_ok_s:
                continue
            v = train.waveform(int(k), p.channel, times)
            lsb = DIVISIONS_Y * ch.scale_v / ADC_LEVELS
            screen = (ch.gain * v - ch.offset_v) / ch.scale_v + ch.offset_error_div
            screen = screen + NOISE_DIV * self._rng.standard_normal(screen.shape)
            codes = np.clip(np.round(screen * ch.scale_v / lsb), -ADC_LEVELS / 2, ADC_LEVELS / 2 - 1)
            sample = codes * lsb + ch.offset_v
            p.sums = sample if p.sums is None else p.sums + sample
            p.taken += 1
            p.next_ok_s = edge + max(record_end_s, 0.0) + REARM_S
            if p.taken == p.count:
                p.done_at_s = edge + max(record_end_s, 0.0)
                self._used_until_s = p.done_at_s
                self._finish(p)
                return

    def _finish(self, p: Pending) -> None:
        times, step, origin = self._x_axis()
        ch = self.channels[p.channel]
        self.records[p.channel] = Record(p.sums / p.taken, step, origin, ch.scale_v, ch.offset_v, p.taken,
                                         self.acquire_type)

    def _digitize(self, arg: str) -> None:
        channel = _source(arg) if arg else "1"
        if channel == "EXT":
            raise Refused(-224, "Illegal parameter value")
        count = self.acquire_count if self.acquire_type == "AVERAGE" else 1
        self.pending = Pending(channel, count, self.clock.now() + ARM_LATENCY_S)
        for train in list(self._trains):
            self._take(train)

    def _wait_acquisition(self) -> None:
        """Commands after :DIGitize wait for it (the real parser blocks); the bench clock moves to its end."""
        p = self.pending
        if p is None:
            return
        self._cond.wait_for(lambda: p.done_at_s is not None, timeout=OPC_GUARD_S)
        if p.done_at_s is not None:
            behind = p.done_at_s - self.clock.now()
            self.clock.advance(behind)
        self.pending = None

    # -- commands ----------------------------------------------------------------------

    def execute(self, line: str) -> str | bytes | None:
        """Run one command line; its answer (text, or the bytes of a binary block), or None."""
        answers: list[str | bytes] = []
        with self._cond:
            for statement in (s.strip() for s in line.split(";")):
                if not statement:
                    continue
                self._wait_acquisition()
                try:
                    answer = self._run(statement)
                except Refused as refused:
                    self._errors.append((refused.code, refused.message))
                    continue
                if answer is not None:
                    answers.append(answer)
        if not answers:
            return None
        if any(isinstance(a, bytes) for a in answers):
            return b";".join(a if isinstance(a, bytes) else a.encode("ascii") for a in answers)
        return ";".join(answers)  # type: ignore[arg-type]

    def _run(self, statement: str) -> str | bytes | None:
        header, *rest = statement.split(None, 1)
        arg = rest[0].strip() if rest else ""
        query = header.endswith("?")
        header = header.rstrip("?")
        upper = header.upper()
        if upper == "*IDN" and query:
            return self.IDN
        if upper == "*OPC" and query:
            return "1"
        if upper == "*RST":
            self._reset()
            return None
        if upper == "*CLS":
            self._errors.clear()
            return None
        if not header.startswith(":"):
            header = ":" + header
        for regex, setter, getter in self._commands:
            match = regex.fullmatch(header)
            if not match:
                continue
            suffix = match.groupdict().get("c")
            if suffix is not None and suffix not in CHANNELS:
                raise Refused(-113, "Undefined header")
            if query:
                if getter is None:
                    raise Refused(-113, "Undefined header")
                return getter(suffix)
            if setter is None:
                raise Refused(-113, "Undefined header")
            setter(suffix, arg)
            return None
        raise Refused(-113, "Undefined header")

    def _command_table(self):
        def chan(attr: str, parse: Callable[[str], object]):
            def setter(c, arg):
                setattr(self.channels[c or "1"], attr, parse(arg))
            return setter

        def put(target: dict, key: str, parse: Callable[[str], object]):
            def setter(_c, arg):
                target[key] = parse(arg)
            return setter

        def timebase(attr: str, parse: Callable[[str], object]):
            def setter(_c, arg):
                setattr(self, attr, parse(arg))
            return setter

        def acquire_count(_c, arg):
            value = _number(arg)
            if not 2 <= value <= 65536 or value != int(value):
                raise Refused(-222, "Data out of range")
            self.acquire_count = int(value)

        def points(_c, arg):
            value = _number(arg)
            if not 1 <= value <= 8_000_000 or value != int(value):
                raise Refused(-222, "Data out of range")
            self.wave["points"] = int(value)

        def error(_c):
            code, message = self._errors.popleft() if self._errors else (0, "No error")
            return f'{code:+d},"{message}"'

        rows = [
            (":TIMebase:SCALe", timebase("time_scale_s", _ranged(1e-9, 50.0)), lambda c: f"{self.time_scale_s:+.8E}"),
            (":TIMebase:POSition", timebase("time_position_s", _ranged(-500.0, 500.0)),
             lambda c: f"{self.time_position_s:+.8E}"),
            (":TIMebase:REFerence", timebase("time_reference", _keyword("LEFT", "CENTer", "RIGHt")),
             lambda c: self.time_reference[:4]),
            (":CHANnel#:SCALe", chan("scale_v", _ranged(1e-3, 5.0)),
             lambda c: f"{self.channels[c or '1'].scale_v:+.8E}"),
            (":CHANnel#:OFFSet", chan("offset_v", _ranged(-20.0, 20.0)),
             lambda c: f"{self.channels[c or '1'].offset_v:+.8E}"),
            (":CHANnel#:COUPling", chan("coupling", _keyword("DC", "AC")), lambda c: self.channels[c or "1"].coupling),
            (":CHANnel#:IMPedance", chan("impedance", _keyword("ONEMeg", "FIFTy")),
             lambda c: self.channels[c or "1"].impedance[:4]),
            (":CHANnel#:PROBe", chan("probe", _ranged(0.001, 10000.0)),
             lambda c: f"{self.channels[c or '1'].probe:+.8E}"),
            (":CHANnel#:BWLimit", chan("bw_limit", _on_off), lambda c: str(int(self.channels[c or "1"].bw_limit))),
            (":CHANnel#:DISPlay", chan("display", _on_off), lambda c: str(int(self.channels[c or "1"].display))),
            (":TRIGger:MODE", put(self.trigger, "mode", _keyword("EDGE")), lambda c: self.trigger["mode"]),
            (":TRIGger[:EDGE]:SOURce", put(self.trigger, "source", _source),
             lambda c: "EXT" if self.trigger["source"] == "EXT" else f"CHAN{self.trigger['source']}"),
            (":TRIGger[:EDGE]:LEVel", put(self.trigger, "level", _ranged(-50.0, 50.0)),
             lambda c: f"{self.trigger['level']:+.8E}"),
            (":TRIGger[:EDGE]:SLOPe", put(self.trigger, "slope", _keyword("POSitive", "NEGative", "EITHer")),
             lambda c: self.trigger["slope"][:3]),
            (":TRIGger:SWEep", put(self.trigger, "sweep", _keyword("NORMal", "AUTO")),
             lambda c: self.trigger["sweep"][:4]),
            (":ACQuire:TYPE", timebase("acquire_type", _keyword("NORMal", "AVERage", "HRESolution", "PEAK")),
             lambda c: self.acquire_type[:4]),
            (":ACQuire:COUNt", acquire_count, lambda c: str(self.acquire_count)),
            (":DIGitize", lambda c, arg: self._digitize(arg), None),
            (":WAVeform:SOURce", put(self.wave, "source", _source), lambda c: f"CHAN{self.wave['source']}"),
            (":WAVeform:FORMat", put(self.wave, "format", _keyword("BYTE", "WORD", "ASCii")),
             lambda c: self.wave["format"][:4]),
            (":WAVeform:BYTeorder", put(self.wave, "byteorder", _keyword("LSBFirst", "MSBFirst")),
             lambda c: self.wave["byteorder"][:3]),
            (":WAVeform:UNSigned", put(self.wave, "unsigned", _on_off), lambda c: str(int(self.wave["unsigned"]))),
            (":WAVeform:POINts:MODE", put(self.wave, "points_mode", _keyword("NORMal", "MAXimum", "RAW")),
             lambda c: self.wave["points_mode"][:4]),
            (":WAVeform:POINts", points, lambda c: str(self.wave["points"])),
            (":WAVeform:PREamble", None, lambda c: self._preamble()),
            (":WAVeform:DATA", None, lambda c: self._data()),
            (":SYSTem:ERRor[:NEXT]", None, error),
        ]
        return [(_header_regex(pattern), setter, getter) for pattern, setter, getter in rows]

    # -- waveform transfer ---------------------------------------------------------------

    def _record(self) -> Record:
        """The source's record, decimated to at most ``:WAVeform:POINts`` points."""
        record = self.records.get(self.wave["source"])
        if record is None:
            raise Refused(-222, "Data out of range")  # no data: the real scope's "-222 Data out of range"
        every = max(1, math.ceil(record.volts.size / self.wave["points"]))
        return Record(record.volts[::every], record.x_increment_s * every, record.x_origin_s, record.scale_v,
                      record.offset_v, record.count, record.acquire_type)

    def _y_scale(self, record: Record) -> tuple[float, float, int]:
        """(yincrement, yorigin, yreference) of the present format."""
        if self.wave["format"] == "WORD":
            return DIVISIONS_Y * record.scale_v / WORD_LEVELS, record.offset_v, WORD_LEVELS // 2
        return DIVISIONS_Y * record.scale_v / ADC_LEVELS, record.offset_v, ADC_LEVELS // 2

    def _preamble(self) -> str:
        record = self._record()
        fmt = {"BYTE": 0, "WORD": 1, "ASCII": 4}[self.wave["format"]]
        kind = {"NORMAL": 0, "PEAK": 1, "AVERAGE": 2, "HRESOLUTION": 3}[record.acquire_type]
        y_inc, y_origin, y_ref = self._y_scale(record)
        return (f"{fmt:+d},{kind:+d},{record.volts.size:+d},{record.count:+d},{record.x_increment_s:+.8E},"
                f"{record.x_origin_s:+.8E},+0,{y_inc:+.8E},{y_origin:+.8E},{y_ref:+d}")

    def _data(self) -> bytes:
        record = self._record()
        if self.wave["format"] == "ASCII":
            return ",".join(f"{v:+.6E}" for v in record.volts).encode("ascii")
        y_inc, y_origin, y_ref = self._y_scale(record)
        word = self.wave["format"] == "WORD"
        top = WORD_LEVELS if word else ADC_LEVELS
        codes = np.clip(np.round((record.volts - y_origin) / y_inc + y_ref), 0, top - 1).astype(np.int64)
        if not self.wave["unsigned"]:
            codes = codes - top // 2
        dtype = ("<" if self.wave["byteorder"] == "LSBFIRST" else ">") + ("u2" if word else "u1")
        if not self.wave["unsigned"]:
            dtype = dtype.replace("u", "i")
        body = codes.astype(dtype).tobytes()
        return f"#8{len(body):08d}".encode("ascii") + body


class ScopeServer(InstrumentServer):
    """The instrument server with binary answers: a block goes out as its bytes, then ``\\n``.

    It has its own lock (never the die's): a command waiting behind a :DIGitize
    must not stop the bridge from running the batch that triggers it.
    """

    def _answer(self, connection: socket.socket, line: str) -> None:
        if not line:
            return
        with self.lock:
            answer = self.emulator.execute(line)
        if answer is None:
            return
        data = answer if isinstance(answer, bytes) else answer.encode("ascii", errors="replace")
        connection.sendall(data + b"\n")
