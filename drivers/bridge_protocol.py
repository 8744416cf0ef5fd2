"""Bridge protocol v1, the part every device family shares: status codes, errors, common requests (contract sections 2, 4).

A family speaking protocol v1 adds its own opcodes and payload layouts (CMNA's
are in :mod:`labctl.families.cmna.protocol`); what is here holds for any of
them:

- the response bit (a response carries the request's op OR 0x80);
- the status byte that starts every response, and one exception per status;
- the requests the framing rules themselves rely on (:class:`CommonOp`):
  IDENTIFY reports the maximum payload and tells the families apart, STATUS is
  the harmless first request after opening a port (section 4). RESET is not
  one of them: what it clears is the family's business;
- the STATUS answer layout (u32 flags, u32 uptime in ms, f32 temperature); what
  each flag bit means belongs to the family.

Pure functions only. The client in :mod:`labctl.drivers.bridge` moves the bytes;
the simulated bridge uses the same functions, so both ends share one definition
of every layout. All integers are little-endian, ``f32`` is IEEE-754 binary32.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from labctl.errors import InstrumentError

RESPONSE_BIT = 0x80
"""A response carries the request's op OR 0x80."""

OpNames = type[enum.IntEnum]
"""A family's opcode enum: what :func:`op_name` looks an op up in."""


class CommonOp(enum.IntEnum):
    """Requests every protocol v1 device answers, whatever its family (sections 2 and 4)."""

    IDENTIFY = 0x01
    STATUS = 0x03


class Status(enum.IntEnum):
    OK = 0x00
    BAD_LENGTH = 0x01
    BAD_OPCODE = 0x02
    BAD_ARGUMENT = 0x03
    BUSY = 0x04
    HW_FAULT = 0x05
    BAD_VERSION = 0x06


def op_name(op: int, ops: OpNames = CommonOp) -> str:
    """Name of an opcode for messages, from the family's opcode enum ``ops`` (``opcode 0x7f`` for unknown ones).

    An enum member names itself whatever ``ops`` is; a response op (with
    :data:`RESPONSE_BIT`) is named after its request.
    """
    if isinstance(op, enum.Enum):
        return op.name
    try:
        return ops(op & ~RESPONSE_BIT).name
    except ValueError:
        return f"opcode 0x{op:02x}"


# -- errors ------------------------------------------------------------------


class BridgeError(InstrumentError):
    """Any problem talking to the bridge; the message is one line and names the op or port."""


class BridgeStatusError(BridgeError):
    """The bridge answered a status other than OK.

    ``meaning`` is the class's generic text unless the family gives a more
    precise one (e.g. the supply window of its die for HW_FAULT).
    """

    status: Status
    meaning: str

    def __init__(self, op: int, ops: OpNames = CommonOp, meaning: str | None = None) -> None:
        self.op = op
        if meaning is not None:
            self.meaning = meaning
        super().__init__(f"bridge answered {self.status.name} to {op_name(op, ops)}: {self.meaning}")


class BadLengthError(BridgeStatusError):
    status = Status.BAD_LENGTH
    meaning = "the packet length is wrong for this op or above the bridge's maximum payload"


class BadOpcodeError(BridgeStatusError):
    status = Status.BAD_OPCODE
    meaning = "the bridge does not know this op (firmware too old?)"


class BadArgumentError(BridgeStatusError):
    status = Status.BAD_ARGUMENT
    meaning = "an argument is out of range for this die; nothing was changed"


class BusyError(BridgeStatusError):
    status = Status.BUSY
    meaning = "the bridge could not start the request (busy on another link); nothing was executed"


class HardwareFaultError(BridgeStatusError):
    status = Status.HW_FAULT
    meaning = "die damaged or supply out of range"


class BadVersionError(BridgeStatusError):
    status = Status.BAD_VERSION
    meaning = "the bridge does not speak protocol v1"


class BridgeTimeoutError(BridgeError):
    """No valid answer after the bounded number of attempts."""


class BridgeProtocolError(BridgeError):
    """The bridge answered something that does not follow the contract."""


STATUS_ERRORS: dict[Status, type[BridgeStatusError]] = {
    cls.status: cls
    for cls in (BadLengthError, BadOpcodeError, BadArgumentError, BusyError, HardwareFaultError, BadVersionError)
}


def split_status(op: int, payload: bytes, ops: OpNames = CommonOp,
                 meanings: Mapping[Status, str] | None = None) -> bytes:
    """Check a response's status byte: return the rest if OK, else raise the matching error.

    ``ops`` names the op in messages, ``meanings`` are the family's own texts
    for some statuses (the generic ones otherwise).
    """
    if not payload:
        raise BridgeProtocolError(f"bridge answered {op_name(op, ops)} without a status byte")
    code = payload[0]
    if code == Status.OK:
        return payload[1:]
    try:
        status = Status(code)
    except ValueError:
        raise BridgeProtocolError(f"bridge answered {op_name(op, ops)} with unknown status 0x{code:02x}") from None
    raise STATUS_ERRORS[status](op, ops, (meanings or {}).get(status))


# -- payload helpers and the STATUS layout -----------------------------------------


def check_length(what: str, payload: bytes, size: int) -> None:
    """Refuse an answer whose payload is not exactly ``size`` bytes; ``what`` names the op."""
    if len(payload) != size:
        raise BridgeProtocolError(f"{what} payload has {len(payload)} bytes, expected {size}")


def f32_value(value: float) -> float:
    """The shortest decimal that the f32 on the wire stands for (1e-10 A, not 1.0000000133e-10 A)."""
    return float(str(np.float32(value)))


@dataclass(frozen=True)
class BridgeStatus:
    """A STATUS answer; ``flags`` has the family's flag type (CMNA: ``StatusFlag``)."""

    flags: int
    uptime_ms: int
    temperature_c: float


_STATUS = struct.Struct("<IIf")


def status_answer(flags: int, uptime_ms: int, temperature_c: float) -> bytes:
    return _STATUS.pack(flags, uptime_ms, temperature_c)


def parse_status(payload: bytes, flag_type: Callable[[int], int] = int) -> BridgeStatus:
    """STATUS answer; ``flag_type`` turns the u32 flags into the family's flag type."""
    check_length(CommonOp.STATUS.name, payload, _STATUS.size)
    flags, uptime_ms, temperature_c = _STATUS.unpack(payload)
    return BridgeStatus(flag_type(flags), uptime_ms, f32_value(temperature_c))
