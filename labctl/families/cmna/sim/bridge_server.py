"""The simulated bridge: protocol v1 over TCP in front of a :class:`SimulatedDie` (contract sections 2, 4).

It behaves as the FPGA board does, so the host client cannot tell it from a
real bridge: it answers every packet that decodes and passes its CRC exactly
once, checks in the order of section 4 (version, header length, opcode, the
op's length rule, arguments, hardware), replays its previous answer when a
packet repeats the previous (seq, op) - error answers and BUSY included, and
across reconnects - and executes one request at a time under the die's lock.

A :class:`FaultPlan` injects the link and bridge faults the client must
survive (lost requests, damaged answers, latency, dropped connections, BUSY,
gate overruns, fragmented answers, stale bytes after connecting). Tests read
:attr:`BridgeServer.executions` to prove that nothing ran twice.
"""

from __future__ import annotations

import enum
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Collection, Mapping

from cobs import cobs

from labctl.drivers.bridge_protocol import RESPONSE_BIT, Status, status_answer
from labctl.families.cmna.protocol import (
    CODES_PREFIX_BYTES,
    WEIGHTS_PREFIX_BYTES,
    Opcode,
    identify_answer,
    measure_answer,
    parse_codes_request,
    parse_monitor_request,
    parse_u16,
    parse_weights_request,
)
from labctl.drivers.framing import (
    DELIMITER,
    PROTOCOL_VERSION,
    FrameError,
    FrameSplitter,
    Packet,
    decode_packet,
    encode_packet,
)
from labctl.families.cmna.latch_codes import pack_rows, row_bytes, unpack_rows
from labctl.families.cmna.sim.die import DieFault, SimulatedDie

POLL_S = 0.1
"""How often idle server threads look at the stop flag."""
BUSY_AFTER_S = 0.010
"""A request that cannot have the die within this time (another link measuring) is answered BUSY."""
STALE_JUNK = b"\x13\x37 line noise \xff\xfe" + DELIMITER


class Fault(enum.Enum):
    """One injectable fault, applied to one request."""

    DROP = "drop"
    """The request is lost: not executed, not answered."""
    CORRUPT = "corrupt"
    """One byte of the answer packet is flipped on the way (the CRC fails)."""
    LATENCY = "latency"
    """The answer leaves ``FaultPlan.latency_s`` late."""
    DISCONNECT_BEFORE = "disconnect_before"
    """The connection closes after the request was read, before it executes."""
    DISCONNECT_AFTER = "disconnect_after"
    """The request executes, then the connection closes unanswered."""
    BUSY = "busy"
    """Answered BUSY without executing (a replay is never turned into BUSY)."""
    OVERRUN = "overrun"
    """The next gate of the die runs ``FaultPlan.overrun_ms`` long (STATUS bit 3)."""
    FRAGMENT = "fragment"
    """The answer is sent in chunks of ``FaultPlan.fragment_bytes`` with tiny pauses."""


@dataclass
class FaultPlan:
    """Which faults hit which request: scripted by request index and/or drawn with seeded probabilities.

    Request indices count packets that passed the CRC, from 0, over all
    connections of the server (the client's first request on open is index 0).
    """

    at: Mapping[int, Collection[Fault]] = field(default_factory=dict)
    probability: Mapping[Fault, float] = field(default_factory=dict)
    seed: int = 0
    latency_s: float = 0.1
    overrun_ms: float = 50.0
    fragment_bytes: int = 3
    fragment_pause_s: float = 0.0005
    stale_on_connect: bool = False
    """Send junk and an old valid frame before the first answer on every connection."""

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def faults(self, index: int) -> set[Fault]:
        chosen = set(self.at.get(index, ()))
        for fault, p in self.probability.items():
            if self._rng.random() < p:
                chosen.add(fault)
        return chosen

    def corrupt(self, frame: bytes) -> bytes:
        """Flip one byte of the packet inside ``frame`` (one 8-bit burst: CRC-16 always catches it)."""
        raw = bytearray(cobs.decode(frame[:-1]))
        raw[self._rng.randrange(len(raw))] ^= 0xFF
        return cobs.encode(bytes(raw)) + DELIMITER


class _Reject(Exception):
    """A check failed: answer this status, execute nothing."""

    def __init__(self, status: Status) -> None:
        super().__init__(status.name)
        self.status = status


def _status(status: Status) -> bytes:
    return bytes([status])


def _require_length(payload: bytes, size: int) -> None:
    if len(payload) != size:
        raise _Reject(Status.BAD_LENGTH)


def _require(condition: bool) -> None:
    if not condition:
        raise _Reject(Status.BAD_ARGUMENT)


def _no_op() -> None:
    """A count of 0 in WRITE_WEIGHTS or SET_INPUTS (section 4)."""


class BridgeServer:
    """A bridge on ``socket://host:port`` serving one die; one client at a time, reconnects welcome."""

    def __init__(self, die: SimulatedDie, host: str = "127.0.0.1", port: int = 0,
                 faults: FaultPlan | None = None) -> None:
        self.die = die
        self.chip = die.chip
        self.host = host
        self.port = port
        self.faults = faults if faults is not None else FaultPlan()
        self.executions: Counter[Opcode] = Counter()
        """Requests executed (answered OK), per op; replays are not counted."""
        self.requests = 0
        """Packets received that passed the CRC (the fault plan's request index)."""
        self._last: tuple[int, int, bytes] | None = None
        """(seq, op, answer payload) of the previous packet: the replay state (survives reconnects)."""
        self._handlers: dict[Opcode, Callable[[bytes], Callable[[], bytes | None]]] = {
            Opcode.IDENTIFY: self._identify, Opcode.RESET: self._reset, Opcode.STATUS: self._status,
            Opcode.WRITE_WEIGHTS: self._write_weights, Opcode.READ_WEIGHTS: self._read_weights,
            Opcode.SET_INPUTS: self._set_inputs, Opcode.ROUTE_EXT_IN: self._route_ext_in,
            Opcode.SET_MONITOR: self._set_monitor, Opcode.MEASURE: self._measure,
            Opcode.RUN_BATCH: self._run_batch,
        }
        self._request_lock = threading.Lock()
        self._running = False
        self._listener: socket.socket | None = None
        self._connection: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    # -- life cycle -------------------------------------------------------------

    def start(self) -> "BridgeServer":
        self._listener = socket.create_server((self.host, self.port))
        self._listener.settimeout(POLL_S)
        self.port = self._listener.getsockname()[1]
        self._running = True
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._running = False
        self._close_connection()
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> "BridgeServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        thread = threading.Thread(target=target, args=args, name=f"bridge-server-{self.port}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while self._running:
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection.settimeout(POLL_S)
            self._close_connection()  # a host that reconnects replaces its dead link
            self._connection = connection
            self._spawn(self._serve, connection)

    def _close_connection(self, connection: socket.socket | None = None) -> None:
        """Close ``connection`` (default: the current one), waking a thread blocked on it."""
        connection = connection or self._connection
        if connection is None:
            return
        if connection is self._connection:
            self._connection = None
        try:
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        connection.close()

    def _serve(self, connection: socket.socket) -> None:
        splitter = FrameSplitter()
        stale_pending = self.faults.stale_on_connect
        while self._running:
            try:
                data = connection.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            for frame in splitter.feed(data):
                try:
                    if not self._handle(connection, frame, stale_pending):
                        self._close_connection(connection)
                        return
                except OSError:  # the host went away while we answered
                    self._close_connection(connection)
                    return
                stale_pending = False
        self._close_connection(connection)

    # -- one packet ---------------------------------------------------------------

    def _handle(self, connection: socket.socket, frame: bytes, stale_pending: bool) -> bool:
        """Answer one frame; False when the connection must close (an injected disconnect)."""
        try:
            packet = decode_packet(frame)
            length_ok = True
        except FrameError as exc:
            if exc.header is None:
                return True  # bad COBS or CRC: dropped without answer (section 2)
            packet, length_ok = exc.header, False
        index = self.requests
        self.requests += 1
        faults = self.faults.faults(index)
        if Fault.DROP in faults:
            return True
        if Fault.DISCONNECT_BEFORE in faults:
            return False
        with self._request_lock:
            if self._last is not None and self._last[:2] == (packet.seq, packet.op):
                answer = self._last[2]
            else:
                answer = _status(Status.BUSY) if Fault.BUSY in faults else \
                    self._answer(packet, length_ok, Fault.OVERRUN in faults)
                self._last = (packet.seq, packet.op, answer)
        if Fault.DISCONNECT_AFTER in faults:
            return False
        if Fault.LATENCY in faults:
            time.sleep(self.faults.latency_s)
        out = encode_packet(packet.seq, packet.op | RESPONSE_BIT, answer)
        if Fault.CORRUPT in faults:
            out = self.faults.corrupt(out)
        if stale_pending:
            old = encode_packet((packet.seq - 1) & 0xFF, packet.op | RESPONSE_BIT, _status(Status.OK))
            connection.sendall(STALE_JUNK + old)
        if Fault.FRAGMENT in faults:
            step = self.faults.fragment_bytes
            for start in range(0, len(out), step):
                connection.sendall(out[start:start + step])
                time.sleep(self.faults.fragment_pause_s)
        else:
            connection.sendall(out)
        return True

    def _answer(self, packet: Packet, length_ok: bool, overrun: bool) -> bytes:
        """Status byte plus payload, checked in the order of section 4."""
        if packet.version != PROTOCOL_VERSION:
            return _status(Status.BAD_VERSION)
        if not length_ok or len(packet.payload) > self.chip.max_payload:
            return _status(Status.BAD_LENGTH)
        try:
            op = Opcode(packet.op)
        except ValueError:
            return _status(Status.BAD_OPCODE)
        try:
            run = self._handlers[op](packet.payload)
        except _Reject as reject:
            return _status(reject.status)
        if not self.die.lock.acquire(timeout=BUSY_AFTER_S):
            return _status(Status.BUSY)
        try:
            if overrun:
                self.die.overrun_next_gate_ms = self.faults.overrun_ms
            body = run()
        except ValueError:
            return _status(Status.BAD_ARGUMENT)
        except DieFault:
            return _status(Status.HW_FAULT)
        finally:
            self.die.lock.release()
        self.executions[op] += 1
        return _status(Status.OK) + (body or b"")

    # -- per-op checks; each returns what executes the op -----------------------------

    def _identify(self, payload: bytes) -> Callable[[], bytes]:
        _require_length(payload, 0)
        return partial(identify_answer, self.chip)

    def _reset(self, payload: bytes) -> Callable[[], None]:
        _require_length(payload, 0)
        return self.die.reset

    def _status(self, payload: bytes) -> Callable[[], bytes]:
        _require_length(payload, 0)
        return lambda: status_answer(*self.die.status())

    def _matrix_shape(self, matrix: int) -> tuple[int, int]:
        _require(0 <= matrix < self.chip.n_matrices)
        return self.chip.matrix_shape(matrix)

    def _write_weights(self, payload: bytes) -> Callable[[], None]:
        if len(payload) < WEIGHTS_PREFIX_BYTES:
            raise _Reject(Status.BAD_LENGTH)
        matrix, first_row, count, packed = parse_weights_request(payload)
        if count == 0:
            _require_length(packed, 0)
            return _no_op
        rows, cols = self._matrix_shape(matrix)
        _require_length(packed, count * row_bytes(cols))
        _require(first_row + count <= rows)
        return partial(self.die.write_latches, matrix, first_row, unpack_rows(packed, count, cols))

    def _read_weights(self, payload: bytes) -> Callable[[], bytes]:
        _require_length(payload, WEIGHTS_PREFIX_BYTES)
        matrix, first_row, count, _ = parse_weights_request(payload)
        rows, cols = self._matrix_shape(matrix)
        _require(first_row + count <= rows)
        _require(1 + count * row_bytes(cols) <= self.chip.max_payload)
        return lambda: pack_rows(self.die.read_latches(matrix, first_row, count))

    def _set_inputs(self, payload: bytes) -> Callable[[], None]:
        if len(payload) < CODES_PREFIX_BYTES:
            raise _Reject(Status.BAD_LENGTH)
        first, count, codes = parse_codes_request(payload)
        _require_length(payload, CODES_PREFIX_BYTES + 2 * count)
        if count == 0:
            return _no_op
        _require(first + count <= self.chip.n_inputs)
        _require(int(codes.max()) <= self.chip.max_dac_code)
        return partial(self.die.set_dac, first, codes)

    def _route_ext_in(self, payload: bytes) -> Callable[[], None]:
        _require_length(payload, 2)
        channel: int | None = parse_u16(payload)
        if channel == 0xFFFF:
            channel = None
        else:
            _require(channel < self.chip.n_inputs)
        return partial(self.die.route_ext_in, channel)

    def _set_monitor(self, payload: bytes) -> Callable[[], None]:
        _require_length(payload, 3)
        layer, neuron = parse_monitor_request(payload)
        if neuron is not None:
            _require(layer < self.chip.n_layers and neuron < self.chip.layer_sizes[layer])
        return partial(self.die.set_monitor, layer, neuron)

    def _check_gate(self, gate_ms: int) -> None:
        _require(1 <= gate_ms <= self.chip.max_gate_ms)

    def _measure(self, payload: bytes) -> Callable[[], bytes]:
        _require_length(payload, 2)
        gate_ms = parse_u16(payload)
        self._check_gate(gate_ms)
        return lambda: measure_answer(*self.die.measure(gate_ms))

    def _run_batch(self, payload: bytes) -> Callable[[], bytes]:
        if len(payload) < CODES_PREFIX_BYTES:
            raise _Reject(Status.BAD_LENGTH)
        gate_ms, count, codes = parse_codes_request(payload)
        n0, n_out = self.chip.n_inputs, self.chip.n_outputs
        _require_length(payload, CODES_PREFIX_BYTES + 2 * count * n0)
        self._check_gate(gate_ms)
        _require(count >= 1)
        _require(int(codes.max()) <= self.chip.max_dac_code)
        _require(1 + 4 * count * n_out <= self.chip.max_payload)
        patterns = codes.reshape(count, n0)
        return lambda: self.die.run_batch(gate_ms, patterns).astype("<u4", copy=False).tobytes()
