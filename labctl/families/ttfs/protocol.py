"""TTFS's part of bridge protocol v1: opcodes, status flags, payload layouts (docs/specs/ttfs-bench.md 2).

The framing, the status codes and their errors, the common IDENTIFY and STATUS
requests and the STATUS layout are generic (:mod:`labctl.drivers.bridge_protocol`,
:mod:`labctl.drivers.framing`); what is here is this family's: the opcodes of
2.2, the IDENTIFY layout of 2.3, the signed synapse rows of 2.4, APPLY_PATTERNS
of 2.5 and the flags of 2.6.

Pure functions only: each request has a builder (host side) and a parser
(bridge side), each answer a builder (bridge side) and a parser (host side),
so the client (:mod:`labctl.families.ttfs.link`) and the simulated bridge share
one definition of every layout. Parsers of requests take the die's geometry
(its IDENTIFY record) and apply the length and argument rules of 2.7: a broken
length raises :class:`RequestLengthError`, a value out of range
:class:`RequestArgumentError`; each carries the status a bridge answers. The
builders refuse the same values before anything is sent. Parsers of answers
raise :class:`BridgeProtocolError` on anything off-contract. All integers are
little-endian, ``f32`` is IEEE-754 binary32.
"""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from labctl.drivers import bridge_protocol
from labctl.drivers.bridge_protocol import (
    BridgeError,
    BridgeProtocolError,
    BridgeStatus,
    CommonOp,
    Status,
    check_length,
    f32_value,
)

DEVICE_PROTOCOL = 0x03
"""IDENTIFY offset 0 of a TTFS bridge (CMNA answers 0x01; 0x02 is reserved)."""
FAMILY_TAG = b"TTFS"
SERIAL_BYTES = 16
PART_BYTES = 8
MAX_CODE = 15
"""Synapse codes are -15..+15 (2.4)."""
NO_INPUT = 255
"""An input or bias time code that never switches its row on (1.8)."""
NO_SPIKE = 0xFFFF
"""The TDC code of a neuron that did not fire before t = W (1.8)."""
DISCONNECT = 0xFFFF
"""SELECT_PROBE neuron that disconnects the probe; HOLD_ROW row that releases the held row."""
WINDOW_NS = (1000, 65000)
"""SET_TIMING's output window range (2.2)."""
DEFAULT_WINDOW_NS = 16000
T_RESET_NS = 2000
"""The reset phase of every pattern period (1.3, G)."""
MAX_BATCH_S = 10.0
"""Longest R x P x T_p of one APPLY_PATTERNS (2.5)."""
FLAG_IDLE = 0x01
"""APPLY_PATTERNS flags bit 0: no row switches on (2.5); bits 1..7 are reserved."""


class Opcode(enum.IntEnum):
    IDENTIFY = CommonOp.IDENTIFY.value
    RESET = 0x02
    STATUS = CommonOp.STATUS.value
    READ_MONITORS = 0x04
    WRITE_SYNAPSES = 0x10
    READ_SYNAPSES = 0x11
    SET_TIMING = 0x20
    SET_BIAS_TIMES = 0x21
    SELECT_PROBE = 0x22
    HOLD_ROW = 0x23
    APPLY_PATTERNS = 0x30


class StatusFlag(enum.IntFlag):
    """STATUS flag bits (2.6)."""

    SUPPLY_OUT_OF_RANGE = 1 << 0
    OVERSTRESS = 1 << 1
    SYNAPSES_INVALID = 1 << 2
    BIAS_OUT_OF_RANGE = 1 << 3
    OVERTEMP = 1 << 4
    TDC_OVERFLOW = 1 << 5
    VERIFY_FAILED = 1 << 6
    TIMEBASE_UNLOCKED = 1 << 7
    ENDURANCE = 1 << 8


STATUS_FLAG_WORDS = {
    StatusFlag.OVERSTRESS: "DIE DAMAGED OR OVERSTRESSED: an absolute maximum rating was exceeded (contract 2.6; "
                           "never clears on a damaged die)",
    StatusFlag.SYNAPSES_INVALID: "some synapse row holds undefined codes after an interrupted write: rewrite it",
    StatusFlag.SUPPLY_OUT_OF_RANGE: "VDD is not within 1.71 to 1.89 V at the pad (unpowered)",
    StatusFlag.BIAS_OUT_OF_RANGE: "VTH, EREV_EXC or EREV_INH is outside its operating range",
    StatusFlag.OVERTEMP: "die above 85 degC",
    StatusFlag.TIMEBASE_UNLOCKED: "the die's PLL is not locked (TDC invalid)",
    StatusFlag.VERIFY_FAILED: "a synapse cell failed verify since the last RESET",
    StatusFlag.ENDURANCE: "some synapse row has passed 10 000 erase/program cycles",
    StatusFlag.TDC_OVERFLOW: "a readout neuron did not fire in the last batch (information)",
}
"""What each STATUS flag means, in words (damage first: it is what a lab engineer must see)."""


STATUS_MEANINGS: dict[Status, str] = {
    Status.HW_FAULT: ("die damaged, VDD or a bias out of its operating range, or the time base unlocked "
                      "(contract 2.7); nothing was executed"),
    Status.BAD_ARGUMENT: ("an argument is out of range for this die, or a row is held (release it first); "
                          "nothing was changed"),
}
"""What a status means on a TTFS bench, where more precise than the generic text."""


# -- errors of malformed requests --------------------------------------------------


class MalformedRequestError(BridgeError, ValueError):
    """A request that breaks a rule of contract 2.7; ``status`` is what a bridge answers it."""

    status: Status = Status.BAD_ARGUMENT


class RequestLengthError(MalformedRequestError):
    status = Status.BAD_LENGTH


class RequestArgumentError(MalformedRequestError):
    status = Status.BAD_ARGUMENT


def _length(op: Opcode, payload: bytes, size: int) -> None:
    if len(payload) != size:
        raise RequestLengthError(f"{op.name} request has {len(payload)} bytes, expected {size}")


def _at_least(op: Opcode, payload: bytes, size: int) -> None:
    if len(payload) < size:
        raise RequestLengthError(f"{op.name} request has {len(payload)} bytes, too short for its {size}-byte header")


def _argument(ok: bool, message: str) -> None:
    if not ok:
        raise RequestArgumentError(message)


# -- IDENTIFY (2.3) ---------------------------------------------------------------


@dataclass(frozen=True)
class DieDescription:
    """An IDENTIFY answer: the die's geometry and nominal constants."""

    serial: str
    part: str
    layer_sizes: tuple[int, ...]
    firmware: tuple[int, int] = (1, 0)
    protocol: int = DEVICE_PROTOCOL
    magnitude_bits: int = 4
    time_bits: int = 8
    input_lsb_s: float = 1e-8
    tdc_lsb_s: float = 1e-9
    max_window_ns: int = WINDOW_NS[1]
    i_lsb_a: float = 2e-9
    c_membrane_f: float = 1.033e-13
    v_rest_v: float = 1.3
    max_payload: int = 8192

    @property
    def n_layers(self) -> int:
        return len(self.layer_sizes)

    @property
    def n_matrices(self) -> int:
        return self.n_layers - 1

    def matrix_shape(self, m: int) -> tuple[int, int]:
        """Rows (layer m's neurons plus the bias row) x columns (layer m+1's neurons) of matrix m (2.4)."""
        return self.layer_sizes[m] + 1, self.layer_sizes[m + 1]

    @property
    def max_code(self) -> int:
        return (1 << self.magnitude_bits) - 1


_IDENTIFY_HEAD = struct.Struct(f"<B4sBB{SERIAL_BYTES}s{PART_BYTES}sB")
_IDENTIFY_TAIL = struct.Struct("<BBffHfffH")


def identify_answer(die: DieDescription) -> bytes:
    sizes = die.layer_sizes
    return (_IDENTIFY_HEAD.pack(die.protocol, FAMILY_TAG, *die.firmware, die.serial.encode("ascii"),
                                die.part.encode("ascii"), len(sizes))
            + struct.pack(f"<{len(sizes)}H", *sizes)
            + _IDENTIFY_TAIL.pack(die.magnitude_bits, die.time_bits, die.input_lsb_s, die.tdc_lsb_s,
                                  die.max_window_ns, die.i_lsb_a, die.c_membrane_f, die.v_rest_v, die.max_payload))


def parse_identify(payload: bytes) -> DieDescription:
    """IDENTIFY answer (after the status byte) of a TTFS bridge; anything else raises BridgeProtocolError."""
    if len(payload) < _IDENTIFY_HEAD.size:
        raise BridgeProtocolError(f"IDENTIFY payload has only {len(payload)} bytes, a TTFS answer has at least "
                                  f"{_IDENTIFY_HEAD.size + _IDENTIFY_TAIL.size}")
    protocol, tag, major, minor, serial, part, n_layers = _IDENTIFY_HEAD.unpack_from(payload)
    if protocol != DEVICE_PROTOCOL or tag != FAMILY_TAG:
        raise BridgeProtocolError(f"IDENTIFY answer is not a TTFS die's (device protocol 0x{protocol:02x}, "
                                  f"tag {tag!r}; expected 0x03 and b'TTFS')")
    check_length(Opcode.IDENTIFY.name, payload, _IDENTIFY_HEAD.size + 2 * n_layers + _IDENTIFY_TAIL.size)
    if n_layers < 2:
        raise BridgeProtocolError(f"IDENTIFY reports {n_layers} layers; a TTFS die has at least 2")
    sizes = struct.unpack_from(f"<{n_layers}H", payload, _IDENTIFY_HEAD.size)
    if min(sizes) < 1:
        raise BridgeProtocolError(f"IDENTIFY reports an empty layer: sizes {sizes}")
    tail = _IDENTIFY_TAIL.unpack_from(payload, _IDENTIFY_HEAD.size + 2 * n_layers)
    mag_bits, time_bits, input_lsb, tdc_lsb, max_window, i_lsb, c_mem, v_rest, max_payload = tail
    return DieDescription(
        serial=_ascii(serial), part=_ascii(part), layer_sizes=tuple(sizes), firmware=(major, minor),
        protocol=protocol, magnitude_bits=mag_bits, time_bits=time_bits, input_lsb_s=f32_value(input_lsb),
        tdc_lsb_s=f32_value(tdc_lsb), max_window_ns=max_window, i_lsb_a=f32_value(i_lsb),
        c_membrane_f=f32_value(c_mem), v_rest_v=f32_value(v_rest), max_payload=max_payload)


def _ascii(field: bytes) -> str:
    return field.rstrip(b"\0").decode("ascii", errors="replace")


def is_ttfs_identify(payload: bytes) -> bool:
    """The recognition rule of 2.3: offset 0 = 0x03, offsets 1..4 = ``TTFS`` and the exact length."""
    try:
        parse_identify(payload)
    except BridgeError:
        return False
    return True


# -- STATUS (2.6) and READ_MONITORS (2.2) ------------------------------------------------


def parse_status(payload: bytes) -> BridgeStatus:
    """STATUS answer (the common layout) with TTFS's flags as :class:`StatusFlag`."""
    return bridge_protocol.parse_status(payload, StatusFlag)


@dataclass(frozen=True)
class Monitors:
    """READ_MONITORS: the housekeeping ADC's readings in V, +-(0.5 % + 5 mV) (2.2)."""

    vdd: float
    vth: float
    erev_exc: float
    erev_inh: float
    v_rest: float


_MONITORS = struct.Struct("<5f")


def monitors_answer(monitors: Monitors) -> bytes:
    return _MONITORS.pack(monitors.vdd, monitors.vth, monitors.erev_exc, monitors.erev_inh, monitors.v_rest)


def parse_monitors(payload: bytes) -> Monitors:
    check_length(Opcode.READ_MONITORS.name, payload, _MONITORS.size)
    return Monitors(*(f32_value(v) for v in _MONITORS.unpack(payload)))


def check_empty(op: Opcode, payload: bytes) -> None:
    """IDENTIFY, RESET, STATUS and READ_MONITORS requests carry nothing (2.7)."""
    _length(op, payload, 0)


# -- synapse rows (2.4) --------------------------------------------------------------


@dataclass(frozen=True)
class SynapseWrite:
    """A WRITE_SYNAPSES request: ``codes`` (rows, n_(m+1)) int8 from ``first_row`` of matrix ``matrix``."""

    matrix: int
    mode: int
    first_row: int
    codes: np.ndarray


@dataclass(frozen=True)
class WriteOutcome:
    """A WRITE_SYNAPSES answer."""

    rows_programmed: int
    failed_cells: int


_WRITE_HEAD = struct.Struct("<BBHH")
"""matrix, mode, first row, row count."""
_READ = struct.Struct("<BHH")
"""matrix, first row, row count."""
_U16_PAIR = struct.Struct("<HH")
WRITE_PREFIX_BYTES = _WRITE_HEAD.size


def _check_matrix(die: DieDescription, matrix: int, first_row: int, count: int) -> tuple[int, int]:
    _argument(0 <= matrix < die.n_matrices, f"matrix {matrix} does not exist (0..{die.n_matrices - 1})")
    rows, cols = die.matrix_shape(matrix)
    _argument(first_row >= 0 and count >= 0 and first_row + count <= rows,
              f"rows {first_row}..{first_row + count - 1} outside 0..{rows - 1} of matrix {matrix}")
    return rows, cols


def _check_codes(codes: np.ndarray, top: int = MAX_CODE) -> None:
    flat = codes.astype(np.int64).reshape(-1)
    bad = flat[np.abs(flat) > top]
    if bad.size:
        raise RequestArgumentError(f"synapse code {bad[0]} outside -{top}..+{top}")


def pack_codes(codes) -> bytes:
    """Signed codes to the wire: one i8 per site, two's complement, rows one after another (+3 -> 03, -15 -> f1)."""
    values = np.asarray(codes, dtype=np.int64)
    _check_codes(values)
    return values.astype(np.int8).tobytes()


def unpack_codes(packed: bytes, rows: int, cols: int) -> np.ndarray:
    """Wire i8 codes to a (rows, cols) int8 array; a wrong size or a code outside -15..+15 is refused."""
    if len(packed) != rows * cols:
        raise BridgeProtocolError(f"synapse rows have {len(packed)} bytes, expected {rows} x {cols} = {rows * cols}")
    codes = np.frombuffer(packed, np.int8).reshape(rows, cols).copy()
    if codes.size and int(np.abs(codes.astype(np.int64)).max()) > MAX_CODE:
        raise BridgeProtocolError(f"synapse rows hold a code outside -{MAX_CODE}..+{MAX_CODE}")
    return codes


def write_synapses_request(matrix: int, first_row: int, codes, mode: int = 0) -> bytes:
    """WRITE_SYNAPSES: ``codes`` (rows, n_(m+1)) signed codes from ``first_row``; mode 0 skips equal rows."""
    values = np.asarray(codes, dtype=np.int64)
    if values.ndim != 2:
        raise RequestArgumentError(f"synapse codes must be rows x columns, got shape {values.shape}")
    _argument(mode in (0, 1), f"write mode {mode} is neither 0 (skip equal rows) nor 1 (always program)")
    _argument(0 <= matrix <= 0xFF and 0 <= first_row <= 0xFFFF and values.shape[0] <= 0xFFFF,
              f"matrix {matrix}, first row {first_row} or {values.shape[0]} rows do not fit the request")
    return _WRITE_HEAD.pack(matrix, mode, first_row, values.shape[0]) + pack_codes(values)


def parse_write_synapses_request(payload: bytes, die: DieDescription) -> SynapseWrite:
    """The bridge's reading of WRITE_SYNAPSES, with the length and argument rules of 2.4 and 2.7."""
    op = Opcode.WRITE_SYNAPSES
    _at_least(op, payload, _WRITE_HEAD.size)
    matrix, mode, first_row, count = _WRITE_HEAD.unpack_from(payload)
    if count == 0:
        _length(op, payload, _WRITE_HEAD.size)
        return SynapseWrite(matrix, mode, first_row, np.zeros((0, 0), np.int8))
    _argument(0 <= matrix < die.n_matrices, f"matrix {matrix} does not exist (0..{die.n_matrices - 1})")
    cols = die.matrix_shape(matrix)[1]
    _length(op, payload, _WRITE_HEAD.size + count * cols)
    _check_matrix(die, matrix, first_row, count)
    _argument(mode <= 1, f"write mode {mode} above 1")
    codes = np.frombuffer(payload, np.int8, offset=_WRITE_HEAD.size).reshape(count, cols).copy()
    _check_codes(codes)
    return SynapseWrite(matrix, mode, first_row, codes)


def write_synapses_answer(outcome: WriteOutcome) -> bytes:
    return _U16_PAIR.pack(outcome.rows_programmed, outcome.failed_cells)


def parse_write_synapses_answer(payload: bytes) -> WriteOutcome:
    check_length(Opcode.WRITE_SYNAPSES.name, payload, _U16_PAIR.size)
    return WriteOutcome(*_U16_PAIR.unpack(payload))


def read_synapses_request(matrix: int, first_row: int, count: int) -> bytes:
    _argument(0 <= matrix <= 0xFF and 0 <= first_row <= 0xFFFF and 0 <= count <= 0xFFFF,
              f"matrix {matrix}, first row {first_row} or row count {count} do not fit the request")
    return _READ.pack(matrix, first_row, count)


def parse_read_synapses_request(payload: bytes, die: DieDescription) -> tuple[int, int, int]:
    """(matrix, first row, row count) of READ_SYNAPSES; the answer must fit the maximum payload."""
    _length(Opcode.READ_SYNAPSES, payload, _READ.size)
    matrix, first_row, count = _READ.unpack(payload)
    cols = _check_matrix(die, matrix, first_row, count)[1]
    _argument(1 + count * cols <= die.max_payload,
              f"{count} rows of {cols} codes do not fit the maximum payload of {die.max_payload} bytes")
    return matrix, first_row, count


def parse_read_synapses_answer(payload: bytes, rows: int, cols: int) -> np.ndarray:
    return unpack_codes(payload, rows, cols)


# -- registers: SET_TIMING, SET_BIAS_TIMES, SELECT_PROBE, HOLD_ROW (2.2) ----------------------


@dataclass(frozen=True)
class Timing:
    window_ns: int = DEFAULT_WINDOW_NS
    gap_us: int = 0


def set_timing_request(window_ns: int, gap_us: int = 0) -> bytes:
    _argument(WINDOW_NS[0] <= window_ns <= WINDOW_NS[1],
              f"output window {window_ns} ns outside {WINDOW_NS[0]}..{WINDOW_NS[1]} ns")
    _argument(0 <= gap_us <= 0xFFFF, f"gap {gap_us} us outside 0..65535 us")
    return _U16_PAIR.pack(window_ns, gap_us)


def parse_set_timing_request(payload: bytes) -> Timing:
    _length(Opcode.SET_TIMING, payload, _U16_PAIR.size)
    window_ns, gap_us = _U16_PAIR.unpack(payload)
    _argument(WINDOW_NS[0] <= window_ns <= WINDOW_NS[1],
              f"output window {window_ns} ns outside {WINDOW_NS[0]}..{WINDOW_NS[1]} ns")
    return Timing(window_ns, gap_us)


def bias_times_request(codes: Sequence[int]) -> bytes:
    """SET_BIAS_TIMES: one 10 ns time code per matrix (255 = never)."""
    values = [int(c) for c in codes]
    _argument(all(0 <= c <= NO_INPUT for c in values), f"bias time codes {values} outside 0..255")
    return bytes([len(values), *values])


def parse_bias_times_request(payload: bytes, die: DieDescription) -> tuple[int, ...]:
    op = Opcode.SET_BIAS_TIMES
    _at_least(op, payload, 1)
    _length(op, payload, 1 + payload[0])
    _argument(payload[0] == die.n_matrices, f"{payload[0]} bias times for {die.n_matrices} matrices")
    return tuple(payload[1:])


_LAYER_U16 = struct.Struct("<BH")


def _pair_request(first: int, second: int | None, what: str) -> bytes:
    """``u8 first, u16 second`` with None as 0xFFFF: the SELECT_PROBE and HOLD_ROW layout."""
    _argument(0 <= first <= 0xFF and (second is None or 0 <= second < DISCONNECT), f"{what} does not fit the request")
    return _LAYER_U16.pack(first, DISCONNECT if second is None else second)


def _parse_pair(op: Opcode, payload: bytes) -> tuple[int, int | None]:
    _length(op, payload, _LAYER_U16.size)
    first, second = _LAYER_U16.unpack(payload)
    return first, None if second == DISCONNECT else second


def select_probe_request(layer: int, neuron: int | None) -> bytes:
    """SELECT_PROBE: neuron of layer 1..L-1, or layer 0 with a reference 0..3; None disconnects."""
    return _pair_request(layer, neuron, f"probe selection layer {layer}, neuron {neuron}")


def parse_select_probe_request(payload: bytes, die: DieDescription) -> tuple[int, int | None]:
    """(layer, neuron or None when disconnected); layer 0 selects a reference (0 VTH, 1 EREV_EXC, 2 EREV_INH,
    3 V_REST)."""
    layer, neuron = _parse_pair(Opcode.SELECT_PROBE, payload)
    if neuron is None:
        return layer, None
    if layer == 0:
        _argument(neuron <= 3, f"probe reference {neuron} does not exist (0..3)")
    else:
        _argument(layer < die.n_layers and neuron < die.layer_sizes[layer],
                  f"probe neuron {neuron} of layer {layer} does not exist")
    return layer, neuron


def hold_row_request(matrix: int, row: int | None) -> bytes:
    """HOLD_ROW: row ``row`` of matrix ``matrix`` on in DC (its n_m is the bias row); None releases."""
    return _pair_request(matrix, row, f"held row {row} of matrix {matrix}")


def parse_hold_row_request(payload: bytes, die: DieDescription) -> tuple[int, int | None]:
    matrix, row = _parse_pair(Opcode.HOLD_ROW, payload)
    if row is None:
        return matrix, None
    _argument(matrix < die.n_matrices, f"matrix {matrix} does not exist (0..{die.n_matrices - 1})")
    _argument(row < die.matrix_shape(matrix)[0], f"row {row} outside 0..{die.layer_sizes[matrix]} of matrix {matrix}")
    return matrix, row


# -- APPLY_PATTERNS (2.5) ------------------------------------------------------------


@dataclass(frozen=True)
class PatternBatch:
    """An APPLY_PATTERNS request: ``codes`` (P, n_e) uint8 time codes entering layer ``entry``."""

    codes: np.ndarray
    entry: int = 0
    readout: int = -1
    repeats: int = 1
    idle: bool = False


_APPLY_HEAD = struct.Struct("<BBBHH")
"""flags, entry layer, readout layer, repeats, pattern count."""
APPLY_PREFIX_BYTES = _APPLY_HEAD.size


def pattern_period_ns(timing: Timing, n_entry: int) -> int:
    """T_p = W + T_rst + gap, at least the time to load one pattern (n_e x 10 ns + 1 us) (1.3)."""
    return max(timing.window_ns + T_RESET_NS + 1000 * timing.gap_us, 10 * n_entry + 1000)


def patterns_per_frame(die: DieDescription, entry: int, readout: int) -> int:
    """Largest P whose request and answer fit the maximum payload (the table of 2.5)."""
    n_e, n_r = die.layer_sizes[entry], die.layer_sizes[readout]
    return min((die.max_payload - _APPLY_HEAD.size) // n_e, (die.max_payload - 1) // (2 * n_r))


def apply_patterns_request(batch: PatternBatch) -> bytes:
    codes = np.asarray(batch.codes)
    if codes.ndim != 2:
        raise RequestArgumentError(f"patterns must be (P, n_entry) time codes, got shape {codes.shape}")
    _argument(codes.size == 0 or (int(codes.min()) >= 0 and int(codes.max()) <= NO_INPUT),
              "input time codes must lie in 0..255 (255: no spike)")
    _argument(1 <= codes.shape[0] <= 0xFFFF, f"{codes.shape[0]} patterns: a request carries 1..65535")
    _argument(1 <= batch.repeats <= 0xFFFF, f"repeats {batch.repeats} outside 1..65535")
    _argument(0 <= batch.entry < batch.readout <= 0xFF,
              f"readout layer {batch.readout} must lie above entry layer {batch.entry}")
    flags = FLAG_IDLE if batch.idle else 0
    return (_APPLY_HEAD.pack(flags, batch.entry, batch.readout, batch.repeats, codes.shape[0])
            + codes.astype(np.uint8).tobytes())


def parse_apply_patterns_request(payload: bytes, die: DieDescription, timing: Timing = Timing()) -> PatternBatch:
    """The bridge's reading of APPLY_PATTERNS, with the length and argument rules of 2.5 and 2.7."""
    op = Opcode.APPLY_PATTERNS
    _at_least(op, payload, _APPLY_HEAD.size)
    flags, entry, readout, repeats, count = _APPLY_HEAD.unpack_from(payload)
    _argument(entry <= die.n_layers - 2, f"entry layer {entry} above {die.n_layers - 2}")
    n_e = die.layer_sizes[entry]
    _length(op, payload, _APPLY_HEAD.size + count * n_e)
    _argument(flags & ~FLAG_IDLE == 0, f"reserved APPLY_PATTERNS flag bits set: 0x{flags:02x}")
    _argument(count >= 1, "APPLY_PATTERNS with no pattern")
    _argument(repeats >= 1, "APPLY_PATTERNS with 0 repeats")
    _argument(entry < readout <= die.n_layers - 1, f"readout layer {readout} outside {entry + 1}..{die.n_layers - 1}")
    n_r = die.layer_sizes[readout]
    _argument(1 + 2 * count * n_r <= die.max_payload,
              f"{count} patterns of {n_r} TDC codes do not fit the maximum payload of {die.max_payload} bytes")
    seconds = repeats * count * pattern_period_ns(timing, n_e) * 1e-9
    _argument(seconds <= MAX_BATCH_S, f"{seconds:.3g} s of patterns; at most {MAX_BATCH_S:g} s per request")
    codes = np.frombuffer(payload, np.uint8, offset=_APPLY_HEAD.size).reshape(count, n_e).copy()
    return PatternBatch(codes, entry, readout, repeats, bool(flags & FLAG_IDLE))


def apply_patterns_answer(tdc) -> bytes:
    """TDC codes (P, n_r), pattern by pattern, neuron by neuron; 0xFFFF = no spike."""
    return np.asarray(tdc).astype("<u2").tobytes()


def parse_apply_patterns_answer(payload: bytes, patterns: int, n_readout: int) -> np.ndarray:
    """TDC codes (P, n_r) uint16; 0xFFFF = no spike before t = W."""
    check_length(Opcode.APPLY_PATTERNS.name, payload, 2 * patterns * n_readout)
    return np.frombuffer(payload, "<u2").astype(np.uint16).reshape(patterns, n_readout)


def tdc_to_seconds(tdc, die: DieDescription) -> np.ndarray:
    """First-spike times in s, the middle of each TDC bin (k + 0.5 LSB, 1.8); inf where no spike."""
    codes = np.asarray(tdc)
    return np.where(codes == NO_SPIKE, math.inf, (codes.astype(np.float64) + 0.5) * die.tdc_lsb_s)
