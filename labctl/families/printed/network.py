"""The printed network model: one torch implementation of a printed neuromorphic circuit (contract 1.3-1.8).

Training, prediction, export and replay all use this forward pass.

- Crossbar (1.3; seeds 000/001, the authors' code): a learnable theta per row
  and column, clamped to [-10, 10]; |theta| < 0.01 is not printed; rows are
  the layer's inputs, the bias at 1 V and GND at 0 V. theta < 0 puts the
  resistor on the input's negated line (one NEG per input and layer, also
  for the bias); the GND row has no negated line, so its |theta| is used.
  ``V_z = sum g V / sum g``.
- Conductances: a column's thetas are scaled so that its smallest printed
  |theta| is g_min = 1e-7 S (1.3); V_z depends only on ratios, power on g.
  Given the run's RH sheet resistance, g_min and the largest ratio are what
  the run can draw (printable.crossbar_g_range_s; 1e-7 S and 1000 at R_s >=
  50 kohm/sq).
- Cells: ACT ``eta1 + eta2 tanh((V - eta3) eta4)``, NEG its negative, with
  the etas from the calibrated CellMap at the cells' component values
  (process_map); components learnable in range or fixed (cell_design).
- Variation (1.6, seed 000): every printed value (each conductance, each cell
  component) times ``1 + U(-eps, eps)``, drawn per sample.
- Power (1.8, seed 001): crossbar ``sum g (V_r - V_z)^2`` + every printed
  cell's ``P(V)`` from the CellMap (a NEG's includes its input current).
- Loading: the calibration's maps are measured unloaded (the bench reads cell
  outputs at > 10 Gohm); the authors ignore the crossbar's load on cell
  outputs and so does this model. ``loading_report`` (network_loading)
  bounds the error it causes for a given design.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from labctl.families.printed.cell_design import CellBank
from labctl.families.printed.printable import (BIAS_V, G_MAX_S, G_MIN_S, THETA_MAX, THETA_PRINT_MIN,
                                               crossbar_g_range_s)
from labctl.families.printed.process_map import CellMap

_PRESENCE_SCALE = 0.1
"""Soft NEG-presence slope (theta units) for the gradient of the NEG count (straight-through)."""


def vary(values: torch.Tensor, n_samples: int, eps: float, generator: torch.Generator | None) -> torch.Tensor:
    """(S, ...) printed samples of ``values``: each element times ``1 + U(-eps, eps)`` (contract 1.6).

    ``n_samples = 0`` is the nominal circuit, returned with a sample axis of 1.
    """
    if n_samples == 0 or eps == 0.0:
        return values.unsqueeze(0).expand(max(n_samples, 1), *values.shape)
    u = torch.rand((n_samples, *values.shape), generator=generator, dtype=values.dtype)
    return values * (1.0 + eps * (2.0 * u - 1.0))


@dataclass(frozen=True)
class LayerValues:
    """One layer's printed values, nominal: what a design stores and the exporter draws."""

    theta: torch.Tensor        # (n_in + 2, n_out): inputs, bias, GND; clamped
    g_s: torch.Tensor          # (n_in + 2, n_out) conductance, 0 where not printed
    negated: torch.Tensor      # (n_in + 2, n_out) bool: resistor on the negated line
    neg_present: torch.Tensor  # (n_in + 1,) bool: the input's (or bias's) NEG is printed
    act: torch.Tensor          # (n_out, 6) ACT components
    neg: torch.Tensor          # (n_in + 1, 7) NEG components


class PrintedLayer(nn.Module):
    """One crossbar layer with its NEG cells (inputs and bias) and its ACT cells (one per column)."""

    def __init__(self, n_in: int, n_out: int, *, fixed_circuits: bool, generator: torch.Generator | None,
                 g_range_s: tuple[float, float] = (G_MIN_S, G_MAX_S)) -> None:
        super().__init__()
        self.g_range_s = g_range_s
        theta = torch.rand(n_in + 2, n_out, generator=generator, dtype=torch.float64) * 2.0 - 1.0
        theta[-1] = theta[-1].abs() + 0.5
        self.theta = nn.Parameter(theta)
        self.act = CellBank("ACT", n_out, fixed=fixed_circuits, generator=generator)
        self.neg = CellBank("NEG", n_in + 1, fixed=fixed_circuits, generator=generator)

    def printed(self) -> LayerValues:
        """Nominal printed values (contract 1.3): clamp, drop |theta| < 0.01, scale columns to g_min.

        g_min and the largest ratio come from the run's RH sheet resistance (printable.crossbar_g_range_s):
        a ratio the run cannot draw is clipped here, so the model predicts what will be printed.
        """
        g_lo, g_hi = self.g_range_s
        theta = torch.clamp(self.theta, -THETA_MAX, THETA_MAX)
        mag = theta.abs()
        printed = mag >= THETA_PRINT_MIN
        smallest = torch.where(printed, mag, torch.full_like(mag, torch.inf)).amin(dim=0)
        smallest = torch.where(torch.isfinite(smallest), smallest, torch.ones_like(smallest))
        ratio = torch.clamp(torch.where(printed, mag, torch.zeros_like(mag)) / smallest, max=g_hi / g_lo)
        g = ratio * g_lo
        negated = (theta < 0) & printed
        negated[-1] = False  # GND has no negated line
        neg_present = negated[:-1].any(dim=1)
        return LayerValues(theta, g, negated, neg_present, self.act.components(), self.neg.components())

    def neg_presence(self, values: LayerValues) -> torch.Tensor:
        """NEG count per input as a number with a gradient: hard forward, soft backward (seed 001's N^N)."""
        soft = torch.tanh(torch.relu(-values.theta[:-1] - THETA_PRINT_MIN).sum(dim=1) / _PRESENCE_SCALE)
        hard = values.neg_present.to(soft.dtype)
        return hard + soft - soft.detach()

    def forward(self, v_in: torch.Tensor, maps: tuple[CellMap, CellMap], n_samples: int, eps: float,
                generator: torch.Generator | None, with_power: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(S or 1, B, n_in) input voltages -> ((S, B, n_out) outputs, (S, B) power in W, 0 unless asked)."""
        values = self.printed()
        dtype, s = v_in.dtype, max(n_samples, 1)
        g = vary(values.g_s, n_samples, eps, generator).to(dtype)                       # (S, R, C)
        negated = values.negated
        g_neg = torch.where(negated, g, torch.zeros_like(g))
        g_pos = g - g_neg
        neg_etas = maps[1].etas_and_power(vary(values.neg, n_samples, eps, generator).to(dtype))[:, None]
        act_etas = maps[0].etas_and_power(vary(values.act, n_samples, eps, generator).to(dtype))[:, None]
        batch = v_in.shape[1]
        ones = torch.full((s, batch, 1), BIAS_V, dtype=dtype)
        v_src = torch.cat([v_in.expand(s, batch, v_in.shape[2]), ones], dim=2)          # inputs and bias
        neg_t = torch.tanh((v_src - neg_etas[..., 2]) * neg_etas[..., 3])             # (S, B, n_in + 1)
        v_negline = -(neg_etas[..., 0] + neg_etas[..., 1] * neg_t)
        g_pos, g_neg = g_pos[:, :-1], g_neg[:, :-1]                     # the GND row adds only to sum g
        g_total = g.sum(dim=1)[:, None, :]                                              # (S, 1, C)
        v_z = (v_src @ g_pos + v_negline @ g_neg) / g_total
        act_t = torch.tanh((v_z - act_etas[..., 2]) * act_etas[..., 3])
        out = act_etas[..., 0] + act_etas[..., 1] * act_t
        if not with_power:
            return out, torch.zeros((), dtype=dtype)
        crossbar = ((v_src**2) @ g_pos + (v_negline**2) @ g_neg - v_z**2 * g_total).sum(dim=2)
        act_power = (act_etas[..., 4] + act_etas[..., 5] * act_t + act_etas[..., 6] * v_z**2).sum(dim=2)
        neg_cells = neg_etas[..., 4] + neg_etas[..., 5] * neg_t + neg_etas[..., 6] * v_src**2
        neg_power = (neg_cells * self.neg_presence(values).to(dtype)).sum(dim=2)
        return out, crossbar + act_power + neg_power


class PrintedNetwork(nn.Module):
    """Layers ``[inputs, hidden..., classes]`` of printed crossbars, every layer ending in ACT cells."""

    def __init__(self, layers: tuple[int, ...], act_map: CellMap, neg_map: CellMap, *, fixed_circuits: bool = False,
                 seed: int = 0, rh_ohm_sq: float | None = None) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.layers_spec = tuple(int(n) for n in layers)
        self.act_map, self.neg_map = act_map, neg_map
        g_range = crossbar_g_range_s(rh_ohm_sq)
        self.layers = nn.ModuleList(PrintedLayer(a, b, fixed_circuits=fixed_circuits, generator=generator,
                                                 g_range_s=g_range)
                                    for a, b in zip(self.layers_spec, self.layers_spec[1:]))

    def forward(self, x: torch.Tensor, *, n_samples: int = 0, eps: float = 0.0,
                generator: torch.Generator | None = None, with_power: bool = True,
                dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, n_in) inputs (V) -> ((S, B, classes) output voltages, (S, B) power in W); S = 1 when nominal.

        Training runs in float32 (2 to 3 times faster on CPU); predictions and export use float64.
        """
        v = x.to(dtype)[None]
        power = torch.zeros((), dtype=dtype)
        for layer in self.layers:
            v, p = layer(v, (self.act_map, self.neg_map), n_samples, eps, generator, with_power)
            power = power + p
        return v, power

    def printed(self) -> list[LayerValues]:
        return [layer.printed() for layer in self.layers]
