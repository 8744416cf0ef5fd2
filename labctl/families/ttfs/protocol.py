"""TTFS's part of bridge protocol v1: what every operation's codec shares (docs/specs/ttfs-bench.md 2).

The framing, the status codes and their errors, the common IDENTIFY and STATUS
requests and the STATUS layout are generic (:mod:`labctl.drivers.bridge_protocol`,
:mod:`labctl.drivers.framing`); this module holds what is this family's and
common to all its operations: the opcodes of 2.2, the STATUS flags of 2.6,
the errors of malformed requests and the length and argument rules of 2.7.
Each operation's layout has a module of its own, so that one can be read
without the others:

- :mod:`.identify`: the IDENTIFY answer record and the recognition rule (2.3);
- :mod:`.synapse_codes`: WRITE_SYNAPSES and READ_SYNAPSES, signed rows (2.4);
- :mod:`.patterns`: SET_TIMING, SET_BIAS_TIMES, APPLY_PATTERNS and TDC codes (2.2, 2.5);
- :mod:`.probe_ops`: SELECT_PROBE, HOLD_ROW and READ_MONITORS (2.2).

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

from labctl.drivers import bridge_protocol
from labctl.drivers.bridge_protocol import BridgeError, BridgeStatus, CommonOp, Status

WINDOW_NS = (1000, 65000)
"""SET_TIMING's output window range (2.2); its top is also IDENTIFY's nominal maximum window (2.3)."""


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


def parse_status(payload: bytes) -> BridgeStatus:
    """STATUS answer (the common layout) with TTFS's flags as :class:`StatusFlag`."""
    return bridge_protocol.parse_status(payload, StatusFlag)


# -- errors of malformed requests (2.7) ------------------------------------------------


class MalformedRequestError(BridgeError, ValueError):
    """A request that breaks a rule of contract 2.7; ``status`` is what a bridge answers it."""

    status: Status = Status.BAD_ARGUMENT


class RequestLengthError(MalformedRequestError):
    status = Status.BAD_LENGTH


class RequestArgumentError(MalformedRequestError):
    status = Status.BAD_ARGUMENT


def check_request_length(op: Opcode, payload: bytes, size: int) -> None:
    """A request of ``op`` must have exactly ``size`` bytes (2.7)."""
    if len(payload) != size:
        raise RequestLengthError(f"{op.name} request has {len(payload)} bytes, expected {size}")


def check_request_header(op: Opcode, payload: bytes, size: int) -> None:
    """A request of ``op`` must hold at least its ``size``-byte header before its length can be judged (2.7)."""
    if len(payload) < size:
        raise RequestLengthError(f"{op.name} request has {len(payload)} bytes, too short for its {size}-byte header")


def check_argument(ok: bool, message: str) -> None:
    """A request's argument out of range: BAD_ARGUMENT (2.7)."""
    if not ok:
        raise RequestArgumentError(message)


def check_empty(op: Opcode, payload: bytes) -> None:
    """IDENTIFY, RESET, STATUS and READ_MONITORS requests carry nothing (2.7)."""
    check_request_length(op, payload, 0)
