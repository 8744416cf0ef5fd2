"""The printed network model: one torch implementation of a printed neuromorphic circuit (contract 1.3-1.8).

Training, prediction, export and replay all use this forward pass.

- Crossbar (1.3; seeds 000/001, the authors' code): a learnable theta per row
  and column, clamped to [-10, 10]; |theta| < 0.01 is not printed; rows are
  the layer's inputs, the bias at 1 V and GND at 0 V. theta < 0 puts the
  resistor on the input's negated line (one NEG per input and layer, also
  for the bias); the GND row has no negated line, so its |theta| is used.
  ``V_z = sum g V / sum g`` over the rows' loaded voltages (Loading below).
- Conductances: a column's thetas are scaled so that its smallest printed
  |theta| is g_min = 1e-7 S (1.3); V_z depends only on ratios, power on g.
  Given the run's RH sheet resistance, g_min and the largest ratio are what
  the run can draw (printable.crossbar_g_range_s; 1e-7 S and 1000 at R_s >=
  50 kohm/sq).
- Cells: ACT ``eta1 + eta2 tanh((V - eta3) eta4)``, NEG its negative, with
  the etas from the calibrated CellMap at the cells' component values
  (process_map); components learnable in range or fixed (cell_design); learnable ones are kept inside
  the region the calibration's maps were measured on (measured_region), where the maps hold.
- Variation (1.6, seed 000): every printed value (each conductance, each cell
  component) times ``1 + U(-eps, eps)``, drawn per sample; a cell's etas also
  spread by what its map measured beyond that (the kit parts the designer does
  not choose are printed too) or by the map's held-out error, whichever is
  larger (``spread_cells``, ``CellMap.cell_spread_sd``).
- Power (1.8, seed 001): crossbar ``sum g (V_r - V_z)^2`` at the loaded row
  voltages + every printed cell's ``P(V)`` from the CellMap at its input's
  (loaded) voltage (a NEG's includes its input current).
- Loading (1.3, 1.5; module ``loading``): the maps' etas are measured
  unloaded (the bench reads cell outputs at > 10 Gohm), so they give each
  cell's open-circuit output. The authors ignore the crossbar's load on
  cell outputs; this model does not: every cell-driven line (an ACT output
  feeding the next layer, a NEG output) is a Thevenin source with the map's
  ``r_out_ohm`` at its high level and ``r_out_low_ohm`` at its low level
  (``output_resistance``), loaded by the columns it feeds and, for a positive line in
  layer >= 2, by its NEG's input (``I = i_in0_a + V / r_in_ohm``). Pads and
  the bias are ideal (the 1 kohm input shunt of 4.3 is neglected). A
  calibration without port targets gives the unloaded model exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from labctl.families.printed.cell_design import CellBank
from labctl.families.printed.loading import LineGroup, LoadedCrossbar, Solution
from labctl.families.printed.measured_region import MeasuredRegion
from labctl.families.printed.printable import (BIAS_V, G_MAX_S, G_MIN_S, THETA_MAX, THETA_PRINT_MIN,
                                               crossbar_g_range_s)
from labctl.families.printed.process_map import PORT_TARGETS, TARGETS, CellMap

_PRESENCE_SCALE = 0.1
"""Soft NEG-presence slope (theta units) for the gradient of the NEG count (straight-through)."""
LOADED_ITERATIONS = 3

SURROGATE_SLOPE_PER_V = 5.0
"""Slope of the tanh whose gradient is added while training. A printed ACT switches within tens of mV
(contract 1.4: eta4 up to about 100 /V); where every column voltage starts outside that window the true
gradient vanishes and training never moves (measured: a sim-7 calibration left Iris at chance). The forward
value is the cell's own curve; only the backward pass sees the broader slope (a surrogate gradient)."""


def _switching(u: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    """``tanh(u slope)``, with a surrogate gradient of slope SURROGATE_SLOPE_PER_V while autograd records."""
    exact = torch.tanh(u * slope)
    if not torch.is_grad_enabled():
        return exact
    soft = torch.tanh(u * SURROGATE_SLOPE_PER_V)
    return exact + soft - soft.detach()
"""Solves per layer when a NEG's input line is loaded (layer >= 2): its input is the loaded voltage,
which depends on its own output through the columns; the fixed point converges by the third pass on
the simulated kit (the coupling is R_out g / G times the NEG gain, well below 1)."""
_R_OUT, _R_IN, _I_IN0, _R_OUT_LOW = (len(TARGETS) + PORT_TARGETS.index(t) for t in
                                     ("r_out_ohm", "r_in_ohm", "i_in0_a", "r_out_low_ohm"))
"""Columns of ``CellMap.targets_and_ports`` holding the port values (PORT_TARGETS order)."""


def output_resistance(cell: torch.Tensor, level_t: torch.Tensor, inverting: bool) -> torch.Tensor:
    """A cell output's source resistance at its level: high (its own inverter off, only load resistors
    drive it: process_map ``r_out_ohm``) where the output sits at its high level, low (the inverter's
    channel drives it: ``r_out_low_ohm``, an order of magnitude stiffer in the simulated kit: a NEG 48
    kohm against 1 to 4 kohm) at its low level, linear in between. ``level_t`` is the cell's tanh (-1 to
    1); an ``inverting`` cell (NEG) is high where it is -1. One fused product on the (S, B, n) level: the
    cell columns are small, the level is not."""
    low = cell[..., _R_OUT_LOW]
    half_swing = (cell[..., _R_OUT] - low) / 2.0
    return torch.addcmul(low + half_swing, -half_swing if inverting else half_swing, level_t)


def vary(values: torch.Tensor, n_samples: int, eps: float, generator: torch.Generator | None) -> torch.Tensor:
    """(S, ...) printed samples of ``values``: each element times ``1 + U(-eps, eps)`` (contract 1.6).

    ``n_samples = 0`` is the nominal circuit, returned with a sample axis of 1.
    """
    if n_samples == 0 or eps == 0.0:
        return values.unsqueeze(0).expand(max(n_samples, 1), *values.shape)
    u = torch.rand((n_samples, *values.shape), generator=generator, dtype=values.dtype)
    return values * (1.0 + eps * (2.0 * u - 1.0))


def spread_cells(cells: torch.Tensor, cell_map: CellMap, n_samples: int, eps: float,
                 generator: torch.Generator | None) -> torch.Tensor:
    """Printed cells' (S, n, targets) with the map's ``cell_spread_sd`` added (normal, per cell and sample:
    eta1..eta3 in V, eta4 relative); unchanged for the nominal circuit or a map without one."""
    spread = cell_map.cell_spread_sd
    if n_samples == 0 or eps == 0.0 or not spread:
        return cells
    sd = torch.as_tensor(spread, dtype=cells.dtype)
    z = torch.randn((*cells.shape[:-1], len(sd)), generator=generator, dtype=cells.dtype) * sd
    etas = torch.cat([cells[..., :3] + z[..., :3], cells[..., 3:4] * torch.exp(z[..., 3:4])], dim=-1)
    return torch.cat([etas, cells[..., 4:]], dim=-1)


@dataclass(frozen=True)
class Drive:
    """What drives a layer's input lines: open-circuit voltages (S or 1, B, n) and the sources'
    Thevenin resistances (S, 1 or B, n: they depend on the output's level); None for ideal sources
    (the input pads, contract 4.3)."""

    v: torch.Tensor
    r_out_ohm: torch.Tensor | None


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
                 g_range_s: tuple[float, float] = (G_MIN_S, G_MAX_S),
                 regions: tuple[MeasuredRegion | None, MeasuredRegion | None] = (None, None)) -> None:
        super().__init__()
        self.g_range_s = g_range_s
        theta = torch.rand(n_in + 2, n_out, generator=generator, dtype=torch.float64) * 2.0 - 1.0
        theta[-1] = theta[-1].abs() + 0.5
        self.theta = nn.Parameter(theta)
        self.act = CellBank("ACT", n_out, fixed=fixed_circuits, generator=generator, region=regions[0])
        self.neg = CellBank("NEG", n_in + 1, fixed=fixed_circuits, generator=generator, region=regions[1])

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

    def _crossbar(self, values: LayerValues, g: torch.Tensor, source_r: torch.Tensor | None,
                  neg: torch.Tensor, neg_r: torch.Tensor) -> LoadedCrossbar:
        """The layer's loaded crossbar: positive lines (inputs, bias) from ``source_r``, with their NEG
        inputs as extra loads where the NEG is printed; negated lines from the NEGs' outputs (``neg_r``)."""
        negated = values.negated
        g_neg = torch.where(negated, g, torch.zeros_like(g))
        g_pos = g - g_neg
        present = values.neg_present.to(g.dtype)
        positive = LineGroup(g_pos[:, :-1], source_r, present / neg[..., _R_IN], present * neg[..., _I_IN0])
        negative = LineGroup(g_neg[:, :-1], neg_r)
        return LoadedCrossbar((positive, negative), g.sum(dim=1)[:, None, :])

    def _solve(self, values: LayerValues, g: torch.Tensor, v_src: torch.Tensor, source_r: torch.Tensor | None,
               neg: torch.Tensor, v_neg_in: torch.Tensor) -> tuple[Solution, torch.Tensor]:
        """The crossbar solved with the NEGs driven from ``v_neg_in``; and the NEGs' tanh."""
        neg_t = torch.tanh((v_neg_in - neg[..., 2]) * neg[..., 3])                     # (S, B, n_in + 1)
        v_negline = torch.addcmul(-neg[..., 0], neg_t, neg[..., 1], value=-1.0)           # -(eta1 + eta2 t)
        crossbar = self._crossbar(values, g, source_r, neg, output_resistance(neg, neg_t, inverting=True))
        return crossbar.solve((v_src, v_negline)), neg_t

    def forward(self, drive: Drive, maps: tuple[CellMap, CellMap], n_samples: int, eps: float,
                generator: torch.Generator | None, with_power: bool = True) -> tuple[Drive, torch.Tensor]:
        """The layer's ACT outputs as the next layer's drive, and its (S, B) power in W (0 unless asked).

        ``drive``: (S or 1, B, n_in) open-circuit voltages of what drives the inputs and their source
        resistances (loading module). The NEG cells see their input line's loaded voltage, so when that
        line is loaded the solve is repeated LOADED_ITERATIONS times with the NEG outputs updated. The first
        pass runs outside autograd: the fixed point has converged enough by the second that the gradient
        through the last two is the fully unrolled one to 1e-5 (relative, measured on cardiotocography with
        NEGs in both layers), the forward value is the same to the bit, and a training step costs 71 ms
        instead of 95.
        """
        values = self.printed()
        dtype, s = drive.v.dtype, max(n_samples, 1)
        g = vary(values.g_s, n_samples, eps, generator).to(dtype)                       # (S, R, C)
        neg = spread_cells(maps[1].targets_and_ports(vary(values.neg, n_samples, eps, generator).to(dtype)),
                           maps[1], n_samples, eps, generator)[:, None]
        act = spread_cells(maps[0].targets_and_ports(vary(values.act, n_samples, eps, generator).to(dtype)),
                           maps[0], n_samples, eps, generator)[:, None]
        batch = drive.v.shape[1]
        v_src = torch.cat([drive.v.expand(s, batch, drive.v.shape[2]),
                           torch.full((s, batch, 1), BIAS_V, dtype=dtype)], dim=2)       # inputs and bias
        source_r = None if drive.r_out_ohm is None else torch.cat(
            [drive.r_out_ohm, torch.zeros((*drive.r_out_ohm.shape[:2], 1), dtype=dtype)], dim=2)
        coupled = source_r is not None and bool(values.neg_present[:-1].any())
        v_neg_in = v_src
        if coupled:  # the NEG inputs' loaded voltages: iterate to the fixed point, autograd on the last step
            with torch.no_grad():
                for _ in range(LOADED_ITERATIONS - 2):
                    v_neg_in = self._solve(values, g, v_src, source_r, neg, v_neg_in)[0].lines(0)
            v_neg_in = self._solve(values, g, v_src, source_r, neg, v_src + (v_neg_in - v_src).detach())[0].lines(0)
        solution, neg_t = self._solve(values, g, v_src, source_r, neg, v_neg_in)
        v_z = solution.v_z
        act_t = _switching(v_z - act[..., 2], act[..., 3])
        out = Drive(torch.addcmul(act[..., 0], act[..., 1], act_t), output_resistance(act, act_t, inverting=False))
        if not with_power:
            return out, torch.zeros((), dtype=dtype)
        crossbar_w = solution.dissipation_w()
        act_power = (act[..., 4] + act[..., 5] * act_t + act[..., 6] * v_z**2).sum(dim=2)
        neg_cells = neg[..., 4] + neg[..., 5] * neg_t + neg[..., 6] * v_neg_in**2
        neg_power = (neg_cells * self.neg_presence(values).to(dtype)).sum(dim=2)
        return out, crossbar_w + act_power + neg_power


class PrintedNetwork(nn.Module):
    """Layers ``[inputs, hidden..., classes]`` of printed crossbars, every layer ending in ACT cells."""

    def __init__(self, layers: tuple[int, ...], act_map: CellMap, neg_map: CellMap, *, fixed_circuits: bool = False,
                 seed: int = 0, rh_ohm_sq: float | None = None) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.layers_spec = tuple(int(n) for n in layers)
        self.act_map, self.neg_map = act_map, neg_map
        g_range = crossbar_g_range_s(rh_ohm_sq)
        regions = (act_map.region, neg_map.region)
        self.layers = nn.ModuleList(PrintedLayer(a, b, fixed_circuits=fixed_circuits, generator=generator,
                                                 g_range_s=g_range, regions=regions)
                                    for a, b in zip(self.layers_spec, self.layers_spec[1:]))

    def forward(self, x: torch.Tensor, *, n_samples: int = 0, eps: float = 0.0,
                generator: torch.Generator | None = None, with_power: bool = True,
                dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, n_in) inputs (V) -> ((S, B, classes) output voltages, (S, B) power in W); S = 1 when nominal.

        Training runs in float32 (2 to 3 times faster on CPU); predictions and export use float64.
        """
        drive = Drive(x.to(dtype)[None], None)
        power = torch.zeros((), dtype=dtype)
        for layer in self.layers:
            drive, p = layer(drive, (self.act_map, self.neg_map), n_samples, eps, generator, with_power)
            power = power + p
        return drive.v, power

    def printed(self) -> list[LayerValues]:
        return [layer.printed() for layer in self.layers]

    def keep_cells_measured(self) -> None:
        """Bring learnable cells back inside the calibration's measured region (cell_design.keep_measured)."""
        for layer in self.layers:
            layer.act.keep_measured()
            layer.neg.keep_measured()
