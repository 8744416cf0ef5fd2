"""A simulated SMU on a raw TCP socket, as an LXI instrument serves port 5025.

Contract section 3: emulators expose each instrument as a raw SCPI/TSP socket
(``TCPIP0::HOST::PORT::SOCKET``, lines ending in ``\\n``), so labctl reaches a
simulated bench through pyvisa exactly as it reaches hardware. Each command
line runs under ``lock`` (pass the die's lock): a reading then never sees the
die half-way through a bridge operation. The die's ``pad.changed()`` callbacks
run inside that lock, so a die lock they take again must be an ``RLock``.

:meth:`InstrumentServer.recording` keeps a transcript of the lines received,
as they came over the socket, so tests can pin a driver's exact commands.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import Any, Protocol


class LineInstrument(Protocol):
    """What the server needs from an emulator."""

    def execute(self, line: str) -> str | None:
        """Run one command line; return its answer line, or None."""


_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


class _Handler(socketserver.BaseRequestHandler):
    server: _TcpServer

    def handle(self) -> None:
        self.server.owner.serve_connection(self.request)


class _TcpServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, owner: InstrumentServer, address: tuple[str, int]) -> None:
        self.owner = owner
        super().__init__(address, _Handler)


class InstrumentServer:
    """Serve ``emulator`` on ``host:port`` (port 0 picks a free one), one thread per connection."""

    POLL_INTERVAL_S = 0.02
    """How often the accept loop looks for :meth:`stop`: it bounds how long stopping takes."""

    def __init__(
        self,
        emulator: LineInstrument,
        host: str = "127.0.0.1",
        port: int = 0,
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self.emulator = emulator
        self.host = host
        self.lock = lock if lock is not None else threading.Lock()
        self._server = _TcpServer(self, (host, port))
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._transcripts: list[list[str]] = []
        self._transcripts_lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def resource(self) -> str:
        """The VISA resource name a driver opens."""
        return f"TCPIP0::{self.host}::{self.port}::SOCKET"

    def start(self) -> InstrumentServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": self.POLL_INTERVAL_S},
            name=f"smu-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, drop open connections (clients see the instrument vanish), free the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        with self._connections_lock:
            for connection in self._connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # the client closed it already
        self._server.server_close()

    def __enter__(self) -> InstrumentServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    @contextmanager
    def recording(self) -> Iterator[list[str]]:
        """Yield a list that collects every line received while the block runs, in arrival order.

        Lines are kept as sent, without the ``\\n`` terminator and unstripped
        (a stray blank line or trailing space shows). A line is recorded when
        the server reads it: a write that no query follows may still be in
        flight when the block ends, so end a recorded exchange with a query.
        """
        transcript: list[str] = []
        with self._transcripts_lock:
            self._transcripts.append(transcript)
        try:
            yield transcript
        finally:
            with self._transcripts_lock:
                # by identity: two transcripts may hold equal lines
                self._transcripts = [other for other in self._transcripts if other is not transcript]

    def serve_connection(self, connection: socket.socket) -> None:
        """Answer one client line by line until it disconnects.

        Delayed ACKs are switched off (Linux ``TCP_QUICKACK``): a client that
        sends a command and then a query in two packets, without TCP_NODELAY
        (pyvisa-py), would otherwise stall 40 ms on every configuration step.
        """
        with self._connections_lock:
            self._connections.add(connection)
        pending = b""
        try:
            while True:
                if _QUICKACK is not None:
                    connection.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
                data = connection.recv(4096)
                if not data:
                    return
                *lines, pending = (pending + data).split(b"\n")
                for raw in lines:
                    text = raw.decode("ascii", errors="replace")
                    self._record(text)
                    self._answer(connection, text.strip())
        except OSError:
            pass  # the client went away mid-line: just end this connection
        finally:
            with self._connections_lock:
                self._connections.discard(connection)

    def _record(self, text: str) -> None:
        if self._transcripts:
            with self._transcripts_lock:
                for transcript in self._transcripts:
                    transcript.append(text)

    def _answer(self, connection: socket.socket, line: str) -> None:
        if not line:
            return
        with self.lock:
            answer = self.emulator.execute(line)
        if answer is not None:
            connection.sendall(answer.encode("ascii", errors="replace") + b"\n")
