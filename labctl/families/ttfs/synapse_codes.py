"""TTFS's WRITE_SYNAPSES and READ_SYNAPSES: signed synapse codes on the wire (docs/specs/ttfs-bench.md 2.4).

Its own module because the synapse rows are the one layout of signed codes
(one i8 per site, two's complement, -15..+15) and the one whose requests are
split by rows: :func:`pack_codes` is also how a client refuses a bad code
before the first part of a split write is sent. Length and argument rules:
2.7, through the shared checks of :mod:`.protocol`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from labctl.drivers.bridge_protocol import BridgeProtocolError, check_length
from labctl.families.ttfs.identify import DieDescription
from labctl.families.ttfs.protocol import (
    Opcode,
    RequestArgumentError,
    check_argument,
    check_request_header,
    check_request_length,
)

MAX_CODE = 15
"""Synapse codes are -15..+15 (2.4)."""


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
_WRITE_ANSWER = struct.Struct("<HH")
"""rows programmed, failed cells."""
_READ = struct.Struct("<BHH")
"""matrix, first row, row count."""
WRITE_PREFIX_BYTES = _WRITE_HEAD.size


def _check_matrix(die: DieDescription, matrix: int, first_row: int, count: int) -> tuple[int, int]:
    check_argument(0 <= matrix < die.n_matrices, f"matrix {matrix} does not exist (0..{die.n_matrices - 1})")
    rows, cols = die.matrix_shape(matrix)
    check_argument(first_row >= 0 and count >= 0 and first_row + count <= rows,
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
    check_argument(mode in (0, 1), f"write mode {mode} is neither 0 (skip equal rows) nor 1 (always program)")
    check_argument(0 <= matrix <= 0xFF and 0 <= first_row <= 0xFFFF and values.shape[0] <= 0xFFFF,
                   f"matrix {matrix}, first row {first_row} or {values.shape[0]} rows do not fit the request")
    return _WRITE_HEAD.pack(matrix, mode, first_row, values.shape[0]) + pack_codes(values)


def parse_write_synapses_request(payload: bytes, die: DieDescription) -> SynapseWrite:
    """The bridge's reading of WRITE_SYNAPSES, with the length and argument rules of 2.4 and 2.7."""
    op = Opcode.WRITE_SYNAPSES
    check_request_header(op, payload, _WRITE_HEAD.size)
    matrix, mode, first_row, count = _WRITE_HEAD.unpack_from(payload)
    if count == 0:
        check_request_length(op, payload, _WRITE_HEAD.size)
        return SynapseWrite(matrix, mode, first_row, np.zeros((0, 0), np.int8))
    check_argument(0 <= matrix < die.n_matrices, f"matrix {matrix} does not exist (0..{die.n_matrices - 1})")
    cols = die.matrix_shape(matrix)[1]
    check_request_length(op, payload, _WRITE_HEAD.size + count * cols)
    _check_matrix(die, matrix, first_row, count)
    check_argument(mode <= 1, f"write mode {mode} above 1")
    codes = np.frombuffer(payload, np.int8, offset=_WRITE_HEAD.size).reshape(count, cols).copy()
    _check_codes(codes)
    return SynapseWrite(matrix, mode, first_row, codes)


def write_synapses_answer(outcome: WriteOutcome) -> bytes:
    return _WRITE_ANSWER.pack(outcome.rows_programmed, outcome.failed_cells)


def parse_write_synapses_answer(payload: bytes) -> WriteOutcome:
    check_length(Opcode.WRITE_SYNAPSES.name, payload, _WRITE_ANSWER.size)
    return WriteOutcome(*_WRITE_ANSWER.unpack(payload))


def read_synapses_request(matrix: int, first_row: int, count: int) -> bytes:
    check_argument(0 <= matrix <= 0xFF and 0 <= first_row <= 0xFFFF and 0 <= count <= 0xFFFF,
                   f"matrix {matrix}, first row {first_row} or row count {count} do not fit the request")
    return _READ.pack(matrix, first_row, count)


def parse_read_synapses_request(payload: bytes, die: DieDescription) -> tuple[int, int, int]:
    """(matrix, first row, row count) of READ_SYNAPSES; the answer must fit the maximum payload."""
    check_request_length(Opcode.READ_SYNAPSES, payload, _READ.size)
    matrix, first_row, count = _READ.unpack(payload)
    cols = _check_matrix(die, matrix, first_row, count)[1]
    check_argument(1 + count * cols <= die.max_payload,
                   f"{count} rows of {cols} codes do not fit the maximum payload of {die.max_payload} bytes")
    return matrix, first_row, count


def parse_read_synapses_answer(payload: bytes, rows: int, cols: int) -> np.ndarray:
    return unpack_codes(payload, rows, cols)
