"""The crossbar with the load it puts on its drivers: one exact linear solve per layer (contract 1.3, 1.5, 1.8).

Contract 1.3: "rows driven by cell outputs have a source resistance ...;
crossbar conductances load them. This loading is the process's behaviour".
The authors (seeds 000/001) ignore it; in the simulated kit an ACT output
has R_out ~ R2 || 100 kohm (5 to 25 kohm) and a NEG output up to ~50 kohm,
so a row with sum g ~ 2.5e-5 S sags by 10 to 60 % of its swing.

Model. Each line j of a layer (a row other than GND) is a Thevenin source
(open-circuit voltage ``V_oc,j``, resistance ``R_j``; R_j = 0 for pads and
the bias, which the bench holds) loaded by the crossbar columns it feeds
and by whatever else sits on it: a NEG input, ``I = i_j + y_j V_j``
(contract 1.5: resistive, with an intercept). The column nodes have no
other load (the ACT input is a gate), so KCL at column c gives
``G_c V_zc = sum_j g_jc V_j`` (G_c includes the GND row), and at line j

    V_j = V_oc,j - R_j (sum_c g_jc (V_j - V_zc) + i_j + y_j V_j)
        = a_j + w_j sum_c g_jc V_zc,   d_j = 1 + R_j (sum_c g_jc + y_j),
          a_j = (V_oc,j - R_j i_j) / d_j,   w_j = R_j / d_j.

Eliminating the lines: ``(diag(G) - g^T diag(w) g) V_z = g^T a``. The
matrix is (C, C) per printed sample and, while the source resistances are
the same for every input row, per sample only; a cell output's resistance
depends on its level (an inverter on or off), so it is in general per
input row too, (S, B, C, C) with C a layer's few columns: inverted once per
layer and forward pass. It reproduces the unloaded ``V_z = g^T V / G`` (to
rounding) when every R_j is 0. The cells' V_oc are fixed during a
solve; a NEG whose input line is itself loaded (layer >= 2) needs its
input's loaded voltage, which the network gets by re-solving 2 to 3 times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass(frozen=True)
class LineGroup:
    """Lines of one layer driven alike (positive lines, or negated lines).

    ``g`` (S, J, C) conductances to the columns; ``r_out_ohm`` (S or 1, 1 or B, J) the sources' Thevenin
    resistances (per input row where they depend on the source's level); ``g_load_s``/``i_load_a`` (S or 1, 1, J) an extra load on each line, I = i + g V
    (a NEG input), None for none.
    """

    g: torch.Tensor
    r_out_ohm: torch.Tensor | None = None
    g_load_s: torch.Tensor | None = None
    i_load_a: torch.Tensor | None = None

    @property
    def loaded(self) -> bool:
        """Whether any source of the group has a resistance (else its lines sit at V_oc)."""
        return self.r_out_ohm is not None and bool(torch.any(self.r_out_ohm != 0))


@dataclass(frozen=True)
class _Coupling:
    """Per line: ``V = a + w (g V_z)`` with ``a = V_oc / d + offset``; None members when unloaded.

    Each is (S, 1 or B, J): a source resistance may differ per input row (an output's resistance
    depends on its level, process_map ``r_out_low_ohm``).
    """

    inv_d: torch.Tensor | None = None
    w: torch.Tensor | None = None
    offset: torch.Tensor | None = None

    def a(self, v_oc: torch.Tensor) -> torch.Tensor:
        """``a = V_oc / d + offset``: the lines' voltages before the columns pull on them (V_oc unloaded)."""
        if self.inv_d is None:
            return v_oc
        return v_oc * self.inv_d if self.offset is None else v_oc * self.inv_d + self.offset


def _coupling(group: LineGroup) -> _Coupling:
    """d, w and the current-source offset of one group (module docstring)."""
    if not group.loaded:
        return _Coupling()
    r = group.r_out_ohm
    y = group.g.sum(dim=2).unsqueeze(1)                                             # (S, 1, J)
    if group.g_load_s is not None:
        y = y + group.g_load_s
    inv_d = 1.0 / (1.0 + r * y)
    offset = None if group.i_load_a is None else -r * group.i_load_a * inv_d
    return _Coupling(inv_d, r * inv_d, offset)


class LoadedCrossbar:
    """One layer's crossbar with its line sources: solve V_z and the line voltages for given V_oc.

    What depends only on the printed sample and the source resistances is done here once: the matrix
    ``K = diag(G) - g^T diag(w) g`` is inverted per sample and, where a resistance differs per input row,
    per row ((S, 1 or B, C, C)); a solve is then ``V_z = (sum_i (V_oc,i / d_i) g_i + offset g) K^-1``
    (``g_i / G`` when nothing is loaded, as in seeds 000/001).
    """

    def __init__(self, groups: Sequence[LineGroup], g_total_s: torch.Tensor) -> None:
        """``g_total_s`` (S, 1, C): each column's total conductance, the GND row included."""
        self.groups = tuple(groups)
        self.g_total_s = g_total_s
        self.couplings = tuple(_coupling(group) for group in self.groups)
        self.k_inv = None
        if all(c.w is None for c in self.couplings):
            return
        columns = g_total_s.shape[-1]
        k = torch.diag_embed(g_total_s[:, 0, :]).unsqueeze(1)                        # (S, 1, C, C)
        for group, c in zip(self.groups, self.couplings):
            if c.w is not None:  # sum_j w_j g_jc g_jd: one product with the lines' outer products (S, J, C C)
                outer = (group.g.unsqueeze(-1) * group.g.unsqueeze(-2)).flatten(2)
                k = k - (c.w @ outer).unflatten(-1, (columns, columns))
        self.k_inv = torch.linalg.inv(k)

    def _through_k(self, rhs: torch.Tensor) -> torch.Tensor:
        """(S, B, C) right-hand side times K^-1, per sample and row.

        A broadcast product and a sum, not ``@``: with a layer's few columns, the batched matmul and its
        backward run as 20 000 tiny products, 2 to 3 times slower on CPU (measured)."""
        return (rhs.unsqueeze(-1) * self.k_inv).sum(dim=-2)

    def solve(self, v_oc: Sequence[torch.Tensor]) -> "Solution":
        """(S, B, J) open-circuit voltages per group -> the column voltages; line voltages on demand.

        V_z is linear in the V_oc: the groups' right-hand sides are summed and go through K^-1 once."""
        if self.k_inv is None:
            v_z = sum(v @ (group.g / self.g_total_s) for group, v in zip(self.groups, v_oc))
            return Solution(self, v_z, tuple(v_oc))
        rhs = sum(c.a(v) @ group.g for group, c, v in zip(self.groups, self.couplings, v_oc))
        return Solution(self, self._through_k(rhs), tuple(v_oc))


@dataclass(frozen=True)
class Solution:
    """A solved crossbar: ``v_z`` (S, B, C); each group's line voltages computed only when asked (the
    forward needs the NEG inputs' lines while iterating and every line only for the power)."""

    crossbar: LoadedCrossbar
    v_z: torch.Tensor
    v_oc: tuple[torch.Tensor, ...]

    def lines(self, index: int) -> torch.Tensor:
        """(S, B, J) voltages of group ``index``'s lines: V_oc when unloaded, else ``a + w (g V_z)``."""
        c, group = self.crossbar.couplings[index], self.crossbar.groups[index]
        if c.w is None:
            return self.v_oc[index]
        return c.a(self.v_oc[index]) + c.w * (self.v_z @ group.g.transpose(1, 2))

    def dissipation_w(self) -> torch.Tensor:
        """(S, B) crossbar power ``sum g (V_r - V_z)^2`` over every row, GND included (contract 1.8).

        Written as ``sum g V_r^2 - V_z^2 G``, which equals it because every column obeys KCL (1.8) at
        the loaded line voltages.
        """
        total = sum((self.lines(i) ** 2) @ group.g for i, group in enumerate(self.crossbar.groups))
        return (total - self.v_z**2 * self.crossbar.g_total_s).sum(dim=2)
