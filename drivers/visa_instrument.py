"""Talking to an SMU through VISA: sessions, locking, error queues, setpoint nodes.

Every SMU of the bench (contract section 3) is a message-based VISA resource:
GPIB, USB-TMC, or a raw socket (``TCPIP0::HOST::PORT::SOCKET``, the LXI port
5025 that the emulators also serve). This module holds what the model drivers
share:

- :func:`open_session` opens a resource through the user's VISA library, or
  pyvisa-py when there is none, and fails within seconds with one line;
- :class:`VisaInstrument` serialises access per resource and drains the
  instrument's error queue after each configuration step, so a refused
  setpoint surfaces at once, naming the command and the instrument's text;
- :class:`Setting` declares one setpoint node per line, in PyMeasure's style;
- :class:`SmuChannelBase` implements the roles of :mod:`.smu_roles` on top of
  those nodes, so a model driver only lists its command strings (section 5).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, Self

import pyvisa
from pyvisa.resources import MessageBasedResource

from labctl.errors import ConfigError, InstrumentError

DEFAULT_TIMEOUT_S = 5.0
"""Longest wait for an answer; a reading at the slowest NPLC used takes well under 1 s."""

_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def format_number(value: float) -> str:
    """A setpoint as the shortest text that reads back to the same float (3e-9 -> ``3e-09``).

    Never fixed point: the EXT_IN source works in nanoamperes, where a
    ``%.6f`` would send zero.
    """
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ConfigError(f"setpoint {value!r} is not a finite number")
    return repr(number)


def resource_lock(resource: str) -> threading.RLock:
    """The one lock of a VISA resource, shared by all its channels and driver objects."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(resource, threading.RLock())


@functools.cache
def default_resource_manager() -> pyvisa.ResourceManager:
    """The user's VISA library (NI-VISA, Keysight IO) when installed, else pyvisa-py."""
    try:
        return pyvisa.ResourceManager()
    except (OSError, ValueError):
        return pyvisa.ResourceManager("@py")


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def open_session(
    resource: str,
    rm: pyvisa.ResourceManager | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> MessageBasedResource:
    """Open ``resource`` with ``\\n`` line endings (raw sockets have no other framing)."""
    manager = rm or default_resource_manager()
    timeout_ms = int(timeout_s * 1000)
    try:
        session = manager.open_resource(
            resource,
            open_timeout=timeout_ms,
            timeout=timeout_ms,
            read_termination="\n",
            write_termination="\n",
        )
    # pyvisa-py reports some failures (an unknown host) as a bare Exception.
    except Exception as err:  # noqa: BLE001 - the VISA boundary: any failure means unreachable
        raise InstrumentError(f"cannot open instrument {resource}: {_first_line(err)}") from err
    if not isinstance(session, MessageBasedResource):
        session.close()
        raise InstrumentError(f"{resource} is not a message-based instrument (SCPI/TSP)")
    return session


def model_from_idn(idn: str) -> str:
    """The model field of an ``*IDN?`` answer, normalised: "MODEL 2450" -> "2450"."""
    fields = [field.strip() for field in idn.split(",")]
    model = fields[1] if len(fields) > 1 else ""
    if model.upper().startswith("MODEL"):
        model = model[len("MODEL"):]
    return model.strip().upper()


def identify(session: MessageBasedResource, resource: str) -> str:
    """Ask ``*IDN?``; the first exchange, so it is also the reachability check.

    pyvisa-py opens a socket even when nothing listens: the refusal shows up here.
    """
    try:
        return session.query("*IDN?").strip()
    except (pyvisa.errors.Error, OSError) as err:
        session.close()
        raise InstrumentError(f"no answer from instrument {resource} to *IDN?: {_first_line(err)}") from err


class Setting:
    """One write-only instrument node: PyMeasure's ``Instrument.control`` cut to a setter.

    ``templates`` are formatted with ``ch`` (the channel name) and ``value``
    (``values[x]`` when a mapping is given, else :func:`format_number`); each
    is one configuration step followed by an error-queue check. The section 5
    subsets have no query for these nodes, so reading the attribute gives the
    value this driver last wrote (None before the first write).
    """

    def __init__(self, *templates: str, values: Mapping[Any, str] | None = None) -> None:
        self.templates = templates
        self.values = values
        self.attribute = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.attribute = name

    def __get__(self, channel: SmuChannelBase | None, owner: type | None = None) -> Any:
        if channel is None:
            return self
        return channel.written.get(self.attribute)

    def __set__(self, channel: SmuChannelBase, value: Any) -> None:
        text = self.values[value] if self.values is not None else format_number(value)
        for template in self.templates:
            channel.instrument.configure(template.format(ch=channel.name, value=text.format(ch=channel.name)))
        channel.written[self.attribute] = value


class VisaInstrument:
    """A VISA session to one SMU; subclasses say how its error queue reads.

    Class attributes a driver sets: ``MAKER`` (for messages), ``CHANNELS``
    (model -> channel names) and ``channel_class``.
    """

    MAKER: ClassVar[str]
    CHANNELS: ClassVar[Mapping[str, tuple[str, ...]]]
    channel_class: ClassVar[type[SmuChannelBase]]

    def __init__(self, session: MessageBasedResource, resource: str, idn: str) -> None:
        self.model = model_from_idn(idn)
        if self.model not in self.CHANNELS:
            session.close()
            raise InstrumentError(
                f"{resource} is a {idn!r}, not a {self.MAKER} {'/'.join(self.CHANNELS)}"
            )
        self.session = session
        self.resource = resource
        self.idn = idn
        self.lock = resource_lock(resource)
        self._channels: dict[str, SmuChannelBase] = {}
        self._out_of_step = False
        # Errors left by an earlier session must not be blamed on our first command.
        try:
            with self.lock:
                self._drain_errors()
        except InstrumentError:
            session.close()
            raise

    @classmethod
    def from_resource(
        cls, resource: str, rm: pyvisa.ResourceManager | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> Self:
        """Open ``resource`` and check that it is one of this driver's models."""
        session = open_session(resource, rm, timeout_s)
        return cls(session, resource, identify(session, resource))

    @property
    def label(self) -> str:
        """How messages name this instrument: make, model and resource."""
        return f"{self.MAKER} {self.model} at {self.resource}"

    def channel(self, name: str) -> SmuChannelBase:
        """The channel ``name`` ("1", "2", "a", "b" as the bench file spells it)."""
        valid = self.CHANNELS[self.model]
        if name not in valid:
            raise ConfigError(
                f"{self.MAKER} {self.model} has no channel {name!r}; valid channels: {', '.join(valid)}"
            )
        with self.lock:
            if name not in self._channels:
                self._channels[name] = self.channel_class(self, name)
            return self._channels[name]

    def all_outputs_off(self) -> None:
        """Turn every output off, trying all even if one fails (safe exit, contract section 3)."""
        failures: list[InstrumentError] = []
        for name in self.CHANNELS[self.model]:
            try:
                self.channel(name).disable_output()
            except InstrumentError as err:
                failures.append(err)
        if failures:
            raise failures[0]

    def close(self) -> None:
        """Release the session; outputs stay as they are (the supply may be kept on on purpose)."""
        with self.lock:
            self.session.close()

    def write(self, command: str) -> None:
        with self.lock, self._exchange():
            try:
                self.session.write(command)
            except (pyvisa.errors.Error, OSError) as err:
                raise InstrumentError(f"{self.label}: cannot send {command!r}: {_first_line(err)}") from err

    def query(self, command: str) -> str:
        with self.lock, self._exchange():
            try:
                return self.session.query(command).strip()
            except (pyvisa.errors.Error, OSError) as err:
                raise InstrumentError(f"{self.label}: no answer to {command!r}: {_first_line(err)}") from err

    RESYNC_READS = 16
    """Answers an out-of-step session may hold before the ``*IDN?`` that resynchronises it."""

    @contextmanager
    def _exchange(self) -> Iterator[None]:
        """One exchange on the session, in step with the instrument.

        A signal or a timeout between a query's command and its answer leaves that answer unread: the
        next query would read it, a step late, and the error check after a setting would return
        before the instrument has executed the setting. Power-down relies on that check to know that
        EXT_IN is off before VDD falls on another instrument (measured: a TERM, INT, HUP burst let VDD
        fall with EXT_IN still on). So the exchange after an interrupted one first resynchronises.
        """
        if self._out_of_step:
            self._resynchronise()
        try:
            yield
        except BaseException:
            self._out_of_step = True
            raise

    def _resynchronise(self) -> None:
        """Discard stale answers: ask ``*IDN?`` and read until its answer, then drain the error queue."""
        self._out_of_step = False
        try:
            self.session.write("*IDN?")
            for _ in range(self.RESYNC_READS):
                if self.session.read().strip() == self.idn:
                    break
            else:
                raise InstrumentError(f"{self.label}: out of step after an interrupted exchange "
                                      f"(no *IDN? answer among {self.RESYNC_READS} reads)")
            self._drain_errors()  # what a half-finished exchange left is not the next command's fault
        except (pyvisa.errors.Error, OSError) as err:
            self._out_of_step = True
            raise InstrumentError(f"{self.label}: out of step after an interrupted exchange, and "
                                  f"*IDN? did not resynchronise it: {_first_line(err)}") from err
        except BaseException:
            self._out_of_step = True
            raise

    def query_float(self, command: str) -> float:
        """A numeric query; an answer that is not a number is explained by the error queue."""
        with self.lock:
            answer = self.query(command)
            try:
                return float(answer.split(",")[0])
            except ValueError:
                self.check_errors(command)
                raise InstrumentError(f"{self.label}: {command!r} answered {answer!r}, not a number") from None

    def query_floats(self, command: str, count: int | None = None) -> list[float]:
        """A query answering comma-separated numbers (``count`` of them if given); a wrong answer is
        explained by the error queue."""
        with self.lock:
            answer = self.query(command)
            try:
                values = [float(field) for field in answer.split(",")]
            except ValueError:
                values = []
            if not values or (count is not None and len(values) != count):
                self.check_errors(command)
                raise InstrumentError(f"{self.label}: {command!r} answered {answer!r}")
        return values

    def configure(self, command: str) -> None:
        """One configuration step: send it, then make sure the instrument accepted it."""
        with self.lock:
            self.write(command)
            self.check_errors(command)

    def check_errors(self, context: str) -> None:
        """Drain the error queue; raise naming the instrument, ``context`` and the instrument's text."""
        with self.lock:
            errors = self._drain_errors()
        if errors:
            raise InstrumentError(f"{self.label} refused {context!r}: {'; '.join(errors)}")

    def _drain_errors(self) -> list[str]:
        """All pending error messages, oldest first; empty when the queue is empty."""
        raise NotImplementedError


class ScpiInstrument(VisaInstrument):
    """Error queue of a SCPI instrument: ``:SYSTem:ERRor:NEXT?`` until code 0."""

    MAX_ERRORS = 32
    """Bound on one drain, in case an instrument never reports an empty queue."""

    def _drain_errors(self) -> list[str]:
        errors = []
        for _ in range(self.MAX_ERRORS):
            answer = self.query(":SYSTem:ERRor:NEXT?")
            code, _, text = answer.partition(",")
            if _error_code(code, answer, self.label) == 0:
                break
            errors.append(f"{code.strip()},{text.strip()}")
        return errors


class TspInstrument(VisaInstrument):
    """Error queue of a TSP instrument: ``errorqueue.count`` entries of ``errorqueue.next()``."""

    def _drain_errors(self) -> list[str]:
        count = int(float(self.query("print(errorqueue.count)")))
        errors = []
        for _ in range(count):
            # next() returns code, message, severity, node, printed tab-separated.
            fields = self.query("print(errorqueue.next())").split("\t")
            code = _error_code(fields[0], "\t".join(fields), self.label)
            errors.append(f"{code},{fields[1].strip()}" if len(fields) > 1 else str(code))
        return errors


def _error_code(text: str, answer: str, label: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        raise InstrumentError(f"{label}: unreadable error-queue entry {answer!r}") from None


class SmuChannelBase:
    """The :class:`~.smu_roles.SmuChannel` roles on top of declared nodes.

    A model driver subclasses this and declares ``source_function`` (values
    "V"/"I"), ``voltage_level_v``, ``current_level_a``, ``current_limit_a``,
    ``voltage_limit_v``, ``nplc``, ``autorange`` and ``output`` as
    :class:`Setting`-s, plus the two measurement queries.
    """

    MEASURE_CURRENT: ClassVar[str]
    MEASURE_VOLTAGE: ClassVar[str]

    def __init__(self, instrument: VisaInstrument, name: str) -> None:
        self.instrument = instrument
        self.name = name
        self.written: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<{self.instrument.label} channel {self.name}>"

    def source_voltage(self, level_v: float, current_limit_a: float) -> None:
        """Limit, then level, then function: a live output never sees a stale level or limit."""
        with self.instrument.lock:
            self.current_limit_a = current_limit_a
            self.voltage_level_v = level_v
            self.source_function = "V"
            self.autorange = True

    def set_voltage(self, level_v: float) -> None:
        self.voltage_level_v = level_v

    def source_current(self, level_a: float, voltage_limit_v: float) -> None:
        """Limit, then level, then function (see :meth:`source_voltage`)."""
        with self.instrument.lock:
            self.voltage_limit_v = voltage_limit_v
            self.current_level_a = level_a
            self.source_function = "I"
            self.autorange = True

    def set_current(self, level_a: float) -> None:
        self.current_level_a = level_a

    def set_nplc(self, nplc: float) -> None:
        self.nplc = nplc

    def measure_current(self) -> float:
        return self.instrument.query_float(self.MEASURE_CURRENT.format(ch=self.name))

    def measure_voltage(self) -> float:
        return self.instrument.query_float(self.MEASURE_VOLTAGE.format(ch=self.name))

    def enable_output(self) -> None:
        self.output = True

    def disable_output(self) -> None:
        self.output = False

    @property
    def output_enabled(self) -> bool:
        return self.output is True
