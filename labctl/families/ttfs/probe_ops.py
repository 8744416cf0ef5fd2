"""TTFS's analogue observation operations: SELECT_PROBE, HOLD_ROW, READ_MONITORS (docs/specs/ttfs-bench.md 2.2).

Its own module because these three are how a bench looks at the die's
voltages rather than its spike times: SELECT_PROBE routes a membrane or a
reference to the MON pad (1.10), HOLD_ROW switches one synapse row on in DC
for a static measurement, and READ_MONITORS reads the housekeeping ADC.
SELECT_PROBE and HOLD_ROW share one layout (``u8, u16`` with 0xFFFF as
"none"). Length and argument rules: 2.7, through the shared checks of
:mod:`.protocol`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from labctl.drivers.bridge_protocol import check_length, f32_value
from labctl.families.ttfs.identify import DieDescription
from labctl.families.ttfs.protocol import Opcode, check_argument, check_request_length

DISCONNECT = 0xFFFF
"""SELECT_PROBE neuron that disconnects the probe; HOLD_ROW row that releases the held row."""


# -- READ_MONITORS (2.2) -----------------------------------------------------------------


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


# -- SELECT_PROBE and HOLD_ROW (2.2) --------------------------------------------------------


_LAYER_U16 = struct.Struct("<BH")


def _pair_request(first: int, second: int | None, what: str) -> bytes:
    """``u8 first, u16 second`` with None as 0xFFFF: the SELECT_PROBE and HOLD_ROW layout."""
    check_argument(0 <= first <= 0xFF and (second is None or 0 <= second < DISCONNECT),
                   f"{what} does not fit the request")
    return _LAYER_U16.pack(first, DISCONNECT if second is None else second)


def _parse_pair(op: Opcode, payload: bytes) -> tuple[int, int | None]:
    check_request_length(op, payload, _LAYER_U16.size)
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
        check_argument(neuron <= 3, f"probe reference {neuron} does not exist (0..3)")
    else:
        check_argument(layer < die.n_layers and neuron < die.layer_sizes[layer],
                       f"probe neuron {neuron} of layer {layer} does not exist")
    return layer, neuron


def hold_row_request(matrix: int, row: int | None) -> bytes:
    """HOLD_ROW: row ``row`` of matrix ``matrix`` on in DC (its n_m is the bias row); None releases."""
    return _pair_request(matrix, row, f"held row {row} of matrix {matrix}")


def parse_hold_row_request(payload: bytes, die: DieDescription) -> tuple[int, int | None]:
    matrix, row = _parse_pair(Opcode.HOLD_ROW, payload)
    if row is None:
        return matrix, None
    check_argument(matrix < die.n_matrices, f"matrix {matrix} does not exist (0..{die.n_matrices - 1})")
    check_argument(row < die.matrix_shape(matrix)[0],
                   f"row {row} outside 0..{die.layer_sizes[matrix]} of matrix {matrix}")
    return matrix, row
