"""CMNA's part of bridge protocol v1: opcodes, status flags, payload layouts (contract sections 2, 4).

The generic part (status codes and their errors, the common IDENTIFY and
STATUS requests, the STATUS layout) is in :mod:`labctl.drivers.bridge_protocol`.

Pure functions only: each request has a builder (host side) and a parser
(bridge side), each answer a builder (bridge side) and a parser (host side).
The client in :mod:`labctl.families.cmna.link` moves the bytes; the simulated
bridge uses the same functions, so both ends share one definition of every
layout. All integers are little-endian, ``f32`` is IEEE-754 binary32.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

import numpy as np

from labctl.drivers import bridge_protocol
from labctl.drivers.bridge_protocol import (
    BridgeProtocolError,
    BridgeStatus,
    CommonOp,
    Status,
    check_length,
    f32_value,
)
from labctl.families.cmna.chip import ChipDescription
from labctl.families.cmna.ratings import VDD_IN_RANGE_V

DISCONNECT = 0xFFFF
"""ROUTE_EXT_IN channel / SET_MONITOR neuron meaning "disconnect"."""
SERIAL_BYTES = 16


class Opcode(enum.IntEnum):
    IDENTIFY = CommonOp.IDENTIFY.value
    RESET = 0x02
    STATUS = CommonOp.STATUS.value
    WRITE_WEIGHTS = 0x10
    READ_WEIGHTS = 0x11
    SET_INPUTS = 0x20
    ROUTE_EXT_IN = 0x21
    SET_MONITOR = 0x22
    MEASURE = 0x30
    RUN_BATCH = 0x31


class StatusFlag(enum.IntFlag):
    """STATUS flag bits; OVERSTRESS and GATE_OVERRUN are sticky until RESET."""

    SUPPLY_OUT_OF_RANGE = 1 << 0
    OVERSTRESS = 1 << 1
    LATCHES_UNWRITTEN = 1 << 2
    GATE_OVERRUN = 1 << 3


STATUS_FLAG_WORDS = {
    StatusFlag.OVERSTRESS: "DIE DAMAGED OR OVERSTRESSED: an absolute maximum rating was exceeded (contract "
                           "section 2; never clears on a damaged die)",
    StatusFlag.SUPPLY_OUT_OF_RANGE: "VDD is not within 1.71 to 1.89 V at the pad (unpowered)",
    StatusFlag.LATCHES_UNWRITTEN: "latches not written since power-up",
    StatusFlag.GATE_OVERRUN: "a gate overran",
}
"""What each STATUS flag means, in words (damage first: it is what a lab engineer must see)."""


def status_words(flags: StatusFlag) -> str:
    """The STATUS flags in words, flag names in brackets; "ok" when none is set."""
    words = [f"{text} [{flag.name}]" for flag, text in STATUS_FLAG_WORDS.items() if flags & flag]
    return "; ".join(words) or "ok"


STATUS_MEANINGS: dict[Status, str] = {
    Status.HW_FAULT: (f"die damaged or supply out of range (VDD must be {VDD_IN_RANGE_V[0]:.2f}.."
                      f"{VDD_IN_RANGE_V[1]:.2f} V, not in compliance)"),
}
"""What a status means on a CMNA bench, where more precise than the generic text (section 4, HW_FAULT)."""


# -- result types --------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """One MEASURE: rates are counts over the gate that really elapsed (contract section 4)."""

    actual_gate_s: float
    counts: np.ndarray
    rates_hz: np.ndarray


@dataclass(frozen=True)
class BatchResult:
    """RUN_BATCH counts (P, n_out); rates use the requested gate (the bridge reports none)."""

    counts: np.ndarray
    rates_hz: np.ndarray


# -- payload layouts -------------------------------------------------------------

_IDENTIFY_HEAD = struct.Struct(f"<BBB{SERIAL_BYTES}sB")
_IDENTIFY_TAIL = struct.Struct("<BBffHH")
_ROWS = struct.Struct("<BHH")
"""matrix, first row, row count (WRITE_WEIGHTS prefix, READ_WEIGHTS request)."""
_COUNT = struct.Struct("<HH")
"""first channel + count (SET_INPUTS), gate + pattern count (RUN_BATCH)."""
_U16 = struct.Struct("<H")
_MONITOR = struct.Struct("<BH")
_U32 = struct.Struct("<I")


def identify_answer(chip: ChipDescription) -> bytes:
    sizes = chip.layer_sizes
    return (_IDENTIFY_HEAD.pack(chip.protocol, *chip.firmware, chip.serial.encode("ascii"), len(sizes))
            + struct.pack(f"<{len(sizes)}H", *sizes)
            + _IDENTIFY_TAIL.pack(chip.magnitude_bits, chip.dac_bits, chip.dac_lsb_a, chip.c2f_gain_hz_per_a,
                                  chip.max_gate_ms, chip.max_payload))


def parse_identify(payload: bytes) -> ChipDescription:
    if len(payload) < _IDENTIFY_HEAD.size:
        raise BridgeProtocolError(f"IDENTIFY payload has only {len(payload)} bytes")
    protocol, fw_major, fw_minor, serial, n_layers = _IDENTIFY_HEAD.unpack_from(payload)
    check_length(Opcode.IDENTIFY.name, payload, _IDENTIFY_HEAD.size + 2 * n_layers + _IDENTIFY_TAIL.size)
    sizes = struct.unpack_from(f"<{n_layers}H", payload, _IDENTIFY_HEAD.size)
    mag_bits, dac_bits, lsb, gain, max_gate, max_payload = _IDENTIFY_TAIL.unpack_from(
        payload, _IDENTIFY_HEAD.size + 2 * n_layers)
    return ChipDescription(
        serial=serial.rstrip(b"\0").decode("ascii", errors="replace"), protocol=protocol,
        firmware=(fw_major, fw_minor), layer_sizes=tuple(sizes), magnitude_bits=mag_bits, dac_bits=dac_bits,
        dac_lsb_a=f32_value(lsb), c2f_gain_hz_per_a=f32_value(gain), max_gate_ms=max_gate, max_payload=max_payload)


def parse_status(payload: bytes) -> BridgeStatus:
    """STATUS answer (the common layout) with CMNA's flags as :class:`StatusFlag`."""
    return bridge_protocol.parse_status(payload, StatusFlag)


def weights_request(matrix: int, first_row: int, row_count: int, packed: bytes = b"") -> bytes:
    """WRITE_WEIGHTS payload (with ``packed`` rows) or READ_WEIGHTS payload (without)."""
    return _ROWS.pack(matrix, first_row, row_count) + packed


def parse_weights_request(payload: bytes) -> tuple[int, int, int, bytes]:
    """(matrix, first row, row count, packed rows); the caller checks the length rule."""
    matrix, first_row, row_count = _ROWS.unpack_from(payload)
    return matrix, first_row, row_count, payload[_ROWS.size:]


WEIGHTS_PREFIX_BYTES = _ROWS.size


def codes_request(first: int, values: np.ndarray) -> bytes:
    """``u16 first, u16 count, count x u16``: SET_INPUTS (first channel) layout."""
    values = np.asarray(values)
    return _COUNT.pack(first, values.size) + values.astype("<u2", copy=False).tobytes()


def run_batch_request(gate_ms: int, patterns: np.ndarray) -> bytes:
    """``u16 gate, u16 P, P x n0 x u16`` codes, pattern by pattern."""
    patterns = np.asarray(patterns)
    return _COUNT.pack(gate_ms, patterns.shape[0]) + patterns.astype("<u2", copy=False).tobytes()


def parse_codes_request(payload: bytes) -> tuple[int, int, np.ndarray]:
    """(first channel or gate, count, u16 codes) of SET_INPUTS or RUN_BATCH."""
    first, count = _COUNT.unpack_from(payload)
    return first, count, np.frombuffer(payload, "<u2", offset=_COUNT.size)


CODES_PREFIX_BYTES = _COUNT.size


def u16_request(value: int | None) -> bytes:
    """ROUTE_EXT_IN channel or MEASURE gate; None encodes 0xFFFF (disconnect)."""
    return _U16.pack(DISCONNECT if value is None else value)


def parse_u16(payload: bytes) -> int:
    return _U16.unpack(payload)[0]


def monitor_request(layer: int, neuron: int | None) -> bytes:
    return _MONITOR.pack(layer, DISCONNECT if neuron is None else neuron)


def parse_monitor_request(payload: bytes) -> tuple[int, int | None]:
    layer, neuron = _MONITOR.unpack(payload)
    return layer, None if neuron == DISCONNECT else neuron


def measure_answer(actual_gate_us: int, counts: np.ndarray) -> bytes:
    return _U32.pack(actual_gate_us) + np.asarray(counts).astype("<u4", copy=False).tobytes()


def parse_measure(payload: bytes, n_outputs: int) -> Measurement:
    check_length(Opcode.MEASURE.name, payload, _U32.size + 4 * n_outputs)
    actual_gate_s = _U32.unpack_from(payload)[0] * 1e-6
    if actual_gate_s <= 0:
        raise BridgeProtocolError("MEASURE reported a gate of 0 us")
    counts = np.frombuffer(payload, "<u4", offset=_U32.size).astype(np.uint32)
    return Measurement(actual_gate_s, counts, counts / actual_gate_s)


def parse_run_batch(payload: bytes, patterns: int, n_outputs: int) -> np.ndarray:
    """Counts (P, n_out) uint32, pattern by pattern."""
    check_length(Opcode.RUN_BATCH.name, payload, 4 * patterns * n_outputs)
    return np.frombuffer(payload, "<u4").astype(np.uint32).reshape(patterns, n_outputs)
