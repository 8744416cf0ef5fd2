"""DC readings of held rows (HOLD_ROW, contract 2.2): the synaptic current of one row at the verify point.

While a row is held every neuron of its layer is clamped to V_REST and each
of the row's sites carries its verify-point current through its rail in DC
(2.2). The rail's SMU also carries the pad's bleeder (1.11), so one reading
with the row held and one released give the row's current; excitatory
branches sink current from the membranes into EREV_EXC (its reading falls),
inhibitory ones source it from EREV_INH (its reading rises).
"""

from __future__ import annotations

from dataclasses import dataclass

RAIL_ROLE = {1: "rev_exc", -1: "rev_inh"}
"""The SMU role of each polarity's rail (contract 3.1)."""


@dataclass(frozen=True)
class HeldReading:
    held_a: float
    released_a: float
    polarity: int

    @property
    def synaptic_a(self) -> float:
        """The row's synaptic current magnitude (A): what the held row adds to its rail's reading, signed."""
        return (self.released_a - self.held_a) if self.polarity > 0 else (self.held_a - self.released_a)


def read_held_row(bench, matrix: int, row: int, polarity: int, *, nplc: float = 1.0,
                  released_a: float | None = None) -> HeldReading:
    """Hold ``row`` of ``matrix``, read the polarity's rail, release it, read again (unless ``released_a``)."""
    role = RAIL_ROLE[polarity]
    bench.link.hold_row(matrix, row)
    try:
        held = bench.measure_current(role, nplc=nplc)
    finally:
        bench.link.hold_row(matrix, None)
    released = bench.measure_current(role, nplc=nplc) if released_a is None else released_a
    return HeldReading(held, released, polarity)
