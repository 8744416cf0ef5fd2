"""A loopback bridge server for simulated dies: bridge protocol v1 over TCP, for any device family.

It behaves as an FPGA board does, so the host client cannot tell it from a
real bridge: it answers every packet that decodes and passes its CRC exactly
once, checks version, then length, then opcode, then the op's own rules
(:meth:`LoopbackBridgeServer.prepare`), then the hardware, replays its
previous answer when a packet repeats the previous (seq, op) - error answers
and BUSY included, and across reconnects - and executes one request at a
time under the die's lock. The die gives ``lock`` and ``chip.max_payload``;
what the ops are and do is the family's: a subclass gives ``opcodes``,
``prepare`` and ``hardware_faults`` (CMNA:
:mod:`labctl.families.cmna.sim.bridge_server`).

A :class:`FaultPlan` injects the link and bridge faults the client must
survive (lost requests, damaged answers, latency, dropped connections, BUSY,
gate overruns, fragmented answers, stale bytes after connecting). Tests read
:attr:`LoopbackBridgeServer.executions` to prove that nothing ran twice.
"""

from __future__ import annotations

import enum
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Collection, Mapping

from cobs import cobs

from labctl.drivers.bridge_protocol import RESPONSE_BIT, Status
from labctl.drivers.framing import (
    DELIMITER,
    PROTOCOL_VERSION,
    FrameError,
    FrameSplitter,
    Packet,
    decode_packet,
    encode_packet,
)

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


class Rejected(Exception):
    """A check failed: answer this status, execute nothing."""

    def __init__(self, status: Status) -> None:
        super().__init__(status.name)
        self.status = status


def _status(status: Status) -> bytes:
    return bytes([status])


class LoopbackBridgeServer:
    """A bridge on ``socket://host:port`` serving one die; one client at a time, reconnects welcome."""

    opcodes: ClassVar[type[enum.IntEnum]]
    """The family's ops; a value outside it is answered BAD_OPCODE."""
    hardware_faults: ClassVar[tuple[type[Exception], ...]] = ()
    """What a die raises when the hardware cannot do the op (answered HW_FAULT)."""

    def __init__(self, die, host: str = "127.0.0.1", port: int = 0, faults: FaultPlan | None = None) -> None:
        self.die = die
        self.chip = die.chip
        """What the die says of itself (IDENTIFY): its ``max_payload`` bounds every request."""
        self.host = host
        self.port = port
        self.faults = faults if faults is not None else FaultPlan()
        self.executions: Counter[enum.IntEnum] = Counter()
        """Requests executed (answered OK), per op; replays are not counted."""
        self.requests = 0
        """Packets received that passed the CRC (the fault plan's request index)."""
        self._last: tuple[int, int, bytes] | None = None
        """(seq, op, answer payload) of the previous packet: the replay state (survives reconnects)."""
        self._request_lock = threading.Lock()
        self._running = False
        self._listener: socket.socket | None = None
        self._connection: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    # -- life cycle -------------------------------------------------------------

    def start(self) -> "LoopbackBridgeServer":
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

    def __enter__(self) -> "LoopbackBridgeServer":
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
        """Status byte plus payload, checked in the order of the bridge protocol (version, length, opcode,
        the op's rules, hardware)."""
        if packet.version != PROTOCOL_VERSION:
            return _status(Status.BAD_VERSION)
        if not length_ok or len(packet.payload) > self.chip.max_payload:
            return _status(Status.BAD_LENGTH)
        try:
            op = self.opcodes(packet.op)
        except ValueError:
            return _status(Status.BAD_OPCODE)
        try:
            run = self.prepare(op, packet.payload)
        except Rejected as reject:
            return _status(reject.status)
        if not self.die.lock.acquire(timeout=BUSY_AFTER_S):
            return _status(Status.BUSY)
        try:
            body = self.execute(run, overrun)
        except Rejected as reject:
            return _status(reject.status)
        except self.hardware_faults:
            return _status(Status.HW_FAULT)
        finally:
            self.die.lock.release()
        self.executions[op] += 1
        return _status(Status.OK) + (body or b"")

    # -- what a family's server gives ------------------------------------------------

    def prepare(self, op: enum.IntEnum, payload: bytes) -> Callable[[], bytes | None]:
        """Check the request (raise :class:`Rejected`) and return what executes it on the die."""
        raise NotImplementedError

    def execute(self, run: Callable[[], bytes | None], overrun: bool) -> bytes | None:
        """Run a prepared op under the die's lock; ``overrun``: the fault plan asks for a long gate."""
        return run()
