"""The simulated CMNA bridge: the loopback bridge server in front of a :class:`SimulatedDie` (contract 2, 4).

Transport, replay, fault injection and the order of the checks are the
family-blind :class:`~labctl.sim.bridge_server.LoopbackBridgeServer`'s; this
module holds what is CMNA's: each op's length and argument rules (section 4)
and what it does on the die.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

from labctl.drivers.bridge_protocol import Status, status_answer
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
from labctl.families.cmna.latch_codes import pack_rows, row_bytes, unpack_rows
from labctl.families.cmna.sim.die import DieFault, SimulatedDie
from labctl.sim.bridge_server import FaultPlan, LoopbackBridgeServer, Rejected


def _require_length(payload: bytes, size: int) -> None:
    if len(payload) != size:
        raise Rejected(Status.BAD_LENGTH)


def _require(condition: bool) -> None:
    if not condition:
        raise Rejected(Status.BAD_ARGUMENT)


def _no_op() -> None:
    """A count of 0 in WRITE_WEIGHTS or SET_INPUTS (section 4)."""


class BridgeServer(LoopbackBridgeServer):
    """A CMNA bridge on ``socket://host:port`` serving one die; one client at a time, reconnects welcome."""

    opcodes = Opcode
    hardware_faults = (DieFault,)

    def __init__(self, die: SimulatedDie, host: str = "127.0.0.1", port: int = 0,
                 faults: FaultPlan | None = None) -> None:
        super().__init__(die, host, port, faults)
        self._handlers: dict[Opcode, Callable[[bytes], Callable[[], bytes | None]]] = {
            Opcode.IDENTIFY: self._identify, Opcode.RESET: self._reset, Opcode.STATUS: self._status,
            Opcode.WRITE_WEIGHTS: self._write_weights, Opcode.READ_WEIGHTS: self._read_weights,
            Opcode.SET_INPUTS: self._set_inputs, Opcode.ROUTE_EXT_IN: self._route_ext_in,
            Opcode.SET_MONITOR: self._set_monitor, Opcode.MEASURE: self._measure,
            Opcode.RUN_BATCH: self._run_batch,
        }

    def prepare(self, op: Opcode, payload: bytes) -> Callable[[], bytes | None]:
        return self._handlers[op](payload)

    def execute(self, run: Callable[[], bytes | None], overrun: bool) -> bytes | None:
        if overrun:
            self.die.overrun_next_gate_ms = self.faults.overrun_ms
        try:
            return run()
        except ValueError:
            raise Rejected(Status.BAD_ARGUMENT) from None

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
            raise Rejected(Status.BAD_LENGTH)
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
            raise Rejected(Status.BAD_LENGTH)
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
            raise Rejected(Status.BAD_LENGTH)
        gate_ms, count, codes = parse_codes_request(payload)
        n0, n_out = self.chip.n_inputs, self.chip.n_outputs
        _require_length(payload, CODES_PREFIX_BYTES + 2 * count * n0)
        self._check_gate(gate_ms)
        _require(count >= 1)
        _require(int(codes.max()) <= self.chip.max_dac_code)
        _require(1 + 4 * count * n_out <= self.chip.max_payload)
        patterns = codes.reshape(count, n0)
        return lambda: self.die.run_batch(gate_ms, patterns).astype("<u4", copy=False).tobytes()
