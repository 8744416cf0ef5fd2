"""TTFS's pattern operations: SET_TIMING, SET_BIAS_TIMES, APPLY_PATTERNS and TDC codes (docs/specs/ttfs-bench.md 2.5).

Its own module because these belong together: the window and gap of
SET_TIMING (2.2) and the bias row's times of SET_BIAS_TIMES (2.2) shape every
pattern period (1.3), which sizes an APPLY_PATTERNS request (the 10 s limit and
the table of 2.5); the answer's TDC codes and their conversion to seconds (1.8)
are what a batch gives back. Length and argument rules: 2.7, through the shared
checks of :mod:`.protocol`.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from labctl.drivers.bridge_protocol import check_length
from labctl.families.ttfs.identify import DieDescription
from labctl.families.ttfs.protocol import (
    WINDOW_NS,
    Opcode,
    RequestArgumentError,
    check_argument,
    check_request_header,
    check_request_length,
)

NO_INPUT = 255
"""An input or bias time code that never switches its row on (1.8)."""
NO_SPIKE = 0xFFFF
"""The TDC code of a neuron that did not fire before t = W (1.8)."""
DEFAULT_WINDOW_NS = 16000
T_RESET_NS = 2000
"""The reset phase of every pattern period (1.3, G)."""
MAX_BATCH_S = 10.0
"""Longest R x P x T_p of one APPLY_PATTERNS (2.5)."""
FLAG_IDLE = 0x01
"""APPLY_PATTERNS flags bit 0: no row switches on (2.5); bits 1..7 are reserved."""


# -- SET_TIMING and SET_BIAS_TIMES (2.2) ------------------------------------------------


@dataclass(frozen=True)
class Timing:
    window_ns: int = DEFAULT_WINDOW_NS
    gap_us: int = 0


_TIMING = struct.Struct("<HH")
"""window in ns, gap in us."""


def set_timing_request(window_ns: int, gap_us: int = 0) -> bytes:
    check_argument(WINDOW_NS[0] <= window_ns <= WINDOW_NS[1],
                   f"output window {window_ns} ns outside {WINDOW_NS[0]}..{WINDOW_NS[1]} ns")
    check_argument(0 <= gap_us <= 0xFFFF, f"gap {gap_us} us outside 0..65535 us")
    return _TIMING.pack(window_ns, gap_us)


def parse_set_timing_request(payload: bytes) -> Timing:
    check_request_length(Opcode.SET_TIMING, payload, _TIMING.size)
    window_ns, gap_us = _TIMING.unpack(payload)
    check_argument(WINDOW_NS[0] <= window_ns <= WINDOW_NS[1],
                   f"output window {window_ns} ns outside {WINDOW_NS[0]}..{WINDOW_NS[1]} ns")
    return Timing(window_ns, gap_us)


def bias_times_request(codes: Sequence[int]) -> bytes:
    """SET_BIAS_TIMES: one 10 ns time code per matrix (255 = never)."""
    values = [int(c) for c in codes]
    check_argument(all(0 <= c <= NO_INPUT for c in values), f"bias time codes {values} outside 0..255")
    return bytes([len(values), *values])


def parse_bias_times_request(payload: bytes, die: DieDescription) -> tuple[int, ...]:
    op = Opcode.SET_BIAS_TIMES
    check_request_header(op, payload, 1)
    check_request_length(op, payload, 1 + payload[0])
    check_argument(payload[0] == die.n_matrices, f"{payload[0]} bias times for {die.n_matrices} matrices")
    return tuple(payload[1:])


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
    check_argument(codes.size == 0 or (int(codes.min()) >= 0 and int(codes.max()) <= NO_INPUT),
                   "input time codes must lie in 0..255 (255: no spike)")
    check_argument(1 <= codes.shape[0] <= 0xFFFF, f"{codes.shape[0]} patterns: a request carries 1..65535")
    check_argument(1 <= batch.repeats <= 0xFFFF, f"repeats {batch.repeats} outside 1..65535")
    check_argument(0 <= batch.entry < batch.readout <= 0xFF,
                   f"readout layer {batch.readout} must lie above entry layer {batch.entry}")
    flags = FLAG_IDLE if batch.idle else 0
    return (_APPLY_HEAD.pack(flags, batch.entry, batch.readout, batch.repeats, codes.shape[0])
            + codes.astype(np.uint8).tobytes())


def parse_apply_patterns_request(payload: bytes, die: DieDescription, timing: Timing = Timing()) -> PatternBatch:
    """The bridge's reading of APPLY_PATTERNS, with the length and argument rules of 2.5 and 2.7."""
    op = Opcode.APPLY_PATTERNS
    check_request_header(op, payload, _APPLY_HEAD.size)
    flags, entry, readout, repeats, count = _APPLY_HEAD.unpack_from(payload)
    check_argument(entry <= die.n_layers - 2, f"entry layer {entry} above {die.n_layers - 2}")
    n_e = die.layer_sizes[entry]
    check_request_length(op, payload, _APPLY_HEAD.size + count * n_e)
    check_argument(flags & ~FLAG_IDLE == 0, f"reserved APPLY_PATTERNS flag bits set: 0x{flags:02x}")
    check_argument(count >= 1, "APPLY_PATTERNS with no pattern")
    check_argument(repeats >= 1, "APPLY_PATTERNS with 0 repeats")
    check_argument(entry < readout <= die.n_layers - 1,
                   f"readout layer {readout} outside {entry + 1}..{die.n_layers - 1}")
    n_r = die.layer_sizes[readout]
    check_argument(1 + 2 * count * n_r <= die.max_payload,
                   f"{count} patterns of {n_r} TDC codes do not fit the maximum payload of {die.max_payload} bytes")
    seconds = repeats * count * pattern_period_ns(timing, n_e) * 1e-9
    check_argument(seconds <= MAX_BATCH_S, f"{seconds:.3g} s of patterns; at most {MAX_BATCH_S:g} s per request")
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
