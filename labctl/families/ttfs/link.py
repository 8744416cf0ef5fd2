"""Host client of a TTFS bench's bridge: typed operations over the generic link (docs/specs/ttfs-bench.md 2).

:class:`TtfsBridge` adds the TTFS operations to :class:`~labctl.drivers.bridge.BridgeLink`,
which does the link's work (resync, seq numbers, resends with the same seq,
BUSY backoff, reconnects, the lock, transcripts). Writes, reads and pattern
batches are split so that every request and every answer fits the bridge's
maximum payload N (from IDENTIFY, the answer's status byte included) and a
batch lasts at most 10 s on the die; a split request is checked whole before
its first part is sent.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence, TypeVar

import numpy as np

from labctl.drivers.bridge import STATUS_BYTES, BridgeLink, Transaction
from labctl.drivers.bridge_protocol import (
    RESPONSE_BIT,
    BridgeError,
    BridgeProtocolError,
    BridgeTimeoutError,
    Status,
    split_status,
)
from labctl.drivers.framing import encode_packet
from labctl.families.ttfs.identify import DieDescription, parse_identify
from labctl.families.ttfs.patterns import (
    MAX_BATCH_S,
    PatternBatch,
    Timing,
    apply_patterns_request,
    bias_times_request,
    parse_apply_patterns_answer,
    pattern_period_ns,
    patterns_per_frame,
    set_timing_request,
)
from labctl.families.ttfs.probe_ops import Monitors, hold_row_request, parse_monitors, select_probe_request
from labctl.families.ttfs.protocol import STATUS_MEANINGS, Opcode, StatusFlag
from labctl.families.ttfs.synapse_codes import (
    WRITE_PREFIX_BYTES,
    WriteOutcome,
    pack_codes,
    parse_read_synapses_answer,
    parse_write_synapses_answer,
    read_synapses_request,
    write_synapses_request,
)

T = TypeVar("T")


class TtfsBridge(BridgeLink):
    """Typed, retrying client of one TTFS bridge (link rules: :mod:`labctl.drivers.bridge`)."""

    ops = Opcode
    status_meanings = STATUS_MEANINGS
    status_flags = StatusFlag
    chip: DieDescription | None = None
    """The IDENTIFY answer, once :meth:`identify` ran."""
    timing: Timing = Timing()
    """The window and gap last set through this link (the bridge's defaults until then): they size batches."""

    # -- small operations ----------------------------------------------------------

    def identify(self) -> DieDescription:
        """IDENTIFY; the answer is kept in :attr:`chip` and sizes every later request."""
        self.chip = parse_identify(self.request(Opcode.IDENTIFY, b""))
        return self.chip

    def _chip(self) -> DieDescription:
        return self.chip if self.chip is not None else self.identify()

    def reset(self) -> None:
        """RESET: the bridge's registers to defaults, sticky flags cleared; synapse codes untouched."""
        self.request(Opcode.RESET, b"")
        self.timing = Timing()

    def read_monitors(self) -> Monitors:
        return parse_monitors(self.request(Opcode.READ_MONITORS, b""))

    def set_timing(self, window_ns: int, gap_us: int = 0) -> None:
        self.request(Opcode.SET_TIMING, set_timing_request(window_ns, gap_us))
        self.timing = Timing(window_ns, gap_us)

    def set_bias_times(self, codes: Sequence[int]) -> None:
        """SET_BIAS_TIMES: the bias row of matrix m switches on at 10 ns x codes[m] (255: never)."""
        self.request(Opcode.SET_BIAS_TIMES, bias_times_request(codes))

    def select_probe(self, layer: int, neuron: int | None) -> None:
        """SELECT_PROBE: a neuron of layer >= 1, or layer 0 with a reference 0..3; None disconnects."""
        self.request(Opcode.SELECT_PROBE, select_probe_request(layer, neuron))

    def hold_row(self, matrix: int, row: int | None) -> None:
        """HOLD_ROW: row ``row`` of matrix ``matrix`` on in DC; None releases."""
        self.request(Opcode.HOLD_ROW, hold_row_request(matrix, row))

    # -- synapse codes --------------------------------------------------------------

    def write_synapses(self, matrix: int, codes, first_row: int = 0, mode: int = 0) -> WriteOutcome:
        """WRITE_SYNAPSES signed codes (rows, n_(m+1)) from ``first_row``, split to fit; outcomes summed."""
        with self.lock_and_chip() as chip:
            rows, cols = chip.matrix_shape(matrix)
            values = np.asarray(codes, dtype=np.int64)
            if values.ndim != 2 or values.shape[1] != cols:
                raise ValueError(f"matrix {matrix} rows have {cols} columns, got codes of shape {values.shape}")
            _check_span(first_row, values.shape[0], rows, matrix)
            pack_codes(values)  # refuses a code outside -15..+15 before any row is sent
            per = _per_request((chip.max_payload - WRITE_PREFIX_BYTES) // cols, chip, f"a row of matrix {matrix}")
            programmed = failed = 0
            for start in range(0, values.shape[0], per):
                chunk = values[start:start + per]
                # a write of many rows takes up to 12 ms per row (2.7)
                answer = self.request(Opcode.WRITE_SYNAPSES,
                                      write_synapses_request(matrix, first_row + start, chunk, mode),
                                      12e-3 * len(chunk))
                outcome = parse_write_synapses_answer(answer)
                programmed += outcome.rows_programmed
                failed += outcome.failed_cells
            return WriteOutcome(programmed, failed)

    def read_synapses(self, matrix: int, first_row: int = 0, count: int | None = None) -> np.ndarray:
        """READ_SYNAPSES: what the cells hold, (rows, n_(m+1)) int8, split to fit."""
        with self.lock_and_chip() as chip:
            rows, cols = chip.matrix_shape(matrix)
            count = rows - first_row if count is None else count
            _check_span(first_row, count, rows, matrix)
            per = _per_request((chip.max_payload - STATUS_BYTES) // cols, chip, f"a row of matrix {matrix}")
            out = np.empty((count, cols), np.int8)
            for start in range(0, count, per):
                n = min(per, count - start)
                answer = self.request(Opcode.READ_SYNAPSES, read_synapses_request(matrix, first_row + start, n),
                                      0.5e-3 * n)
                out[start:start + n] = parse_read_synapses_answer(answer, n, cols)
            return out

    # -- patterns -------------------------------------------------------------------

    def apply_patterns(self, codes, *, entry: int = 0, readout: int | None = None, repeats: int = 1,
                       idle: bool = False) -> np.ndarray:
        """APPLY_PATTERNS time codes (P, n_entry); TDC codes (P, n_readout) uint16, 0xFFFF = no spike.

        ``readout`` defaults to the output layer. Split so that every request
        and answer fits the maximum payload and each frame's ``R x P x T_p``
        stays within 10 s (RCS-S outputs: 1365 patterns a frame).
        """
        with self.lock_and_chip() as chip:
            readout = chip.n_layers - 1 if readout is None else readout
            values = np.asarray(codes)
            if not 0 <= entry < readout < chip.n_layers:
                raise ValueError(f"entry layer {entry} and readout layer {readout} must satisfy "
                                 f"0 <= entry < readout <= {chip.n_layers - 1}")
            n_e, n_r = chip.layer_sizes[entry], chip.layer_sizes[readout]
            if values.ndim != 2 or values.shape[1] != n_e:
                raise ValueError(f"patterns must be (P, {n_e}) time codes for layer {entry}, got shape {values.shape}")
            period_s = pattern_period_ns(self.timing, n_e) * 1e-9
            per = min(patterns_per_frame(chip, entry, readout), int(MAX_BATCH_S / (repeats * period_s)))
            per = _per_request(per, chip, f"one pattern of layer {entry} repeated {repeats} times")
            batch = PatternBatch(values, entry, readout, repeats, idle)
            apply_patterns_request(batch)  # refuses bad codes or counts before anything is sent
            tdc = np.empty((values.shape[0], n_r), np.uint16)
            for start in range(0, values.shape[0], per):
                chunk = values[start:start + per]
                request = apply_patterns_request(PatternBatch(chunk, entry, readout, repeats, idle))
                answer = self.request(Opcode.APPLY_PATTERNS, request, repeats * len(chunk) * period_s)
                tdc[start:start + len(chunk)] = parse_apply_patterns_answer(answer, len(chunk), n_r)
            return tdc

    def apply_patterns_while(self, codes, during: Callable[[], T], *, entry: int = 0, readout: int | None = None,
                             repeats: int = 1, idle: bool = False) -> tuple[np.ndarray, T]:
        """One frame of APPLY_PATTERNS with ``during()`` run between sending it and collecting its answer.

        Contract 3.5: the bridge answers only after the batch, so SMU readings
        taken while it runs happen here. The request is sent once; if its
        answer is lost it is resent with the same seq (answered from the
        bridge's replay, never run twice). The batch must fit one frame.
        """
        with self.lock_and_chip() as chip:
            readout = chip.n_layers - 1 if readout is None else readout
            values = np.asarray(codes)
            request = apply_patterns_request(PatternBatch(values, entry, readout, repeats, idle))
            period_s = pattern_period_ns(self.timing, chip.layer_sizes[entry]) * 1e-9
            gate_s = repeats * values.shape[0] * period_s
            if values.shape[0] > patterns_per_frame(chip, entry, readout) or gate_s > MAX_BATCH_S:
                raise BridgeProtocolError(f"{values.shape[0]} patterns x {repeats} repeats do not fit one frame")
            if not self.is_open:
                raise BridgeError(f"bridge {self.port} is not open (APPLY_PATTERNS)")
            op = self._op(Opcode.APPLY_PATTERNS)
            started, seq = time.monotonic(), self._next_seq()
            frame = encode_packet(seq, op, request)
            answer, problem = self._attempt(frame, seq, op, 0.0)  # sends; the answer comes after the batch
            if answer is None and problem != "no answer":
                raise BridgeError(f"cannot send APPLY_PATTERNS to bridge {self.port}: {problem}")
            result = during()
            answer = self._await(seq, op | RESPONSE_BIT, time.monotonic() + self.timeout_s + gate_s)
            attempts = 1
            while answer is None and attempts < self.max_attempts:
                attempts += 1
                answer, problem = self._attempt(frame, seq, op, self.timeout_s + gate_s)
            if self.transcript is not None:
                status = Status(answer[0]) if answer and answer[0] in Status._value2member_map_ else None
                self.transcript(Transaction(started, seq, op, request, status, answer[1:] if answer else b"",
                                            time.monotonic() - started, attempts))
            if answer is None:
                raise BridgeTimeoutError(f"no valid answer from bridge {self.port} to APPLY_PATTERNS after "
                                         f"{attempts} attempts ({problem})")
            payload = split_status(op, answer, self.ops, self.status_meanings)
            return parse_apply_patterns_answer(payload, values.shape[0], chip.layer_sizes[readout]), result

    def lock_and_chip(self) -> "_Locked":
        """``with link.lock_and_chip() as chip``: the link's lock held, the IDENTIFY record at hand."""
        return _Locked(self)


class _Locked:
    def __init__(self, link: TtfsBridge) -> None:
        self.link = link

    def __enter__(self) -> DieDescription:
        self.link._lock.acquire()
        try:
            return self.link._chip()
        except BaseException:
            self.link._lock.release()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.link._lock.release()


def _per_request(items: int, chip: DieDescription, what: str) -> int:
    if items < 1:
        raise BridgeProtocolError(f"{what} does not fit one request (maximum payload {chip.max_payload} bytes, "
                                  f"at most {MAX_BATCH_S:g} s of patterns)")
    return items


def _check_span(first: int, count: int, size: int, matrix: int) -> None:
    """Refuse before sending: a split request must not fail halfway."""
    if first < 0 or count < 0 or first + count > size:
        raise ValueError(f"rows {first}..{first + count - 1} outside 0..{size - 1} of matrix {matrix}")

