"""Host client of a CMNA bench's bridge: typed operations over the generic link (contract sections 2 and 4).

:class:`Bridge` adds CMNA's operations to :class:`~labctl.drivers.bridge.BridgeLink`,
which does the link's work (resync, seq numbers, resends, BUSY backoff,
reconnects, the lock, transcripts). Requests and answers are split so that both
fit the bridge's maximum payload (from IDENTIFY, the answer's status byte
included); a split request is checked whole before its first part is sent.
"""

from __future__ import annotations

import numpy as np

from labctl.drivers.bridge import STATUS_BYTES, BridgeLink
from labctl.drivers.bridge_protocol import BridgeProtocolError
from labctl.families.cmna.chip import ChipDescription
from labctl.families.cmna.latch_codes import pack_rows, row_bytes, unpack_rows
from labctl.families.cmna.protocol import (
    CODES_PREFIX_BYTES,
    STATUS_MEANINGS,
    WEIGHTS_PREFIX_BYTES,
    BatchResult,
    Measurement,
    Opcode,
    StatusFlag,
    codes_request,
    monitor_request,
    parse_identify,
    parse_measure,
    parse_run_batch,
    run_batch_request,
    u16_request,
    weights_request,
)


class Bridge(BridgeLink):
    """Typed, retrying client of one CMNA bridge (link rules: :mod:`labctl.drivers.bridge`)."""

    ops = Opcode
    status_meanings = STATUS_MEANINGS
    status_flags = StatusFlag
    chip: ChipDescription | None = None
    """The IDENTIFY answer, once :meth:`identify` ran."""

    # -- typed operations (section 2, "Requests") -----------------------------------

    def identify(self) -> ChipDescription:
        """IDENTIFY; the answer is kept in :attr:`chip` and sizes every later request."""
        self.chip = parse_identify(self.request(Opcode.IDENTIFY, b""))
        return self.chip

    def _chip(self) -> ChipDescription:
        return self.chip if self.chip is not None else self.identify()

    def reset(self) -> None:
        """RESET: latches and DAC codes to 0, EXT_IN and MON disconnected, sticky flags cleared."""
        self.request(Opcode.RESET, b"")

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
                self.request(Opcode.WRITE_WEIGHTS,
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
                packed = self.request(Opcode.READ_WEIGHTS, weights_request(matrix, first_row + start, n))
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
                self.request(Opcode.SET_INPUTS, codes_request(first_channel + start, values[start:start + per]))

    def route_ext_in(self, channel: int | None) -> None:
        """ROUTE_EXT_IN: connect the EXT_IN pad to one layer-0 channel; None disconnects."""
        self.request(Opcode.ROUTE_EXT_IN, u16_request(channel))

    def set_monitor(self, layer: int, neuron: int | None) -> None:
        """SET_MONITOR: copy one neuron's output current to MON; None disconnects."""
        self.request(Opcode.SET_MONITOR, monitor_request(layer, neuron))

    def measure(self, gate_ms: int) -> Measurement:
        """MEASURE one gate; rates are counts over the gate that really elapsed (section 4)."""
        with self._lock:
            n_out = self._chip().n_outputs
            return parse_measure(self.request(Opcode.MEASURE, u16_request(gate_ms), gate_ms * 1e-3), n_out)

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
                answer = self.request(Opcode.RUN_BATCH, run_batch_request(gate_ms, chunk),
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
