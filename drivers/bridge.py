"""Host client of the CMNA bridge, protocol v1 (contract sections 2 and 4).

One :class:`Bridge` owns one port (``/dev/ttyACM*``, ``COM*`` or
``socket://HOST:PORT``, all opened with pyserial) and turns typed calls into
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
  :meth:`Bridge.open`: on a reconnect it would overwrite the replay state and
  the pending request would run twice. Within one session the pending request
  is the only packet the bridge can replay, so no stale answer can match it;
- after ``max_attempts`` the call gives up with a one-line error.

Requests and answers are split so that both fit the bridge's maximum payload
(from IDENTIFY, the answer's status byte included). All calls are serialised
by one lock, so threads (GUI, recorder) may share a bridge.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np
import serial

from labctl.families.cmna.chip import ChipDescription
from labctl.drivers.bridge_protocol import (
    CODES_PREFIX_BYTES,
    RESPONSE_BIT,
    WEIGHTS_PREFIX_BYTES,
    BatchResult,
    BridgeError,
    BridgeProtocolError,
    BridgeStatus,
    BridgeTimeoutError,
    Measurement,
    Opcode,
    Status,
    codes_request,
    monitor_request,
    parse_identify,
    parse_measure,
    parse_run_batch,
    parse_status,
    run_batch_request,
    split_status,
    u16_request,
    weights_request,
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
from labctl.families.cmna.latch_codes import pack_rows, row_bytes, unpack_rows

BAUD_RATE = 921_600
"""Ignored by USB CDC-ACM, set anyway (section 2: 921600 8N1)."""
POLL_S = 0.05
"""Longest single blocking read; the per-attempt deadline is checked between reads."""
RESYNC_S = 0.02
"""After the lone 0x00, time for answers still in flight to arrive before input is discarded."""
STATUS_BYTES = 1
_LINK_ERRORS = (serial.SerialException, OSError)
_BUSY = bytes([Status.BUSY])


@dataclass(frozen=True)
class Transaction:
    """One request and its outcome, for the session recorder.

    ``status`` is None when no answer came; ``response`` is the answer's payload
    after the status byte; ``seq`` is the last seq used (BUSY retries take new ones).
    """

    time_s: float
    seq: int
    op: Opcode
    request: bytes
    status: Status | None
    response: bytes
    duration_s: float
    attempts: int


class Bridge:
    """Typed, retrying client of one bridge (see the module docstring for the link rules)."""

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
        self.chip: ChipDescription | None = None
        self._lock = threading.RLock()
        self._serial: serial.SerialBase | None = None
        self._opened = False
        self._splitter = FrameSplitter()
        self._frames: deque[bytes] = deque()
        self._seq = random.randrange(256)

    # -- opening and closing -------------------------------------------------

    def open(self) -> "Bridge":
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

    def __enter__(self) -> "Bridge":
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connect(self) -> None:
        try:
            port = serial.serial_for_url(self.port, baudrate=BAUD_RATE, timeout=min(self.timeout_s, POLL_S))
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

    def _exchange(self, op: Opcode, payload: bytes, gate_s: float = 0.0) -> bytes:
        """Send one request until answered; return the payload after an OK status.

        ``gate_s`` is the bench time the request needs (section 4: the answer
        comes within 20 ms plus the gates); it extends each attempt's wait.
        """
        with self._lock:
            if not self._opened:
                raise BridgeError(f"bridge {self.port} is not open ({op.name})")
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
                raise BridgeTimeoutError(f"no valid answer from bridge {self.port} to {op.name} "
                                         f"after {attempts} attempts ({problem})")
            return split_status(op, answer)

    def _attempt(self, frame: bytes, seq: int, op: Opcode, wait_s: float) -> tuple[bytes | None, str]:
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

    # -- typed operations (section 2, "Requests") -----------------------------------

    def identify(self) -> ChipDescription:
        """IDENTIFY; the answer is kept in :attr:`chip` and sizes every later request."""
        self.chip = parse_identify(self._exchange(Opcode.IDENTIFY, b""))
        return self.chip

    def _chip(self) -> ChipDescription:
        return self.chip if self.chip is not None else self.identify()

    def reset(self) -> None:
        """RESET: latches and DAC codes to 0, EXT_IN and MON disconnected, sticky flags cleared."""
        self._exchange(Opcode.RESET, b"")

    def status(self) -> BridgeStatus:
        return parse_status(self._exchange(Opcode.STATUS, b""))

    def write_weights(self, matrix: int, nibbles: np.ndarray, first_row: int = 0) -> None:
        """WRITE_WEIGHTS latch codes (rows, cols) uint8 0..15 from ``first_row``, split to fit."""
        with self._lock:
            rows, cols = self._chip().matrix_shape(matrix)
            codes = np.asarray(nibbles)
            if codes.ndim != 2 or codes.shape[1] != cols:
                raise ValueError(f"matrix {matrix} rows have {cols} columns, got codes of shape {codes.shape}")
            _check_span("rows", first_row, codes.shape[0], rows, f"matrix {matrix}")
            _check_range("latch codes", codes, 0xF)
            per = self._per_request((self._chip().max_payload - WEIGHTS_PREFIX_BYTES) // row_bytes(cols),
                                    f"a row of matrix {matrix}")
            for start in range(0, codes.shape[0], per):
                chunk = codes[start:start + per]
                self._exchange(Opcode.WRITE_WEIGHTS,
                               weights_request(matrix, first_row + start, len(chunk), pack_rows(chunk)))

    def read_weights(self, matrix: int, first_row: int = 0, row_count: int | None = None) -> np.ndarray:
        """READ_WEIGHTS: what the latches really hold, (rows, cols) uint8 nibbles, split to fit."""
        with self._lock:
            rows, cols = self._chip().matrix_shape(matrix)
            count = rows - first_row if row_count is None else row_count
            _check_span("rows", first_row, count, rows, f"matrix {matrix}")
            per_row = row_bytes(cols)
            per = self._per_request((self._chip().max_payload - STATUS_BYTES) // per_row,
                                    f"a row of matrix {matrix}")
            out = np.empty((count, cols), np.uint8)
            for start in range(0, count, per):
                n = min(per, count - start)
                packed = self._exchange(Opcode.READ_WEIGHTS, weights_request(matrix, first_row + start, n))
                if len(packed) != n * per_row:
                    raise BridgeProtocolError(f"READ_WEIGHTS answer has {len(packed)} bytes for {n} rows, "
                                              f"expected {n * per_row}")
                out[start:start + n] = unpack_rows(packed, n, cols)
            return out

    def set_inputs(self, codes: np.ndarray | list[int], first_channel: int = 0) -> None:
        """SET_INPUTS: bias generator (DAC) codes of layer-0 channels from ``first_channel``."""
        with self._lock:
            chip = self._chip()
            values = np.asarray(codes).reshape(-1)
            _check_span("input channels", first_channel, values.size, chip.n_inputs, "layer 0")
            _check_range("DAC codes", values, chip.max_dac_code)
            per = self._per_request((chip.max_payload - CODES_PREFIX_BYTES) // 2, "one DAC code")
            for start in range(0, values.size, per):
                self._exchange(Opcode.SET_INPUTS, codes_request(first_channel + start, values[start:start + per]))

    def route_ext_in(self, channel: int | None) -> None:
        """ROUTE_EXT_IN: connect the EXT_IN pad to one layer-0 channel; None disconnects."""
        self._exchange(Opcode.ROUTE_EXT_IN, u16_request(channel))

    def set_monitor(self, layer: int, neuron: int | None) -> None:
        """SET_MONITOR: copy one neuron's output current to MON; None disconnects."""
        self._exchange(Opcode.SET_MONITOR, monitor_request(layer, neuron))

    def measure(self, gate_ms: int) -> Measurement:
        """MEASURE one gate; rates are counts over the gate that really elapsed (section 4)."""
        with self._lock:
            n_out = self._chip().n_outputs
            return parse_measure(self._exchange(Opcode.MEASURE, u16_request(gate_ms), gate_ms * 1e-3), n_out)

    def run_batch(self, patterns: np.ndarray, gate_ms: int) -> BatchResult:
        """RUN_BATCH DAC-code patterns (P, n0); counts (P, n_out), rates over the requested gate.

        Split so that every request and every answer fits the maximum payload
        (CMNA-L: 2 patterns per request, bound by the request's 392 bytes each).
        """
        with self._lock:
            chip = self._chip()
            n0, n_out = chip.n_inputs, chip.n_outputs
            codes = np.asarray(patterns)
            if codes.ndim != 2 or codes.shape[1] != n0:
                raise ValueError(f"patterns must be (P, {n0}) DAC codes, got shape {codes.shape}")
            _check_range("DAC codes", codes, chip.max_dac_code)
            codes = codes.astype("<u2", copy=False)
            per = self._per_request(min((chip.max_payload - CODES_PREFIX_BYTES) // (2 * n0),
                                        (chip.max_payload - STATUS_BYTES) // (4 * n_out)), "one pattern")
            counts = np.empty((codes.shape[0], n_out), np.uint32)
            for start in range(0, codes.shape[0], per):
                chunk = codes[start:start + per]
                answer = self._exchange(Opcode.RUN_BATCH, run_batch_request(gate_ms, chunk),
                                        len(chunk) * gate_ms * 1e-3)
                counts[start:start + len(chunk)] = parse_run_batch(answer, len(chunk), n_out)
            return BatchResult(counts, counts / (gate_ms * 1e-3))

    def _per_request(self, items: int, what: str) -> int:
        if items < 1:
            raise BridgeProtocolError(f"{what} does not fit the bridge's maximum payload "
                                      f"of {self._chip().max_payload} bytes")
        return items


def _check_span(what: str, first: int, count: int, size: int, where: str) -> None:
    """Refuse before sending: a split request must not fail halfway (each part runs whole or not at all)."""
    if first < 0 or count < 0 or first + count > size:
        raise ValueError(f"{what} {first}..{first + count - 1} outside 0..{size - 1} of {where}")


def _check_range(what: str, values: np.ndarray, top: int) -> None:
    if values.size and (values.min() < 0 or values.max() > top):
        raise ValueError(f"{what} must lie in 0..{top}")


def _status_of(answer: bytes | None) -> Status | None:
    try:
        return Status(answer[0]) if answer else None
    except ValueError:
        return None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
