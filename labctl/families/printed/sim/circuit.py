"""Batched DC operating points of a printed circuit: nodal analysis solved by damped Newton.

Every circuit the simulator meets (one test structure, a resistor chain, a
whole printed network with its pads, bleeds and shunts) is a netlist of
linear resistors and EGTs (:mod:`.egt`). Kirchhoff's current law at each free
node, ``sum of currents leaving = 0``, is solved for a batch of operating
points at once (a 61-point sweep, 400 test patterns): the Jacobian is
assembled for the whole batch and solved with one batched LU per iteration.

Nodes are named by strings; ``GND`` is always 0 V. The caller fixes any
other node (a rail behind its SMU, a DAC behind its shunt's DAC side) per
solve; every free node gets a tiny ``G_MIN_S`` to ground, as in SPICE, so a
floating circuit (rails open, contract 4.4) has a defined operating point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from labctl.families.printed.sim.egt import EgtMaterial, channel_current

GROUND = "GND"
G_MIN_S = 1e-12
"""Conductance from every free node to ground (1 Tohm of foil insulation)."""
MAX_STEP_V = 0.3
"""Newton step limit per node: keeps the exponential EGT law from overshooting."""
TOLERANCE_V = 1e-9
MAX_ITERATIONS = 200


class NoConvergence(RuntimeError):
    """The Newton iteration did not settle (a simulator bug, not a bench condition)."""


@dataclass
class Netlist:
    """Resistors and EGTs between named nodes: the simulator's view of a printed sample."""

    resistors: list[tuple[str, str, float, str]] = field(default_factory=list)
    """(node a, node b, resistance in ohm, element name)."""
    egts: list[tuple[str, str, str, float, float, str]] = field(default_factory=list)
    """(gate, drain, source, beta in A/V^2, threshold in V, element name)."""

    def resistor(self, a: str, b: str, r_ohm: float, name: str) -> None:
        if not r_ohm > 0:
            raise ValueError(f"{name}: resistance {r_ohm} must be positive")
        self.resistors.append((a, b, float(r_ohm), name))

    def egt(self, gate: str, drain: str, source: str, beta: float, v_t: float, name: str) -> None:
        self.egts.append((gate, drain, source, float(beta), float(v_t), name))

    def extend(self, other: "Netlist") -> None:
        self.resistors += other.resistors
        self.egts += other.egts

    def nodes(self) -> list[str]:
        """Every node name, in first-use order."""
        seen: dict[str, None] = {}
        for a, b, *_ in self.resistors:
            seen.setdefault(a)
            seen.setdefault(b)
        for g, d, s, *_ in self.egts:
            for node in (g, d, s):
                seen.setdefault(node)
        return list(seen)


@dataclass(frozen=True)
class Solution:
    """Node voltages of a batch of operating points (axis 0 is the batch)."""

    names: tuple[str, ...]
    voltages: NDArray[np.float64]
    """(batch, node) in V, every node of the netlist including the fixed ones."""

    def v(self, node: str) -> NDArray[np.float64]:
        return self.voltages[:, self.names.index(node)]


class CompiledCircuit:
    """A netlist with index arrays for a fixed choice of which nodes are held by sources.

    Compiling once per wiring state and solving many batches keeps the
    Python-level work out of the Newton loop.
    """

    def __init__(self, netlist: Netlist, fixed: tuple[str, ...], material: EgtMaterial) -> None:
        self.netlist = netlist
        self.material = material
        names = netlist.nodes()
        for node in (GROUND, *fixed):
            if node not in names:
                names.append(node)
        held = set(fixed) | {GROUND}
        self.free = [n for n in names if n not in held]
        self.fixed = [GROUND, *[n for n in fixed if n != GROUND]]
        self.names = tuple(self.free + self.fixed)
        index = {n: i for i, n in enumerate(self.names)}
        self.n_free = len(self.free)
        r = netlist.resistors
        self._ra = np.array([index[a] for a, *_ in r], dtype=int)
        self._rb = np.array([index[b] for _, b, *_ in r], dtype=int)
        self._rg = np.array([1.0 / x[2] for x in r])
        e = netlist.egts
        self._eg, self._ed, self._es = (np.array([index[x[k]] for x in e], dtype=int) for k in range(3))
        self._beta = np.array([x[3] for x in e])
        self._vt = np.array([x[4] for x in e])
        self._linear = self._conductance_matrix()

    def _conductance_matrix(self) -> NDArray[np.float64]:
        """The resistors' nodal matrix over all nodes (free rows first), plus G_MIN on free nodes."""
        size = len(self.names)
        g = np.zeros((size, size))
        for a, b, c in zip(self._ra, self._rb, self._rg):
            g[a, a] += c
            g[b, b] += c
            g[a, b] -= c
            g[b, a] -= c
        g[np.arange(self.n_free), np.arange(self.n_free)] += G_MIN_S
        return g

    def egt_currents(self, v: NDArray[np.float64]) -> tuple[NDArray[np.float64], ...]:
        """Drain currents and partials of every EGT for node voltages ``v`` (batch, node)."""
        return channel_current(self._beta, self._vt, self.material, v[:, self._eg], v[:, self._ed], v[:, self._es])

    def residual(self, v: NDArray[np.float64]) -> NDArray[np.float64]:
        """Current leaving each node (batch, node) through the elements: zero at free nodes when solved."""
        out = v @ self._linear.T
        i_d = self.egt_currents(v)[0]
        np.add.at(out, (slice(None), self._ed), i_d)
        np.add.at(out, (slice(None), self._es), -i_d)
        return out

    def _jacobian(self, v: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Free-node residual and its Jacobian by the free-node voltages."""
        nf, batch = self.n_free, v.shape[0]
        i_d, d_g, d_d, d_s = self.egt_currents(v)
        res = v @ self._linear[:nf].T
        size = len(self.names)
        jac = np.broadcast_to(self._linear, (batch, size, size)).copy().reshape(batch, -1)
        rows = np.concatenate([self._ed] * 3 + [self._es] * 3)
        cols = np.concatenate([self._eg, self._ed, self._es] * 2)
        vals = np.concatenate([d_g, d_d, d_s, -d_g, -d_d, -d_s], axis=1)
        np.add.at(jac, (slice(None), rows * size + cols), vals)
        full = np.zeros((batch, size))
        np.add.at(full, (slice(None), self._ed), i_d)
        np.add.at(full, (slice(None), self._es), -i_d)
        jac = jac.reshape(batch, size, size)[:, :nf, :nf]
        return res + full[:, :nf], jac

    def solve(self, fixed_v: NDArray[np.float64], guess: NDArray[np.float64] | None = None) -> Solution:
        """Operating points for held voltages ``fixed_v`` (batch, held node after GND, in ``fixed`` order).

        ``guess`` (batch, free node) warm-starts the iteration (the previous sweep point).
        """
        fixed_v = np.atleast_2d(np.asarray(fixed_v, dtype=float))
        batch = fixed_v.shape[0]
        v = np.zeros((batch, len(self.names)))
        v[:, self.n_free + 1:] = fixed_v
        if guess is not None:
            v[:, :self.n_free] = guess
        if self.n_free == 0:
            return Solution(self.names, v)
        for _ in range(MAX_ITERATIONS):
            res, jac = self._jacobian(v)
            step = np.linalg.solve(jac, -res[..., None])[..., 0]
            largest = np.max(np.abs(step), axis=1, keepdims=True)
            step *= np.minimum(1.0, MAX_STEP_V / np.maximum(largest, 1e-300))
            v[:, :self.n_free] += step
            if np.all(largest < TOLERANCE_V):
                return Solution(self.names, v)
        raise NoConvergence(f"DC solve did not converge (largest step {float(np.max(largest)):.3g} V)")

    def element_power(self, solution: Solution) -> NDArray[np.float64]:
        """Total power (W) dissipated in the resistors and EGT channels, per batch point."""
        v = solution.voltages
        p_r = ((v[:, self._ra] - v[:, self._rb]) ** 2 * self._rg).sum(axis=1)
        i_d = self.egt_currents(v)[0]
        p_t = (i_d * (v[:, self._ed] - v[:, self._es])).sum(axis=1)
        free = v[:, :self.n_free]
        return p_r + p_t + (free ** 2 * G_MIN_S).sum(axis=1)

    def source_current(self, solution: Solution, node: str) -> NDArray[np.float64]:
        """Current (A) a held node delivers into the circuit, per batch point."""
        return self.residual(solution.voltages)[:, self.names.index(node)]
