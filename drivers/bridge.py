"""Host client of a bridge speaking protocol v1, for any device family (contract sections 2 and 4).

One :class:`BridgeLink` owns one port (``/dev/ttyACM*``, ``COM*`` or
``socket://HOST:PORT``, all opened with pyserial) and turns requests into
request/response exchanges that survive a lossy link:

- a timeout resends the request with the SAME seq: the bridge replays its
  previous answer instead of executing twice (section 2, "Behaviour");
- BUSY waits (exponential backoff) and resends with a NEW seq (section 4);
- frames that fail decoding, and stale answers with another seq or op, are
  discarded while waiting;
- a dropped link is reopened (lone 0x00, input discarded) and the pending
  request resent with its same seq. The bridge keeps its replay state across
  reconnects, so a request that executed before the drop is answered from the
  replay. That is why the harmless first request of section 4 is sent only by
  :meth:`BridgeLink.open`: on a reconnect it would overwrite the replay state and
  the pending request would run twice. Within one session the pending request
  is the only packet the bridge can replay, so no stale answer can match it;
- after ``max_attempts`` the call gives up with a one-line error.

All calls are serialised by one lock, so threads (GUI, recorder) may share a
link. A family's client subclasses :class:`BridgeLink`, names its opcodes
(:attr:`BridgeLink.ops`) and builds its typed operations on :meth:`BridgeLink.request`
(CMNA's: :mod:`labctl.families.cmna.link`).
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, ClassVar, Mapping, Self

import serial

from labctl.drivers.bridge_protocol import (
    RESPONSE_BIT,
    BridgeError,
    BridgeProtocolError,
    BridgeStatus,
    BridgeTimeoutError,
    CommonOp,
    OpNames,
    Status,
    op_name,
    parse_status,
    split_status,
)
from labctl.drivers.framing import (
    DELIMITER,
    PROTOCOL_VERSION,
    FrameError,
    FrameSplitter,
    decode_packet,
    encode_packet,
    wire_bytes_needed,
)

BAUD_RATE = 921_600
"""Ignored by USB CDC-ACM, set anyway (section 2: 921600 8N1)."""
POLL_S = 0.05
"""Longest single blocking read; the per-attempt deadline is checked between reads."""
RESYNC_S = 0.02
"""After the lone 0x00, time for answers still in flight to arrive before input is discarded."""
STATUS_BYTES = 1
"""The status byte every answer starts with; the maximum payload counts it (section 4)."""
_LINK_ERRORS = (serial.SerialException, OSError)
_BUSY = bytes([Status.BUSY])


@dataclass(frozen=True)
class Transaction:
    """One request and its outcome, for the session recorder.

    ``op`` is a member of the link's opcode enum when it names the op (a plain
    int otherwise); ``status`` is None when no answer came; ``response`` is the
    answer's payload after the status byte; ``seq`` is the last seq used (BUSY
    retries take new ones).
    """

    time_s: float
    seq: int
    op: int
    request: bytes
    status: Status | None
    response: bytes
    duration_s: float
    attempts: int


class BridgeLink:
    """Retrying request/response client of one bridge (see the module docstring for the link rules).

    A family sets :attr:`ops` (its opcode enum, which names ops in messages and
    transcripts), :attr:`status_meanings` (its own texts for some statuses) and
    :attr:`status_flags` (the type of STATUS flags).
    """

    ops: ClassVar[OpNames] = CommonOp
    status_meanings: ClassVar[Mapping[Status, str]] = {}
    status_flags: ClassVar[Callable[[int], int]] = int

    def __init__(self, port: str, *, timeout_s: float = 0.25, max_attempts: int = 8,
                 busy_backoff_s: float = 0.005,
                 transcript: Callable[[Transaction], None] | None = None) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.port = port
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.busy_backoff_s = busy_backoff_s
        self.transcript = transcript
        self._lock = threading.RLock()
        self._serial: serial.SerialBase | None = None
        self._opened = False
        self._splitter = FrameSplitter()
        self._frames: deque[bytes] = deque()
        self._seq = random.randrange(256)

    # -- opening and closing -------------------------------------------------

    def open(self) -> Self:
        """Open the port, resynchronise and send the harmless first request (STATUS, section 4)."""
        with self._lock:
            if self._opened:
                return self
            self._connect()
            self._opened = True
            try:
                self.status()
            except BaseException:
                self.close()
                raise
        return self

    def close(self) -> None:
        with self._lock:
            self._opened = False
            self._drop_link()

    @property
    def is_open(self) -> bool:
        return self._opened

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connect(self) -> None:
        # a real serial port is opened exclusive (a second program gets "could not exclusively lock
        # port"); URL handlers (socket://, ...) have no such lock: labctl.bench_lock covers them
        exclusive = {} if "://" in self.port else {"exclusive": True}
        try:
            port = serial.serial_for_url(self.port, baudrate=BAUD_RATE, timeout=min(self.timeout_s, POLL_S),
                                         **exclusive)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise BridgeError(f"cannot open bridge port {self.port}: {_one_line(exc)}") from None
        try:
            port.write(DELIMITER)
            time.sleep(RESYNC_S)
            port.reset_input_buffer()
        except _LINK_ERRORS as exc:
            port.close()
            raise BridgeError(f"bridge port {self.port} failed while resynchronising: {_one_line(exc)}") from None
        self._serial = port
        self._splitter.clear()
        self._frames.clear()

    def _drop_link(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except _LINK_ERRORS:
                pass
            self._serial = None

    # -- request / response --------------------------------------------------

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    def _op(self, op: int) -> int:
        """``op`` as a member of :attr:`ops` when it has one (for transcripts and messages)."""
        try:
            return self.ops(op)
        except ValueError:
            return op

    def request(self, op: int, payload: bytes, gate_s: float = 0.0) -> bytes:
        """Send one request until answered; return the payload after an OK status.

        ``gate_s`` is the bench time the request needs (section 4: the answer
        comes within 20 ms plus the gates); it extends each attempt's wait.
        A status other than OK raises its :class:`BridgeStatusError`.
        """
        op = self._op(op)
        with self._lock:
            if not self._opened:
                raise BridgeError(f"bridge {self.port} is not open ({op_name(op, self.ops)})")
            started = time.monotonic()
            seq = self._next_seq()
            frame = encode_packet(seq, op, payload)
            answer: bytes | None = None
            problem = "no answer"
            attempts = busy = 0
            while attempts < self.max_attempts:
                attempts += 1
                answer, problem = self._attempt(frame, seq, op, self.timeout_s + gate_s)
                if answer is None:
                    continue
                if answer[:1] != _BUSY or attempts == self.max_attempts:
                    break
                time.sleep(min(self.busy_backoff_s * 2 ** busy, self.timeout_s))
                busy += 1
                seq = self._next_seq()
                frame = encode_packet(seq, op, payload)
            if self.transcript is not None:
                self.transcript(Transaction(started, seq, op, payload, _status_of(answer),
                                            answer[1:] if answer else b"", time.monotonic() - started, attempts))
            if answer is None:
                raise BridgeTimeoutError(f"no valid answer from bridge {self.port} to {op_name(op, self.ops)} "
                                         f"after {attempts} attempts ({problem})")
            return split_status(op, answer, self.ops, self.status_meanings)

    def _attempt(self, frame: bytes, seq: int, op: int, wait_s: float) -> tuple[bytes | None, str]:
        """Send once and wait for the matching answer: (payload or None, what went wrong)."""
        if self._serial is None:
            try:
                self._connect()
            except BridgeError as exc:  # bridge still away: wait as long as an attempt would have
                time.sleep(wait_s)
                return None, str(exc)
        assert self._serial is not None
        try:
            self._serial.write(frame)
            answer = self._await(seq, op | RESPONSE_BIT, time.monotonic() + wait_s)
        except _LINK_ERRORS as exc:
            self._drop_link()
            return None, f"link lost: {_one_line(exc)}"
        return answer, "no answer" if answer is None else ""

    def _await(self, seq: int, response_op: int, deadline: float) -> bytes | None:
        """Read until the answer with ``seq`` and ``response_op`` arrives or the deadline passes."""
        assert self._serial is not None
        while True:
            while self._frames:
                try:
                    packet = decode_packet(self._frames.popleft())
                except FrameError:
                    continue  # damaged on the way: the timeout will resend
                if packet.seq != seq or packet.op != response_op:
                    continue  # stale answer to an earlier request
                if packet.version != PROTOCOL_VERSION:
                    raise BridgeProtocolError(f"bridge {self.port} answered in protocol version {packet.version}")
                return packet.payload
            if time.monotonic() >= deadline:
                return None
            data = self._serial.read(wire_bytes_needed(self._splitter.pending))
            if data:
                self._frames.extend(self._splitter.feed(data))

    # -- common requests (section 4) -----------------------------------------------

    def status(self) -> BridgeStatus:
        """STATUS: flags (as :attr:`status_flags`), uptime and die temperature."""
        return parse_status(self.request(CommonOp.STATUS, b""), self.status_flags)


def _status_of(answer: bytes | None) -> Status | None:
    try:
        return Status(answer[0]) if answer else None
    except ValueError:
        return None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
